//! solvent-node: solvent as a service.
//!
//! A sequencer thread owns the engine and a durable journal (append-only segment files of
//! checksummed records, group commit: one `fdatasync` per batch); an event is answered only once
//! it is durable. Snapshots of the whole state are written every N events or T seconds; recovery
//! is the newest valid snapshot plus the journal tail. An axum server exposes the HTTP and
//! WebSocket API with bearer-token roles, rate limits and Prometheus metrics. `docs/serve.md`
//! is the operator's guide and records the design decisions.
//!
//! Entry points: [`run`] (the `serve` command), [`RunningServer`] (in-process, for tests and
//! benchmarks), [`export::export_journal`], [`bench::run_load`].

pub mod advisor;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod datadir;
pub mod demo;
pub mod error;
pub mod export;
pub mod http;
pub mod jetstream;
pub mod journal;
pub mod recovery;
pub mod sequencer;
pub mod server;
pub mod settings;
pub mod signer;
pub mod sim;
pub mod snapshot;
pub mod stream;
pub mod telemetry;
pub mod view;
pub mod worker;

pub use error::NodeError;
pub use server::{RunningServer, StartOptions};
pub use settings::{NodeSettings, ServerSection, TokenSpec};

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Default data directory when `--data-dir` is not given (and not `--demo`).
pub const DEFAULT_DATA_DIR: &str = "solvent-data";

/// Options of the `serve` command, and its command-line arguments in both binaries
/// (`solvent serve` and its alias `solvent-serve`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeOptions {
    /// Engine configuration (TOML); the data directory's, or the embedded default, when omitted.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Server configuration: tokens, limits, cadence (TOML; see docs/serve.md).
    #[arg(long)]
    pub server_config: Option<PathBuf>,
    /// Data directory (journal, snapshots); default ./solvent-data, or a fresh one with --demo.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address, overriding `[server] listen` (default 127.0.0.1:7411; port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Embedded defaults, generated tokens, a fresh data directory and a simulated feed with a crash.
    #[arg(long)]
    pub demo: bool,
    /// NATS JetStream as the journal, hot replicas (docs/scale-out.md).
    #[command(flatten)]
    pub cluster: jetstream::ClusterArgs,
}

/// Tokens generated for `--demo`.
struct DemoTokens {
    viewer: String,
    treasury: String,
}

fn random_token() -> Result<String, NodeError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| NodeError::Other(format!("no randomness for a demo token: {e}")))?;
    Ok(hex::encode(bytes))
}

fn settings_for(options: &ServeOptions) -> Result<(NodeSettings, Option<DemoTokens>), NodeError> {
    let (mut settings, tokens) = match (&options.server_config, options.demo) {
        (Some(path), _) => (NodeSettings::load(path)?, None),
        (None, true) => {
            let tokens = DemoTokens { viewer: random_token()?, treasury: random_token()? };
            let spec = |name: &str, role, token: &str| TokenSpec {
                name: name.into(),
                role,
                token_blake3: auth::hash_token(token),
                sources: Vec::new(),
                bidders: Vec::new(),
            };
            let specs = vec![
                spec("demo-viewer", auth::Role::Viewer, &tokens.viewer),
                spec("demo-treasury", auth::Role::Treasury, &tokens.treasury),
            ];
            (NodeSettings::build(ServerSection::default(), specs)?, Some(tokens))
        }
        (None, false) => {
            return Err(NodeError::Other(
                "serve needs --server-config FILE with at least one token (see docs/serve.md; `solvent token \
                 --generate` makes one), or --demo"
                    .into(),
            ))
        }
    };
    if let Some(listen) = options.listen {
        settings.listen = listen;
    }
    if !settings.listen.ip().is_loopback() {
        tracing::warn!(listen = %settings.listen, "listening on a non-loopback address: put TLS in front of it");
    }
    Ok((settings, tokens))
}

fn data_dir_for(options: &ServeOptions) -> PathBuf {
    match (&options.data_dir, options.demo) {
        (Some(dir), _) => dir.clone(),
        (None, true) => {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            std::env::temp_dir().join(format!("solvent-demo-{}-{stamp}", std::process::id()))
        }
        (None, false) => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// The `serve` command: start, print where it listens, serve until Ctrl-C or SIGTERM.
pub fn run(options: ServeOptions) -> Result<(), NodeError> {
    telemetry::init_logging();
    let (settings, demo_tokens) = settings_for(&options)?;
    let engine_config_text = match &options.config {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|e| NodeError::io(format!("cannot read {}", path.display()), e))?,
        ),
        None => None,
    };
    let data_dir = data_dir_for(&options);
    let mut start = StartOptions::new(data_dir.clone(), settings);
    start.engine_config_text = engine_config_text;
    start.handle_signals = true;
    start.demo = options.demo.then(demo::DemoOptions::default);
    start.jetstream = options.cluster.options();
    let server = RunningServer::start(start)?;
    print_banner(&server, &data_dir, demo_tokens.as_ref());
    server.wait()
}

fn print_banner(server: &RunningServer, data_dir: &std::path::Path, demo: Option<&DemoTokens>) {
    let url = format!("http://{}", server.local_addr());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "solvent listening on {url}");
    let _ = writeln!(out, "data directory: {}", data_dir.display());
    let _ = writeln!(out, "dashboard: {url}/ (asks for a viewer token)");
    if server.signed_seq().is_some() {
        let path = data_dir.join(signer::EFFECTS_FILE);
        let _ = writeln!(out, "signed orders: {} (check with solvent verify)", path.display());
    }
    if let Some(tokens) = demo {
        let _ = writeln!(
            out,
            "demo: simulated feed running (prices, deposits, leveraged trades, then a -30% crash over 30 s)"
        );
        let _ = writeln!(out, "  viewer token:   {}", tokens.viewer);
        let _ = writeln!(out, "  dashboard with it: {url}/#token={}", tokens.viewer);
        let _ = writeln!(out, "  treasury token: {}", tokens.treasury);
        let _ = writeln!(out, "try:");
        let _ = writeln!(out, "  curl -s -H 'Authorization: Bearer {}' {url}/v1/accounts/whale", tokens.viewer);
        let _ = writeln!(out, "  curl -s -H 'Authorization: Bearer {}' {url}/v1/markets", tokens.viewer);
        let _ = writeln!(out, "  curl -s {url}/metrics | grep solvent_");
        let _ = writeln!(
            out,
            r#"  curl -s -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -d "{{\"type\":\"deposit\",\"ts\":$(date +%s%3N),\"account\":\"me\",\"asset\":\"USDC\",\"amount\":\"100\"}}" {url}/v1/events"#,
            tokens.treasury
        );
    }
    let _ = out.flush();
}
