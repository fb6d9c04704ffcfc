//! Signed orders written by the running server (`[server.signing]`): the file equals what
//! `solvent sign` writes for the exported journal, every signature verifies, and a restart after
//! a torn write resumes and ends with the same file.

mod support;

use solvent_node::auth::{hash_token, Role};
use solvent_node::signer::{SigningSection, EFFECTS_FILE};
use solvent_node::{NodeSettings, RunningServer, ServerSection, StartOptions, TokenSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{post, test_section};

const ORACLE: &str = "tok-oracle";
const TREASURY: &str = "tok-treasury";
const MATCHER: &str = "tok-matcher";
const BACKSTOP: &str = "tok-backstop";
const ADMIN: &str = "tok-admin";

fn tokens() -> Vec<TokenSpec> {
    let spec = |name: &str, role, token: &str, sources: &[&str], bidders: &[&str]| TokenSpec {
        name: name.into(),
        role,
        token_blake3: hash_token(token),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        bidders: bidders.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        spec("oracle", Role::Oracle, ORACLE, &["s1", "s2", "s3", "s4", "s5"], &[]),
        spec("treasury", Role::Treasury, TREASURY, &[], &[]),
        spec("matcher", Role::Matcher, MATCHER, &[], &[]),
        spec("backstop", Role::Backstop, BACKSTOP, &[], &["mm1", "mm2", "mm3"]),
        spec("admin", Role::Admin, ADMIN, &[], &[]),
    ]
}

fn signing_section(key: Option<&Path>) -> ServerSection {
    let signing = SigningSection { enabled: true, key_file: key.map(Path::to_path_buf), eip712: false };
    // Periodic snapshots, so a restart resumes signing from one below its resume point.
    ServerSection { signing, snapshot_every_events: 400, ..test_section() }
}

fn start(dir: &Path, section: ServerSection) -> Result<RunningServer, solvent_node::NodeError> {
    let settings = NodeSettings::build(section, tokens()).expect("valid settings");
    RunningServer::start(StartOptions::new(dir.to_path_buf(), settings))
}

fn token_for(line: &str) -> &'static str {
    let kind = serde_json::from_str::<serde_json::Value>(line).unwrap()["type"].as_str().unwrap().to_string();
    match kind.as_str() {
        "price" => ORACLE,
        "deposit" | "withdraw" | "fund_deposit" => TREASURY,
        "trade" => MATCHER,
        "auction_take" => BACKSTOP,
        _ => ADMIN,
    }
}

/// Post `lines` in runs of consecutive lines that need the same token.
fn post_lines(server: &RunningServer, lines: &[&str]) {
    let mut start = 0;
    while start < lines.len() {
        let token = token_for(lines[start]);
        let end = (start..lines.len()).find(|&i| token_for(lines[i]) != token).unwrap_or(lines.len());
        let (status, body) = post(server.local_addr(), token, &lines[start..end].join("\n"));
        assert_eq!(status, 200, "{body}");
        start = end;
    }
}

fn wait_signed(server: &RunningServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.signed_seq() != Some(server.head_seq()) {
        assert!(Instant::now() < deadline, "the signer caught up ({:?} of {})", server.signed_seq(), server.head_seq());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn black_thursday() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/black_thursday.jsonl");
    std::fs::read_to_string(path).unwrap()
}

fn key_file(dir: &Path) -> (PathBuf, ed25519_dalek::SigningKey) {
    let key = solvent_proofs::keys::generate().unwrap();
    let (secret, public) = (dir.join("engine.key"), dir.join("engine.pub"));
    solvent_proofs::keys::write_pair(&key, &secret, &public).unwrap();
    (secret, key)
}

/// What `solvent sign` writes for the data directory's exported journal.
fn signed_offline(data: &Path, key: &ed25519_dalek::SigningKey) -> (Vec<u8>, u64) {
    let mut journal = Vec::new();
    solvent_node::export::export_journal(data, &mut journal).unwrap();
    let config = solvent_node::datadir::stored_engine_config(data).unwrap();
    let mut out = Vec::new();
    let summary = solvent_proofs::signing::sign_events(&config, &journal, key, &mut out).unwrap();
    let verified = solvent_proofs::verify::verify_effects(&config, &journal, &out, &key.verifying_key());
    assert!(verified.is_ok(), "{verified:?}");
    (out, summary.signed)
}

#[test]
fn the_server_signs_every_order_as_solvent_sign_does_and_resumes_after_a_torn_write() {
    let keys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (secret, key) = key_file(keys.path());
    let events = black_thursday();
    let lines: Vec<&str> = events.lines().collect();
    let half = lines.len() / 2;

    let server = start(data.path(), signing_section(Some(&secret))).expect("starts with signing");
    post_lines(&server, &lines[..half]);
    wait_signed(&server);
    server.shutdown().unwrap();
    let written = std::fs::read(data.path().join(EFFECTS_FILE)).unwrap();
    let (expected, signed) = signed_offline(data.path(), &key);
    assert!(signed > 0, "the first half of the crash emits orders");
    assert_eq!(written, expected, "the server's file is what solvent sign writes");

    // A crash while writing: the file ends inside a line of the last event's output.
    let cut = written.len() - written.iter().rev().skip(1).position(|&b| b == b'\n').unwrap() - 1 + 7;
    std::fs::write(data.path().join(EFFECTS_FILE), &written[..cut]).unwrap();
    let server = start(data.path(), signing_section(Some(&secret))).expect("restarts");
    post_lines(&server, &lines[half..]);
    wait_signed(&server);
    let head = server.head_seq();
    server.shutdown().unwrap();
    assert_eq!(head as usize, lines.len());
    let written = std::fs::read(data.path().join(EFFECTS_FILE)).unwrap();
    let (expected, signed_all) = signed_offline(data.path(), &key);
    assert!(signed_all > signed, "the second half emits orders too ({signed} then {signed_all})");
    assert_eq!(written, expected, "after the restart the file is still exactly the offline one");
}

#[test]
fn a_missing_key_refuses_the_start_and_names_the_file() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("no-such.key");
    let error = start(data.path(), signing_section(Some(&missing))).err().expect("refused");
    let message = error.to_string();
    assert!(message.contains("[server.signing]") && message.contains("no-such.key"), "{message}");
}
