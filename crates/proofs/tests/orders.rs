//! Signed effects files: a valid one verifies (here and with the Python script of docs/proofs.md),
//! any change names its line, a wrong key or a wrong journal fails.

use ed25519_dalek::SigningKey;
use solvent_core::Config;
use solvent_proofs::signing::sign_events;
use solvent_proofs::verify::{verify_effects, Failure};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn black_thursday() -> Vec<u8> {
    std::fs::read(root().join("examples/black_thursday.jsonl")).expect("the example ships with the repository")
}

/// A short squeeze on the embedded default config that ends in collateral liquidation: alice
/// posts 1 BTC and is short 10 ETH-PERP from 500; ETH rises 9% a second for 14 s, the protocol
/// buys her BTC (`collateral_conversion`) and what is left of her loss is auto-deleveraged (`adl`);
/// then a backstop maker buys what the protocol holds (`collateral_fill`). Generated against the
/// engine, so that the take is sized to the holding; committed as
/// `examples/collateral_squeeze.jsonl` (regenerate with
/// `SOLVENT_REGENERATE=1 cargo test -p solvent-proofs --test orders`).
fn generate_collateral_squeeze() -> Vec<u8> {
    let t0: u64 = 1_700_000_000_000;
    let mut engine = solvent_core::Engine::new(&Config::embedded_default());
    let mut lines: Vec<String> = Vec::new();
    let mut push = |engine: &mut solvent_core::Engine, line: String| {
        let mut out = Vec::new();
        engine.apply_line(lines.len() as u64 + 1, line.as_bytes(), &mut out);
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{line}: {out:?}");
        lines.push(line);
    };
    let ticks = |engine: &mut solvent_core::Engine,
                 push: &mut dyn FnMut(&mut solvent_core::Engine, String),
                 ts: u64,
                 eth: f64| {
        push(engine, format!(r#"{{"type":"clock","ts":{ts}}}"#));
        for (market, price) in [("BTC-PERP", "10000".to_string()), ("ETH-PERP", format!("{eth:.2}"))] {
            for source in ["s1", "s2", "s3", "s4", "s5"] {
                push(
                    engine,
                    format!(
                        r#"{{"type":"price","ts":{ts},"market":"{market}","source":"{source}","price":"{price}"}}"#
                    ),
                );
            }
        }
    };
    ticks(&mut engine, &mut push, t0, 500.0);
    for (account, asset, amount) in [("alice", "BTC", "1"), ("bob", "USDC", "1000000"), ("mm", "USDC", "1000000")] {
        push(
            &mut engine,
            format!(r#"{{"type":"deposit","ts":{t0},"account":"{account}","asset":"{asset}","amount":"{amount}"}}"#),
        );
    }
    push(
        &mut engine,
        format!(
            r#"{{"type":"trade","ts":{t0},"market":"ETH-PERP","buyer":"bob","seller":"alice","size":"10","price":"500"}}"#
        ),
    );
    let mut eth = 500.0;
    for k in 1..=14u64 {
        eth *= 1.09;
        ticks(&mut engine, &mut push, t0 + k * 1_000, eth);
    }
    let held = engine.collateral_holding(solvent_core::state::AssetId(0)).size;
    assert!(held.is_positive(), "the squeeze made the protocol buy alice's BTC");
    let ts = t0 + 14_000;
    push(&mut engine, format!(r#"{{"type":"collateral_take","ts":{ts},"asset":"BTC","bidder":"mm","size":"{held}"}}"#));
    (lines.join("\n") + "\n").into_bytes()
}

fn collateral_squeeze() -> Vec<u8> {
    std::fs::read(root().join("examples/collateral_squeeze.jsonl")).expect("the example ships with the repository")
}

#[test]
fn the_collateral_squeeze_example_is_what_the_generator_makes() {
    let generated = generate_collateral_squeeze();
    let path = root().join("examples/collateral_squeeze.jsonl");
    if std::env::var_os("SOLVENT_REGENERATE").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    assert!(
        collateral_squeeze() == generated,
        "examples/collateral_squeeze.jsonl is stale: regenerate with SOLVENT_REGENERATE=1"
    );
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn signed(events: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    sign_events(&Config::embedded_default(), events, &key(7), &mut out).expect("signs");
    out
}

fn verify(events: &[u8], effects: &[u8]) -> Result<u64, Failure> {
    verify_effects(&Config::embedded_default(), events, effects, &key(7).verifying_key()).map(|s| s.signatures)
}

/// The first `n` lines of `events` and the effects of exactly those.
fn prefix(events: &[u8], n: usize) -> Vec<u8> {
    let mut text: Vec<u8> = events.split(|&b| b == b'\n').take(n).collect::<Vec<_>>().join(&b'\n');
    text.push(b'\n');
    text
}

#[test]
fn the_crash_signs_every_order_and_verifies() {
    let events = black_thursday();
    let effects = signed(&events);
    let text = String::from_utf8(effects.clone()).unwrap();
    for kind in ["liquidation", "adl", "socialized_loss", "auction_fill"] {
        let needle = format!("{{\"type\":\"{kind}\"");
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&needle)).collect();
        assert!(!lines.is_empty(), "the crash emits {kind}");
        assert!(lines.iter().all(|l| l.contains("\"sig\":\"") && l.contains("\"state_hash\":\"")), "{kind} is signed");
    }
    let signed_count = text.lines().filter(|l| l.contains("\"sig\":")).count() as u64;
    assert_eq!(verify(&events, &effects), Ok(signed_count));
    assert!(text.lines().filter(|l| l.starts_with("{\"type\":\"insurance\"")).all(|l| !l.contains("\"sig\"")));
}

#[test]
fn collateral_liquidation_orders_are_signed_and_verify() {
    let events = collateral_squeeze();
    let effects = signed(&events);
    let text = String::from_utf8(effects.clone()).unwrap();
    for kind in ["collateral_conversion", "adl", "collateral_fill"] {
        let needle = format!("{{\"type\":\"{kind}\"");
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&needle)).collect();
        assert!(!lines.is_empty(), "the squeeze emits {kind}");
        assert!(lines.iter().all(|l| l.contains("\"sig\":\"")), "{kind} is signed");
    }
    let signed_count = text.lines().filter(|l| l.contains("\"sig\":")).count() as u64;
    assert_eq!(verify(&events, &effects), Ok(signed_count));
    // A changed conversion is named by its line.
    let line = text.lines().position(|l| l.starts_with("{\"type\":\"collateral_conversion\"")).unwrap();
    let changed: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == line { l.replacen("\"proceeds\":\"", "\"proceeds\":\"1", 1) } else { l.to_string() })
        .collect();
    let failure = verify(&events, (changed.join("\n") + "\n").as_bytes()).unwrap_err();
    assert_eq!(failure.line, line as u64 + 1, "{failure}");
}

#[test]
fn a_changed_line_is_named() {
    let events = prefix(&black_thursday(), 700);
    let effects = signed(&events);
    assert!(verify(&events, &effects).is_ok());
    let lines: Vec<&[u8]> = effects.split(|&b| b == b'\n').collect();
    let first_signed = lines.iter().position(|l| l.windows(6).any(|w| w == b"\"sig\":")).expect("a signed line");
    // A change inside the effect, the chain, the state hash or the signature of that line.
    for needle in ["\"account\":\"", "\"chain\":\"", "\"state_hash\":\"", "\"sig\":\""] {
        let at = lines[first_signed].windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() + needle.len();
        let mut changed = effects.clone();
        let offset: usize = lines[..first_signed].iter().map(|l| l.len() + 1).sum::<usize>() + at;
        changed[offset] ^= 0x01;
        let failure = verify(&events, &changed).expect_err(needle);
        assert_eq!(failure.line, first_signed as u64 + 1, "{needle}: {failure}");
    }
    // Case of a hex digit: the same bytes when decoded leniently, refused here.
    let at = lines[first_signed].windows(7).position(|w| w == b"\"sig\":\"").unwrap() + 7;
    let offset: usize = lines[..first_signed].iter().map(|l| l.len() + 1).sum::<usize>() + at;
    let mut upper = effects.clone();
    if upper[offset].is_ascii_lowercase() {
        upper[offset] = upper[offset].to_ascii_uppercase();
        assert_eq!(verify(&events, &upper).unwrap_err().line, first_signed as u64 + 1);
    }
    let truncated = &effects[..effects.len() - lines[lines.len() - 2].len() - 1];
    let failure = verify(&events, truncated).unwrap_err();
    assert!(failure.reason.contains("the file ends here"), "{failure}");
    let mut extra = effects.clone();
    extra.extend_from_slice(b"{}\n");
    assert!(verify(&events, &extra).unwrap_err().reason.contains("goes on"));
}

#[test]
fn another_key_or_another_journal_fails() {
    let events = prefix(&black_thursday(), 700);
    let effects = signed(&events);
    let wrong = verify_effects(&Config::embedded_default(), &events, &effects, &key(8).verifying_key()).unwrap_err();
    assert!(wrong.reason.contains("does not verify"), "{wrong}");
    // One deposit changed: the state hashes in the signed lines differ from the file's. (A tick
    // that a later tick of the same source overwrites would leave every effect alike: the chain
    // is over effects, and the state hash over the state, not over the events.)
    let text = String::from_utf8(events.clone()).unwrap();
    let changed = text.replacen("\"amount\":\"", "\"amount\":\"1", 1);
    assert_ne!(changed, text);
    assert!(verify(changed.as_bytes(), &effects).is_err());
}

/// The Python verifier of docs/proofs.md accepts the orders with the `cryptography` package
/// and refuses a changed one. Outside CI it skips (loudly) when python3 or the package is absent.
#[test]
fn the_python_verifier_accepts_the_orders() {
    let script = root().join("docs/verify_orders.py");
    let doc = std::fs::read_to_string(root().join("docs/proofs.md")).unwrap();
    let code = std::fs::read_to_string(&script).unwrap();
    assert!(doc.contains(code.trim()), "docs/proofs.md shows docs/verify_orders.py as it is");
    let probe = std::process::Command::new("python3").args(["-c", "import cryptography"]).status();
    if !matches!(probe, Ok(status) if status.success()) {
        assert!(std::env::var_os("SOLVENT_CI").is_none(), "CI must have python3 with cryptography");
        eprintln!("SKIPPED: python3 with the cryptography package is not installed");
        return;
    }
    // The crash (liquidation, adl, socialized_loss, auction_fill) and the squeeze (collateral
    // conversion and fill): every signed type through the stock library.
    for events in [prefix(&black_thursday(), 1_500), collateral_squeeze()] {
        python_verifies(&script, &events);
    }
}

fn python_verifies(script: &std::path::Path, events: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let effects = signed(events);
    let (effects_path, key_path) = (dir.path().join("effects.jsonl"), dir.path().join("engine.pub"));
    std::fs::write(&effects_path, &effects).unwrap();
    std::fs::write(&key_path, format!("{}\n", hex::encode(key(7).verifying_key().to_bytes()))).unwrap();
    let run = || std::process::Command::new("python3").arg(script).arg(&effects_path).arg(&key_path).output().unwrap();
    let ok = run();
    let stdout = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    let orders = effects.split(|&b| b == b'\n').filter(|l| l.windows(6).any(|w| w == b"\"sig\":")).count();
    assert!(orders > 0);
    assert_eq!(stdout.trim(), format!("ok: {orders} signed orders verify"));
    let text = String::from_utf8(effects).unwrap();
    let line = text.lines().position(|l| l.contains("\"sig\":")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[line] = lines[line].replacen("\"seq\":", "\"seq\":1", 1);
    std::fs::write(&effects_path, lines.join("\n")).unwrap();
    let bad = run();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).starts_with(&format!("line {}:", line + 1)));
}

/// Orders signed as EIP-712 typed data verify in Rust, and eth-account (PyPI) recovers the
/// engine's address from every one, as an EVM contract would with ecrecover. Outside CI the
/// Python half skips (loudly) when the package is absent.
#[test]
fn eip712_orders_recover_to_the_engine_address() {
    for events in [prefix(&black_thursday(), 700), collateral_squeeze()] {
        eip712_recovers(&events);
    }
}

fn eip712_recovers(events: &[u8]) {
    use solvent_proofs::{eip712, signing::sign_events_with, verify::verify_effects_with};
    let evm = eip712::key(&key(7)).unwrap();
    let address = eip712::address(evm.verifying_key());
    let mut effects = Vec::new();
    sign_events_with(&Config::embedded_default(), events, &key(7), Some(&evm), &mut effects).unwrap();
    let public = key(7).verifying_key();
    let config = Config::embedded_default();
    let summary = verify_effects_with(&config, events, &effects, &public, Some(address)).unwrap();
    assert!(summary.signatures > 0);
    let other = eip712::address(eip712::key(&key(8)).unwrap().verifying_key());
    assert!(verify_effects_with(&config, events, &effects, &public, Some(other))
        .unwrap_err()
        .reason
        .contains("recover"));
    assert!(verify_effects(&config, events, &effects, &public).unwrap_err().reason.contains("eip712_sig"));
    let probe = std::process::Command::new("python3").args(["-c", "import eth_account"]).status();
    if !matches!(probe, Ok(status) if status.success()) {
        assert!(std::env::var_os("SOLVENT_CI").is_none(), "CI must have python3 with eth-account");
        eprintln!("SKIPPED: python3 with the eth-account package is not installed");
        return;
    }
    // The canonical encodings of the orders, in file order (what effectHash hashes).
    let mut replay = solvent_proofs::signing::Replay::new(&config);
    let mut encodings = String::new();
    for line in solvent_proofs::signing::lines(events) {
        replay.apply(line);
        for entry in replay.entries().iter().filter(|e| e.state_hash.is_some()) {
            encodings.push_str(&hex::encode(entry.effect.canonical_bytes()));
            encodings.push('\n');
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("effects.jsonl"), &effects).unwrap();
    std::fs::write(dir.path().join("encodings.txt"), encodings).unwrap();
    let out = std::process::Command::new("python3")
        .arg(root().join("crates/proofs/tests/eip712_recover.py"))
        .arg(dir.path().join("effects.jsonl"))
        .arg(dir.path().join("encodings.txt"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let recovered = stdout.split_whitespace().next().unwrap().to_lowercase();
    assert_eq!(recovered, format!("0x{}", hex::encode(address)), "one address for every order: {stdout}");
    assert_eq!(stdout.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap(), summary.signatures);
}
