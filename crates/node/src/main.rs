//! `solvent-serve`: an alias of `solvent serve` (the same definitions, `solvent_node::cli`).

use clap::Parser;
use solvent_node::cli::{run_serve_command, ServeCommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "solvent-serve", version, about = "Alias of `solvent serve`: journal, snapshots, HTTP/WebSocket API")]
struct Cli {
    #[command(flatten)]
    serve: ServeCommand,
}

fn main() -> ExitCode {
    match run_serve_command(Cli::parse().serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("solvent-serve: error: {message}");
            ExitCode::from(2)
        }
    }
}
