//! What `run` reads after its command exits: a known load generator's printed summary, and
//! the files its arguments say it wrote (k6 `--out json=FILE`, ab `-g FILE`, locust `--csv`).
use std::{
    io::Cursor,
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

/// The value of an option: `-c 50`, `-c50`, `--vus=50`, `--vus 50`.
fn opt<'a>(args: &'a [String], names: &[&str]) -> Vec<&'a str> {
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

/// Timelines from a finished command: `argv` as run, its captured stdout, and the wall-clock
/// start `run` recorded (offset-only timelines are anchored there). Unknown commands give
/// nothing; a known one whose output cannot be read gives the error.
pub fn from_command(
    argv: &[String],
    stdout: &[u8],
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

    #[test]
    fn unknown_commands_give_nothing() {
        assert!(from_command(&argv("curl http://x"), b"hello", 0).is_empty());
        assert!(from_command(&[], b"", 0).is_empty());
    }
}
