//! inet_diag dump replies (with tcp_info and meminfo) through the collectors' decoding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chokepoint::collect::net::replay::sock_diag(data);
    chokepoint::collect::net::replay::raw_attributes(data);
});
