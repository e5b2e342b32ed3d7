//! `cargo xtask fuzz [--seconds N] [--target NAME]...`: every cargo-fuzz target in `fuzz/`
//! (one per reader of other programs' bytes) for N seconds each, with the pinned nightly,
//! seeded from the fixtures; a summary of what each run found. docs/fuzzing.md.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{env, setup};

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Only these targets (repeatable); every target by default.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
}

/// Where a seed comes from: a fixture directory, a file-name pattern (`*` once), the byte that
/// picks the format in a target reading several (none: the file as it is), and whether to keep
/// only the first and last lines (recordings: each line is tens of KiB).
struct Seeds {
    dir: &'static str,
    pattern: &'static str,
    pick: Option<u8>,
    trim_lines: bool,
}

const fn seeds(dir: &'static str, pattern: &'static str, pick: Option<u8>) -> Seeds {
    Seeds {
        dir,
        pattern,
        pick,
        trim_lines: false,
    }
}

const TL: &str = "timeline";

/// Every target, the longest input it is given, and its seeds.
const TARGETS: &[(&str, usize, &[Seeds])] = &[
    ("timeline", 1 << 16, &[seeds(TL, "*", None)]),
    (
        "recording",
        1 << 17,
        &[Seeds {
            dir: "lab",
            pattern: "*.rec",
            pick: None,
            trim_lines: true,
        }],
    ),
    (
        "tracefs_format",
        1 << 13,
        &[seeds("tracefs", "*.format", None)],
    ),
    (
        "rtnetlink",
        1 << 14,
        &[seeds("netlink", "rtnl-*.bin", None)],
    ),
    (
        "sock_diag",
        1 << 13,
        &[seeds("netlink", "sock-diag-*.bin", None)],
    ),
    (
        "ctnetlink",
        1 << 13,
        &[seeds("netlink", "ctnetlink*.bin", None)],
    ),
    (
        "k6",
        1 << 16,
        &[
            seeds(TL, "k6*.json", Some(0)),
            seeds(TL, "k6.csv", Some(1)),
            seeds(TL, "k6-*summary.json", Some(2)),
            seeds(TL, "k6-stdout.txt", Some(3)),
        ],
    ),
    (
        "hey",
        1 << 16,
        &[
            seeds(TL, "hey-*.csv", Some(0)),
            seeds(TL, "hey.txt", Some(1)),
        ],
    ),
    ("wrk", 1 << 14, &[seeds(TL, "wrk-*.txt", None)]),
    (
        "ab",
        1 << 16,
        &[
            seeds(TL, "ab-gnuplot.tsv", Some(0)),
            seeds(TL, "ab-percentiles.csv", Some(1)),
            seeds(TL, "ab*.txt", Some(2)),
        ],
    ),
    (
        "vegeta",
        1 << 16,
        &[
            seeds(TL, "vegeta.json", Some(0)),
            seeds(TL, "vegeta.csv", Some(1)),
            seeds(TL, "vegeta-report.json", Some(2)),
        ],
    ),
    ("oha", 1 << 15, &[seeds(TL, "oha*.json", None)]),
    (
        "locust",
        1 << 16,
        &[
            seeds(TL, "locust_stats_history.csv", Some(0)),
            seeds(TL, "locust_stats.csv", Some(1)),
        ],
    ),
    (
        "jmeter",
        1 << 16,
        &[
            seeds(TL, "jmeter.jtl.csv", Some(0)),
            seeds(TL, "jmeter.jtl.xml", Some(1)),
        ],
    ),
    ("gatling", 1 << 16, &[seeds(TL, "simulation.log", None)]),
    (
        "pgbench",
        1 << 16,
        &[
            seeds(TL, "pgbench-log.txt", Some(0)),
            seeds(TL, "pgbench-aggregate.txt", Some(1)),
            seeds(TL, "pgbench*.txt", Some(2)),
        ],
    ),
    (
        "siege",
        1 << 15,
        &[
            seeds(TL, "siege.log", Some(0)),
            seeds(TL, "siege.txt", Some(1)),
        ],
    ),
];

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
        None => name == pattern,
    }
}

/// Writes the seed corpus of `target` into `dir` (kept between runs with what libFuzzer added).
fn write_seeds(dir: &Path, seeds: &[Seeds]) -> anyhow::Result<usize> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let fixtures = env::workspace_root().join("profiler/tests/fixtures");
    let mut written = 0;
    for s in seeds {
        let from = fixtures.join(s.dir);
        let mut names: Vec<String> = fs::read_dir(&from)
            .with_context(|| format!("reading {}", from.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| matches(s.pattern, n))
            .collect();
        names.sort();
        for name in names {
            let mut bytes = fs::read(from.join(&name))?;
            if s.trim_lines {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = text.lines().collect();
                let keep: Vec<&str> = lines.iter().take(2).chain(lines.last()).copied().collect();
                bytes = (keep.join("\n") + "\n").into_bytes();
            }
            if let Some(pick) = s.pick {
                bytes.insert(0, pick);
            }
            fs::write(
                dir.join(format!("seed-{}-{name}", s.pick.unwrap_or(0))),
                bytes,
            )?;
            written += 1;
        }
    }
    Ok(written)
}

fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.sort();
    found
}

pub fn fuzz(args: &FuzzArgs) -> anyhow::Result<()> {
    let has_cargo_fuzz = Command::new("cargo-fuzz")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_cargo_fuzz {
        bail!(
            "cargo-fuzz is not installed: run `cargo xtask setup` (or `cargo install cargo-fuzz`)"
        );
    }
    for t in &args.targets {
        if !TARGETS.iter().any(|(name, ..)| name == t) {
            let known: Vec<&str> = TARGETS.iter().map(|(n, ..)| *n).collect();
            bail!("no fuzz target {t} (known: {})", known.join(", "));
        }
    }
    let root = env::workspace_root();
    let mut results = Vec::new();
    for (name, max_len, seeds) in TARGETS {
        if !args.targets.is_empty() && !args.targets.iter().any(|t| t == name) {
            continue;
        }
        let corpus = root.join("fuzz/corpus").join(name);
        let seeded = write_seeds(&corpus, seeds)?;
        let artifacts_dir = root.join("fuzz/artifacts").join(name);
        let before = artifacts(&artifacts_dir);
        println!(
            "\n==> xtask fuzz: {name} for {} s ({seeded} seeds)",
            args.seconds
        );
        let started = Instant::now();
        // The readers need no kernel programs: the fuzz build (its own target dir,
        // fuzz/target) skips them rather than building them with sanitizer flags.
        let status = Command::new("rustup")
            .current_dir(&root)
            .env("AYA_BUILD_SKIP", "1")
            .args(["run", setup::nightly(), "cargo", "fuzz", "run", name])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={}", args.seconds),
                "-timeout=10",
                "-rss_limit_mb=2048",
                &format!("-max_len={max_len}"),
                "-print_final_stats=1",
            ])
            .stdin(Stdio::null())
            .status()
            .context("running cargo fuzz")?;
        let new: Vec<PathBuf> = artifacts(&artifacts_dir)
            .into_iter()
            .filter(|a| !before.contains(a))
            .collect();
        let corpus_size = fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        results.push((
            *name,
            status.success() && new.is_empty(),
            started.elapsed(),
            corpus_size,
            new,
        ));
    }
    println!("\n==> xtask fuzz: summary");
    let mut failed = 0;
    for (name, ok, took, corpus, new) in &results {
        let word = if *ok { "clean" } else { "FOUND" };
        println!(
            "  {name:<16} {word}  {:.0} s, corpus {corpus}",
            took.as_secs_f64()
        );
        for a in new {
            println!("    {}", a.display());
        }
        failed += usize::from(!ok);
    }
    if failed > 0 {
        bail!(
            "{failed} target(s) found a crash, hang or leak: reproduce with `cargo +{} fuzz run TARGET ARTIFACT`",
            setup::nightly()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target has its file in fuzz/ and seeds in the fixtures; every file is a target.
    #[test]
    fn every_target_is_declared_and_seeded() {
        let root = env::workspace_root();
        let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
        let files: Vec<String> = fs::read_dir(root.join("fuzz/fuzz_targets"))
            .expect("fuzz_targets")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert_eq!(files.len(), TARGETS.len(), "{files:?}");
        let scratch = tempfile::tempdir().expect("tempdir");
        for (name, _, seeds) in TARGETS {
            assert!(files.contains(&format!("{name}.rs")), "{name}");
            assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
            let n = write_seeds(&scratch.path().join(name), seeds).expect("seeds");
            assert!(n >= seeds.len(), "{name}: {n} seeds");
        }
    }
}
