//! Format detection and whichever reader it picks, as `chokepoint timeline FILE` reads a file.
#![no_main]
use std::{io::Cursor, path::Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chokepoint::timeline::read_from(Cursor::new(data), Path::new("fuzz"));
});
