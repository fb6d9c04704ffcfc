//! The node's commands as clap definitions, shared by `solvent` (`solvent serve`, `solvent
//! token`, `solvent export-journal`, `solvent serve bench`) and its alias binary `solvent-serve`
//! (the same `serve` command with its older subcommand names), so both parse alike.

use crate::{bench, export, ServeOptions};
use clap::{Args, Subcommand};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `serve`: run the service, or one of its tools.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeCommand {
    #[command(subcommand)]
    pub command: Option<ServeTool>,
    #[command(flatten)]
    pub serve: ServeOptions,
}

#[derive(Subcommand, Debug)]
pub enum ServeTool {
    /// Load test on loopback: group commit versus an fsync per event, with and without polling readers.
    Bench(BenchArgs),
    /// Same as `solvent export-journal`.
    #[command(hide = true)]
    ExportJournal(ExportArgs),
    /// Write a NATS JetStream stream's events as JSON Lines (line N = seq N), for `solvent replay`.
    ExportStream(ExportStreamArgs),
    /// Same as `solvent token` (its former name).
    #[command(hide = true)]
    HashToken(TokenArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The server's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Output file ("-" for stdout).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExportStreamArgs {
    /// The NATS server, e.g. nats://127.0.0.1:4222.
    #[arg(long, value_name = "URL")]
    pub nats: String,
    /// The stream's name.
    #[arg(long, default_value = crate::jetstream::DEFAULT_STREAM)]
    pub stream: String,
    /// Output file ("-" for stdout).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Generate a random token (printed with its hash) instead of reading one from stdin.
    #[arg(long)]
    pub generate: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Clients of the batching runs.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Clients of the single-event runs.
    #[arg(long, default_value_t = 64)]
    pub single_clients: usize,
    /// Events per request of the batching runs.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Polling readers of the runs with a dashboard (0: no such runs).
    #[arg(long, default_value_t = 10)]
    pub readers: usize,
    /// Requests per second of each polling reader.
    #[arg(long, default_value_t = 10.0)]
    pub reader_rate: f64,
    /// Where the runs' data directories go (default: the system's temporary directory).
    #[arg(long)]
    pub scratch_dir: Option<PathBuf>,
}

/// Run `serve` or the tool given.
pub fn run_serve_command(command: ServeCommand) -> Result<(), String> {
    match command.command {
        None => crate::run(command.serve).map_err(|e| e.to_string()),
        Some(ServeTool::Bench(args)) => run_bench(args),
        Some(ServeTool::ExportJournal(args)) => export_journal(&args),
        Some(ServeTool::ExportStream(args)) => export_stream(&args),
        Some(ServeTool::HashToken(args)) => token(&args),
    }
}

/// `export-journal`: the journal's events as JSON Lines (line N = seq N), for `solvent replay`.
pub fn export_journal(args: &ExportArgs) -> Result<(), String> {
    let out: &Path = &args.out;
    let mut writer: Box<dyn std::io::Write> = if out.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        Box::new(BufWriter::new(file))
    };
    let summary = export::export_journal(&args.data_dir, &mut writer).map_err(|e| e.to_string())?;
    eprintln!("exported {} events (last seq {})", summary.events, summary.last_seq);
    if let Some(torn) = summary.torn_tail {
        eprintln!("note: the journal ends in a torn tail that was not exported ({torn})");
    }
    Ok(())
}

/// `export-stream`: a JetStream stream's events as JSON Lines (line N = seq N).
pub fn export_stream(args: &ExportStreamArgs) -> Result<(), String> {
    let lines = crate::jetstream::export_stream(&args.nats, &args.stream).map_err(|e| e.to_string())?;
    let out: &Path = &args.out;
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
    eprintln!("exported {} events of stream {}", lines.len(), args.stream);
    Ok(())
}

/// `token`: the BLAKE3 hash of a token read from stdin, or a new token and its hash.
pub fn token(args: &TokenArgs) -> Result<(), String> {
    let token = if args.generate {
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
    println!("token_blake3: {}", crate::auth::hash_token(&token));
    Ok(())
}

fn run_bench(args: BenchArgs) -> Result<(), String> {
    if !(args.secs.is_finite() && args.secs > 0.0 && args.secs <= 600.0) {
        return Err("--secs must be in (0, 600]".into());
    }
    if !(args.reader_rate.is_finite() && args.reader_rate > 0.0 && args.reader_rate <= 1_000.0) {
        return Err("--reader-rate must be in (0, 1000]".into());
    }
    let options = bench::LoadOptions {
        clients: args.clients.clamp(1, 256),
        single_event_clients: args.single_clients.clamp(1, 1024),
        batch_events: args.batch.clamp(1, 10_000),
        run_duration: Duration::from_secs_f64(args.secs),
        scratch_dir: args.scratch_dir.unwrap_or_else(std::env::temp_dir),
        readers: args.readers.min(256),
        reader_rate_per_sec: args.reader_rate,
        ..bench::LoadOptions::default()
    };
    let report = bench::run_load(&options).map_err(|e| e.to_string())?;
    print!("{}", report.to_markdown());
    Ok(())
}
