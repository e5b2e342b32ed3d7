//! The HTML report (`chokepoint report REC --html FILE`): one self-contained file, inline CSS
//! and SVG, no script and no external URL, so it opens offline, prints, and can be mailed.
//! The verdict with its evidence and what was ruled out first, then the charts
//! (`charts.rs`, drawn by `svg.rs`), the pools and request paths (each path drawn by
//! `diagram.rs`), how to reproduce, the host
//! inventory and chokepoint's own cost. Rendered from the analysis alone.
mod charts;
mod diagram;
pub mod svg;

#[cfg(test)]
mod tests;

use std::fmt::Write;

use self::svg::esc;
use crate::{
    analysis::{Analysis, Evidence, VerdictKind},
    report::{
        memo::{advice, question, reproduce_commands, value},
        text::{
            units::{bytes_parts, duration, percent, threshold},
            verdict::{deciding_rows, family, headline, window},
        },
    },
};

const CSS: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#111;max-width:60rem;margin:1.5rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
h3{font-size:1rem;margin:1.2rem 0 .3rem}
.verdict{border:2px solid #111;border-left-width:8px;padding:.6rem 1rem;margin:1rem 0}
.verdict .kind{font-weight:700;font-family:ui-monospace,monospace}
table{border-collapse:collapse;margin:.4rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.15rem .45rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,monospace;font-size:.85rem}pre{background:#f4f4f4;padding:.5rem;overflow-x:auto;white-space:pre-wrap}
svg.chart{width:100%;height:auto;font-family:system-ui,sans-serif}
svg.path{width:100%;max-width:50rem;height:auto;font-family:system-ui,sans-serif}.path-diagram{margin:.5rem 0 1rem;break-inside:avoid}
ul.legend{list-style:none;padding:0;margin:.2rem 0;display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;font-size:.85rem}
.muted{color:#555}figure{margin:0 0 1rem 0}details{margin:.3rem 0}
@media print{body{max-width:none;font-size:11pt}details{display:none}.chart{break-inside:avoid}h2{break-after:avoid}}
";

fn evidence_table(s: &mut String, rows: &[&Evidence]) {
    s.push_str("<table><thead><tr><th scope=\"col\">figure</th><th scope=\"col\">value</th><th scope=\"col\">threshold</th><th scope=\"col\">source</th></tr></thead><tbody>");
    for e in rows {
        let th = e
            .threshold
            .as_deref()
            .map_or(String::new(), |t| threshold(t, &e.unit));
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.metric),
            esc(&value(e.value, &e.unit)),
            esc(&th),
            esc(&e.source)
        );
    }
    s.push_str("</tbody></table>");
}

/// The page; `recording` is how the user named the file.
pub fn render(a: &Analysis, recording: &str) -> String {
    let v = &a.verdict;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>chokepoint: {}</title><style>{CSS}</style></head><body>",
        esc(&question(a))
    );
    let _ = write!(
        s,
        "<header><h1>{}</h1><p class=\"muted\">chokepoint report of <code>{}</code>: {} recorded on <code>{}</code> ({} CPUs, kernel {}).</p></header>",
        esc(&question(a)),
        esc(recording),
        esc(&duration(a.duration_seconds)),
        esc(&a.host.name),
        a.host.cpus,
        esc(&a.host.kernel)
    );
    let _ = write!(
        s,
        "<section class=\"verdict\" aria-label=\"verdict\"><p><strong>{}</strong></p><p>Verdict <span class=\"kind\" id=\"verdict-kind\">{}</span> (family: {}, confidence {:.0}%), judged over {}.</p>",
        esc(headline(a).trim()),
        v.kind.as_str(),
        esc(family(v.family)),
        v.confidence * 100.0,
        esc(&window(a))
    );
    if !v.secondary.is_empty() {
        let names: Vec<&str> = v.secondary.iter().map(|k| k.as_str()).collect();
        let _ = write!(s, "<p>Also contributing: {}.</p>", esc(&names.join(", ")));
    }
    for m in &v.missing {
        let _ = write!(s, "<p>Missing: {}</p>", esc(m));
    }
    s.push_str("</section>");

    phases(&mut s, a);

    let all: Vec<&Evidence> = v.evidence.iter().collect();
    let fired = !matches!(
        v.kind,
        VerdictKind::NotSaturated | VerdictKind::Inconclusive
    );
    let own = match deciding_rows(v.kind, &v.evidence) {
        0 if fired => all.len(),
        n => n,
    };
    if own > 0 {
        s.push_str("<h2>Evidence</h2>");
        evidence_table(&mut s, &all[..own]);
    }
    if !v.ruled_out.is_empty() {
        s.push_str("<h2>Ruled out</h2><ul>");
        for r in &v.ruled_out {
            let _ = write!(
                s,
                "<li><code>{}</code>: {}</li>",
                r.kind.as_str(),
                esc(r.reason.trim())
            );
        }
        s.push_str("</ul>");
    }
    let others: Vec<&Evidence> = all[own..]
        .iter()
        .filter(|e| e.value != 0.0)
        .copied()
        .collect();
    if !others.is_empty() {
        let _ = write!(
            s,
            "<details><summary>The other figures checked ({} non-zero)</summary>",
            others.len()
        );
        evidence_table(&mut s, &others);
        s.push_str("</details>");
    }

    s.push_str("<h2>Over time</h2>");
    for f in charts::charts(a) {
        let _ = write!(
            s,
            "<figure id=\"chart-{}\"><h3>{}</h3>",
            f.id,
            esc(f.chart.title)
        );
        if f.chart.has_data() {
            let desc = charts::describe(&f.chart);
            s.push_str(&f.chart.render(&f.id, &desc));
            s.push_str(&f.chart.legend());
            let _ = write!(
                s,
                "<details><summary>The numbers</summary>{}</details>",
                charts::table(&f.chart)
            );
        } else {
            let _ = write!(s, "<p class=\"muted no-data\">{}</p>", esc(&f.missing));
        }
        s.push_str("</figure>");
    }

    pools_and_paths(&mut s, a);

    let adv = advice(v.kind);
    let _ = write!(
        s,
        "<h2>What to try next</h2><p>{}</p><ol>",
        esc(adv.meaning)
    );
    for step in adv.steps {
        let _ = write!(s, "<li>{}</li>", code_spans(step));
    }
    s.push_str("</ol>");
    let (intro, commands) = reproduce_commands(a, recording);
    let _ = write!(
        s,
        "<h2>How to reproduce</h2><p>{}</p><pre>{}</pre>",
        code_spans(intro),
        esc(&commands.join("\n"))
    );

    inventory(&mut s, a);
    if !a.limitations.is_empty() {
        s.push_str("<h2>Limitations</h2><ul>");
        for l in &a.limitations {
            let _ = write!(s, "<li>{}</li>", esc(l.trim()));
        }
        s.push_str("</ul>");
    }
    let _ = writeln!(
        s,
        "<footer class=\"muted\"><p>chokepoint {} · analysis schema {}</p></footer></body></html>",
        esc(&a.chokepoint_version),
        a.schema_version
    );
    s
}

/// Escapes text and turns Markdown's `code` spans into `<code>`.
fn code_spans(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

/// The recording split at its marks, each phase with its own verdict.
fn phases(s: &mut String, a: &Analysis) {
    if a.phases.is_empty() {
        return;
    }
    s.push_str("<h2>Phases</h2><p>The recording split at its marks, each phase analysed on its own.</p><table id=\"phases\"><thead><tr><th scope=\"col\">phase</th><th scope=\"col\">from</th><th scope=\"col\">to</th><th scope=\"col\">verdict</th><th scope=\"col\">confidence</th><th scope=\"col\">host busy</th><th scope=\"col\">new connections/s</th><th scope=\"col\">requests/s</th></tr></thead><tbody>");
    for p in &a.phases {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"num\">{:.1} s</td><td class=\"num\">{:.1} s</td><td><code>{}</code></td><td class=\"num\">{:.0}%</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&p.label),
            p.start_s,
            p.end_s,
            p.verdict.as_str(),
            p.confidence * 100.0,
            percent(p.host_busy),
            esc(&crate::report::text::units::num(p.connections_per_s)),
            p.throughput_per_s
                .map_or("–".to_string(), crate::report::text::units::num)
        );
    }
    s.push_str("</tbody></table>");
}

fn pools_and_paths(s: &mut String, a: &Analysis) {
    if !a.pools.is_empty() {
        s.push_str("<h2>Pools and concurrency limits</h2><table><thead><tr><th scope=\"col\">holder → upstream</th><th scope=\"col\">size</th><th scope=\"col\">in use</th><th scope=\"col\">use</th><th scope=\"col\">queued</th><th scope=\"col\">wait (est.)</th><th scope=\"col\">requests/s</th></tr></thead><tbody>");
        for p in &a.pools {
            let _ = write!(
                s,
                "<tr><td>{} → {} <span class=\"muted\">{}</span></td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{}</td></tr>",
                esc(&p.process),
                esc(&p.upstream),
                esc(&p.endpoint),
                p.size,
                p.in_use,
                percent(p.utilisation),
                p.queued,
                p.wait_ms_estimate,
                esc(&crate::report::text::units::num(p.requests_per_s))
            );
        }
        s.push_str("</tbody></table>");
    }
    if !a.paths.is_empty() {
        s.push_str("<h2>Request paths</h2><ul>");
        for p in &a.paths {
            let _ = write!(
                s,
                "<li><code>{}</code>: {} new connections/s",
                esc(&p.text),
                esc(&crate::report::text::units::num(p.connections_per_s))
            );
            let costs: Vec<String> = p
                .hops
                .iter()
                .filter_map(|h| {
                    let c = diagram::costs(h);
                    (!c.is_empty()).then(|| format!("{}: {}", h.name, c.join(", ")))
                })
                .collect();
            if !costs.is_empty() {
                let _ = write!(s, " ({})", esc(&costs.join("; ")));
            }
            s.push_str("</li>");
        }
        s.push_str("</ul>");
        for (i, p) in a.paths.iter().take(PATHS_DRAWN).enumerate() {
            let _ = write!(
                s,
                "<div class=\"path-diagram\" id=\"path-{}\">{}</div>",
                i + 1,
                diagram::render(p, &format!("path-{}", i + 1))
            );
        }
    }
}

/// How many request paths are drawn (the list names them all).
const PATHS_DRAWN: usize = 4;

fn inventory(s: &mut String, a: &Analysis) {
    let h = &a.host;
    s.push_str("<h2>Host and probes</h2><table><tbody>");
    let mut row = |k: &str, v: String| {
        let _ = write!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            esc(k),
            esc(&v)
        );
    };
    row("host", h.name.clone());
    row("kernel", h.kernel.clone());
    row("CPUs", h.cpus.to_string());
    if let Some(m) = &h.cpu_model {
        row("CPU model", m.clone());
    }
    if let Some(b) = h.memory_bytes {
        let (n, u) = bytes_parts(b as f64);
        row("memory", format!("{n} {u}"));
    }
    if let Some(os) = &h.os {
        row("OS", os.clone());
    }
    row(
        "host CPU busy",
        format!("{} over the recording", percent(h.busy_fraction)),
    );
    row("probes attached", format!("{}", a.probes.attached.len()));
    if !a.probes.failed.is_empty() {
        let failed: Vec<&str> = a.probes.failed.iter().map(|f| f.id.as_str()).collect();
        row("probes not attached", failed.join(", "));
    }
    if let Some(cmd) = &a.command {
        row("command", cmd.join(" "));
    }
    let o = &a.overhead;
    row(
        "chokepoint's own cost",
        format!(
            "{} of the host's CPU ({:.2} s in its kernel programs, {:.2} s in user space)",
            percent(o.cpu_share_of_host),
            o.bpf_cpu_seconds,
            o.user_cpu_seconds
        ),
    );
    s.push_str("</tbody></table>");
}
