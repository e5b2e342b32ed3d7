//! The JSON result (contract in docs/json.md): the analysis serialised as is.
use std::{fs, io, path::Path};

use crate::analysis::Analysis;

pub fn write(analysis: &Analysis, path: &Path) -> io::Result<()> {
    let text = serde_json::to_string_pretty(analysis)?;
    fs::write(path, text + "\n")
}
