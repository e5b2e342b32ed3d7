//! The conventions every subcommand shares (docs/cli.md): exit codes, `--json FILE|-`, human
//! output that survives a reader closing the pipe, and colour only where it can be seen.
use std::{
    ffi::OsStr,
    fmt,
    io::{self, IsTerminal, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use serde::Serialize;

/// `println!` for human-readable text: to stdout (stderr under `--json -`), stopping
/// quietly when the reader closed the pipe (`chokepoint ... | head`).
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::human("\n") };
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::cli::human(&line);
    }};
}

/// `eprintln!` that stops quietly when stderr is a closed pipe.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::cli::stderr_write(line.as_bytes());
    }};
}

/// Exit statuses (a contract: docs/cli.md).
pub mod exit {
    /// Done; `--fail-on` did not match.
    pub const OK: i32 = 0;
    /// A runtime error: a file that cannot be read or written, probes that cannot attach,
    /// a failed check (`doctor`, `lab`).
    pub const ERROR: i32 = 1;
    /// A usage error: unknown flag, bad value, a recording that exists without `--force`.
    pub const USAGE: i32 = 2;
    /// The verdict is one of the kinds `--fail-on` names.
    pub const FAIL_ON: i32 = 3;
}

/// Where `--json` writes: a file, or stdout (`-`, or `--json` with no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonTarget {
    Stdout,
    File(PathBuf),
}

impl JsonTarget {
    /// clap's value parser: `-` is stdout, anything else a path.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("--json needs a file, or `-` for stdout".into()),
            "-" => Ok(JsonTarget::Stdout),
            path => Ok(JsonTarget::File(PathBuf::from(path))),
        }
    }

    pub fn is_stdout(target: Option<&JsonTarget>) -> bool {
        matches!(target, Some(JsonTarget::Stdout))
    }

    /// Writes `value` as pretty JSON (with a final newline) to the target.
    pub fn write(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        match self {
            JsonTarget::Stdout => {
                stdout_write(text.as_bytes());
                Ok(())
            }
            JsonTarget::File(path) => write_file(path, text.as_bytes()),
        }
    }
}

/// `--json [FILE]`, the same on every command that has a JSON result (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JsonOut {
    /// Write the JSON result to FILE; `-` (or `--json` with no value) prints it on stdout and
    /// moves the human text to stderr.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        default_missing_value = "-",
        value_parser = JsonTarget::parse
    )]
    pub json: Option<JsonTarget>,
}

impl fmt::Display for JsonTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonTarget::Stdout => f.write_str("stdout"),
            JsonTarget::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Writes a whole file, naming it in the error.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_to(closed: &AtomicBool, mut w: impl Write, bytes: &[u8]) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = w.write_all(bytes).and_then(|()| w.flush())
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        // The reader went away (`| head`): stop writing there, keep doing the work (the
        // recording and the JSON file still get written, the exit status stays meaningful).
        closed.store(true, Ordering::Relaxed);
    }
}

/// Writes to stdout; a closed pipe ends output quietly instead of panicking.
pub fn stdout_write(bytes: &[u8]) {
    write_to(&STDOUT_CLOSED, io::stdout().lock(), bytes);
}

/// Writes to stderr; a closed pipe ends output quietly instead of panicking.
pub fn stderr_write(bytes: &[u8]) {
    write_to(&STDERR_CLOSED, io::stderr().lock(), bytes);
}

/// Whether stdout was found closed (a reader that stopped early).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

static HUMAN_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends the human-readable text of this command to stderr: the JSON result takes stdout
/// (`--json -`), and the two never mix.
pub fn human_to_stderr() {
    HUMAN_TO_STDERR.store(true, Ordering::Relaxed);
}

/// Whether the human-readable text goes to stderr (`--json -`): so does the load command's
/// output, which would otherwise run into the JSON.
pub fn human_on_stderr() -> bool {
    HUMAN_TO_STDERR.load(Ordering::Relaxed)
}

/// Whether the human-readable text lands on a terminal.
pub fn human_is_terminal() -> bool {
    if HUMAN_TO_STDERR.load(Ordering::Relaxed) {
        io::stderr().is_terminal()
    } else {
        io::stdout().is_terminal()
    }
}

/// Writes human-readable text (stdout, or stderr under `--json -`), its colour removed where
/// colour is not wanted.
pub fn human(text: &str) {
    let plain;
    let bytes = if colour_wanted(human_is_terminal()) {
        text.as_bytes()
    } else {
        plain = strip_styles(text);
        plain.as_bytes()
    };
    if HUMAN_TO_STDERR.load(Ordering::Relaxed) {
        stderr_write(bytes);
    } else {
        stdout_write(bytes);
    }
}

/// Colour on a terminal only, never with `NO_COLOR` set to anything non-empty
/// (<https://no-color.org>), always with `CLICOLOR_FORCE`.
pub fn colour_wanted(is_terminal: bool) -> bool {
    colour_wanted_with(is_terminal, |k| std::env::var_os(k))
}

fn colour_wanted_with(is_terminal: bool, var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    let set = |k: &str| var(k).is_some_and(|v| !v.is_empty() && v != OsStr::new("0"));
    if var("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if set("CLICOLOR_FORCE") {
        return true;
    }
    is_terminal && var("TERM").is_none_or(|t| t != "dumb")
}

/// Removes SGR escape sequences (`ESC [ ... m`), the only ones the renderers emit.
pub fn strip_styles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Bold text, for headings (removed by `Human::print` where colour is not wanted).
pub fn bold(text: &str) -> String {
    format!("\x1b[1m{text}\x1b[0m")
}

/// The verdict's own colour: red for a bottleneck, green for none, yellow for inconclusive.
pub fn verdict_style(kind: &str, text: &str) -> String {
    let code = match kind {
        "not-saturated" => "32",
        "inconclusive" => "33",
        _ => "31",
    };
    format!("\x1b[1;{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, ffi::OsString};

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let m: BTreeMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn colour_on_a_terminal_only_and_no_color_wins() {
        assert!(colour_wanted_with(true, env(&[])));
        assert!(!colour_wanted_with(false, env(&[])));
        assert!(!colour_wanted_with(true, env(&[("NO_COLOR", "1")])));
        assert!(colour_wanted_with(true, env(&[("NO_COLOR", "")])));
        assert!(!colour_wanted_with(true, env(&[("TERM", "dumb")])));
        assert!(colour_wanted_with(false, env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!colour_wanted_with(
            false,
            env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "x")])
        ));
    }

    #[test]
    fn styles_strip_to_the_plain_text() {
        let styled = format!("{} and {}", bold("a"), verdict_style("cpu-saturated", "b"));
        assert_ne!(styled, "a and b");
        assert_eq!(strip_styles(&styled), "a and b");
        assert_eq!(strip_styles("plain µs text"), "plain µs text");
    }

    #[test]
    fn json_targets_parse() {
        assert_eq!(JsonTarget::parse("-"), Ok(JsonTarget::Stdout));
        assert_eq!(
            JsonTarget::parse("r.json"),
            Ok(JsonTarget::File("r.json".into()))
        );
        assert!(JsonTarget::parse("").is_err());
    }
}

/// A duration as the flags take it: `1s`, `500ms`, `2m`, `1h`, a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 1s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m, h)")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Which programs to attach (`run`, `record`, `daemon`).
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Also attach the per-packet programs on net:net_dev_xmit and net:netif_receive_skb
    /// (about 200 ns per packet, several packets per request and device). Off by default: the
    /// kernel's link statistics give the same per-device counts at no cost on the packet path.
    #[arg(long)]
    pub packet_probes: bool,
    /// Keep the kernel's run-time statistics on for the whole recording: the programs' time
    /// measured, not estimated. They cost two clock reads per program run (several percent of
    /// throughput under connection churn); by default they are on 1 s in every 10 s and the
    /// programs' own run counts are priced at what those windows measured.
    #[arg(long)]
    pub exact_overhead: bool,
    /// Which programs run when: `default` attaches the hooks no verdict reads event by event
    /// (softirq time per vector; request turns per socket, for pools and requests in flight;
    /// context switches and wake-ups, for off-CPU reasons and hand-overs, while on-CPU time
    /// stays the kernel's own total in every interval) one interval in five and estimates
    /// their figures from those; `all` keeps every program attached throughout
    /// (docs/overhead.md).
    #[arg(long, value_enum, default_value_t = crate::probes::duty::Tier::Default, value_name = "TIER")]
    pub probes: crate::probes::duty::Tier,
}

impl ProbeArgs {
    pub fn skip(&self) -> Vec<crate::recording::Family> {
        let mut skip = Vec::new();
        if !self.packet_probes {
            skip.push(crate::recording::Family::NetworkPath);
        }
        skip
    }
}
