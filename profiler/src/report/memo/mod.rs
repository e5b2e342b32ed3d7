//! The Markdown memo of one analysis (`chokepoint report REC --md FILE`), for a pull request
//! or a team: the question (why throughput stopped where it did), the answer with its
//! numbers, the evidence, what was ruled out and why, how to reproduce the run, and what to
//! try next for this kind of bottleneck (`advice.rs`).
mod advice;

#[cfg(test)]
mod tests;

use std::fmt::Write;

pub use self::advice::{Advice, advice};
use crate::{
    analysis::{Analysis, Evidence, VerdictKind},
    report::text::{
        units::{duration, percent, threshold, value_parts},
        verdict::{deciding_rows, family, headline, load_figure, window},
    },
};

/// An evidence value with its unit, as the human summary prints it.
pub fn value(v: f64, unit: &str) -> String {
    let (n, u) = value_parts(v, unit);
    match u.as_str() {
        "" => n,
        "%" | "/s" => format!("{n}{u}"),
        _ => format!("{n} {u}"),
    }
}

/// `|` would end a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A word as a POSIX shell reads it back: bare when it is safe, else single-quoted.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The question the memo answers.
pub fn question(a: &Analysis) -> String {
    match load_figure(a) {
        Some(f) => format!("Why did throughput stop at {f}?"),
        None => "What limited throughput in this run?".to_string(),
    }
}

fn evidence_table(s: &mut String, rows: &[&Evidence]) {
    let _ = writeln!(
        s,
        "| figure | value | threshold | source |\n|---|---|---|---|"
    );
    for e in rows {
        let th = e
            .threshold
            .as_deref()
            .map_or(String::new(), |t| threshold(t, &e.unit));
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            cell(&e.metric),
            value(e.value, &e.unit),
            cell(&th),
            cell(&e.source)
        );
    }
    s.push('\n');
}

/// The memo; `recording` is how the user named the file (for the commands to reproduce it).
pub fn render(a: &Analysis, recording: &str) -> String {
    let mut s = String::new();
    let v = &a.verdict;
    let _ = writeln!(s, "# {}\n", question(a));
    let host = &a.host;
    let mut on = format!("{} CPUs", host.cpus);
    if let Some(m) = &host.cpu_model {
        let _ = write!(on, ", {m}");
    }
    let _ = writeln!(
        s,
        "Recorded by chokepoint on `{}` ({on}; kernel {}) for {}; `{recording}`.\n",
        host.name,
        host.kernel,
        duration(a.duration_seconds)
    );

    let _ = writeln!(s, "## Answer\n");
    let _ = writeln!(s, "**{}**\n", headline(a).trim());
    let _ = writeln!(
        s,
        "Verdict `{}` (family: {}, confidence {:.0}%), judged over {}.\n",
        v.kind.as_str(),
        family(v.family),
        v.confidence * 100.0,
        window(a)
    );
    if !v.secondary.is_empty() {
        let names: Vec<String> = v
            .secondary
            .iter()
            .map(|k| format!("`{}`", k.as_str()))
            .collect();
        let _ = writeln!(s, "Also contributing: {}.\n", names.join(", "));
    }
    for m in &v.missing {
        let _ = writeln!(s, "- missing: {m}");
    }
    if !v.missing.is_empty() {
        s.push('\n');
    }

    if !a.phases.is_empty() {
        let _ = writeln!(
            s,
            "## Phases
"
        );
        let _ = writeln!(
            s,
            "The recording split at its marks, each phase analysed on its own:\n"
        );
        let _ = writeln!(
            s,
            "| phase | from | to | verdict | confidence | host busy | new connections/s | requests/s |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for p in &a.phases {
            let _ = writeln!(
                s,
                "| {} | {:.1} s | {:.1} s | `{}` | {:.0}% | {} | {} | {} |",
                p.label.replace('|', "\\|"),
                p.start_s,
                p.end_s,
                p.verdict.as_str(),
                p.confidence * 100.0,
                crate::report::text::units::percent(p.host_busy),
                crate::report::text::units::num(p.connections_per_s),
                p.throughput_per_s
                    .map_or("–".to_string(), crate::report::text::units::num)
            );
        }
        s.push('\n');
    }

    let all: Vec<&Evidence> = v.evidence.iter().collect();
    let fired = !matches!(
        v.kind,
        VerdictKind::NotSaturated | VerdictKind::Inconclusive
    );
    let own = match deciding_rows(v.kind, &v.evidence) {
        // Names the renderer does not know: every row is the verdict's.
        0 if fired => all.len(),
        n => n,
    };
    if own > 0 {
        let _ = writeln!(s, "## Evidence\n");
        evidence_table(&mut s, &all[..own]);
    }

    if !v.ruled_out.is_empty() {
        let _ = writeln!(s, "## Ruled out\n");
        for r in &v.ruled_out {
            let _ = writeln!(s, "- `{}`: {}", r.kind.as_str(), r.reason.trim());
        }
        s.push('\n');
    }
    let others: Vec<&Evidence> = all[own..]
        .iter()
        .filter(|e| e.value != 0.0)
        .copied()
        .collect();
    if !others.is_empty() {
        let title = if fired {
            "The other candidates' figures"
        } else {
            "Figures checked"
        };
        let _ = writeln!(
            s,
            "<details><summary>{title} ({} non-zero)</summary>\n",
            others.len()
        );
        evidence_table(&mut s, &others);
        let _ = writeln!(s, "</details>\n");
    }

    reproduce(&mut s, a, recording);

    let Advice { meaning, steps } = advice(v.kind);
    let _ = writeln!(s, "## What to try next\n\n{meaning}\n");
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(s, "{}. {step}", i + 1);
    }
    let _ = writeln!(
        s,
        "\nThen record again and compare: `chokepoint diff {} after.rec`.\n",
        shell_quote(recording)
    );

    if !a.limitations.is_empty() {
        let _ = writeln!(s, "## Limitations\n");
        for l in &a.limitations {
            let _ = writeln!(s, "- {}", l.trim());
        }
        s.push('\n');
    }
    let o = &a.overhead;
    let _ = writeln!(
        s,
        "## Cost of measuring\n\nchokepoint used {} of the host's CPU ({:.2} s in its kernel programs, {:.2} s in user space).",
        percent(o.cpu_share_of_host),
        o.bpf_cpu_seconds,
        o.user_cpu_seconds
    );
    s
}

/// The exact commands to reproduce a run: the recorded one under `chokepoint run` into a new
/// recording, then `diff` of the two (a rerun shows the run-to-run spread too); a sentence
/// to introduce them.
pub fn reproduce_commands(a: &Analysis, recording: &str) -> (&'static str, Vec<String>) {
    let rec = shell_quote(recording);
    match &a.command {
        // The command's own output files are read again by `run` (the analysis cannot tell
        // them from `--load` files), so only a recording without a command names them.
        Some(cmd) if !cmd.is_empty() => {
            let words: Vec<String> = cmd.iter().map(|w| shell_quote(w)).collect();
            (
                "The recorded command again under chokepoint, then the two runs compared:",
                vec![
                    format!("chokepoint run --out again.rec -- {}", words.join(" ")),
                    format!("chokepoint diff {rec} again.rec"),
                ],
            )
        }
        _ => {
            let loads: String = a
                .load
                .iter()
                .filter(|l| !l.source.starts_with('<'))
                .map(|l| format!(" --load-a {}", shell_quote(&l.source)))
                .collect();
            (
                "The recording ran without a command (`chokepoint record`): start the same load, then record it and compare the two runs:",
                vec![
                    format!(
                        "chokepoint record --out again.rec --duration {}s",
                        a.duration_seconds.round().max(1.0)
                    ),
                    format!("chokepoint diff {rec} again.rec{loads}"),
                ],
            )
        }
    }
}

fn reproduce(s: &mut String, a: &Analysis, recording: &str) {
    let (intro, commands) = reproduce_commands(a, recording);
    let _ = writeln!(
        s,
        "## How to reproduce\n\n{intro}\n\n```\n{}\n```\n",
        commands.join("\n")
    );
}
