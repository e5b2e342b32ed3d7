//! `chokepoint doctor`: print the report, exit non-zero only when the base layer cannot run.
use anyhow::Context;

use super::{Report, inspect};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub out: crate::cli::JsonOut,
    /// Do not mount tracefs when it is missing (by default doctor mounts it if allowed).
    #[arg(long)]
    pub no_mount: bool,
}

pub fn run(args: &DoctorArgs) -> anyhow::Result<i32> {
    let report = inspect(!args.no_mount);
    match &args.out.json {
        Some(target) => target.write(&report).context("writing the report")?,
        None => crate::cli::stdout_write(render(&report).as_bytes()),
    }
    Ok(report.exit_code())
}

/// One line a check: id, yes/no, why; required failures marked; a verdict line last.
pub fn render(report: &Report) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(0)
        .max("check".len());
    let mut out = format!("{:<width$}  ok   why\n", "check");
    for c in &report.checks {
        let mark = if c.required && !c.ok {
            " [required]"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<width$}  {:<3}  {}{mark}\n",
            c.id,
            if c.ok { "yes" } else { "no" },
            c.detail
        ));
    }
    let missing = report.missing_required();
    if missing.is_empty() {
        out.push_str("\nbase layer (tracepoint probes): can run\n");
    } else {
        let ids: Vec<&str> = missing.iter().map(|c| c.id.as_str()).collect();
        out.push_str(&format!(
            "\nbase layer (tracepoint probes): cannot run; missing {}\n",
            ids.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Check;

    #[test]
    fn lines_are_aligned_and_required_failures_named() {
        let r = Report::new(vec![
            Check {
                id: "btf".into(),
                ok: true,
                detail: "present".into(),
                required: false,
            },
            Check {
                id: "tracepoint.sched/sched_switch".into(),
                ok: false,
                detail: "not available".into(),
                required: true,
            },
        ]);
        let text = render(&r);
        let lines: Vec<&str> = text.lines().collect();
        let col = |l: &str, word: &str| l.find(word).expect("word present");
        assert_eq!(col(lines[1], "yes"), col(lines[2], "no"));
        assert_eq!(col(lines[0], "ok"), col(lines[1], "yes"));
        assert!(lines[2].ends_with("not available [required]"));
        assert!(text.contains("cannot run; missing tracepoint.sched/sched_switch"));
    }
}
