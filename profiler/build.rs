//! Builds the kernel programs (nightly, bpfel-unknown-none) and leaves the object in OUT_DIR,
//! where `probes::loader` embeds it: the release binary is one self-contained file.
fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiler-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package { name: "chokepoint-ebpf", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
