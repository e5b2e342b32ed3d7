use which::which;

/// Rebuild the kernel programs when bpf-linker changes: it is not a cargo dependency, so cargo
/// cannot know that a different linker (or LLVM) would produce a different object.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => println!("cargo:warning=bpf-linker not found: run `cargo xtask setup`"),
    }
}
