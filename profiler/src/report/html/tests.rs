//! HTML reports of every recorded lab fixture: self-contained, every chart drawn has data,
//! the verdict in the page's text.
use super::*;
use crate::report::fixture;

fn fixture_names() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "rec").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}

/// The `<figure>` elements of a page.
fn figures(html: &str) -> Vec<&str> {
    html.split("<figure ")
        .skip(1)
        .map(|f| f.split("</figure>").next().unwrap_or(f))
        .collect()
}

#[test]
fn every_fixture_renders_a_self_contained_page_with_data_in_every_chart() {
    let names = fixture_names();
    assert!(names.len() >= 20);
    let mut with_load_chart = 0;
    for name in &names {
        let a = fixture(name);
        let html = render(&a, &format!("{name}.rec"));
        let ctx = || name.to_string();
        // Self-contained: nothing fetched, nothing run (a URL in the recorded command is
        // text, never an attribute).
        for banned in [
            "src=", "href=", "=\"http", "url(", "@import", "<script", "<link", "<img", "<iframe",
            "<object", "<embed",
        ] {
            assert!(!html.contains(banned), "{}: contains {banned}", ctx());
        }
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
        for tag in ["figure", "svg", "table", "section", "details", "ul", "ol"] {
            assert_eq!(
                html.matches(&format!("<{tag}")).count(),
                html.matches(&format!("</{tag}>")).count(),
                "{}: <{tag}> unbalanced",
                ctx()
            );
        }
        // The verdict in the page's text, with its sentence.
        assert!(
            html.contains(&format!(
                "id=\"verdict-kind\">{}</span>",
                a.verdict.kind.as_str()
            )),
            "{}",
            ctx()
        );
        assert!(html.contains(&esc(headline(&a).trim())), "{}", ctx());
        for r in &a.verdict.ruled_out {
            assert!(
                html.contains(&format!("<li><code>{}</code>", r.kind.as_str())),
                "{}",
                ctx()
            );
        }
        // Every chart drawn has data; one without says why instead.
        let figs = figures(&html);
        let sweep = a.series.sweep.is_some();
        let pools = !a.series.pools.is_empty();
        assert_eq!(
            figs.len(),
            7 + usize::from(sweep) + usize::from(pools),
            "{}",
            ctx()
        );
        assert_eq!(
            figs.iter()
                .any(|f| f.starts_with("id=\"chart-sweep\"") && f.contains("<svg")),
            sweep,
            "{}",
            ctx()
        );
        for f in &figs {
            if f.contains("<svg") {
                assert!(
                    f.contains("<polyline") || f.contains("<circle") || f.contains("<polygon"),
                    "{}: a chart without a line: {f}",
                    ctx()
                );
                assert!(f.contains("<desc id="), "{}: no text alternative", ctx());
                assert!(f.contains("<td>"), "{}: no data table", ctx());
            } else {
                assert!(f.contains("no-data"), "{}: {f}", ctx());
            }
        }
        // The recording always has CPU per service and host CPU.
        for id in ["host-cpu", "service-cpu"] {
            let f = figs
                .iter()
                .find(|f| f.starts_with(&format!("id=\"chart-{id}\"")))
                .expect(id);
            assert!(f.contains("<svg"), "{}: {id} has no chart", ctx());
        }
        if figs[0].contains("<svg") {
            with_load_chart += 1;
        }
    }
    assert!(
        with_load_chart >= 1,
        "no fixture had a load timeline to chart"
    );
}

#[test]
fn the_load_chart_marks_the_window_the_verdict_was_decided_in() {
    let a = fixture("concurrency-sweep");
    assert_eq!(a.window.source, "load-plateau");
    let html = render(&a, "sweep.rec");
    let fig = figures(&html)
        .into_iter()
        .find(|f| f.starts_with("id=\"chart-throughput\""))
        .expect("throughput");
    assert!(
        fig.contains("class=\"band\"") && fig.contains("analysis window"),
        "{fig}"
    );
    assert!(fig.contains("requests/s (k6.json)"), "{fig}");
    // A sweep (runs at rising concurrency) is drawn as throughput against concurrency with
    // its USL fit.
    let mut a = a;
    let points: Vec<crate::timeline::SweepPoint> = [
        (1.0, 100.0),
        (2.0, 190.0),
        (4.0, 330.0),
        (8.0, 420.0),
        (16.0, 430.0),
    ]
    .into_iter()
    .map(|(c, x)| crate::timeline::SweepPoint {
        concurrency: c,
        throughput_per_s: x,
        latency_mean_ms: None,
        latency_p95_ms: None,
        concurrency_source: "configured".into(),
        source: format!("run-{c}.json"),
        start_unix_s: None,
        end_unix_s: None,
    })
    .collect();
    let usl = crate::timeline::knee::fit_usl(&points);
    assert!(usl.is_some());
    let (knee, retrograde) = crate::timeline::knee::knee_of(&points);
    a.series.sweep = Some(crate::timeline::Sweep {
        points,
        usl,
        knee,
        retrograde,
    });
    let html = render(&a, "sweep.rec");
    let fig = figures(&html)
        .into_iter()
        .find(|f| f.starts_with("id=\"chart-sweep\""))
        .expect("sweep chart");
    assert!(
        fig.contains("USL fit (σ") && fig.contains(">concurrency</text>"),
        "{fig}"
    );
    assert!(fig.matches("<polyline").count() >= 2, "{fig}");
}

/// `chromium` on PATH, if any.
fn chromium() -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `args`, a profile of its own under `dir`.
fn headless(
    bin: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
    page: &std::path::Path,
) -> Vec<u8> {
    let out = std::process::Command::new(bin)
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

/// A headless Chromium (Debian's `chromium`, which `cargo xtask setup` installs) opens the page
/// offline: the DOM it built shows the verdict and its charts, and its screenshot is far from
/// blank (a blank page of the same size is the reference).
#[test]
fn chromium_shows_the_verdict_and_draws_the_charts() {
    let Some(bin) = chromium() else {
        eprintln!("skipped: no chromium on PATH (cargo xtask setup installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let a = fixture("concurrency-sweep");
    let page = dir.path().join("report.html");
    std::fs::write(&page, render(&a, "sweep.rec")).expect("write");
    let dom =
        String::from_utf8_lossy(&headless(&bin, dir.path(), &["--dump-dom"], &page)).into_owned();
    assert!(
        dom.contains(&format!(
            "id=\"verdict-kind\">{}</span>",
            a.verdict.kind.as_str()
        )),
        "{dom}"
    );
    assert!(dom.contains("Single-thread-saturated at"), "{dom}");
    assert_eq!(
        dom.matches("<polyline").count(),
        render(&a, "sweep.rec").matches("<polyline").count()
    );

    let shot = |page: &std::path::Path, name: &str| {
        let png = dir.path().join(name);
        headless(
            &bin,
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

#[test]
fn a_pool_is_charted_with_its_connections_in_use_and_queue() {
    let a = fixture("pool-too-small");
    let p = a.series.pools.first().expect("a pool series");
    assert_eq!(p.in_use.len(), a.series.start_s.len());
    assert!(p.queued.iter().any(|q| q.is_some_and(|q| q > 0.0)), "{p:?}");
    let summary = a
        .pools
        .iter()
        .find(|s| format!("{}->{}", s.process, s.upstream) == p.pool)
        .expect("the series names a pool of pools[]");
    assert!(summary.queued > 0.0);
    let html = render(&a, "pool.rec");
    let fig = figures(&html)
        .into_iter()
        .find(|f| f.starts_with("id=\"chart-pools\""))
        .expect("pool chart");
    assert!(fig.contains("<polyline"), "{fig}");
    assert!(fig.contains(&format!("{} queued", esc(&p.pool))), "{fig}");
    assert!(fig.contains(&format!("{} in use", esc(&p.pool))), "{fig}");
}
