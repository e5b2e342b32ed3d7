//! `chokepoint timeline FILE... [--json]`.
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TimelineArgs {
    /// Load-generator output files (format detected from content).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &TimelineArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
