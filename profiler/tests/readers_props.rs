//! Mutation property tests over every reader but the timelines' (timeline_props.rs has those):
//! the recording reader, the tracefs format parser and the netlink decoders fed with dumps
//! captured from a real kernel (fixtures/netlink/capture.py). Seeds are the fixtures; each
//! case applies a few random edits (bits flipped, bytes set, spans inserted, deleted,
//! duplicated, the end cut off). No reader may panic or take long, and what they say must be
//! consistent: errors name the input, a recording loses at most the lines an edit touched.
//! 64 cases per property (a few seconds in all); PROPTEST_CASES=N searches harder.
use std::{
    io::Cursor,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use chokepoint::{collect::net::replay, probes::format::Format, recording::Recording};
use proptest::prelude::*;

/// A reader that takes this long on a seed-sized input is hanging (debug builds included).
const BOUND: Duration = Duration::from_secs(2);

fn fixtures(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {ext} fixtures in {}", dir.display());
    files
}

fn seed(dir: &str, ext: &str, i: usize) -> Vec<u8> {
    let files = fixtures(dir, ext);
    std::fs::read(&files[i % files.len()]).expect("fixture readable")
}

/// One edit: its kind, where (a fraction of the length), and the bytes it brings.
#[derive(Debug, Clone)]
struct Edit {
    kind: u8,
    at: f64,
    bytes: Vec<u8>,
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        (
            0u8..6,
            0.0f64..1.0,
            proptest::collection::vec(any::<u8>(), 1..32),
        )
            .prop_map(|(kind, at, bytes)| Edit { kind, at, bytes }),
        1..6,
    )
}

fn mutate(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = ((data.len() as f64 * e.at) as usize).min(data.len());
        let span = (e.bytes[0] as usize).min(data.len() - at);
        match e.kind {
            0 if at < data.len() => data[at] ^= 1 << (e.bytes[0] % 8),
            1 if at < data.len() => data[at] = e.bytes[0],
            2 => {
                data.splice(at..at, e.bytes.iter().copied());
            }
            3 => {
                data.drain(at..at + span);
            }
            4 => {
                let copy = data[at..at + span].to_vec();
                data.splice(at..at, copy);
            }
            5 => data.truncate(at),
            _ => {}
        }
    }
    data
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    out
}

fn lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1
}

fn check_recording(bytes: &[u8]) -> Option<Recording> {
    match timed("reading a recording", || {
        Recording::read_from(Cursor::new(bytes), Path::new("input.rec"))
    }) {
        Ok(r) => {
            assert!(r.skipped.count + r.intervals.len() as u64 <= lines(bytes));
            assert!(
                r.skipped
                    .lines
                    .iter()
                    .all(|l| l.line >= 2 && l.line <= lines(bytes))
            );
            Some(r)
        }
        Err(e) => {
            assert!(e.to_string().starts_with("input.rec"), "{e}");
            None
        }
    }
}

#[test]
fn every_netlink_capture_replays_whole() {
    for (name, replay) in [
        ("rtnl-links.bin", replay::rtnetlink as fn(&[u8]) -> _),
        ("rtnl-addresses.bin", replay::rtnetlink),
        ("rtnl-routes.bin", replay::rtnetlink),
        ("rtnl-qdiscs.bin", replay::rtnetlink),
        ("sock-diag-tcp4.bin", replay::sock_diag),
        ("ctnetlink.bin", replay::ctnetlink),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/netlink")
            .join(name);
        let bytes = std::fs::read(&path).expect("capture");
        let r = replay(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(r.done, "{name}: no NLMSG_DONE");
        // A conntrack table may be empty on the machine that captured it; the others never are.
        assert!(r.objects > 0 || name == "ctnetlink.bin", "{name}: {r:?}");
    }
}

/// Found by the rtnetlink, sock_diag and ctnetlink fuzz targets: an NLMSG_ERROR reply whose
/// code is i32::MIN overflowed when negated into an errno.
#[test]
fn an_error_reply_with_the_most_negative_code_is_an_error_not_a_panic() {
    let mut reply = Vec::new();
    reply.extend_from_slice(&36u32.to_ne_bytes()); // nlmsg_len
    reply.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
    reply.extend_from_slice(&[0; 10]); // flags, seq, pid
    reply.extend_from_slice(&i32::MIN.to_ne_bytes());
    reply.extend_from_slice(&[0; 16]); // the request's header
    assert!(replay::rtnetlink(&reply).is_err());
    assert!(replay::sock_diag(&reply).is_err());
    assert!(replay::ctnetlink(&reply).is_err());
}

/// Found by the ctnetlink fuzz target's first long run: an nftables NEWSET message (nfnetlink
/// subsystem 10, not conntrack) whose NFTA_SET_EXPR holds a nested attribute claiming more bytes
/// than it has. netlink-packet-netfilter 0.4.0 sliced past its buffer on it; the ctnetlink
/// decoder now steps over every message that is not conntrack's, and counts it.
#[test]
fn a_message_of_another_netfilter_subsystem_is_skipped_and_counted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/netlink/found/ctnetlink-nftables-set.bin");
    let set = std::fs::read(&path).expect("found input");
    assert_eq!(u16::from_ne_bytes([set[4], set[5]]) >> 8, 10, "nftables");
    let r = replay::ctnetlink(&set).expect("skipped, not an error");
    assert_eq!((r.objects, r.skipped, r.done), (0, 1, false));

    // Inside a real dump, the conntrack entries around it still decode and NLMSG_DONE ends it.
    let capture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netlink/ctnetlink.bin");
    let dump = std::fs::read(&capture).expect("capture");
    let whole = replay::ctnetlink(&dump).expect("capture");
    let mut mixed = set.clone();
    mixed.extend_from_slice(&dump);
    let r = replay::ctnetlink(&mixed).expect("mixed");
    assert_eq!((r.objects, r.skipped, r.done), (whole.objects, 1, true));
}

/// What the fuzz targets found (fixtures/*/found/), kept as they were: each must now decode
/// or fail without a panic.
#[test]
fn every_input_the_fuzzers_found_is_handled() {
    for file in fixtures("netlink/found", "") {
        let bytes = std::fs::read(&file).expect("found input");
        let _ = replay::rtnetlink(&bytes);
        let _ = replay::sock_diag(&bytes);
        let _ = replay::ctnetlink(&bytes);
    }
    for file in fixtures("tracefs/found", "") {
        let bytes = std::fs::read(&file).expect("found input");
        let _ = Format::parse(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn every_tracefs_capture_parses() {
    for file in fixtures("tracefs", ".format") {
        let text = std::fs::read_to_string(&file).expect("format file");
        let f = Format::parse(&text).unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
        assert!(f.fields.contains_key("common_pid"), "{}", file.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn edited_recordings_read_or_say_why(i in 0usize..64, edits in edits()) {
        check_recording(&mutate(seed("lab", ".rec", i), &edits));
    }

    /// One byte changed anywhere after the header line costs at most the two lines around it
    /// (a newline changed joins two lines; a byte changed into one splits a line in two).
    #[test]
    fn one_byte_changed_after_the_header_costs_at_most_two_intervals(
        i in 0usize..64, at in 0.0f64..1.0, byte in any::<u8>()
    ) {
        let raw = seed("lab", ".rec", i);
        let whole = check_recording(&raw).expect("the fixture reads");
        let first = raw.iter().position(|b| *b == b'\n').expect("a header line") + 1;
        let pos = first + ((raw.len() - first) as f64 * at) as usize;
        let mut bad = raw.clone();
        if let Some(b) = bad.get_mut(pos) {
            *b = byte;
        }
        let r = check_recording(&bad).expect("a changed byte after the header never loses the file");
        prop_assert!(r.intervals.len() + 2 >= whole.intervals.len());
        prop_assert!(r.skipped.count <= 2);
    }

    #[test]
    fn edited_tracefs_formats_parse_or_name_their_line(i in 0usize..64, edits in edits()) {
        let text = String::from_utf8_lossy(&mutate(seed("tracefs", ".format", i), &edits)).into_owned();
        if let Err((line, _)) = timed("parsing a format file", || Format::parse(&text)) {
            prop_assert!(line >= 1 && line as u64 <= lines(text.as_bytes()));
        }
    }

    /// Multi-byte whitespace included: the fuzz target found a split inside U+0085.
    #[test]
    fn arbitrary_text_never_panics_the_format_parser(text in "(field:[ -~\\x{85}\\x{a0}\\x{2028}é]{0,40};\t?offset:[0-9a-z]{0,6};\t?size:[0-9]{0,4};\n?){0,8}") {
        let _ = timed("parsing a format file", || Format::parse(&text));
    }

    #[test]
    fn edited_netlink_captures_decode_or_say_why(i in 0usize..64, edits in edits()) {
        let files = fixtures("netlink", ".bin");
        let file = &files[i % files.len()];
        let bytes = mutate(std::fs::read(file).expect("capture"), &edits);
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // Every decoder over every capture: a reply of another family must not panic either.
        let _ = timed(name, || replay::rtnetlink(&bytes));
        let _ = timed(name, || replay::sock_diag(&bytes));
        let _ = timed(name, || replay::ctnetlink(&bytes));
        timed(name, || replay::raw_attributes(&bytes));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_netlink_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = replay::rtnetlink(&bytes);
        let _ = replay::sock_diag(&bytes);
        let _ = replay::ctnetlink(&bytes);
        replay::raw_attributes(&bytes);
    }
}
