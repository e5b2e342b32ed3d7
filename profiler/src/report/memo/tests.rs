//! Memos rendered from every recorded lab fixture, checked for what they must say.
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
    assert!(names.len() >= 20, "{names:?}");
    names
}

#[test]
fn every_fixture_has_a_memo_that_answers_with_its_numbers() {
    for name in fixture_names() {
        let a = fixture(&name);
        let rec = format!("{name}.rec");
        let md = render(&a, &rec);
        let v = &a.verdict;
        let ctx = || format!("{name}:\n{md}");
        // The question quotes the load's rate; the answer is the verdict with its sentence.
        let first = md.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# Why did throughput stop at ")
                || first.starts_with("# What limited"),
            "{}",
            ctx()
        );
        if let Some(f) = load_figure(&a) {
            assert!(first.contains(&f), "{}", ctx());
        }
        assert!(
            md.contains(&format!("Verdict `{}`", v.kind.as_str())),
            "{}",
            ctx()
        );
        assert!(md.contains(&headline(&a)), "{}", ctx());
        // The deciding evidence, each row with its value.
        let own = deciding_rows(v.kind, &v.evidence);
        for e in &v.evidence[..own] {
            assert!(
                md.contains(&format!("| `{}` | {} |", e.metric, value(e.value, &e.unit))),
                "{}: {}",
                e.metric,
                ctx()
            );
        }
        // Every ruled-out kind with its reason.
        for r in &v.ruled_out {
            assert!(
                md.contains(&format!("- `{}`: {}", r.kind.as_str(), r.reason.trim())),
                "{}",
                ctx()
            );
        }
        // The recorded command, exactly, under `chokepoint run`.
        let cmd = a.command.as_ref().expect("lab runs have a command");
        let words: Vec<String> = cmd.iter().map(|w| shell_quote(w)).collect();
        let line = format!("chokepoint run --out again.rec -- {}", words.join(" "));
        assert!(md.contains(&line), "{line}: {}", ctx());
        // The advice for this kind.
        let adv = advice(v.kind);
        assert!(md.contains(adv.meaning), "{}", ctx());
        assert!(adv.steps.iter().all(|s| md.contains(s)), "{}", ctx());
        assert!(md.contains("## Cost of measuring"), "{}", ctx());
    }
}

#[test]
fn the_reproduce_commands_quote_what_the_shell_would_split() {
    let a = fixture("pool-too-small-http");
    let md = render(&a, "my run.rec");
    let block = md
        .split("## How to reproduce")
        .nth(1)
        .and_then(|r| r.split("```").nth(1))
        .expect("a code block");
    let run = block
        .lines()
        .find(|l| l.starts_with("chokepoint run"))
        .expect("run line");
    assert!(
        run.starts_with(
            "chokepoint run --out again.rec -- /usr/bin/wrk -t1 -c16 -d6s http://127.0.0.1:"
        ),
        "{run}"
    );
    assert!(
        block.contains("chokepoint diff 'my run.rec' again.rec"),
        "{block}"
    );
}

#[test]
fn words_are_quoted_only_when_the_shell_needs_it() {
    assert_eq!(shell_quote("http://a:80/x?y"), "'http://a:80/x?y'");
    assert_eq!(shell_quote("-c16"), "-c16");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn every_kind_has_advice() {
    for k in VerdictKind::ALL {
        let a = advice(k);
        assert!(
            !a.meaning.is_empty() && !a.steps.is_empty(),
            "{}",
            k.as_str()
        );
    }
}
