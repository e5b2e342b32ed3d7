//! `cargo xtask demo`: set-up, release build, then `chokepoint lab`: about a minute of real
//! load under chokepoint with its verdicts printed and checked. The lab stops the servers it
//! starts on every exit path (return, error, Ctrl-C).
use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context, bail};

use crate::{env, setup};

pub fn demo() -> anyhow::Result<()> {
    if !env::is_root() {
        bail!("the demo loads eBPF programs: run `cargo xtask demo` as root");
    }
    setup::setup()?;
    println!("\n==> demo: cargo build --release");
    let status = env::cargo()
        .args(["build", "--release"])
        .stdin(Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    let bin = env::chokepoint_release_bin()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // Ctrl-C reaches chokepoint (same terminal process group), which stops its load and still
    // prints a verdict; we only note it, skip what is left and clean up.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    // The lab's default subset: real servers, real load generators, real verdicts, each
    // checked against its designed cause (about a minute).
    println!("\n==> demo: chokepoint lab (the default scenarios; `chokepoint lab --list` for all)");
    let result = profiler(&bin, &["lab".to_string()]);
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    result
}

/// Runs chokepoint with its output on the terminal.
fn profiler(bin: &Path, args: &[String]) -> anyhow::Result<()> {
    println!("$ {} {}", bin.display(), env::shell_words(args));
    let status = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !status.success() {
        bail!(
            "chokepoint {} exited with {status}",
            args.first().map_or("", String::as_str)
        );
    }
    Ok(())
}
