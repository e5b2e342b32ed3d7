//! Finding the programs the tests drive: load generators, servers, kernel tools, and the
//! binaries under test.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The venv `cargo xtask setup` installs k6 and locust into.
fn venv_bin() -> Option<PathBuf> {
    env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/chokepoint/venv/bin"))
}

/// The newest /usr/lib/postgresql/N/bin (initdb, postgres, pg_ctl are not on PATH on Debian).
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.is_dir())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// PATH plus the places Debian and `cargo xtask setup` put tools that PATH may miss.
fn search_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    let extra = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .into_iter()
    .map(PathBuf::from)
    .chain(postgres_bin())
    .chain(venv_bin())
    .chain(env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")));
    for dir in extra {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    env::join_paths(dirs).unwrap_or_default()
}

/// The path of an installed tool, or None.
pub fn try_tool(name: &str) -> Option<PathBuf> {
    let cwd = env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in(name, Some(search_path()), cwd).ok()
}

/// The path of an installed tool (`wrk`, `nginx`, `initdb`, `k6`...); panics with what to do
/// when it is missing.
pub fn tool(name: &str) -> PathBuf {
    try_tool(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed (searched PATH, /usr/sbin, postgres and venv dirs): run `cargo xtask setup`")
    })
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    // This crate lives at tests/testbed/.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The chokepoint binary under test: `CHOKEPOINT_BIN` (set by `cargo xtask test`), else
/// target/release/chokepoint of this workspace (honouring CARGO_TARGET_DIR).
pub fn chokepoint_bin() -> PathBuf {
    if let Some(bin) = env::var_os("CHOKEPOINT_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "CHOKEPOINT_BIN={} is not a file",
            bin.display()
        );
        return bin;
    }
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(
            || workspace_root().join("target"),
            |t| workspace_root().join(t),
        );
    let bin = target.join("release/chokepoint");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release` (or `cargo xtask test`, which sets CHOKEPOINT_BIN)",
        bin.display()
    );
    bin
}

/// A workload binary of this crate (`cpu-burn`, `lock-contend`), built beside the test
/// executables by `cargo test -p chokepoint-tests`.
pub fn workload_bin(name: &str) -> PathBuf {
    let exe = env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: it is built by `cargo test -p chokepoint-tests` (a [[bin]] of tests/Cargo.toml)",
        bin.display()
    );
    bin
}

/// How long `run_chokepoint` lets one command run before it kills it and panics.
pub const CHOKEPOINT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the chokepoint binary with `args` (stdin closed) and returns its output; panics if it
/// runs longer than [`CHOKEPOINT_TIMEOUT`].
pub fn run_chokepoint<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(chokepoint_bin());
    cmd.args(args);
    output_within(&mut cmd, CHOKEPOINT_TIMEOUT)
}

/// `chokepoint run --json <tmp> -- command...`, which must succeed: what the command printed
/// (chokepoint's summary follows it) and the JSON result.
pub fn run_for_json(command: &[&str]) -> (String, serde_json::Value) {
    let json = std::env::temp_dir().join(format!(
        "chokepoint-e2e-{}-{}.json",
        std::process::id(),
        NEXT_JSON.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut args = vec!["run".into(), "--json".into(), json.clone().into_os_string()];
    args.push("--".into());
    args.extend(command.iter().map(std::ffi::OsString::from));
    let o = run_chokepoint(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&json).expect("JSON result written");
    let _ = std::fs::remove_file(&json);
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        serde_json::from_str(&text).expect("JSON result"),
    )
}

static NEXT_JSON: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The value of the first `key=value` word in `output` (what a test workload printed).
pub fn printed<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in the output: {output}"))
}

/// Runs `cmd` with stdin closed, collecting its output; kills it and panics after `timeout`.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let described = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "{described} still ran after {} s; killed. stderr:\n{}",
                    timeout.as_secs(),
                    String::from_utf8_lossy(&stderr)
                );
            }
            Err(e) => panic!("waiting for {described}: {e}"),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_tool_on_path_and_misses_a_made_up_one() {
        let sh = tool("sh");
        assert!(sh.is_absolute() && sh.is_file(), "{}", sh.display());
        assert!(try_tool("no-such-tool-chokepoint-xyz").is_none());
    }

    #[test]
    #[should_panic(expected = "run `cargo xtask setup`")]
    fn a_missing_tool_says_how_to_install_it() {
        tool("no-such-tool-chokepoint-xyz");
    }

    #[test]
    fn output_within_collects_both_streams_and_the_status() {
        let o = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    }

    #[test]
    #[should_panic(expected = "killed")]
    fn output_within_kills_a_command_that_runs_too_long() {
        output_within(Command::new("sleep").arg("30"), Duration::from_millis(200));
    }
}
