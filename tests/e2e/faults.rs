//! Faults end to end, with the real probes: a recording whose disk fills up mid-run.
//! Needs root; run through `cargo xtask test`.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use chokepoint_tests::run_chokepoint;
use serde_json::Value;

/// A tmpfs of `size` mounted on a fresh directory, unmounted and removed when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("chokepoint-e2e-{}-full", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount -t tmpfs -o size={size} {}", dir.display());
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("result is JSON")
}

/// The disk fills after a few intervals (each is tens of KiB): the error names the file, the
/// session carries on in memory, and the verdict and the JSON cover the whole run.
#[test]
fn a_full_disk_costs_the_file_not_the_verdict() {
    let disk = SmallDisk::mount("64k");
    let rec = disk.dir.join("full.rec");
    let out = std::env::temp_dir().join(format!("chokepoint-e2e-{}-full.json", std::process::id()));
    let o = run_chokepoint([
        "record",
        "--out",
        rec.to_str().expect("utf-8"),
        "--duration",
        "8s",
        "--json",
        out.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    let said = format!("cannot write recording {}", rec.display());
    assert!(
        stderr.contains(&said) && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(stderr.contains("is incomplete"), "{stderr}");
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("verdict:"), "{stdout}\n{stderr}");

    let r = json(&out);
    let _ = std::fs::remove_file(&out);
    assert!(r["verdict"]["kind"].is_string());
    let seconds = r["duration_seconds"].as_f64().expect("duration");
    assert!(seconds >= 7.0, "the whole run is analysed: {seconds} s");
    let limitations = r["limitations"].to_string();
    assert!(
        limitations.contains("writing it failed after"),
        "{limitations}"
    );

    // The file holds a readable prefix: its header and the intervals before the disk filled.
    let written = chokepoint::recording::Recording::read(&rec).expect("the prefix reads");
    assert!(written.end.is_none());
    assert!((written.intervals.len() as f64) < seconds - 1.0);
}
