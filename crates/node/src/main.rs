//! `solvent-serve`: a thin binary over `solvent_node` (the `solvent serve` command delegates to
//! the same [`solvent_node::run`]).

use clap::{Parser, Subcommand};
use solvent_node::{bench, export, ServeOptions};
use std::io::{BufWriter, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "solvent-serve", version, about = "solvent as a service: journal, snapshots, HTTP/WebSocket API")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeOptions,
}

#[derive(Subcommand)]
enum Command {
    /// Write the journal's events as JSON Lines (line N = seq N), for `solvent replay`.
    ExportJournal {
        #[arg(long)]
        data_dir: PathBuf,
        /// Output file ("-" for stdout).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a JetStream stream's events as JSON Lines (line N = seq N), for `solvent replay`.
    ExportStream {
        #[arg(long, value_name = "URL")]
        nats: String,
        #[arg(long, default_value = solvent_node::jetstream::DEFAULT_STREAM)]
        stream: String,
        /// Output file ("-" for stdout).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the BLAKE3 hash of a token (read from stdin), or generate a token and its hash.
    HashToken {
        #[arg(long)]
        generate: bool,
    },
    /// Load test on loopback: group commit versus an fsync per event.
    Bench {
        /// Clients of the batching runs.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Clients of the single-event runs.
        #[arg(long, default_value_t = 64)]
        single_clients: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        #[arg(long)]
        scratch_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => solvent_node::run(cli.serve).map_err(|e| e.to_string()),
        Some(Command::ExportJournal { data_dir, out }) => export_journal(&data_dir, &out),
        Some(Command::ExportStream { nats, stream, out }) => export_stream(&nats, &stream, &out),
        Some(Command::HashToken { generate }) => hash_token(generate),
        Some(Command::Bench { clients, single_clients, batch, secs, scratch_dir }) => {
            let options = bench::LoadOptions {
                clients: clients.clamp(1, 256),
                single_event_clients: single_clients.clamp(1, 256),
                batch_events: batch.clamp(1, 10_000),
                scratch_dir: scratch_dir.unwrap_or_else(std::env::temp_dir),
                ..bench::LoadOptions::default()
            };
            run_bench(options, secs)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("solvent-serve: error: {message}");
            ExitCode::from(2)
        }
    }
}

fn export_journal(data_dir: &std::path::Path, out: &std::path::Path) -> Result<(), String> {
    let mut writer: Box<dyn std::io::Write> = if out.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        Box::new(BufWriter::new(file))
    };
    let summary = export::export_journal(data_dir, &mut writer).map_err(|e| e.to_string())?;
    eprintln!("exported {} events (last seq {})", summary.events, summary.last_seq);
    if let Some(torn) = summary.torn_tail {
        eprintln!("note: the journal ends in a torn tail that was not exported ({torn})");
    }
    Ok(())
}

fn export_stream(url: &str, stream: &str, out: &std::path::Path) -> Result<(), String> {
    let lines = solvent_node::jetstream::export_stream(url, stream).map_err(|e| e.to_string())?;
    let mut writer: Box<dyn std::io::Write> = if out.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        Box::new(BufWriter::new(file))
    };
    for line in &lines {
        writer.write_all(line).and_then(|()| writer.write_all(b"\n")).map_err(|e| format!("writing: {e}"))?;
    }
    writer.flush().map_err(|e| format!("writing: {e}"))?;
    eprintln!("exported {} events of stream {stream}", lines.len());
    Ok(())
}

fn hash_token(generate: bool) -> Result<(), String> {
    let token = if generate {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        let token = hex::encode(bytes);
        println!("token:        {token}");
        token
    } else {
        let mut text = String::new();
        std::io::stdin().take(4096).read_to_string(&mut text).map_err(|e| format!("reading stdin: {e}"))?;
        text.trim().to_string()
    };
    if token.is_empty() {
        return Err("empty token".into());
    }
    println!("token_blake3: {}", solvent_node::auth::hash_token(&token));
    Ok(())
}

fn run_bench(mut options: bench::LoadOptions, secs: f64) -> Result<(), String> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 600.0) {
        return Err("--secs must be in (0, 600]".into());
    }
    options.run_duration = Duration::from_secs_f64(secs);
    let report = bench::run_load(&options).map_err(|e| e.to_string())?;
    print!("{}", report.to_markdown());
    Ok(())
}
