//! The pgbench readers (PgbenchLog, PgbenchAggregate, PgbenchText), given their format (no detection).
#![no_main]
use std::{io::Cursor, path::Path};

use chokepoint::timeline::{Format, read_as};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the format (the seeds carry it), the rest is the file.
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    const FORMATS: [Format; 3] = [
        Format::PgbenchLog,
        Format::PgbenchAggregate,
        Format::PgbenchText,
    ];
    let format = FORMATS[usize::from(pick) % FORMATS.len()];
    let _ = read_as(Cursor::new(file), Path::new("fuzz"), format);
});
