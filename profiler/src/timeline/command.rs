//! What `run` reads after its command exits: a known load generator's printed summary, the
//! files its arguments say it wrote (k6 `--out json=FILE`, ab `-g FILE`, locust `--csv`), and
//! the file chokepoint asked it to write when it names none (k6 gets `K6_OUT=json=FILE`).
use std::{
    ffi::OsString,
    fs::File,
    io::{BufReader, Cursor},
    path::{Path, PathBuf},
};

use super::{Format, Offered, Timeline, TimelineError, read_as, read_file, read_from};

/// Wrappers whose own arguments come before the real command.
const WRAPPERS: &[&str] = &[
    "env", "nice", "timeout", "taskset", "stdbuf", "time", "chrt", "ionice", "setsid",
];

fn base(s: &str) -> &str {
    Path::new(s)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or(s)
}

/// The command without leading wrappers (`timeout 30 nice -n5 hey ...` is hey).
fn unwrap(argv: &[String]) -> &[String] {
    let mut i = 0;
    while i < argv.len() && WRAPPERS.contains(&base(&argv[i])) {
        i += 1;
        while i < argv.len() {
            let a = &argv[i];
            let opt_or_value = a.starts_with('-')
                || a.contains('=')
                || a.parse::<f64>().is_ok()
                || a.ends_with('s') && a[..a.len() - 1].parse::<f64>().is_ok();
            if !opt_or_value {
                break;
            }
            i += 1;
        }
    }
    &argv[i.min(argv.len())..]
}

/// An output a command writes when a variable in its environment asks for it, read after the
/// run as the same output named in its arguments is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpliedOutput {
    /// The variable to set, e.g. `K6_OUT`.
    pub var: &'static str,
    /// What precedes the file's path in the value (`json=`).
    prefix: &'static str,
    /// The file's name in the directory chokepoint owns.
    pub file_name: &'static str,
    /// How the timeline is named (the file is removed after the run).
    pub shown_as: &'static str,
}

/// A file the command was asked to write through its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpliedFile {
    pub path: PathBuf,
    pub shown_as: &'static str,
}

impl ImpliedOutput {
    /// The variable's value and the file it names, in `dir`.
    pub fn at(&self, dir: &Path) -> (OsString, ImpliedFile) {
        let path = dir.join(self.file_name);
        let mut value = OsString::from(self.prefix);
        value.push(&path);
        (
            value,
            ImpliedFile {
                path,
                shown_as: self.shown_as,
            },
        )
    }
}

/// k6 writes one JSON line per metric point to the file `K6_OUT=json=FILE` names.
const K6_OUT: ImpliedOutput = ImpliedOutput {
    var: "K6_OUT",
    prefix: "json=",
    file_name: "k6.json",
    shown_as: "<k6 json output (K6_OUT set by chokepoint)>",
};

/// k6's flags before its subcommand that take a value (`k6 -c conf.json run ...`).
const K6_GLOBAL_VALUE_FLAGS: &[&str] = &[
    "-a",
    "--address",
    "-c",
    "--config",
    "--log-format",
    "--log-output",
    "--secret-source",
];

/// The output chokepoint asks `argv` for: `k6 run` that names no output of its own (no
/// `--out`/`-o`, and no K6_OUT in its environment, where `in_env` says whether chokepoint's
/// has it, nor in an `env K6_OUT=...` wrapper) is given `K6_OUT=json=FILE`, so that a
/// per-request timeline exists without the user asking. Nothing for other commands.
pub fn implied_output(argv: &[String], in_env: impl Fn(&str) -> bool) -> Option<ImpliedOutput> {
    let command = unwrap(argv);
    let wrappers = &argv[..argv.len() - command.len()];
    let (cmd, args) = command.split_first()?;
    if base(cmd) != "k6" {
        return None;
    }
    let mut i = 0;
    let subcommand = loop {
        let a = args.get(i)?;
        if !a.starts_with('-') {
            break a;
        }
        i += if K6_GLOBAL_VALUE_FLAGS.contains(&a.as_str()) {
            2
        } else {
            1
        };
    };
    let set_by_wrapper = wrappers
        .iter()
        .any(|a| a.starts_with(&format!("{}=", K6_OUT.var)));
    let own_output = !opt(&args[i..], &["--out", "-o"]).is_empty();
    (subcommand == "run" && !own_output && !set_by_wrapper && !in_env(K6_OUT.var)).then_some(K6_OUT)
}

/// The value of an option: `-c 50`, `-c50`, `--vus=50`, `--vus 50`.
pub(crate) fn opt<'a>(args: &'a [String], names: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        for n in names {
            if a == *n {
                if let Some(v) = args.get(i + 1) {
                    out.push(v.as_str());
                }
            } else if let Some(v) = a.strip_prefix(n) {
                if n.starts_with("--") {
                    if let Some(v) = v.strip_prefix('=') {
                        out.push(v);
                    }
                } else if !v.is_empty() {
                    out.push(v);
                }
            }
        }
        i += 1;
    }
    out
}

fn concurrency(t: &mut Timeline, c: Option<f64>, rate: Option<f64>) {
    if c.is_none() && rate.is_none() {
        return;
    }
    let configured = t.offered.as_ref().is_some_and(|o| o.source == "configured");
    if !configured {
        t.offered = Some(Offered {
            concurrency: c,
            rate_per_s: rate,
            source: "configured".into(),
        });
    }
}

fn stdout_as(tool: &str, stdout: &[u8], format: Option<Format>) -> Result<Timeline, TimelineError> {
    let name = PathBuf::from(format!("<{tool} output>"));
    match format {
        Some(f) => read_as(Cursor::new(stdout), &name, f),
        None => read_from(Cursor::new(stdout), &name),
    }
}

/// Shells whose `-c SCRIPT` may run a generator several times (a sweep typed by hand).
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh"];

/// Generators whose text summaries a shell loop may concatenate: the tool, the line that opens
/// each of its runs' output, and its format.
const RUN_MARKERS: &[(&str, &str, Format)] = &[
    ("hey", "Summary:", Format::HeyText),
    ("wrk", "Running ", Format::WrkText),
    ("ab", "This is ApacheBench", Format::AbText),
];

/// `for c in 1 2 4 8; do hey -c $c ...; done`: the loop's values when the generator's
/// concurrency option is the loop variable.
fn loop_levels(script: &str, tool: &str) -> Option<Vec<f64>> {
    let rest = script.split_once("for ")?.1;
    let (var, rest) = rest.split_once(" in ")?;
    let var = var.trim();
    let (values, body) = rest.split_once(';').or_else(|| rest.split_once('\n'))?;
    let levels: Vec<f64> = values
        .split_whitespace()
        .map(|v| v.trim_matches(|c| c == '"' || c == '\''))
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // hey, wrk and ab all take their concurrency as -c.
    let flag = "-c";
    let uses = [
        format!("{flag} ${var}"),
        format!("{flag} \"${var}\""),
        format!("{flag} ${{{var}}}"),
        format!("{flag}${var}"),
        format!("{flag}${{{var}}}"),
    ];
    (body.contains(tool) && uses.iter().any(|u| body.contains(u.as_str()))).then_some(levels)
}

/// A shell script's output holding several runs of one generator, one after another: each run
/// read on its own, its concurrency from the loop that set it (or the run's own output), its
/// start the command's start plus the runs before it (the summaries carry no clock).
fn shell_runs(script: &str, stdout: &[u8]) -> Vec<Result<Timeline, TimelineError>> {
    let text = String::from_utf8_lossy(stdout);
    let Some((tool, marker, format)) = RUN_MARKERS
        .iter()
        .find(|(tool, marker, _)| {
            script
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == *tool)
                && text.matches(marker).count() >= 2
        })
        .copied()
    else {
        return Vec::new();
    };
    let starts: Vec<usize> = text
        .match_indices(marker)
        .map(|(i, _)| text[..i].rfind('\n').map_or(0, |n| n + 1))
        .collect();
    let levels = loop_levels(script, tool).filter(|l| l.len() == starts.len());
    // Otherwise a literal concurrency in the script (`hey -c 8 ...` in every run).
    let words: Vec<String> = script.split_whitespace().map(str::to_string).collect();
    let literal = opt(&words, &["-c"])
        .first()
        .and_then(|v| v.trim_matches(';').parse::<f64>().ok());
    let mut elapsed = 0.0;
    let mut out = Vec::new();
    for (k, &from) in starts.iter().enumerate() {
        let to = starts.get(k + 1).copied().unwrap_or(text.len());
        let name = PathBuf::from(format!(
            "<{tool} output, run {} of {}>",
            k + 1,
            starts.len()
        ));
        let mut r = read_as(Cursor::new(text[from..to].as_bytes()), &name, format);
        if let Ok(t) = &mut r {
            match &levels {
                Some(levels) => concurrency(t, Some(levels[k]), None),
                None => concurrency(t, literal, None),
            }
            t.shift_clock(elapsed);
            t.warnings.push(format!(
                "run {} of {} in one shell command: its start is taken as the command's start plus the {elapsed:.1} s the runs before it took",
                k + 1,
                starts.len()
            ));
            elapsed += t.duration_seconds;
        }
        out.push(r);
    }
    out
}

/// An implied file as its timeline; None when the command wrote nothing there (it failed
/// before its first metric, or a wrapper such as `env -i` dropped the variable).
fn read_implied(f: &ImpliedFile) -> Option<Result<Timeline, TimelineError>> {
    let file = File::open(&f.path).ok()?;
    if file.metadata().ok()?.len() == 0 {
        return None;
    }
    Some(read_from(
        BufReader::with_capacity(1 << 18, file),
        Path::new(f.shown_as),
    ))
}

/// Timelines from a finished command: `argv` as run, its captured stdout, and the wall-clock
/// start `run` recorded (offset-only timelines are anchored there). Unknown commands give
/// nothing; a known one whose output cannot be read gives the error.
pub fn from_command(
    argv: &[String],
    stdout: &[u8],
    start_unix_ns: u64,
) -> Vec<Result<Timeline, TimelineError>> {
    from_command_with(argv, stdout, &[], start_unix_ns)
}

/// [`from_command`], and the files the command was asked to write through its environment
/// ([`implied_output`]), read as the same files named in its arguments are.
pub fn from_command_with(
    argv: &[String],
    stdout: &[u8],
    implied: &[ImpliedFile],
    start_unix_ns: u64,
) -> Vec<Result<Timeline, TimelineError>> {
    let argv = unwrap(argv);
    let Some(cmd) = argv.first() else {
        return Vec::new();
    };
    let tool = base(cmd);
    let args = &argv[1..];
    let num = |names: &[&str]| opt(args, names).first().and_then(|v| v.parse::<f64>().ok());
    let mut out: Vec<Result<Timeline, TimelineError>> = Vec::new();
    if SHELLS.contains(&tool)
        && let Some(script) = opt(args, &["-c"]).first()
    {
        out.extend(shell_runs(script, stdout));
    }
    match tool {
        "hey" => {
            let csv = opt(args, &["-o"]).contains(&"csv");
            let mut r = stdout_as(
                tool,
                stdout,
                Some(if csv { Format::HeyCsv } else { Format::HeyText }),
            );
            if let Ok(t) = &mut r {
                concurrency(
                    t,
                    num(&["-c"]).or(Some(50.0)),
                    num(&["-q"]).map(|q| q * num(&["-c"]).unwrap_or(50.0)),
                );
            }
            out.push(r);
        }
        "wrk" | "wrk2" => {
            let mut r = stdout_as(tool, stdout, Some(Format::WrkText));
            if let Ok(t) = &mut r {
                let rate = num(&["-R", "--rate"]);
                if let Some(o) = &mut t.offered {
                    o.rate_per_s = rate;
                }
            }
            out.push(r);
        }
        "ab" => {
            out.push(stdout_as(tool, stdout, Some(Format::AbText)));
            for g in opt(args, &["-g"]) {
                out.push(read_file(Path::new(g)));
            }
        }
        "siege" => {
            let mut r = stdout_as(tool, stdout, Some(Format::SiegeText));
            if let Ok(t) = &mut r {
                concurrency(t, num(&["-c", "--concurrent"]), None);
            }
            out.push(r);
        }
        "oha" => {
            let json = args.iter().any(|a| a == "-j" || a == "--json")
                || opt(args, &["--output-format"]).contains(&"json");
            let mut r = if json {
                stdout_as(tool, stdout, Some(Format::OhaJson))
            } else {
                Err(TimelineError::Parse {
                    path: PathBuf::from("<oha output>"),
                    line: 1,
                    format: Format::OhaJson,
                    reason: "oha's text summary is not read: run it with --json (or --output-format json)".into(),
                })
            };
            if let Ok(t) = &mut r {
                concurrency(t, num(&["-c"]).or(Some(50.0)), num(&["-q"]));
            }
            out.push(r);
        }
        "pgbench" => {
            let mut r = stdout_as(tool, stdout, Some(Format::PgbenchText));
            if let Ok(t) = &mut r {
                concurrency(t, num(&["-c", "--client"]), num(&["-R", "--rate"]));
            }
            out.push(r);
        }
        "k6" => {
            let text = String::from_utf8_lossy(stdout);
            if text.contains("http_reqs") || text.contains("iterations") {
                let mut r = stdout_as(tool, stdout, Some(Format::K6Text));
                if let Ok(t) = &mut r {
                    concurrency(t, num(&["--vus", "-u"]), None);
                }
                out.push(r);
            }
            for o in opt(args, &["--out", "-o"]) {
                if let Some(f) = o.strip_prefix("json=").or_else(|| o.strip_prefix("csv=")) {
                    out.push(read_file(Path::new(f)));
                }
            }
            for f in opt(args, &["--summary-export"]) {
                out.push(read_file(Path::new(f)));
            }
        }
        "vegeta"
            if !stdout.iter().all(u8::is_ascii_whitespace)
                && args.first().is_some_and(|a| a == "report" || a == "encode") =>
        {
            out.push(stdout_as(tool, stdout, None));
        }
        "locust" => {
            for prefix in opt(args, &["--csv"]) {
                out.push(read_file(Path::new(&format!("{prefix}_stats_history.csv"))));
            }
        }
        "jmeter" => {
            for f in opt(args, &["-l"]) {
                out.push(read_file(Path::new(f)));
            }
        }
        _ => {}
    }
    out.extend(implied.iter().filter_map(read_implied));
    for t in out.iter_mut().flatten() {
        t.anchor(start_unix_ns);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn wrappers_are_skipped() {
        assert_eq!(
            unwrap(&argv("timeout 30s nice -n 5 hey -c 10 http://x"))[0],
            "hey"
        );
        assert_eq!(
            unwrap(&argv("env A=1 /usr/bin/k6 run x.js"))[0],
            "/usr/bin/k6"
        );
    }

    #[test]
    fn options_in_every_spelling() {
        let a = argv("-c 10 --vus=20 -c30 --out json=a.json -o csv=b.csv");
        assert_eq!(opt(&a, &["-c"]), vec!["10", "30"]);
        assert_eq!(opt(&a, &["--vus"]), vec!["20"]);
        assert_eq!(opt(&a, &["--out", "-o"]), vec!["json=a.json", "csv=b.csv"]);
    }

    /// A sweep typed as a shell loop: hey's summaries one after another, read as runs with
    /// the loop's concurrency and starts one after the other.
    #[test]
    fn a_shell_loop_of_runs_is_read_as_sweep_steps() {
        let one = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/timeline/hey.txt"
        ))
        .expect("fixture");
        let mut out = String::new();
        for (total, rps) in [
            ("1.0000", "1000.0"),
            ("2.0000", "1900.0"),
            ("3.0000", "2000.0"),
        ] {
            out.push_str(
                &one.replace("0.2250 secs", &format!("{total} secs"))
                    .replace("8889.4744", rps),
            );
        }
        let script = "for c in 1 2 4; do hey -z 2s -c $c http://127.0.0.1:8080/; done";
        let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
        let runs: Vec<Timeline> = from_command(&argv, out.as_bytes(), 1_000_000_000_000)
            .into_iter()
            .map(|r| r.expect("each run reads"))
            .collect();
        assert_eq!(runs.len(), 3, "{runs:?}");
        let levels: Vec<Option<f64>> = runs
            .iter()
            .map(|t| t.offered.as_ref().and_then(|o| o.concurrency))
            .collect();
        assert_eq!(levels, [Some(1.0), Some(2.0), Some(4.0)]);
        // One after another: each starts where the ones before it ended.
        let starts: Vec<f64> = runs
            .iter()
            .map(|t| t.start_unix_s.expect("anchored"))
            .collect();
        assert!((starts[1] - starts[0] - 1.0).abs() < 1e-6, "{starts:?}");
        assert!((starts[2] - starts[0] - 3.0).abs() < 1e-6, "{starts:?}");
        // The sweep across them: three levels.
        let sweep = crate::timeline::sweep(&runs).expect("a sweep");
        assert_eq!(sweep.points.len(), 3);
        // A script whose loop is not the concurrency still splits, without levels.
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "for u in a b c; do hey -c 8 http://x/$u; done".to_string(),
        ];
        let runs = from_command(&argv, out.as_bytes(), 0);
        assert_eq!(runs.len(), 3);
        assert!(
            runs.iter()
                .flatten()
                .all(|t| t.offered.as_ref().and_then(|o| o.concurrency) == Some(8.0))
        );
    }

    #[test]
    fn unknown_commands_give_nothing() {
        assert!(from_command(&argv("curl http://x"), b"hello", 0).is_empty());
        assert!(from_command(&[], b"", 0).is_empty());
    }

    fn implied(cmd: &str) -> Option<ImpliedOutput> {
        implied_output(&argv(cmd), |_| false)
    }

    #[test]
    fn k6_run_without_an_output_is_given_one() {
        assert_eq!(implied("k6 run s.js"), Some(K6_OUT));
        assert_eq!(implied("/usr/local/bin/k6 run --vus 10 s.js"), Some(K6_OUT));
        assert_eq!(implied("timeout 60 nice -n 5 k6 run s.js"), Some(K6_OUT));
        assert_eq!(implied("k6 -q --config c.json run s.js"), Some(K6_OUT));
        assert_eq!(implied("k6 -c c.json run s.js"), Some(K6_OUT));
        assert_eq!(implied("env A=1 k6 run s.js"), Some(K6_OUT));
    }

    #[test]
    fn a_users_own_output_is_left_alone() {
        for cmd in [
            "k6 run --out json=mine.json s.js",
            "k6 run s.js --out=csv=mine.csv",
            "k6 run -o influxdb=http://x:8086/k6 s.js",
            "k6 run -ojson=mine.json s.js",
            "k6 run --out cloud s.js",
            "env K6_OUT=json=mine.json k6 run s.js",
        ] {
            assert_eq!(implied(cmd), None, "{cmd}");
        }
        assert_eq!(
            implied_output(&argv("k6 run s.js"), |v| v == "K6_OUT"),
            None
        );
        // Only K6_OUT matters.
        assert_eq!(
            implied_output(&argv("k6 run s.js"), |v| v == "K6_VUS"),
            Some(K6_OUT)
        );
    }

    #[test]
    fn only_k6_run_is_given_an_output() {
        for cmd in [
            "k6 version",
            "k6 inspect run.js",
            "k6 -c run run.js",
            "k6",
            "hey -n 10 http://x",
            "wrk http://x",
            "",
        ] {
            assert_eq!(implied(cmd), None, "{cmd}");
        }
    }

    #[test]
    fn an_implied_file_is_read_as_the_same_file_named_by_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (value, file) = K6_OUT.at(dir.path());
        assert_eq!(
            value,
            OsString::from(format!("json={}", dir.path().join("k6.json").display()))
        );
        // Nothing written: nothing to say.
        assert!(
            from_command_with(&argv("k6 run s.js"), b"", std::slice::from_ref(&file), 0).is_empty()
        );
        std::fs::write(&file.path, "").expect("write");
        assert!(
            from_command_with(&argv("k6 run s.js"), b"", std::slice::from_ref(&file), 0).is_empty()
        );
        let point = |t: &str, metric: &str, v: f64| {
            format!(
                r#"{{"metric":"{metric}","type":"Point","data":{{"time":"{t}","value":{v},"tags":{{"status":"200","expected_response":"true"}}}}}}"#
            )
        };
        let mut lines = Vec::new();
        for s in 0..3 {
            for ms in [100, 400, 700] {
                let t = format!("2024-05-01T10:00:0{s}.{ms}000000Z");
                lines.push(point(&t, "http_reqs", 1.0));
                lines.push(point(&t, "http_req_duration", 2.5));
            }
        }
        std::fs::write(&file.path, lines.join("\n") + "\n").expect("write");
        let got = from_command_with(&argv("k6 run s.js"), b"", std::slice::from_ref(&file), 0);
        assert_eq!(got.len(), 1);
        let t = got[0].as_ref().expect("k6 json");
        assert_eq!(t.format, Format::K6Json);
        assert_eq!(t.requests, 9);
        assert_eq!(t.source, Path::new(K6_OUT.shown_as));
    }
}
