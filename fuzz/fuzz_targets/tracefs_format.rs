//! The tracefs `events/*/*/format` parser the probes pick their offsets from.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chokepoint::probes::format::Format::parse(&String::from_utf8_lossy(data));
});
