//! Reports from a real run: k6 ramps its users 2 → 8 → 32 against a real nginx under
//! `chokepoint run`; `chokepoint report` renders the recording (with k6's own timeline, which
//! the run kept) as a self-contained HTML page and a Markdown memo, a headless Chromium opens
//! the page offline and shows the run's verdict and its charts, and the run diffed against
//! itself has not changed. Needs root; run through `cargo xtask test`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use chokepoint_tests::{
    CHOKEPOINT_TIMEOUT, Nginx, chokepoint_bin, output_within, run_chokepoint, tool, try_tool,
};
use serde_json::Value;

const RAMP: &str = r#"
import http from 'k6/http';
export const options = { stages: [
  { duration: '2s', target: 2 }, { duration: '2s', target: 8 }, { duration: '2s', target: 32 },
] };
export default function () { http.get(__ENV.URL); }
"#;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `<figure>` of chart `id`, or None.
fn figure<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("<figure id=\"chart-{id}\""))?;
    let rest = &html[at..];
    Some(&rest[..rest.find("</figure>").unwrap_or(rest.len())])
}

fn headless(
    bin: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
    page: &std::path::Path,
) -> Vec<u8> {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium: {}", out.status);
    out.stdout
}

#[test]
fn a_real_run_renders_a_page_and_a_memo_that_show_its_verdict() {
    let nginx = Nginx::config().workers(1).start();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("ramp.js");
    std::fs::write(&script, RAMP).expect("script");
    let (rec, json) = (dir.path().join("run.rec"), dir.path().join("run.json"));
    let o = output_within(
        Command::new(chokepoint_bin())
            .arg("run")
            .arg("--out")
            .arg(&rec)
            .arg("--json")
            .arg(&json)
            .arg("--")
            .arg(tool("k6"))
            .args(["run", "-q", "-e", &format!("URL={}", nginx.url())])
            .arg(&script)
            .env_remove("K6_OUT"),
        CHOKEPOINT_TIMEOUT,
    );
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    let kind = result["verdict"]["kind"]
        .as_str()
        .expect("a verdict")
        .to_string();

    let (page, memo) = (dir.path().join("report.html"), dir.path().join("memo.md"));
    let o = run_chokepoint([
        "report".as_ref(),
        rec.as_os_str(),
        "--html".as_ref(),
        page.as_os_str(),
        "--md".as_ref(),
        memo.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    // The command line may name the URL it loaded (as text); nothing is fetched from one.
    for external in ["=\"http", "='http", "url(", " src=", " href=", "@import"] {
        assert!(!html.contains(external), "the page refers out: {external}");
    }
    assert!(
        html.contains(&format!("id=\"verdict-kind\">{kind}</span>")),
        "{kind}"
    );
    // k6's own points reached the page: throughput and latency drawn from them, and the
    // host's and the services' CPU from the recording.
    for id in [
        "throughput",
        "latency",
        "host-cpu",
        "service-cpu",
        "connections",
    ] {
        let f = figure(&html, id).unwrap_or_else(|| panic!("no {id} chart"));
        assert!(
            f.contains("<polyline") || f.contains("<polygon"),
            "{id}: {f}"
        );
    }
    assert!(
        html.contains("class=\"path-diagram\""),
        "no request path drawn"
    );
    assert!(html.contains("nginx"), "the path does not name nginx");
    let md = std::fs::read_to_string(&memo).expect("memo");
    assert!(
        md.contains(&format!("`{kind}`")) || md.contains(&kind),
        "{md}"
    );
    assert!(
        md.contains("chokepoint run"),
        "no command to reproduce: {md}"
    );

    // The same run against itself: nothing changed.
    let o = run_chokepoint([
        "diff".as_ref(),
        rec.as_os_str(),
        rec.as_os_str(),
        "--json".as_ref(),
        "-".as_ref(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let d: Value = serde_json::from_slice(&o.stdout).expect("diff JSON");
    assert_eq!(d["changed"], false, "{d}");

    let Some(chromium) = try_tool("chromium") else {
        panic!("chromium is not installed: run `cargo xtask setup`");
    };
    let dom = text(&headless(&chromium, dir.path(), &["--dump-dom"], &page));
    assert!(
        dom.contains(&format!("id=\"verdict-kind\">{kind}</span>")),
        "{dom}"
    );
    assert_eq!(
        dom.matches("<polyline").count(),
        html.matches("<polyline").count()
    );
    let shot = |page: &std::path::Path, name: &str| {
        let png = dir.path().join(name);
        headless(
            &chromium,
            dir.path(),
            &[
                "--window-size=1000,1400",
                &format!("--screenshot={}", png.display()),
            ],
            page,
        );
        std::fs::read(&png).expect("a screenshot")
    };
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").expect("write");
    let (ours, empty) = (shot(&page, "report.png"), shot(&blank, "blank.png"));
    assert!(ours.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        ours.len() > 10 * empty.len(),
        "the screenshot looks blank: {} bytes against {} for an empty page",
        ours.len(),
        empty.len()
    );
}
