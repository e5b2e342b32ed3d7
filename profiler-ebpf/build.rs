use which::which;

/// Rebuild the kernel programs when bpf-linker changes: it is not a cargo dependency, so cargo
/// cannot know that a different linker (or LLVM) would produce a different object.
fn main() {
    // Set by aya-build (`--cfg bpf_target_arch="..."`) when the profiler builds this crate.
    println!(
        "cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\", \"arm\", \"riscv64\", \"powerpc64\", \"s390x\", \"mips\", \"loongarch64\"))"
    );
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => println!("cargo:warning=bpf-linker not found: run `cargo xtask setup`"),
    }
}
