//! `chokepoint diff` and `chokepoint report`: the arguments, the recordings analysed as
//! `analyze` analyses them, and the renderers' output written where the flags say.
use std::{
    fmt,
    path::{Path, PathBuf},
};

use anyhow::Context;

use super::{diff, html, memo};
use crate::{
    analysis::{self, Analysis},
    cli::{self, JsonOut, JsonTarget},
    outln,
    recording::Recording,
    timeline,
};

/// Where a rendered document goes: a file, or stdout (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("needs a file, or `-` for stdout".into()),
            "-" => Ok(Target::Stdout),
            path => Ok(Target::File(PathBuf::from(path))),
        }
    }

    fn write(&self, text: &str) -> anyhow::Result<()> {
        match self {
            Target::Stdout => {
                cli::stdout_write(text.as_bytes());
                Ok(())
            }
            Target::File(path) => cli::write_file(path, text.as_bytes()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Stdout => f.write_str("stdout"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

pub const DIFF_HELP: &str = "\
Examples:
  chokepoint diff before.rec after.rec
  chokepoint diff before.rec after.rec --json - | jq '.changed, .verdict'
  chokepoint diff before.rec after.rec --load-b k6.json --md diff.md

Without --json or --md the Markdown is printed. `changed` is false when nothing moved beyond
the noise floor (docs/reports.md): a change of at least 15% and of the unit's own minimum.";

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The recording before the change.
    pub before: PathBuf,
    /// The recording after the change.
    pub after: PathBuf,
    /// Load-generator output files to line up with the first recording.
    #[arg(long = "load-a", value_name = "FILE")]
    pub load_a: Vec<PathBuf>,
    /// Load-generator output files to line up with the second recording.
    #[arg(long = "load-b", value_name = "FILE")]
    pub load_b: Vec<PathBuf>,
    #[command(flatten)]
    pub out: JsonOut,
    /// Write the comparison as Markdown to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE", value_parser = Target::parse)]
    pub md: Option<Target>,
    /// Refuse a recording or load file with a corrupt line (file:line and why) instead of
    /// skipping the line and listing it under `skipped_lines`, as `analyze --strict` does.
    #[arg(long)]
    pub strict: bool,
}

pub const REPORT_HELP: &str = "\
Examples:
  chokepoint report run.rec --md memo.md
  chokepoint report run.rec --load k6.json --md -
  chokepoint report run.rec --html report.html --md memo.md

The memo asks why throughput stopped where it did and answers with the verdict, its evidence,
what was ruled out, the command to reproduce the run and what to try next (docs/reports.md).";

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("format").required(true).multiple(true).args(["md", "html"])))]
pub struct ReportArgs {
    /// A recording written by `run` or `record`.
    pub recording: PathBuf,
    /// More load-generator output files to line up with the recording.
    #[arg(long = "load", value_name = "FILE")]
    pub load: Vec<PathBuf>,
    /// Write the memo as Markdown to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE", value_parser = Target::parse)]
    pub md: Option<Target>,
    /// Write a self-contained HTML page with charts to FILE (`-` for stdout): inline SVG and
    /// CSS, no script, no external URL.
    #[arg(long, value_name = "FILE", value_parser = Target::parse)]
    pub html: Option<Target>,
    /// Refuse a recording or load file with a corrupt line (file:line and why) instead of
    /// skipping the line and listing it under `skipped_lines`, as `analyze --strict` does.
    #[arg(long)]
    pub strict: bool,
}

pub fn run_report(args: &ReportArgs) -> anyhow::Result<i32> {
    let targets = [args.md.as_ref(), args.html.as_ref()];
    if targets
        .iter()
        .filter(|t| **t == Some(&Target::Stdout))
        .count()
        > 1
    {
        crate::errln!("chokepoint: --md - and --html - cannot both take stdout");
        return Ok(cli::exit::USAGE);
    }
    if targets.contains(&Some(&Target::Stdout)) {
        cli::human_to_stderr();
    }
    let a = analyze_file(&args.recording, &args.load, args.strict)?;
    let name = args.recording.display().to_string();
    if let Some(target) = &args.md {
        target.write(&memo::render(&a, &name))?;
        if let Target::File(p) = target {
            outln!("Markdown: {}", p.display());
        }
    }
    if let Some(target) = &args.html {
        target.write(&html::render(&a, &name))?;
        if let Target::File(p) = target {
            outln!("HTML: {}", p.display());
        }
    }
    Ok(cli::exit::OK)
}

/// A recording analysed as `chokepoint analyze` does: its own load timelines, the `--load`
/// files anchored to its clock, a file that does not read named in the limitations. With
/// `strict` a corrupt line of the recording is the error (file:line and why), and a load file
/// with one is left out and named, as under `analyze --strict`.
pub fn analyze_file(rec: &Path, load: &[PathBuf], strict: bool) -> anyhow::Result<Analysis> {
    let recording =
        Recording::read_with(rec, strict).with_context(|| format!("reading {}", rec.display()))?;
    let mut timelines = Vec::new();
    let mut failed = Vec::new();
    for f in load {
        match timeline::read_file_with(f, strict).with_context(|| format!("--load {}", f.display()))
        {
            Ok(mut t) => {
                t.anchor(recording.header.started_unix_ns);
                timelines.push(t);
            }
            Err(e) => {
                crate::errln!("chokepoint: {e:#}; analysed without it");
                failed.push(format!("{e:#}: analysed without this timeline"));
            }
        }
    }
    let mut a = analysis::analyze(&recording, &timelines);
    a.limitations.extend(failed);
    Ok(a)
}

pub fn run_diff(args: &DiffArgs) -> anyhow::Result<i32> {
    let json_stdout = JsonTarget::is_stdout(args.out.json.as_ref());
    let md_stdout = args.md.as_ref() == Some(&Target::Stdout);
    if json_stdout && md_stdout {
        crate::errln!("chokepoint: --json - and --md - cannot both take stdout");
        return Ok(cli::exit::USAGE);
    }
    if json_stdout || md_stdout {
        cli::human_to_stderr();
    }
    let before = analyze_file(&args.before, &args.load_a, args.strict)?;
    let after = analyze_file(&args.after, &args.load_b, args.strict)?;
    let names = [
        args.before.display().to_string(),
        args.after.display().to_string(),
    ];
    let d = diff::diff(&before, &after, [&names[0], &names[1]]);
    if let Some(target) = &args.out.json {
        target
            .write(&d)
            .with_context(|| format!("writing the diff's JSON to {target}"))?;
        if let JsonTarget::File(p) = target {
            outln!("JSON: {}", p.display());
        }
    }
    let md = diff::markdown(&d);
    match &args.md {
        Some(target) => {
            target.write(&md)?;
            if let Target::File(p) = target {
                outln!("Markdown: {}", p.display());
            }
        }
        None if args.out.json.is_none() => cli::human(&md),
        None => {}
    }
    Ok(cli::exit::OK)
}
