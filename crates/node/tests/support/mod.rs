//! Helpers shared by the node's integration tests: tokens for every role, an in-process server,
//! a small HTTP client, and replay of an exported journal.
#![allow(dead_code)]

use serde_json::Value;
use solvent_node::auth::{hash_token, Role};
use solvent_node::export;
use solvent_node::journal::JournalFs;
use solvent_node::{NodeSettings, RunningServer, ServerSection, StartOptions, TokenSpec};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const ORACLE_S1: &str = "tok-oracle-s1";
pub const ORACLE_S2_S3: &str = "tok-oracle-s2-s3";
pub const MATCHER: &str = "tok-matcher";
pub const TREASURY: &str = "tok-treasury";
pub const BACKSTOP: &str = "tok-backstop-mm1";
pub const ADMIN: &str = "tok-admin";
pub const VIEWER: &str = "tok-viewer";

pub fn token_specs() -> Vec<TokenSpec> {
    let spec = |name: &str, role, token: &str, sources: &[&str], bidders: &[&str]| TokenSpec {
        name: name.into(),
        role,
        token_blake3: hash_token(token),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        bidders: bidders.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        spec("oracle-s1", Role::Oracle, ORACLE_S1, &["s1"], &[]),
        spec("oracle-s2-s3", Role::Oracle, ORACLE_S2_S3, &["s2", "s3"], &[]),
        spec("matcher", Role::Matcher, MATCHER, &[], &[]),
        spec("treasury", Role::Treasury, TREASURY, &[], &[]),
        spec("backstop", Role::Backstop, BACKSTOP, &[], &["mm1"]),
        spec("admin", Role::Admin, ADMIN, &[], &[]),
        spec("viewer", Role::Viewer, VIEWER, &[], &[]),
    ]
}

/// Server settings for tests: loopback port 0, no clock ticker, no snapshots unless asked.
pub fn test_section() -> ServerSection {
    ServerSection {
        listen: "127.0.0.1:0".into(),
        clock_interval_ms: 0,
        snapshot_every_events: 1_000_000,
        snapshot_every_secs: 3_600,
        ..ServerSection::default()
    }
}

/// The same tokens as a server config file (TOML) for the real binary.
pub fn server_config_toml(extra_server_lines: &str) -> String {
    let mut text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra_server_lines}\n");
    for spec in token_specs() {
        let role = serde_json::to_value(spec.role).unwrap();
        text.push_str(&format!(
            "[[tokens]]\nname = {:?}\nrole = {role}\ntoken_blake3 = {:?}\nsources = {:?}\nbidders = {:?}\n\n",
            spec.name, spec.token_blake3, spec.sources, spec.bidders
        ));
    }
    text
}

pub fn start(dir: &Path, section: ServerSection) -> RunningServer {
    try_start(dir, section, None).expect("server starts")
}

pub fn try_start(
    dir: &Path,
    section: ServerSection,
    fs: Option<Arc<dyn JournalFs>>,
) -> Result<RunningServer, solvent_node::NodeError> {
    if std::env::var_os("SOLVENT_TEST_LOG").is_some() {
        solvent_node::telemetry::init_logging();
    }
    let settings = NodeSettings::build(section, token_specs()).expect("valid test settings");
    let mut options = StartOptions::new(dir.to_path_buf(), settings);
    if let Some(fs) = fs {
        options.fs = fs;
    }
    RunningServer::start(options)
}

fn agent() -> ureq::Agent {
    let config =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(30))).build();
    ureq::Agent::new_with_config(config)
}

/// The status and JSON body of a response (`Value::Null` for a non-JSON body).
fn finish(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = result.expect("request reaches the server");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// POST `body` to /v1/events (JSON Lines unless `content_type` says otherwise).
pub fn post_with(addr: SocketAddr, token: Option<&str>, body: &str, content_type: &str) -> (u16, Value) {
    let mut request = agent().post(format!("http://{addr}/v1/events")).content_type(content_type);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    finish(request.send(body))
}

pub fn post(addr: SocketAddr, token: &str, body: &str) -> (u16, Value) {
    post_with(addr, Some(token), body, "application/x-ndjson")
}

pub fn get(addr: SocketAddr, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut request = agent().get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    finish(request.call())
}

/// (seq, state hash) from GET /v1/state.
pub fn state(addr: SocketAddr) -> (u64, String) {
    let (status, body) = get(addr, Some(VIEWER), "/v1/state");
    assert_eq!(status, 200, "{body}");
    (body["seq"].as_u64().unwrap(), body["state_hash"].as_str().unwrap().to_string())
}

/// Export the journal of `dir` and replay its first `limit` lines (all when `None`) exactly as
/// `solvent replay` does; the resulting state hash and the exported lines.
pub fn replay_journal(dir: &Path, limit: Option<u64>) -> (String, Vec<String>) {
    let mut exported = Vec::new();
    export::export_journal(dir, &mut exported).expect("journal exports");
    let text = String::from_utf8(exported).expect("journal lines are UTF-8");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let taken: Vec<&str> = lines.iter().take(limit.map_or(usize::MAX, |l| l as usize)).map(String::as_str).collect();
    let mut input = taken.join("\n");
    if !input.is_empty() {
        input.push('\n');
    }
    let config = solvent_node::datadir::stored_engine_config(dir).expect("stored engine config");
    let engine = export::replay_lines(&config, &mut input.as_bytes()).expect("replay");
    (engine.state_hash(), lines)
}

pub fn deposit(ts: u64, account: &str, amount: &str) -> String {
    format!(r#"{{"type":"deposit","ts":{ts},"account":"{account}","asset":"USDC","amount":"{amount}"}}"#)
}

pub fn price(ts: u64, market: &str, source: &str, price: &str) -> String {
    format!(r#"{{"type":"price","ts":{ts},"market":"{market}","source":"{source}","price":"{price}"}}"#)
}

/// USDC balance of an account as reported by GET /v1/accounts/{id} (None if unknown).
pub fn usdc_balance(addr: SocketAddr, account: &str) -> Option<String> {
    let (status, body) = get(addr, Some(VIEWER), &format!("/v1/accounts/{account}"));
    (status == 200).then(|| body["collateral"]["USDC"].as_str().unwrap().to_string())
}
