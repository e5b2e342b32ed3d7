//! A diff as Markdown, for a pull request: the headline (changed or not, the verdict before
//! and after), throughput and latency, the figures that moved most, hops and pools.
use std::fmt::Write;

use super::{Change, Diff, RELATIVE_NOISE, paths::Presence};
use crate::report::text::units::value_parts;

/// How many moved figures the memo lists (the JSON has them all).
const MOVED_SHOWN: usize = 15;

/// A value with its unit, or `-` when the run does not have it.
fn value(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) => {
            let (n, u) = value_parts(v, unit);
            match u.as_str() {
                "" => n,
                "%" | "/s" => format!("{n}{u}"),
                _ => format!("{n} {u}"),
            }
        }
    }
}

/// `+12%`, `-40%`, or `new`/`gone`/`from 0` where a ratio means nothing.
fn relative(c: &Change) -> String {
    match (c.before, c.after, c.relative_change) {
        (None, Some(_), _) => "new".into(),
        (Some(_), None, _) => "gone".into(),
        (_, _, Some(r)) => format!("{:+.0}%", r * 100.0),
        _ => "from 0".into(),
    }
}

/// `|` in a cell would end it.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn row(s: &mut String, c: &Change, label: &str) {
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} |",
        cell(label),
        value(c.before, &c.unit),
        value(c.after, &c.unit),
        relative(c)
    );
}

pub fn render(d: &Diff) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# chokepoint diff: `{}` → `{}`\n",
        d.before.recording, d.after.recording
    );
    let v = &d.verdict;
    if v.changed {
        let _ = writeln!(
            s,
            "**The verdict changed: `{}` → `{}`.**\n",
            v.before.as_str(),
            v.after.as_str()
        );
    } else {
        let _ = writeln!(s, "The verdict is `{}` in both runs.\n", v.before.as_str());
    }
    if !d.changed {
        let _ = writeln!(
            s,
            "Nothing moved beyond the noise floor (a change of at least {:.0}% and of the unit's own minimum).\n",
            RELATIVE_NOISE * 100.0
        );
    }
    let _ = writeln!(
        s,
        "- before: {}\n- after: {}\n",
        v.summary_before.trim(),
        v.summary_after.trim()
    );

    if d.throughput.is_some() || !d.latency.is_empty() {
        let _ = writeln!(
            s,
            "## Throughput and latency\n\n| figure | before | after | change |\n|---|---|---|---|"
        );
        if let Some(t) = &d.throughput {
            row(&mut s, t, "throughput");
        }
        for c in &d.latency {
            let label = c
                .name
                .trim_start_matches("load.latency_")
                .trim_end_matches("_ms");
            row(&mut s, c, &format!("latency {label}"));
        }
        s.push('\n');
    }

    if !d.moved.is_empty() {
        let _ = writeln!(
            s,
            "## What moved most\n\n| figure | before | after | change |\n|---|---|---|---|"
        );
        for c in d.moved.iter().take(MOVED_SHOWN) {
            row(&mut s, c, &format!("`{}`", c.key));
        }
        if d.moved.len() > MOVED_SHOWN {
            let _ = writeln!(
                s,
                "\n{} more in the JSON (`moved[]`).",
                d.moved.len() - MOVED_SHOWN
            );
        }
        s.push('\n');
    }

    if !d.hops.is_empty() {
        let _ = writeln!(s, "## Request paths\n");
        for h in &d.hops {
            let what = match h.presence {
                Presence::Added => "only after".to_string(),
                Presence::Removed => "only before".to_string(),
                Presence::Both => moved_list(&h.moved),
            };
            let _ = writeln!(s, "- {}, hop {}: {what}", h.path, h.hop);
        }
        s.push('\n');
    }
    if !d.pools.is_empty() {
        let _ = writeln!(s, "## Pools\n");
        for p in &d.pools {
            let what = match p.presence {
                Presence::Added => "only after".to_string(),
                Presence::Removed => "only before".to_string(),
                Presence::Both => moved_list(&p.moved),
            };
            let _ = writeln!(s, "- `{}`: {what}", p.pool);
        }
        s.push('\n');
    }
    s
}

fn moved_list(moved: &[Change]) -> String {
    moved
        .iter()
        .map(|c| {
            format!(
                "{} {} → {} ({})",
                c.name,
                value(c.before, &c.unit),
                value(c.after, &c.unit),
                relative(c)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
