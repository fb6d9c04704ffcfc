//! `solvent`: a thin binary over the solvent crates.

mod lines;
mod progress;
mod replay;
mod report;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "solvent", version, about = "Streaming solvency engine for crypto derivatives")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply a JSON Lines event file; effects to stdout (or --out), a summary with the state hash to stderr.
    Replay {
        /// TOML configuration; the embedded default when omitted (see `solvent config`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Events, one JSON object per line ("-" for stdin).
        #[arg(long)]
        events: PathBuf,
        /// Write effects here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the final state as JSON here ("-" for stdout, after the effects).
        #[arg(long)]
        state_out: Option<PathBuf>,
        /// Exit with status 1 when any event was rejected.
        #[arg(long)]
        strict: bool,
        /// Print a table of markets and accounts (equity, margin, free collateral) to stderr.
        #[arg(long)]
        report: bool,
    },
    /// Run solvent as a service: durable journal, snapshots, HTTP + WebSocket API (docs/serve.md).
    Serve {
        /// Engine configuration (TOML); the embedded default when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Server configuration: tokens, limits, snapshot cadence (docs/serve.md).
        #[arg(long)]
        server_config: Option<PathBuf>,
        /// Where the journal and snapshots live.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on (loopback by default).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Start with the embedded defaults and a built-in simulated feed (prices, trades, a crash).
        #[arg(long)]
        demo: bool,
    },
    /// Print the embedded default configuration (TOML), or check a configuration file.
    Config {
        /// Validate this file instead of printing the default.
        #[arg(long)]
        check: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay { config, events, out, state_out, strict, report } => {
            let options = replay::ReplayOptions { config, events, out, state_out, report };
            match replay::run(&options) {
                Ok((summary, _)) if strict && summary.rejected > 0 => {
                    eprintln!("--strict: {} events were rejected", summary.rejected);
                    ExitCode::from(1)
                }
                Ok(_) => ExitCode::SUCCESS,
                Err(message) => fail(&message),
            }
        }
        Command::Serve { config, server_config, data_dir, listen, demo } => {
            match solvent_node::run(solvent_node::ServeOptions { config, server_config, data_dir, listen, demo }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error.to_string()),
            }
        }
        Command::Config { check: None } => {
            print!("{}", solvent_core::DEFAULT_CONFIG_TOML);
            ExitCode::SUCCESS
        }
        Command::Config { check: Some(path) } => match replay::load_config(Some(&path)) {
            Ok(config) => {
                println!(
                    "{}: valid ({} markets, {} collateral assets)",
                    path.display(),
                    config.markets.len(),
                    config.assets.len() + 1
                );
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        },
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("solvent: error: {message}");
    ExitCode::from(2)
}
