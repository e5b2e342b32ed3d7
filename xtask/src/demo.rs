//! `cargo xtask demo`: set-up, release build, then about a minute of real load under
//! chokepoint with its verdicts printed. Servers started here stop on every exit path
//! (return, error, Ctrl-C, or xtask being killed).
use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context, bail};
use chokepoint_tests::{Nginx, try_tool};

use crate::{env, setup};

/// What the demo shows. When `chokepoint lab` lands, this becomes `Demo::Lab`.
const DEMO: Demo = Demo::RunAgainstNginx;

enum Demo {
    /// nginx on loopback, `chokepoint run -- wrk ...` with connection churn, then keep-alive.
    RunAgainstNginx,
    /// `chokepoint lab`: the profiler stages its own scenarios.
    #[expect(dead_code, reason = "the switch target once `chokepoint lab` exists")]
    Lab,
}

const WRK_SECONDS: u32 = 15;

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
    match DEMO {
        Demo::RunAgainstNginx => run_against_nginx(&bin, &interrupted),
        Demo::Lab => profiler(&bin, &["lab".to_string()]),
    }
}

fn run_against_nginx(bin: &Path, interrupted: &AtomicBool) -> anyhow::Result<()> {
    let wrk = try_tool("wrk").context("wrk is not installed: run `cargo xtask setup`")?;
    let nginx = Nginx::config()
        .workers(2)
        .try_start()
        .context("starting nginx")?;
    println!(
        "\n==> demo: nginx on {} (master pid {}, 2 workers), {WRK_SECONDS} s of wrk per run",
        nginx.url(),
        nginx.master_pid()
    );
    let runs: [(&str, &str, &[&str]); 2] = [
        (
            "every request on a new connection",
            "/tmp/chokepoint-demo.json",
            &["-H", "Connection: close"],
        ),
        (
            "keep-alive connections",
            "/tmp/chokepoint-demo-keepalive.json",
            &[],
        ),
    ];
    for (title, json, headers) in runs {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        let rec = json.replace(".json", ".rec");
        let mut args: Vec<String> = ["run", "--out", &rec, "--json", json, "--"]
            .map(String::from)
            .to_vec();
        args.push(wrk.display().to_string());
        args.extend(["-t2", "-c64", &format!("-d{WRK_SECONDS}s")].map(String::from));
        args.extend(headers.iter().map(|h| h.to_string()));
        args.push(nginx.url());
        println!("\n==> demo: {title}");
        profiler(bin, &args)?;
    }
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
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
