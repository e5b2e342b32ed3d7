//! Builds the kernel programs (the pinned nightly of `profiler-ebpf/rust-toolchain.toml`,
//! bpfel-unknown-none) and leaves the object in OUT_DIR, where `probes::loader` embeds it: the
//! release binary is one self-contained file.
//!
//! `AYA_BUILD_SKIP=1` skips the kernel build (for work on pure logic without the eBPF
//! toolchain); the embedded object is then empty and loading probes fails with a clear error.
use std::{env, fs, path::PathBuf};

/// The `channel = "..."` of a rust-toolchain.toml.
fn toolchain_channel(toml: &str) -> Option<&str> {
    toml.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        (key.trim() == "channel").then(|| value.trim().trim_matches('"'))
    })
}

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiler-ebpf");
    let toolchain_file = format!("{root}/rust-toolchain.toml");
    println!("cargo:rerun-if-changed={toolchain_file}");
    let toml = fs::read_to_string(&toolchain_file)
        .map_err(|e| anyhow::anyhow!("{toolchain_file}: {e}"))?;
    let nightly = toolchain_channel(&toml)
        .ok_or_else(|| anyhow::anyhow!("{toolchain_file} names no channel"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "chokepoint-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(nightly),
    )?;
    let object = PathBuf::from(env::var("OUT_DIR")?).join("chokepoint");
    if !object.exists() {
        fs::write(&object, [])?;
    }
    Ok(())
}
