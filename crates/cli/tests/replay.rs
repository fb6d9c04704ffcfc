//! `solvent replay` end to end: the worked example through the real binary, determinism,
//! `--strict`, `--state-out`, and hostile input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn solvent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_solvent"))
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    path
}

fn replay(events: &Path, extra: &[&str]) -> Output {
    let output = solvent().arg("replay").arg("--events").arg(events).args(extra).output().unwrap();
    assert!(output.status.code().is_some(), "no signal deaths");
    output
}

fn state_hash(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let at = stderr.find("state_hash ").unwrap_or_else(|| panic!("no hash in {stderr}"));
    stderr[at + 11..].split_whitespace().next().unwrap().to_string()
}

/// The worked example: three sources at 10,000; alice deposits 400,000 USDC and buys 300
/// BTC-PERP from bob at 10,000; prices move to 9,500; alice asks for 100,000.
fn design_events() -> Vec<String> {
    let mut lines = vec![r#"{"type":"clock","ts":1000}"#.to_string()];
    for source in ["s1", "s2", "s3"] {
        lines.push(format!(r#"{{"type":"price","ts":1000,"market":"BTC-PERP","source":"{source}","price":"10000"}}"#));
    }
    lines.push(r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"400000"}"#.into());
    lines.push(r#"{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"1000000"}"#.into());
    lines.push(
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"300","price":"10000"}"#
            .into(),
    );
    lines
}

fn design_after_move() -> Vec<String> {
    let mut lines = design_events();
    lines.push(r#"{"type":"clock","ts":4000}"#.into());
    for source in ["s1", "s2", "s3"] {
        lines.push(format!(r#"{{"type":"price","ts":4000,"market":"BTC-PERP","source":"{source}","price":"9500"}}"#));
    }
    lines
}

#[test]
fn design_example_numbers_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let at_entry = write(dir.path(), "entry.jsonl", &design_events());
    let state = dir.path().join("entry.json");
    let output = replay(&at_entry, &["--state-out", state.to_str().unwrap()]);
    assert!(output.status.success());
    let dump: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let alice = &dump["accounts"]["alice"];
    assert_eq!(alice["maintenance_margin"], "162500");
    assert_eq!(alice["initial_margin"], "325000");

    let moved = write(dir.path(), "moved.jsonl", &design_after_move());
    let state = dir.path().join("moved.json");
    let before = replay(&moved, &["--state-out", state.to_str().unwrap()]);
    let dump: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let alice = &dump["accounts"]["alice"];
    assert_eq!(alice["equity"], "250000");
    assert_eq!(alice["maintenance_margin"], "154375");
    assert_eq!(alice["positions"]["BTC-PERP"]["unrealized_pnl"], "-150000");
    assert_eq!(alice["positions"]["BTC-PERP"]["size"], "300");
    assert_eq!(alice["positions"]["BTC-PERP"]["entry_price"], "10000");
    assert_eq!(dump["markets"]["BTC-PERP"]["mark_price"], "9500");
    let liquidation_price: f64 = alice["positions"]["BTC-PERP"]["liquidation_price"].as_str().unwrap().parse().unwrap();
    assert!((liquidation_price - 9163.0).abs() < 1.0, "{liquidation_price}");

    let mut with_withdrawal = design_after_move();
    with_withdrawal.push(r#"{"type":"withdraw","ts":5000,"account":"alice","asset":"USDC","amount":"100000"}"#.into());
    let path = write(dir.path(), "withdraw.jsonl", &with_withdrawal);
    let after = replay(&path, &["--strict"]);
    assert_eq!(after.status.code(), Some(1), "--strict fails on a rejection");
    let effects = String::from_utf8(after.stdout.clone()).unwrap();
    let last = effects.lines().last().unwrap();
    assert!(last.contains(r#""type":"rejected""#) && last.contains("withdrawal_exceeds_free_collateral"), "{last}");
    assert_eq!(state_hash(&after), state_hash(&before), "the rejected withdrawal leaves the state hash unchanged");
}

#[test]
fn tier_modes_for_1200_btc_at_20000() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![r#"{"type":"clock","ts":1000}"#.to_string()];
    for source in ["s1", "s2", "s3"] {
        lines.push(format!(r#"{{"type":"price","ts":1000,"market":"BTC-PERP","source":"{source}","price":"20000"}}"#));
    }
    lines.push(r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"20000000"}"#.into());
    lines.push(r#"{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"20000000"}"#.into());
    lines.push(r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1200","price":"20000"}"#.into());
    let marginal = dir.path().join("marginal.json");
    replay(&write(dir.path(), "m.jsonl", &lines), &["--state-out", marginal.to_str().unwrap()]);
    lines.push(r#"{"type":"params","ts":4000,"market":"BTC-PERP","tier_mode":"whole"}"#.into());
    let whole = dir.path().join("whole.json");
    replay(&write(dir.path(), "w.jsonl", &lines), &["--state-out", whole.to_str().unwrap()]);
    let mm = |path: &Path| {
        let dump: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        dump["accounts"]["alice"]["positions"]["BTC-PERP"]["maintenance_margin"].as_str().unwrap().to_string()
    };
    assert_eq!(mm(&marginal), "2525000");
    assert_eq!(mm(&whole), "4800000");
}

#[test]
fn replaying_twice_gives_identical_effects_and_hash() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.jsonl");
    let first = replay(&example, &[]);
    let second = replay(&example, &[]);
    assert!(first.status.success());
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout, "byte-identical effects");
    assert_eq!(state_hash(&first), state_hash(&second));
}

#[test]
fn hostile_file_is_survived_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.jsonl");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"{\"type\":\"clock\",\"ts\":5}\n");
    bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
    bytes.extend_from_slice(b"{\"type\":\"deposit\",\"ts\":5,\"pad\":\"");
    bytes.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    bytes.extend_from_slice(b"\"}\n");
    bytes.extend_from_slice(b"{\"type\":\"deposit\",\"ts\":6,\"account\":\"a\",\"asset\":\"USDC\",\"amount\":\"1\"}\n");
    bytes.extend_from_slice(b"{\"type\":\"clock\",\"ts\":1}");
    std::fs::write(&path, bytes).unwrap();
    let output = replay(&path, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let effects: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let errors: Vec<(u64, &str)> =
        effects.iter().map(|e| (e["seq"].as_u64().unwrap(), e["error"].as_str().unwrap_or("-"))).collect();
    assert_eq!(errors, vec![(2, "invalid_utf8"), (3, "line_too_long"), (5, "time_backwards")]);
}

#[test]
fn config_prints_and_checks() {
    let output = solvent().arg("config").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("name = \"BTC-PERP\""));
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &text).unwrap();
    assert!(solvent().args(["config", "--check"]).arg(&good).output().unwrap().status.success());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("quorum = 3", "quorum = 0")).unwrap();
    let output = solvent().args(["config", "--check"]).arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("quorum"));
    let missing = solvent().args(["replay", "--events", "/nonexistent/file.jsonl"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open events"));
}

/// The bundled portfolio-margin example, as docs/margin.md tells it: alice opts in, hedges 10 BTC
/// against 100 ETH, takes out all but her portfolio IM (10,000) plus 1,000 (a cent more is
/// refused), and when the legs move apart the waterfall takes one chunk of each; the dump shows
/// the parts of her requirement.
#[test]
fn the_portfolio_example_replays_as_documented() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/portfolio.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let output = replay(&example, &["--state-out", state.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let effects: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refused: Vec<&str> =
        effects.iter().filter(|e| e["type"] == "rejected").map(|e| e["error"].as_str().unwrap()).collect();
    assert_eq!(refused, ["withdrawal_exceeds_free_collateral"]);
    let closes: Vec<(&str, bool)> = effects
        .iter()
        .filter(|e| e["type"] == "liquidation" && e["account"] == "alice")
        .map(|e| (e["market"].as_str().unwrap(), e["full"].as_bool().unwrap()))
        .collect();
    assert_eq!(closes, [("ETH-PERP", false), ("BTC-PERP", false)], "one chunk of each leg");
    let dump: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let alice = &dump["accounts"]["alice"];
    assert_eq!(alice["portfolio"]["margin_model"], "portfolio");
    assert_eq!(alice["portfolio"]["correlation"], "0.9");
    assert_eq!(alice["positions"]["BTC-PERP"]["size"], "8");
    assert_eq!(alice["positions"]["ETH-PERP"]["size"], "-80");
    assert!(alice["positions"]["BTC-PERP"]["maintenance_margin"].is_null(), "account figures only");
}
