//! The recording reader (`chokepoint analyze REC`).
#![no_main]
use std::{io::Cursor, path::Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chokepoint::recording::Recording::read_from(Cursor::new(data), Path::new("fuzz.rec"));
});
