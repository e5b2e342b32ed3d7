//! The wrk reader, given its format (no detection).
#![no_main]
use std::{io::Cursor, path::Path};

use chokepoint::timeline::{Format, read_as};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_as(Cursor::new(data), Path::new("fuzz"), Format::WrkText);
});
