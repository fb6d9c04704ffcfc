//! Market parameters are declared once and checked everywhere from one table: every key the
//! config accepts for a market is type-checked field by field (`config_check`), has a row in
//! docs/config.md section 4, and, where that row says `params` may change it, a `params` event
//! with that key is accepted and changes the state hash (so the hash covers it); a key the row
//! says is fixed is refused by `params`. A parameter added to the config struct without the
//! rest fails here.

use solvent_core::{Config, Engine};
use std::collections::BTreeSet;

/// A value a `params` event may set for each changeable key of BTC-PERP in the embedded default
/// (a JSON fragment: some keys need a companion in the same event). Each differs from the
/// default, so the state hash must change.
const CHANGES: &[(&str, &str)] = &[
    ("tier_basis", r#""tier_basis":"notional","tiers":[{"from":"0","mm_rate":"0.025","penalty_rate":"0.005"}]"#),
    ("tier_mode", r#""tier_mode":"whole""#),
    (
        "tiers",
        r#""tiers":[{"from":"0","mm_rate":"0.03","penalty_rate":"0.005"},{"from":"50","mm_rate":"0.05","penalty_rate":"0.01"},{"from":"250","mm_rate":"0.10","penalty_rate":"0.025"},{"from":"1000","mm_rate":"0.20","penalty_rate":"0.05"}]"#,
    ),
    ("im_factor", r#""im_factor":"2.5""#),
    ("liquidation_buffer", r#""liquidation_buffer":"0.05""#),
    ("quorum", r#""quorum":2"#),
    ("max_age_ms", r#""max_age_ms":6000"#),
    ("max_deviation", r#""max_deviation":"0.03""#),
    ("max_jump", r#""max_jump":"0.2""#),
    ("max_future_ms", r#""max_future_ms":3000"#),
    ("max_conf", r#""max_conf":"0.03""#),
    ("mark_ema_ms", r#""mark_ema_ms":1000"#),
    ("auction_start_premium", r#""auction_start_premium":"0.02""#),
    ("auction_floor_discount", r#""auction_floor_discount":"0.04""#),
    ("auction_duration_ms", r#""auction_duration_ms":30000"#),
    ("adl_enabled", r#""adl_enabled":false"#),
    ("max_trade_deviation", r#""max_trade_deviation":"0.2""#),
    ("im_addon_rate", r#""im_addon_rate":"0.01""#),
    ("mm_phase_in_ms", r#""mm_phase_in_ms":1000"#),
    ("oi_cap", r#""oi_cap":"5000""#),
    ("cliff_ranges", r#""cliff_ranges":[{"from":"9000","to":"9500"}]"#),
    ("concentration_addon_rate", r#""concentration_addon_rate":"0.01""#),
    ("incentive_rebate_rate", r#""incentive_rebate_rate":"0.001""#),
    ("funding_enabled", r#""funding_enabled":true"#),
    ("funding_interval_ms", r#""funding_interval_ms":1800000"#),
    ("funding_interest_rate", r#""funding_interest_rate":"0.00001""#),
    ("funding_clamp", r#""funding_clamp":"0.0004""#),
    ("funding_cap", r#""funding_cap":"0.03""#),
    ("skew_scale", r#""skew_scale":"1000""#),
    ("max_funding_velocity", r#""max_funding_velocity":"0.1""#),
    ("skew_alert", r#""skew_alert":"100""#),
    ("protocol_delta_alert", r#""protocol_delta_alert":"100000""#),
    ("min_liquidation_notional", r#""min_liquidation_notional":"500""#),
    ("liquidation_chunk_notional", r#""liquidation_chunk_notional":"50000""#),
    ("liquidation_chunk_rate", r#""liquidation_chunk_rate":"0.3""#),
    ("liquidation_cooldown_ms", r#""liquidation_cooldown_ms":10000"#),
    ("backstop_mm_fraction", r#""backstop_mm_fraction":"0.5""#),
    ("dust_equity", r#""dust_equity":"0.02""#),
    ("max_account_liquidation_notional", r#""max_account_liquidation_notional":"250000""#),
    ("max_event_liquidation_notional", r#""max_event_liquidation_notional":"1000000""#),
    ("pm_range", r#""pm_range":"0.2""#),
    ("pm_buckets", r#""pm_buckets":11"#),
    ("pm_correlation", r#""pm_correlation":"0.5""#),
    ("pm_mm_factor", r#""pm_mm_factor":"0.6""#),
    ("pm_im_factor", r#""pm_im_factor":"2.5""#),
    ("pm_floor", r#""pm_floor":"0.4""#),
];

/// The rows of docs/config.md section 4's table: (key, what its `params` column says).
fn documented_rows() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let text = std::fs::read_to_string(path).expect("docs/config.md");
    let start = text.find("## 4. Markets").expect("section 4");
    let end = start + text[start..].find("### 4.1").expect("section 4.1");
    let mut rows = Vec::new();
    for line in text[start..end].lines().filter(|l| l.starts_with("| `")) {
        // Cells are split at `|` not escaped as `\|`.
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut previous = ' ';
        for c in line.chars() {
            if c == '|' && previous != '\\' {
                cells.push(std::mem::take(&mut cell));
            } else {
                cell.push(c);
            }
            previous = c;
        }
        let key = cells[1].trim().trim_matches('`').to_string();
        rows.push((key, cells[5].trim().to_string()));
    }
    rows
}

/// The canonical encoding the state hash is taken over, without its last 32 bytes (the effect
/// chain head).
fn state_bytes(engine: &Engine) -> Vec<u8> {
    let mut bytes = Vec::new();
    engine.encode_canonical(&mut bytes);
    bytes.truncate(bytes.len() - 32);
    bytes
}

fn apply(engine: &mut Engine, seq: &mut u64, line: &str) -> Result<(), String> {
    *seq += 1;
    let mut out = Vec::new();
    engine.apply_line(*seq, line.as_bytes(), &mut out);
    match out.iter().find_map(|e| e.rejection_kind()) {
        Some(kind) => Err(format!("{kind}: {out:?}")),
        None => Ok(()),
    }
}

#[test]
fn every_market_parameter_is_declared_in_config_docs_params_and_hash() {
    let config_keys: BTreeSet<&str> = solvent_core::config_check::market_keys().iter().copied().collect();
    let checked: BTreeSet<&str> = solvent_core::config_check::market_checked_keys().into_iter().collect();
    assert_eq!(checked, config_keys, "config_check's type table and the config struct list the same keys");
    let rows = documented_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(documented, config_keys, "docs/config.md section 4 has one row per market key");
    let changes: BTreeSet<&str> = CHANGES.iter().map(|(k, _)| *k).collect();
    let changeable: BTreeSet<&str> =
        rows.iter().filter(|(_, params)| params.starts_with("yes")).map(|(k, _)| k.as_str()).collect();
    let with_tiers = ["tier_basis"]; // changeable only together with `tiers` (its row says so)
    for key in &config_keys {
        let fixed = rows.iter().any(|(k, p)| k == key && p.starts_with("no"));
        assert!(
            changeable.contains(key) || fixed || with_tiers.contains(key) || *key == "tier_mode",
            "{key}: its docs row says neither yes nor no in the params column"
        );
    }
    let mut seq = 0;
    for (key, fragment) in CHANGES {
        assert!(config_keys.contains(key), "{key}: in CHANGES but not a config key");
        let mut engine = Engine::new(&Config::embedded_default());
        for source in ["s1", "s2", "s3", "s4", "s5"] {
            let tick =
                format!(r#"{{"type":"price","ts":1000,"market":"BTC-PERP","source":"{source}","price":"10000"}}"#);
            apply(&mut engine, &mut seq, &tick).unwrap();
        }
        // Every other change first (the tier keys aside, which go together), so that each part
        // of the hash that appears only when used is already there: the key's own change must
        // then move the hash by itself.
        let tier_keys = ["tier_basis", "tier_mode", "tiers"];
        let others: Vec<&str> =
            CHANGES.iter().filter(|(k, _)| k != key && !tier_keys.contains(k)).map(|(_, f)| *f).collect();
        for chunk in others.chunks(20) {
            // A line holds at most 32 fields.
            let baseline = format!(r#"{{"type":"params","ts":1500,"market":"BTC-PERP",{}}}"#, chunk.join(","));
            apply(&mut engine, &mut seq, &baseline).unwrap_or_else(|e| panic!("{key}: baseline: {e}"));
        }
        let before = state_bytes(&engine);
        // At the same ts (the clock does not move), and compared without the effect chain (the
        // event's own effects would change it): only the parameter itself can move the state.
        let line = format!(r#"{{"type":"params","ts":1500,"market":"BTC-PERP",{fragment}}}"#);
        apply(&mut engine, &mut seq, &line).unwrap_or_else(|e| panic!("{key}: {line}: {e}"));
        assert!(state_bytes(&engine) != before, "{key}: a params change the state hash does not see");
    }
    for key in config_keys.iter().filter(|k| !changes.contains(*k)) {
        let fixed = rows.iter().any(|(k, p)| k == key && p.starts_with("no"));
        assert!(fixed, "{key}: changeable by params per the docs, but no value in CHANGES");
        let mut engine = Engine::new(&Config::embedded_default());
        let line = format!(r#"{{"type":"params","ts":2000,"market":"BTC-PERP","{key}":"x"}}"#);
        assert!(apply(&mut engine, &mut seq, &line).is_err(), "{key}: fixed, but a params event accepts it");
    }
}
