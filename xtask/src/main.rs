//! `cargo xtask <setup|test|demo|bench>`: the project's developer commands.
mod env;
mod setup;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env::export_path();
    let result = match cli.command {
        Cmd::Setup => setup::setup(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
