//! `cargo xtask <setup|test|demo|bench|fixtures|fuzz>`: the project's developer commands.
mod bench;
mod demo;
mod env;
mod fixtures;
mod fuzz;
mod setup;
mod suite;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "chokepoint's developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install what the build, tests and demo need (root; quick when everything is there).
    Setup,
    /// Set-up, fmt check, release build, unit tests, clippy, end-to-end tests (root).
    Test(suite::TestArgs),
    /// Set-up, build, and a one-minute demo: real load under chokepoint, real verdicts.
    Demo,
    /// chokepoint's overhead beside nginx under connection churn (interleaved A/B rounds).
    Bench(bench::BenchArgs),
    /// Re-record the lab recordings the attribution tests replay (root, a quiet machine).
    Fixtures(fixtures::FixturesArgs),
    /// Run every cargo-fuzz target (fuzz/) for --seconds each with the pinned nightly.
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env::export_path();
    let result = match &cli.command {
        Cmd::Setup => setup::setup(),
        Cmd::Test(args) => suite::test(args),
        Cmd::Demo => demo::demo(),
        Cmd::Bench(args) => bench::bench(args),
        Cmd::Fixtures(args) => fixtures::fixtures(args),
        Cmd::Fuzz(args) => fuzz::fuzz(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
