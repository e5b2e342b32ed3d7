//! `cargo xtask demo`: set-up, release build, then `chokepoint lab`: about a minute of real
//! load under chokepoint with its verdicts printed and checked. Each stage says what it does
//! and how long it took. The lab stops the servers it starts on every exit path (return,
//! error, Ctrl-C).
use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{env, setup};

pub fn demo() -> anyhow::Result<()> {
    if !env::is_root() {
        bail!("the demo loads eBPF programs: run `cargo xtask demo` as root");
    }
    let total = Instant::now();
    println!(
        "==> demo 1/3: set-up (first time: the pinned nightly and bpf-linker, about 2 min; Debian packages and k6, about 1 min)"
    );
    let started = Instant::now();
    setup::setup()?;
    println!("==> demo 1/3: set-up done in {}", took(started));
    println!(
        "\n==> demo 2/3: cargo build --release (first time about 3 min on 2 cores: the profiler and its kernel programs)"
    );
    let started = Instant::now();
    let status = env::cargo()
        .args(["build", "--release"])
        .stdin(Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    println!("==> demo 2/3: build done in {}", took(started));
    let bin = env::chokepoint_release_bin()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // Ctrl-C reaches chokepoint (same terminal process group), which stops its load and still
    // prints a verdict; we only note it, skip what is left and clean up.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    // The lab's default subset: real servers, real load generators, real verdicts, each
    // checked against its designed cause (about a minute).
    println!(
        "\n==> demo 3/3: chokepoint lab (the default scenarios, about a minute; `chokepoint lab --list` for all)"
    );
    let started = Instant::now();
    let result = profiler(&bin, &["lab".to_string()]);
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    println!("==> demo 3/3: lab done in {}", took(started));
    println!(
        "\n==> demo: done in {}. Next: `{} run -- <your load test>` (see README.md)",
        took(total),
        bin.display()
    );
    result
}

fn took(since: Instant) -> String {
    let s = since.elapsed().as_secs_f64();
    if s < 90.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
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
