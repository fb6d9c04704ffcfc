//! `solvent keygen`, `sign`, `verify`, `prove liabilities` and `verify inclusion` end to end on
//! the Black Thursday example: valid files verify; a changed byte names its file and line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn solvent(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_solvent"));
    for arg in args {
        command.arg(arg);
    }
    command.env_remove("SOLVENT_ENGINE_KEY").output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/black_thursday.jsonl")
}

fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let out = solvent(&[&"keygen", &"--out", &dir.join("engine")]);
    assert!(out.status.success(), "{}", text(&out));
    let again = solvent(&[&"keygen", &"--out", &dir.join("engine")]);
    assert!(!again.status.success(), "keygen never overwrites a key");
    (dir.join("engine.key"), dir.join("engine.pub"))
}

#[test]
fn sign_then_verify_and_a_changed_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(dir.path());
    let effects = dir.path().join("effects.jsonl");
    let signed = solvent(&[&"sign", &"--events", &example(), &"--key", &secret, &"--out", &effects]);
    assert!(signed.status.success(), "{}", text(&signed));
    let verify =
        |file: &Path| solvent(&[&"verify", &"--events", &example(), &"--effects", &file, &"--pubkey", &public]);
    let ok = verify(&effects);
    assert!(ok.status.success() && text(&ok).starts_with("ok: 3993 events"), "{}", text(&ok));
    let mut bytes = std::fs::read(&effects).unwrap();
    let line = 3;
    let offset: usize = bytes.split(|&b| b == b'\n').take(line - 1).map(|l| l.len() + 1).sum::<usize>() + 40;
    bytes[offset] ^= 0x01;
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(&changed, &bytes).unwrap();
    let bad = verify(&changed);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains(&format!("changed.jsonl: effects line {line}: ")), "{}", text(&bad));
}

#[test]
fn liabilities_root_and_inclusion() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keygen(dir.path());
    let state = dir.path().join("state.json");
    let replay =
        solvent(&[&"replay", &"--events", &example(), &"--out", &dir.path().join("fx"), &"--state-out", &state]);
    assert!(replay.status.success(), "{}", text(&replay));
    let out = dir.path().join("pol");
    let key = std::fs::read_to_string(dir.path().join("engine.key")).unwrap();
    let mut prove = Command::new(env!("CARGO_BIN_EXE_solvent"));
    prove.args(["prove", "liabilities", "--state"]).arg(&state).arg("--out").arg(&out);
    let missing = prove.env_remove("SOLVENT_ENGINE_KEY").output().unwrap();
    assert!(text(&missing).contains("SOLVENT_ENGINE_KEY"), "no key, a clear message: {}", text(&missing));
    let proved = prove.env("SOLVENT_ENGINE_KEY", key.trim()).output().unwrap();
    assert!(proved.status.success(), "{}", text(&proved));
    let root = out.join("root.json");
    let proof = out.join("inclusion/whale.json");
    let check = |proof: &Path, root: &Path| {
        solvent(&[&"verify", &"inclusion", &"--proof", &proof, &"--root", &root, &"--pubkey", &public])
    };
    let ok = check(&proof, &root);
    assert!(ok.status.success() && text(&ok).starts_with("ok: whale"), "{}", text(&ok));
    let root_text = std::fs::read_to_string(&root).unwrap();
    let total: u128 = root_text.split("\"total_raw\":\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    let whole = |raw: u128| format!("{}.{:016}", raw / 10u128.pow(16), raw % 10u128.pow(16));
    let solvency = |reserves: String| {
        solvent(&[&"verify", &"solvency", &"--root", &root, &"--pubkey", &public, &"--reserves", &reserves])
    };
    assert!(solvency(whole(total)).status.success(), "reserves equal to liabilities are enough");
    let short = solvency(whole(total - 1));
    assert!(!short.status.success() && text(&short).contains("insolvent"), "{}", text(&short));
    for (file, name) in [(&root, "root.json"), (&proof, "whale.json")] {
        let mut bytes = std::fs::read(file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let changed = dir.path().join(format!("changed-{name}"));
        std::fs::write(&changed, &bytes).unwrap();
        let bad = if name == "root.json" { check(&proof, &changed) } else { check(&changed, &root) };
        assert!(!bad.status.success(), "{name}");
        assert!(text(&bad).contains(&format!("changed-{name}: ")), "{}", text(&bad));
    }
}

fn three_positions(dir: &Path) -> PathBuf {
    let mut lines = vec![r#"{"type":"clock","ts":1000}"#.to_string()];
    for (market, price) in [("BTC-PERP", "10000"), ("ETH-PERP", "500"), ("SOL-PERP", "20")] {
        for s in 1..=5 {
            lines
                .push(format!(r#"{{"type":"price","ts":1000,"market":"{market}","source":"s{s}","price":"{price}"}}"#));
        }
    }
    lines.extend([
        r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"600000"}"#.to_string(),
        r#"{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"5000000"}"#.to_string(),
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"300","price":"10000"}"#
            .to_string(),
        r#"{"type":"trade","ts":3000,"market":"ETH-PERP","buyer":"bob","seller":"alice","size":"2000","price":"500"}"#
            .to_string(),
        r#"{"type":"trade","ts":3000,"market":"SOL-PERP","buyer":"alice","seller":"bob","size":"30000","price":"20"}"#
            .to_string(),
    ]);
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn health_proof_against_the_liabilities_root() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(dir.path());
    let events = three_positions(dir.path());
    let state = dir.path().join("state.json");
    let replay = solvent(&[
        &"replay",
        &"--events",
        &events,
        &"--strict",
        &"--out",
        &dir.path().join("fx"),
        &"--state-out",
        &state,
    ]);
    assert!(replay.status.success(), "{}", text(&replay));
    let pol = dir.path().join("pol");
    let key = std::fs::read_to_string(&secret).unwrap();
    let with_key = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_solvent")).args(args).env("SOLVENT_ENGINE_KEY", key.trim()).output().unwrap()
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let proved = with_key(&["prove", "liabilities", "--state", &s(&state), "--out", &s(&pol)]);
    assert!(proved.status.success(), "{}", text(&proved));
    let proof = dir.path().join("alice.health.json");
    let made = with_key(&["prove", "health", "--state", &s(&events), "--account", "alice", "--out", &s(&proof)]);
    assert!(made.status.success(), "{}", text(&made));
    let root = pol.join("root.json");
    let check =
        |proof: &Path| solvent(&[&"verify", &"health", &"--proof", &proof, &"--root", &root, &"--pubkey", &public]);
    let ok = check(&proof);
    assert!(ok.status.success() && text(&ok).starts_with("ok: the account of leaf"), "{}", text(&ok));
    let mut bytes = std::fs::read(&proof).unwrap();
    let at = bytes.windows(8).position(|w| w == b"\"leaf\":\"").unwrap() + 8;
    bytes[at] ^= 0x01;
    let changed = dir.path().join("changed.health.json");
    std::fs::write(&changed, &bytes).unwrap();
    let bad = check(&changed);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("changed.health.json: "), "{}", text(&bad));
    let nobody = with_key(&["prove", "health", "--state", &s(&events), "--account", "nobody", "--out", &s(&proof)]);
    assert!(text(&nobody).contains("no account \"nobody\""), "{}", text(&nobody));
}
