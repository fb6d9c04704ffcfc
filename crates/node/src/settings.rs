//! The server configuration (TOML, `--server-config FILE`): listen address, commit and snapshot
//! cadence, limits, and the bearer tokens (stored as BLAKE3 hashes) with their roles.
//! `docs/serve.md` documents every field with its default.

use crate::auth::{Role, TokenEntry};
use crate::error::SettingsError;
use crate::journal::SyncMode;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// Where the server listens when nothing else is said: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7411";

/// The `[server]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub listen: String,
    pub sync_mode: SyncMode,
    /// Most events journaled by one group commit (one fdatasync).
    pub max_batch_events: usize,
    /// The sequencer journals a `clock` event this often (0: never).
    pub clock_interval_ms: u64,
    /// The clock event's ts is the wall clock minus this lag (never below the engine clock),
    /// so that events stamped slightly behind the server's wall clock are not refused.
    pub clock_lag_ms: u64,
    /// An event whose `ts` is more than this ahead of the server's wall clock is refused before
    /// it is journaled (`ts_ahead_of_wall_clock`): one writer cannot poison the engine clock.
    pub max_ts_ahead_ms: u64,
    pub snapshot_every_events: u64,
    pub snapshot_every_secs: u64,
    pub segment_bytes: u64,
    pub max_body_bytes: usize,
    pub max_events_per_request: usize,
    /// Submissions waiting for the sequencer before new ones get `503 overloaded`.
    pub queue_requests: usize,
    /// Effects kept in memory for `/v1/stream` resumption; older ones are regenerated.
    pub stream_ring_effects: usize,
    pub risk_scan_secs: u64,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: f64,
    /// The margin advisor task (`[server.advisor]`; static: none).
    pub advisor: crate::advisor::AdvisorSection,
    /// Signed orders written by the server (`[server.signing]`; off by default).
    pub signing: crate::signer::SigningSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: DEFAULT_LISTEN.to_string(),
            sync_mode: SyncMode::Group,
            max_batch_events: 16_384,
            clock_interval_ms: 250,
            clock_lag_ms: 1_000,
            max_ts_ahead_ms: 5_000,
            snapshot_every_events: 100_000,
            snapshot_every_secs: 300,
            segment_bytes: 64 << 20,
            max_body_bytes: 8 << 20,
            max_events_per_request: 10_000,
            queue_requests: 4_096,
            stream_ring_effects: 65_536,
            risk_scan_secs: 5,
            rate_limit_per_sec: 1_000.0,
            rate_limit_burst: 2_000.0,
            advisor: crate::advisor::AdvisorSection::default(),
            signing: crate::signer::SigningSection::default(),
        }
    }
}

/// One `[[tokens]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub name: String,
    pub role: Role,
    /// Hex BLAKE3 of the token (`solvent token`).
    pub token_blake3: String,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub bidders: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    server: Option<ServerSection>,
    #[serde(default)]
    tokens: Vec<TokenSpec>,
}

/// The validated server configuration.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub server: ServerSection,
    pub listen: SocketAddr,
    pub tokens: Vec<TokenEntry>,
}

impl NodeSettings {
    /// Read and validate a server config file.
    pub fn load(path: &Path) -> Result<NodeSettings, SettingsError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SettingsError::Read { path: path.to_path_buf(), source })?;
        let raw: RawSettings =
            toml::from_str(&text).map_err(|source| SettingsError::Toml { path: path.to_path_buf(), source })?;
        NodeSettings::build(raw.server.unwrap_or_default(), raw.tokens)
    }

    /// Validate a server section and token list.
    pub fn build(server: ServerSection, tokens: Vec<TokenSpec>) -> Result<NodeSettings, SettingsError> {
        let listen: SocketAddr = server
            .listen
            .parse()
            .map_err(|_| SettingsError::Invalid(format!("listen {:?} is not an IP:PORT address", server.listen)))?;
        check_limits(&server)?;
        let mut entries: Vec<TokenEntry> = Vec::with_capacity(tokens.len());
        for spec in tokens {
            if entries.iter().any(|e| e.name == spec.name) {
                return Err(SettingsError::Invalid(format!("token name {:?} appears twice", spec.name)));
            }
            entries.push(TokenEntry::from_spec(spec).map_err(SettingsError::Invalid)?);
        }
        Ok(NodeSettings { server, listen, tokens: entries })
    }
}

fn check_limits(server: &ServerSection) -> Result<(), SettingsError> {
    let positive = [
        ("max_batch_events", server.max_batch_events as u64),
        ("snapshot_every_events", server.snapshot_every_events),
        ("snapshot_every_secs", server.snapshot_every_secs),
        ("max_body_bytes", server.max_body_bytes as u64),
        ("max_events_per_request", server.max_events_per_request as u64),
        ("queue_requests", server.queue_requests as u64),
        ("stream_ring_effects", server.stream_ring_effects as u64),
        ("risk_scan_secs", server.risk_scan_secs),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
        return Err(SettingsError::Invalid(format!("[server] {name} must be positive")));
    }
    if server.segment_bytes < 1 << 16 {
        return Err(SettingsError::Invalid("[server] segment_bytes must be at least 65536".into()));
    }
    let rate_ok = |v: f64| v.is_finite() && v > 0.0;
    if !rate_ok(server.rate_limit_per_sec) || !rate_ok(server.rate_limit_burst) || server.rate_limit_burst < 1.0 {
        return Err(SettingsError::Invalid("[server] rate_limit_per_sec > 0 and rate_limit_burst >= 1".into()));
    }
    Ok(())
}
