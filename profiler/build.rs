//! Builds the kernel programs (nightly, bpfel-unknown-none) and leaves the object in OUT_DIR,
//! where `probes::loader` embeds it: the release binary is one self-contained file.
//!
//! `AYA_BUILD_SKIP=1` skips the kernel build (for work on pure logic without the eBPF
//! toolchain); the embedded object is then empty and loading probes fails with a clear error.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiler-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "chokepoint-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )?;
    let object = PathBuf::from(env::var("OUT_DIR")?).join("chokepoint");
    if !object.exists() {
        fs::write(&object, [])?;
    }
    Ok(())
}
