//! ctnetlink conntrack dump replies through the collectors' decoding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chokepoint::collect::net::replay::ctnetlink(data);
});
