//! The load command's terminal: on a terminal (`script` gives chokepoint one) the command
//! gets a pseudo-terminal of its own, of the same size, what is typed reaches it once, and
//! Ctrl-C still stops it through chokepoint; without one (stdout piped) it gets pipes, as
//! before. And k6 run with no output of its own still leaves a per-request timeline.
//! Needs root; run through `cargo xtask test`.
use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use chokepoint_tests::{
    CHOKEPOINT_TIMEOUT, Nginx, chokepoint_bin, output_within, run_chokepoint, tool,
};
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chokepoint-terminal-{}-{name}", std::process::id()))
}

/// `s` as one word for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell line that runs `chokepoint run --json <json> -- command...` (exec'd, so that
/// chokepoint itself is the foreground of script's terminal), after `before`.
fn chokepoint_line(before: &str, json: &Path, command: &[&str]) -> String {
    let mut line = format!(
        "{before}exec {} run --json {} --",
        quote(&chokepoint_bin().to_string_lossy()),
        quote(&json.to_string_lossy())
    );
    for a in command {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("result is JSON")
}

/// chokepoint on a terminal of its own (`script`), stdin closed: what the terminal showed.
fn on_terminal(before: &str, command: &[&str]) -> (String, Value) {
    let json_path = tmp("tty.json");
    let o = output_within(
        Command::new(tool("script"))
            .args([
                "-qec",
                &chokepoint_line(before, &json_path, command),
                "/dev/null",
            ])
            .env_remove("K6_OUT"),
        CHOKEPOINT_TIMEOUT,
    );
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{shown}");
    (shown, json(&json_path))
}

/// A terminal session kept open: script's input is ours to type on, its output read as it
/// comes.
struct Session {
    child: Child,
    shown: Arc<Mutex<Vec<u8>>>,
}

impl Session {
    fn start(line: &str) -> Session {
        let mut child = Command::new(tool("script"))
            .args(["-qec", line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script");
        let mut out = child.stdout.take().expect("piped stdout");
        let shown = Arc::new(Mutex::new(Vec::new()));
        let into = shown.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().expect("output").extend_from_slice(&buf[..n]);
            }
        });
        Session { child, shown }
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().expect("output")).into_owned()
    }

    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.shown().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} after 60 s; the terminal shows:\n{}",
                self.shown()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_in(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(bytes).expect("typed");
        stdin.flush().expect("typed");
    }

    fn wait(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + CHOKEPOINT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("script") {
                // The reader thread ends with the output.
                thread::sleep(Duration::from_millis(200));
                return (status, self.shown());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running; the terminal shows:\n{}", self.shown());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Session {
    /// A test that failed does not leave its terminal behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_command_on_a_terminal_gets_one_of_the_same_size() {
    let (shown, result) = on_terminal(
        "stty rows 41 cols 123; ",
        &[
            "sh",
            "-c",
            "test -t 1 && echo CMD-HAS-TTY; test -t 2 && echo STDERR-TOO; stty size",
        ],
    );
    assert!(shown.contains("CMD-HAS-TTY"), "{shown}");
    assert!(shown.contains("STDERR-TOO"), "{shown}");
    assert!(shown.contains("41 123"), "{shown}");
    // `\n` became `\r\n` once, on chokepoint's terminal, as if the command wrote there.
    assert!(shown.contains("CMD-HAS-TTY\r\n"), "{shown:?}");
    assert!(!shown.contains("\r\r\n"), "{shown:?}");
    assert!(result["load"].is_array(), "{result}");
}

#[test]
fn a_command_without_a_terminal_gets_pipes() {
    let json_path = tmp("pipes.json");
    let o = run_chokepoint([
        "run".as_ref(),
        "--json".as_ref(),
        json_path.as_os_str(),
        "--".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        "test -t 1 && echo CMD-HAS-TTY; test -t 1 || echo CMD-HAS-PIPE".as_ref(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("CMD-HAS-PIPE"), "{out}");
    assert!(!out.contains("CMD-HAS-TTY"), "{out}");
    json(&json_path);
}

#[test]
fn what_is_typed_reaches_the_command_once() {
    let json_path = tmp("typed.json");
    let mut s = Session::start(&chokepoint_line(
        "",
        &json_path,
        &["sh", "-c", "echo READY; read line; echo \"GOT-$line\""],
    ));
    s.wait_for("READY");
    s.type_in(b"typed-word\n");
    let (status, shown) = s.wait();
    assert!(status.success(), "{shown}");
    assert!(shown.contains("GOT-typed-word"), "{shown}");
    // Our terminal echoed it; the command's did not echo it again.
    assert_eq!(shown.matches("typed-word").count(), 2, "{shown}");
    json(&json_path);
}

#[test]
fn ctrl_c_on_the_terminal_stops_the_command_through_chokepoint() {
    let json_path = tmp("ctrl-c.json");
    let mut s = Session::start(&chokepoint_line(
        "",
        &json_path,
        &[
            "sh",
            "-c",
            "trap 'echo GOT-SIGINT; exit 3' INT; echo READY; while :; do sleep 0.1; done",
        ],
    ));
    s.wait_for("READY");
    // Ctrl-C typed on chokepoint's terminal: SIGINT for chokepoint, which passes it on.
    s.type_in(b"\x03");
    let (_, shown) = s.wait();
    assert!(shown.contains("GOT-SIGINT"), "{shown}");
    let result = json(&json_path);
    assert!(result["load"].is_array(), "{result}");
}

const K6_SCRIPT: &str = r#"
import http from 'k6/http';
export const options = { vus: 2, duration: '2s' };
export default function () { http.get(__ENV.URL); }
"#;

/// A file removed when the test ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn k6_script() -> TempFile {
    let path = tmp("script.js");
    std::fs::write(&path, K6_SCRIPT).expect("k6 script");
    TempFile(path)
}

/// The `load` entries of a result as (format, source, requests).
fn load(result: &Value) -> Vec<(String, String, u64)> {
    result["load"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["format"].as_str().unwrap_or_default().to_string(),
                l["source"].as_str().unwrap_or_default().to_string(),
                l["requests"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The directory chokepoint gave k6 for its output, from k6's banner (`output: json (PATH)`).
fn k6_output_dir(shown: &str) -> PathBuf {
    let path = shown
        .split("json (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no `output: json (...)` in k6's banner:\n{shown}"));
    Path::new(path.trim())
        .parent()
        .expect("a file in a directory")
        .to_path_buf()
}

#[test]
fn k6_without_an_output_leaves_a_per_request_timeline() {
    let nginx = Nginx::start();
    let script = k6_script();
    let json_path = tmp("k6-pipes.json");
    let o = output_within(
        Command::new(chokepoint_bin())
            .arg("run")
            .arg("--json")
            .arg(&json_path)
            .arg("--")
            .arg(tool("k6"))
            .args(["run", "-e", &format!("URL={}", nginx.url())])
            .arg(&script.0)
            .env_remove("K6_OUT"),
        CHOKEPOINT_TIMEOUT,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    let load = load(&json(&json_path));
    let per_request = load
        .iter()
        .find(|(f, _, _)| f == "k6-json")
        .unwrap_or_else(|| panic!("no k6-json timeline in {load:?}"));
    assert!(per_request.2 > 0, "{load:?}");
    assert!(per_request.1.contains("K6_OUT"), "{load:?}");
    let dir = k6_output_dir(&out);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn k6_on_a_terminal_keeps_its_progress_bars_and_its_summary_is_read() {
    let nginx = Nginx::start();
    let script = k6_script();
    let k6 = tool("k6");
    let url = format!("URL={}", nginx.url());
    let (shown, result) = on_terminal(
        "",
        &[
            &k6.to_string_lossy(),
            "run",
            "-e",
            &url,
            &script.0.to_string_lossy(),
        ],
    );
    // Colours and redrawn progress bars reached the terminal...
    assert!(shown.contains("\x1b["), "{shown}");
    assert!(shown.contains("running ("), "{shown}");
    // ...and the copy kept for the readers was plain: the summary printed in colour is read.
    let load = load(&result);
    for format in ["k6-text", "k6-json"] {
        assert!(
            load.iter().any(|(f, _, r)| f == format && *r > 0),
            "no {format} timeline with requests in {load:?}"
        );
    }
}

#[test]
fn k6_with_its_own_output_is_left_alone() {
    let nginx = Nginx::start();
    let script = k6_script();
    let mine = TempFile(tmp("mine.json"));
    let json_path = tmp("k6-own.json");
    let o = output_within(
        Command::new(chokepoint_bin())
            .arg("run")
            .arg("--json")
            .arg(&json_path)
            .arg("--")
            .arg(tool("k6"))
            .args(["run", "-e", &format!("URL={}", nginx.url())])
            .arg(format!("--out=json={}", mine.0.display()))
            .arg(&script.0)
            .env_remove("K6_OUT"),
        CHOKEPOINT_TIMEOUT,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    let load = load(&json(&json_path));
    let per_request: Vec<_> = load.iter().filter(|(f, _, _)| f == "k6-json").collect();
    assert_eq!(per_request.len(), 1, "{load:?}");
    assert_eq!(per_request[0].1, mine.0.to_string_lossy(), "{load:?}");
    assert!(per_request[0].2 > 0, "{load:?}");
}
