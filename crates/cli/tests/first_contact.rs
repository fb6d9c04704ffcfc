//! What a newcomer runs into first, through the real binary: a price-only file without `clock`
//! events, timestamps in seconds, and a config file with several mistakes.

use std::process::Command;

fn replay(dir: &std::path::Path, name: &str, lines: &[String], extra: &[&str]) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_solvent"))
        .args(["replay", "--events", path.to_str().unwrap(), "--out", dir.join("effects.jsonl").to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8(output.stderr).unwrap())
}

fn tick(ts: u64, source: &str, price: u64) -> String {
    format!(r#"{{"type":"price","ts":{ts},"market":"BTC-PERP","source":"{source}","price":"{price}"}}"#)
}

#[test]
fn a_price_only_file_says_why_ticks_were_refused_and_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000_000u64;
    let ticks: Vec<String> =
        (0..20).flat_map(|i| ["s1", "s2", "s3"].map(|s| tick(t0 + i * 1_000, s, 30_000 + i))).collect();
    let (ok, stderr) = replay(dir.path(), "prices.jsonl", &ticks, &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("refused: 60 of 60 events (60 future_ts)"), "{stderr}");
    assert!(stderr.contains("the file has no clock events"), "{stderr}");
    assert!(stderr.contains(r#"{"type":"clock","ts":T}"#), "{stderr}");

    let mut with_clock = Vec::new();
    for i in 0..20 {
        with_clock.push(format!(r#"{{"type":"clock","ts":{}}}"#, t0 + i * 1_000));
        with_clock.extend(["s1", "s2", "s3"].map(|s| tick(t0 + i * 1_000, s, 30_000 + i)));
    }
    let (ok, stderr) = replay(dir.path(), "with-clock.jsonl", &with_clock, &["--strict"]);
    assert!(ok, "with a clock before each tick time nothing is refused: {stderr}");
    assert!(!stderr.contains("hint:") && !stderr.contains("refused:"), "{stderr}");
}

#[test]
fn timestamps_in_seconds_get_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..3).map(|i| format!(r#"{{"type":"clock","ts":{}}}"#, 1_700_000_000 + i)).collect();
    let (ok, stderr) = replay(dir.path(), "seconds.jsonl", &lines, &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("looks like seconds") && stderr.contains("milliseconds"), "{stderr}");
    let lines: Vec<String> =
        (0..3).map(|i| format!(r#"{{"type":"clock","ts":{}}}"#, 1_700_000_000_000u64 + i)).collect();
    let (_, stderr) = replay(dir.path(), "millis.jsonl", &lines, &[]);
    assert!(!stderr.contains("looks like seconds"), "{stderr}");
}

#[test]
fn config_errors_list_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = solvent_core::DEFAULT_CONFIG_TOML
        .replacen(r#"sources = ["s1", "s2", "s3", "s4", "s5"]"#, r#"sources = ["s1", { nam = "s2" }, "s3"]"#, 1)
        .replacen("max_age_ms = 5000", r#"max_age_ms = "5s""#, 1)
        .replacen(r#"im_factor = "2""#, "im_factor = 2", 1);
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_solvent")).args(["config", "--check"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    for needle in [
        "config has 3 problem(s)",
        "markets[0] (BTC-PERP).sources[1]: name: missing (required); nam: unknown field",
        r#"markets[0] (BTC-PERP).max_age_ms: invalid type: string "5s", expected u64"#,
        "markets[0] (BTC-PERP).im_factor: invalid type: integer `2`",
    ] {
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
    }
    assert!(!stderr.contains("untagged"), "{stderr}");
}
