//! `cargo xtask fixtures [SCENARIO...]`: re-records the lab fixtures the attribution tests
//! replay offline (`profiler/tests/lab_fixtures.rs`). Each scenario runs under the real probes
//! with `chokepoint lab --keep`; only a recording whose verdict matched the designed cause
//! replaces the committed one. Run it on a quiet machine: others' work distorts verdicts.
use std::{
    fs,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::env;

/// Where the committed recordings live, relative to the workspace root.
pub const FIXTURE_DIR: &str = "profiler/tests/fixtures/lab";

#[derive(Debug, clap::Args)]
pub struct FixturesArgs {
    /// Scenarios to record (default: all of them).
    pub scenarios: Vec<String>,
    /// Seconds of load per scenario (short keeps the files small).
    #[arg(long, default_value_t = 6)]
    pub seconds: u32,
}

pub fn fixtures(args: &FixturesArgs) -> anyhow::Result<()> {
    if !env::is_root() {
        bail!("recording loads eBPF programs: run `cargo xtask fixtures` as root");
    }
    let status = env::cargo()
        .args(["build", "--release", "-p", "chokepoint"])
        .stdin(Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    let bin = env::chokepoint_release_bin()?;
    let root = env::workspace_root();
    let dir = root.join(FIXTURE_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix("chokepoint-fixtures-")
        .tempdir()
        .context("temp dir")?;
    let report = work.path().join("lab.json");
    let scenarios = if args.scenarios.is_empty() {
        vec!["all".to_string()]
    } else {
        args.scenarios.clone()
    };
    // A failing scenario is reported, not fatal: the others' recordings are still useful.
    let _ = Command::new(&bin)
        .arg("lab")
        .args(&scenarios)
        .args(["--keep", "--seconds", &args.seconds.to_string(), "--json"])
        .arg(&report)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {} lab", bin.display()))?;
    let text =
        fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", report.display()))?;
    let mut copied = 0;
    for s in value["scenarios"].as_array().into_iter().flatten() {
        let name = s["scenario"].as_str().unwrap_or("?");
        let (Some("passed"), Some(rec)) = (s["status"].as_str(), s["recording"].as_str()) else {
            println!("fixtures: {name}: not replaced ({})", s["status"]);
            continue;
        };
        let to = dir.join(format!("{name}.rec"));
        fs::copy(rec, &to).with_context(|| format!("copying {rec} to {}", to.display()))?;
        // Kept recordings are 0600; fixtures are committed and read by unprivileged tests.
        fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .with_context(|| format!("chmod {}", to.display()))?;
        println!("fixtures: {name}: {}", to.display());
        copied += 1;
    }
    // The lab's kept results directory has served its purpose.
    for s in value["scenarios"].as_array().into_iter().flatten() {
        if let Some(dir) = s["recording"]
            .as_str()
            .and_then(|r| std::path::Path::new(r).parent())
        {
            let _ = fs::remove_dir_all(dir);
        }
    }
    println!("fixtures: {copied} recordings written to {}", dir.display());
    Ok(())
}
