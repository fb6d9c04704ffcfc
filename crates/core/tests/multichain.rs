//! Multi-chain collateral and asset status on the real `apply_line` path, under the harness (the
//! reference evaluator with its own weight rule, conservation, zero-sum, no account below
//! maintenance left after every event): USDC bridged to arbitrum and to ethereum, each priced by
//! its own index market (`USDCARB-USD`, `USDCETH-USD`: collateral oracles nobody trades).

mod support;

use solvent_core::{Config, EffectKind, Engine, Price, Quote, Rate, Size};
use support::{Expect, Harness, Input, Step};

/// `examples/multichain.toml`. `USDC.arb`: weight 0.95, bridge haircut 2% (effective 0.931),
/// halted weight 0 (default), phases over 3,200 s (a step every 100 s). `USDC.eth`: weight 0.98,
/// no haircut, depeg weight 0.5, the same phase length. Markets: one tier, MM 5%, penalty 1%,
/// no liquidation buffer, one source.
fn config_text() -> String {
    include_str!("../../../examples/multichain.toml").to_string()
}

fn config() -> Config {
    Config::from_toml(&config_text()).expect("the test config is valid")
}

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}

fn r(text: &str) -> Rate {
    Rate::parse(text).unwrap()
}

/// An accepted line, with the event it means (so the test's ledger and weight rule follow it).
fn ok(harness: &mut Harness, line: &str) {
    let event = solvent_core::Event::parse_str(line).expect("the line parses");
    let step =
        Step { input: Input::Line { bytes: line.as_bytes().to_vec(), meaning: Some(event) }, expect: Expect::Accept };
    harness.step(step).unwrap();
}

fn refused(harness: &mut Harness, line: &str, kind: &'static str) {
    harness.step(Step::raw(line).expect(Expect::Reject(kind))).unwrap();
}

fn tick(harness: &mut Harness, ts: u64, market: &str, price: &str) {
    ok(harness, &format!(r#"{{"type":"price","ts":{ts},"market":"{market}","source":"s1","price":"{price}"}}"#));
}

fn deposit(harness: &mut Harness, account: &str, asset: &str, amount: &str) {
    ok(
        harness,
        &format!(r#"{{"type":"deposit","ts":1000,"account":"{account}","asset":"{asset}","amount":"{amount}"}}"#),
    );
}

fn clock(harness: &mut Harness, ts: u64) {
    ok(harness, &format!(r#"{{"type":"clock","ts":{ts}}}"#));
}

fn status(harness: &mut Harness, ts: u64, asset: &str, status: &str) {
    ok(harness, &format!(r#"{{"type":"asset_status","ts":{ts},"asset":"{asset}","status":"{status}"}}"#));
}

fn equity(harness: &Harness, account: &str) -> Quote {
    harness.engine.health(account).unwrap().equity
}

fn weight(engine: &Engine, asset: &str) -> Rate {
    engine.assets().iter().find(|a| &*a.name == asset).unwrap().weight
}

/// Effects of the last step.
fn last_effects(harness: &Harness) -> Vec<&EffectKind> {
    let seq = harness.seq;
    harness.effects.iter().filter(|e| e.seq == seq).map(|e| &e.kind).collect()
}

fn asset_weights(harness: &Harness) -> Vec<(String, Rate)> {
    last_effects(harness)
        .into_iter()
        .filter_map(|k| match k {
            EffectKind::AssetWeight { asset, weight, .. } => Some((asset.clone(), *weight)),
            _ => None,
        })
        .collect()
}

fn liquidated(harness: &Harness) -> Vec<String> {
    last_effects(harness)
        .into_iter()
        .filter_map(|k| match k {
            EffectKind::Liquidation { account, .. } => Some(account.clone()),
            _ => None,
        })
        .collect()
}

/// alice: 10,000 USDC.arb + 200 USDC, long 1 BTC at 10,000 (MM 500); carol: 10,000 USDC.eth,
/// long 1 BTC; bob and dave (5,000 USDC each) are short.
fn opened() -> Harness {
    let mut h = Harness::new(&config());
    deposit(&mut h, "alice", "USDC.arb", "10000");
    deposit(&mut h, "alice", "USDC", "200");
    deposit(&mut h, "carol", "USDC.eth", "10000");
    deposit(&mut h, "bob", "USDC", "5000");
    deposit(&mut h, "dave", "USDC", "5000");
    tick(&mut h, 1000, "BTC-PERP", "10000");
    tick(&mut h, 1000, "USDCARB-USD", "1");
    tick(&mut h, 1000, "USDCETH-USD", "1");
    for (buyer, seller) in [("alice", "bob"), ("carol", "dave")] {
        let line = format!(
            r#"{{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"{buyer}","seller":"{seller}","size":"1","price":"10000"}}"#
        );
        ok(&mut h, &line);
    }
    h
}

/// The bridge to arbitrum halts at ts 10,000: USDC.arb's effective weight goes from 0.931 to 0 in
/// 32 steps of 100 s, w_k = floor(0.931 x (32 - k) / 32). alice's equity is 200 + 10,000 x w_k:
/// 781.875 at k = 30 (above her MM of 500), 490.9375 at k = 31, where she is liquidated, and
/// not before. carol, on the ethereum form, is untouched throughout.
#[test]
fn a_halted_bridge_phases_its_holders_down_and_liquidates_at_the_crossing_step() {
    let mut h = opened();
    assert_eq!(weight(&h.engine, "USDC.arb"), r("0.931"), "0.95 x (1 - 0.02)");
    assert_eq!(equity(&h, "alice"), q("9510"));
    assert_eq!(equity(&h, "carol"), q("9800"));
    let hash_before = h.engine.state_hash();
    status(&mut h, 10_000, "USDC.arb", "bridge_halted");
    let effects = last_effects(&h);
    assert!(
        matches!(effects.as_slice(), [EffectKind::Alert { alert, market, .. }] if alert == "asset_status" && market == "USDCARB-USD"),
        "one alert and no weight step on the announcing event: {effects:?}"
    );
    assert_ne!(h.engine.state_hash(), hash_before);
    assert_eq!(weight(&h.engine, "USDC.arb"), r("0.931"), "the announcing event moves no weight");
    clock(&mut h, 60_000);
    assert!(asset_weights(&h).is_empty(), "no step before 1/32 of the phase");
    for k in 1..=32u64 {
        clock(&mut h, 10_000 + 100_000 * k);
        let w = Rate::from_raw((93_100_000 * (32 - k) / 32) as i64);
        assert_eq!(asset_weights(&h), vec![("USDC.arb".to_string(), w)], "step {k}");
        assert_eq!(weight(&h.engine, "USDC.eth"), r("0.98"), "the other chain is untouched");
        assert_eq!(equity(&h, "carol"), q("9800"));
        let liquidations = liquidated(&h);
        match k {
            30 => {
                assert_eq!(w, r("0.0581875"));
                assert_eq!(equity(&h, "alice"), q("781.875"));
                assert!(liquidations.is_empty());
            }
            31 => {
                assert_eq!(w, r("0.02909375"));
                assert_eq!(liquidations, vec!["alice".to_string()], "liquidated at the crossing step");
                let before = last_effects(&h).into_iter().find_map(|k| match k {
                    EffectKind::Liquidation { equity_before, maintenance_margin_before, .. } => {
                        Some((*equity_before, *maintenance_margin_before))
                    }
                    _ => None,
                });
                assert_eq!(before, Some((q("490.9375"), q("500"))));
            }
            _ if k < 31 => {
                assert!(liquidations.is_empty(), "step {k}");
                assert_eq!(
                    equity(&h, "alice"),
                    Quote::from_raw(200 * Quote::ONE_RAW + i128::from(w.raw()) * 10_000 * 100_000_000)
                );
            }
            _ => {}
        }
    }
    assert_eq!(weight(&h.engine, "USDC.arb"), Rate::ZERO);
    clock(&mut h, 10_000 + 3_300_000);
    assert!(asset_weights(&h).is_empty(), "the phase is over");
    let dump = h.engine.dump();
    let arb = &dump.assets["USDC.arb"];
    assert_eq!((arb.status, arb.effective_weight, arb.weight_phase_end_ts), ("bridge_halted", Rate::ZERO, None));
    assert_eq!((arb.chain.as_deref(), arb.token.as_deref()), (Some("arbitrum"), Some("USDC")));
    assert_eq!(arb.configured_weight, r("0.95"));
}

/// USDC on ethereum depegs: its own oracle falls to 0.97 and the status goes to `depegged`
/// (target 0.5): at step 16, w = (0.98 x 16 + 0.5 x 16) / 32 = 0.74 and carol's equity is
/// 10,000 x 0.97 x 0.74 = 7,178. Back to normal at the end, the weight phases up from 0.5:
/// (0.5 x 24 + 0.98 x 8) / 32 = 0.62 at step 8, 0.98 at the end.
#[test]
fn a_depeg_prices_through_its_own_oracle_and_phases_down_then_back_up() {
    let mut h = opened();
    tick(&mut h, 2_000, "USDCETH-USD", "0.97");
    clock(&mut h, 2_000);
    assert_eq!(equity(&h, "carol"), q("9506"), "10,000 x 0.97 x 0.98");
    status(&mut h, 2_000, "USDC.eth", "depegged");
    assert_eq!(equity(&h, "carol"), q("9506"), "nothing moves on the announcing event");
    clock(&mut h, 1_602_000);
    assert_eq!(asset_weights(&h), vec![("USDC.eth".to_string(), r("0.74"))]);
    assert_eq!(equity(&h, "carol"), q("7178"));
    assert_eq!(weight(&h.engine, "USDC.arb"), r("0.931"), "the arbitrum form is untouched");
    clock(&mut h, 3_202_000);
    assert_eq!(weight(&h.engine, "USDC.eth"), r("0.5"));
    assert_eq!(equity(&h, "carol"), q("4850"), "10,000 x 0.97 x 0.5, still above MM");
    status(&mut h, 3_202_000, "USDC.eth", "normal");
    assert_eq!(h.engine.dump().assets["USDC.eth"].target_weight, r("0.98"));
    assert_eq!(h.engine.dump().assets["USDC.eth"].weight_phase_end_ts, Some(6_402_000));
    clock(&mut h, 4_002_000);
    assert_eq!(asset_weights(&h), vec![("USDC.eth".to_string(), r("0.62"))]);
    assert_eq!(equity(&h, "carol"), q("6014"));
    clock(&mut h, 6_402_000);
    assert_eq!(weight(&h.engine, "USDC.eth"), r("0.98"));
    assert_eq!(h.engine.dump().assets["USDC.eth"].status, "normal");
}

/// A status change while a phase runs starts a new phase from where the weight is; a repeat of
/// the current status changes nothing.
#[test]
fn a_new_status_restarts_from_the_current_weight_and_a_repeat_is_a_no_op() {
    let mut h = opened();
    status(&mut h, 10_000, "USDC.arb", "bridge_halted");
    clock(&mut h, 10_000 + 1_000_000); // k = 10: 0.931 x 22 / 32 = 0.6400625
    assert_eq!(weight(&h.engine, "USDC.arb"), r("0.6400625"));
    let hash = h.engine.state_hash();
    status(&mut h, 1_010_000, "USDC.arb", "bridge_halted");
    assert!(last_effects(&h).is_empty(), "a repeat emits nothing");
    assert_eq!(h.engine.state_hash(), hash, "and changes nothing");
    status(&mut h, 1_010_000, "USDC.arb", "normal");
    clock(&mut h, 1_010_000 + 100_000); // k = 1 of 0.6400625 -> 0.931
    let w = (64_006_250i64 * 31 + 93_100_000) / 32;
    assert_eq!(asset_weights(&h), vec![("USDC.arb".to_string(), Rate::from_raw(w))]);
    clock(&mut h, 1_010_000 + 3_200_000);
    assert_eq!(weight(&h.engine, "USDC.arb"), r("0.931"));
}

/// Every bad input is refused with a typed error naming it and changes nothing (the harness
/// checks the hash and the readable state of every refusal).
#[test]
fn bad_asset_status_events_are_refused_and_change_nothing() {
    let mut h = opened();
    clock(&mut h, 5_000);
    let line = |body: &str| format!(r#"{{"type":"asset_status",{body}}}"#);
    refused(&mut h, &line(r#""ts":6000,"asset":"DOGE","status":"normal""#), "unknown_asset");
    refused(&mut h, &line(r#""ts":6000,"asset":"USDC.arb","status":"halted""#), "unknown_asset_status");
    refused(&mut h, &line(r#""ts":6000,"asset":"USDC","status":"depegged""#), "invalid_field_type");
    refused(&mut h, &line(r#""ts":4000,"asset":"USDC.arb","status":"depegged""#), "time_backwards");
    refused(&mut h, &line(r#""ts":"6000","asset":"USDC.arb","status":"depegged""#), "invalid_field_type");
    refused(&mut h, &line(r#""asset":"USDC.arb","status":"depegged""#), "missing_field");
    refused(&mut h, &line(r#""ts":6000,"asset":"USDC.arb""#), "missing_field");
    refused(&mut h, &line(r#""ts":6000,"asset":"USDC.arb","status":"normal","why":"x""#), "unknown_field");
    refused(&mut h, &line(r#""ts":99999999,"asset":"USDC.arb","status":"depegged""#), "clock_jump");
    let messages: Vec<String> = h.effects.iter().rev().take(9).map(|e| e.to_json_line()).collect();
    assert!(messages.iter().any(|m| m.contains("DOGE")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("halted")), "{messages:?}");
}

/// The configuration checks, each with a clear reason.
#[test]
fn bad_asset_configs_are_refused_with_a_reason() {
    let text = config_text();
    let cases = [
        (text.replace(r#"bridge_haircut = "0.02""#, r#"bridge_haircut = "1""#), "bridge_haircut must be in [0, 1)"),
        (text.replace(r#"bridge_haircut = "0.02""#, r#"bridge_haircut = "-0.1""#), "bridge_haircut must be in [0, 1)"),
        (text.replace(r#"index_market = "USDCARB-USD""#, r#"index_market = "ARB-USD""#), "unknown index_market"),
        (text.replace(r#"depeg_weight = "0.5""#, r#"depeg_weight = "0.99""#), "depeg_weight must be in [0, weight]"),
        (text.replace(r#"depeg_weight = "0.5""#, r#"halted_weight = "-0.5""#), "halted_weight must be in [0, weight]"),
        (text.replacen("weight_phase_ms = 3200000", "weight_phase_ms = 2592000001", 1), "weight_phase_ms"),
        (text.replace(r#"chain = "ethereum""#, r#"chain = "arbitrum""#), "the same token and chain as asset"),
        (text.replace(r#"chain = "ethereum""#, r#"chain = "eth mainnet""#), "chain"),
        (text.replace(r#"token = "USDC""#, r#"token = 5"#), "token"),
        (text.replace("weight_phase_ms = 3200000", r#"weight_phase_ms = "1h""#), "weight_phase_ms"),
    ];
    for (text, needle) in cases {
        let error = Config::from_toml(&text).unwrap_err().to_string();
        assert!(error.contains(needle), "{error} should mention {needle}");
    }
    let defaults = Config::from_toml(&text.replace("weight_phase_ms = 3200000\n", "")).unwrap();
    let arb = &defaults.assets[0];
    assert_eq!((arb.halted_weight, arb.depeg_weight, arb.weight_phase_ms), (Rate::ZERO, r("0.475"), 3_600_000));
}

/// The state hash carries the new block only when an asset uses any of it, so the embedded
/// default (plain assets) hashes as before; a snapshot (serde) carries status and phase, and the
/// restored engine continues the phase identically.
#[test]
fn hash_block_only_when_used_and_snapshots_carry_the_phase() {
    let contains = |engine: &Engine| {
        let mut bytes = Vec::new();
        engine.encode_canonical(&mut bytes);
        bytes.windows(15).any(|w| w == b"asset-status-v1")
    };
    let mut plain = Engine::new(&Config::embedded_default());
    assert!(!contains(&plain));
    let mut out = Vec::new();
    plain.apply_line(1, br#"{"type":"asset_status","ts":5,"asset":"BTC","status":"depegged"}"#, &mut out);
    assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{out:?}");
    assert!(contains(&plain), "a non-normal status is hashed");
    let mut h = opened();
    assert!(contains(&h.engine), "a chain, token or haircut is hashed");
    status(&mut h, 10_000, "USDC.arb", "bridge_halted");
    clock(&mut h, 510_000);
    let text = serde_json::to_string(&h.engine).unwrap();
    let mut restored = Engine::from_snapshot(serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    h.engine.apply_line(100, br#"{"type":"clock","ts":1010000}"#, &mut a);
    restored.apply_line(100, br#"{"type":"clock","ts":1010000}"#, &mut b);
    assert_eq!(a, b);
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    assert_eq!(weight(&restored, "USDC.arb"), Rate::from_raw(93_100_000 * 22 / 32));
}

/// docs/config.md section 3 has one row per `[[assets]]` key, and every key is type-checked one
/// by one (as for markets: `market_params.rs`).
#[test]
fn every_asset_key_is_documented_and_checked() {
    use std::collections::BTreeSet;
    let keys: BTreeSet<&str> = solvent_core::config_check::asset_keys().iter().copied().collect();
    let checked: BTreeSet<&str> = solvent_core::config_check::asset_checked_keys().into_iter().collect();
    assert_eq!(checked, keys);
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md")).unwrap();
    let start = text.find("## 3. Collateral assets").unwrap();
    let end = start + text[start..].find("## 4. Markets").unwrap();
    let documented: BTreeSet<&str> = text[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').nth(1).unwrap().trim().trim_matches('`'))
        .collect();
    assert_eq!(documented, keys, "docs/config.md section 3 has one row per asset key");
}

/// `examples/multichain.jsonl` on `examples/multichain.toml` (the session docs/events.md and
/// docs/margin.md quote): every line through the harness, the figures the docs show.
#[test]
fn the_example_session_gives_the_documented_figures() {
    let events = include_str!("../../../examples/multichain.jsonl");
    let mut h = Harness::new(&config());
    for line in events.lines() {
        match solvent_core::Event::parse_str(line) {
            Ok(_) if line.contains("DOGE") => refused(&mut h, line, "unknown_asset"),
            Ok(_) => ok(&mut h, line),
            Err(_) => refused(&mut h, line, "unknown_asset_status"),
        }
    }
    let lines: Vec<String> = h.effects.iter().map(|e| e.to_json_line()).collect();
    for expected in [
        r#"{"type":"alert","seq":11,"ts":10000,"alert":"asset_status","market":"USDCARB-USD","message":"asset USDC.arb (USDC on arbitrum): normal -> bridge_halted; effective weight 0.931 moves to 0 by ts 3210000"}"#,
        r#"{"type":"asset_weight","seq":14,"ts":3010000,"asset":"USDC.arb","status":"bridge_halted","target_weight":"0","weight":"0.0581875"}"#,
        r#"{"type":"asset_weight","seq":15,"ts":3110000,"asset":"USDC.arb","status":"bridge_halted","target_weight":"0","weight":"0.02909375"}"#,
        r#"{"type":"liquidation","seq":15,"ts":3110000,"account":"alice","closed_size":"0.02265625","equity_after":"488.671875","equity_before":"490.9375","full":false,"maintenance_margin_after":"488.671875","maintenance_margin_before":"500","market":"BTC-PERP","penalty":"2.265625","price":"10000"}"#,
    ] {
        assert!(lines.iter().any(|l| l == expected), "missing {expected}\nin {lines:#?}");
    }
    let first_liquidation = h.effects.iter().find(|e| matches!(e.kind, EffectKind::Liquidation { .. })).unwrap();
    assert_eq!(first_liquidation.seq, 15, "not before the crossing step");
}

/// `weight_phase_ms = 0`: the whole move applies at the next clock-advancing event, still not in
/// the announcing one; a status whose target is the current weight starts no phase.
#[test]
fn a_zero_phase_applies_at_the_next_event_and_an_equal_target_starts_none() {
    let text = config_text().replacen("weight_phase_ms = 3200000", "weight_phase_ms = 0", 1);
    let mut h = Harness::new(&Config::from_toml(&text).unwrap());
    deposit(&mut h, "alice", "USDC.arb", "100");
    status(&mut h, 2_000, "USDC.arb", "depegged");
    assert_eq!(weight(&h.engine, "USDC.arb"), r("0.931"), "not in the announcing event");
    clock(&mut h, 2_001);
    // depeg_weight defaults to 0.95 / 2 = 0.475; x 0.98 = 0.4655.
    assert_eq!(asset_weights(&h), vec![("USDC.arb".to_string(), r("0.4655"))]);
    assert_eq!(h.engine.dump().assets["USDC.arb"].weight_phase_end_ts, None);
    let same = config_text().replace(r#"depeg_weight = "0.5""#, r#"depeg_weight = "0.98""#);
    let mut h = Harness::new(&Config::from_toml(&same).unwrap());
    status(&mut h, 2_000, "USDC.eth", "depegged");
    let message = last_effects(&h).into_iter().find_map(|k| match k {
        EffectKind::Alert { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert!(message.unwrap().contains("already the target"));
    assert_eq!(h.engine.dump().assets["USDC.eth"].weight_phase_end_ts, None);
    clock(&mut h, 2_000_000);
    assert!(asset_weights(&h).is_empty());
}

/// One operation of the random two-chain sequences.
#[derive(Clone, Debug)]
enum Op {
    /// The clock moves by this many ms.
    Clock(u64),
    /// Asset 0 (`USDC.arb`) or 1 (`USDC.eth`) gets status `AssetStatus::ALL[status]`.
    Status { asset: usize, status: usize },
    /// A tick of BTC-PERP (bp move) or of an asset's oracle (price in bp of 1).
    Tick { market: usize, bp: i64 },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        5 => (20u64..400).prop_map(Op::Clock),
        2 => (0usize..2, prop_oneof![2 => Just(0usize), 1 => 1usize..3]).prop_map(|(asset, status)| Op::Status { asset, status }),
        2 => (0usize..3, -150i64..150).prop_map(|(market, bp)| Op::Tick { market, bp }),
    ]
}

/// Random sequences on the two-chain config with 3.2 s weight phases (a step every 100 ms):
/// accounts backed by one bridged form or the other, levered 1x to 9x, then clocks, statuses and
/// ticks. The harness checks after every event that the engine matches the reference (whose
/// weights follow the documented rule on their own), conservation, zero-sum and that no account
/// is left below maintenance: a weight step that crosses an account's MM liquidates it in the
/// step's own event.
#[test]
fn random_status_sequences_keep_every_invariant() {
    use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
    use std::sync::atomic::{AtomicU64, Ordering};
    static STEP_LIQUIDATIONS: AtomicU64 = AtomicU64::new(0);
    let text = config_text().replace("weight_phase_ms = 3200000", "weight_phase_ms = 3200");
    let config = Config::from_toml(&text).unwrap();
    let accounts = proptest::collection::vec((0usize..2, 20u32..200, 0u32..5, 1u32..10), 2..6);
    let strategy = (accounts, proptest::collection::vec(op(), 10..60));
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() });
    let result = runner.run(&strategy, |(accounts, ops)| {
        let mut h = Harness::new(&config);
        let step = |h: &mut Harness, line: String, expect: Expect| {
            let event = solvent_core::Event::parse_str(&line).ok();
            let input = Input::Line { bytes: line.into_bytes(), meaning: event };
            h.step(Step { input, expect }).map(|_| ()).map_err(TestCaseError::fail)
        };
        let deposit = |account: &str, asset: &str, amount: u32| {
            format!(r#"{{"type":"deposit","ts":1000,"account":"{account}","asset":"{asset}","amount":"{amount}"}}"#)
        };
        step(&mut h, deposit("mm", "USDC", 10_000_000), Expect::Accept)?;
        // In basis points of one unit: BTC 10,000, each USDC form 1.
        let mut prices = [100_000_000i64, 10_000, 10_000];
        for (m, market) in ["BTC-PERP", "USDCARB-USD", "USDCETH-USD"].iter().enumerate() {
            let price = Price::from_raw(prices[m] * 10_000);
            let line = format!(r#"{{"type":"price","ts":1000,"market":"{market}","source":"s1","price":"{price}"}}"#);
            step(&mut h, line, Expect::Accept)?;
        }
        for (i, (asset, hundreds, usdc, leverage)) in accounts.iter().enumerate() {
            let name = format!("a{i}");
            let amount = hundreds * 100;
            step(&mut h, deposit(&name, ["USDC.arb", "USDC.eth"][*asset], amount), Expect::Accept)?;
            if *usdc > 0 {
                step(&mut h, deposit(&name, "USDC", usdc * 100), Expect::Accept)?;
            }
            // Notional = leverage x the deposit: IM 10% of notional stays below the equity.
            let size = Size::from_raw(i64::from(amount) * i64::from(*leverage) * 10_000);
            let line = format!(
                r#"{{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"{name}","seller":"mm","size":"{size}","price":"10000"}}"#
            );
            step(&mut h, line, Expect::Any)?;
        }
        let mut ts = 1_000u64;
        for op in &ops {
            let line = match op {
                Op::Clock(dt) => {
                    ts += dt;
                    format!(r#"{{"type":"clock","ts":{ts}}}"#)
                }
                Op::Status { asset, status } => format!(
                    r#"{{"type":"asset_status","ts":{ts},"asset":"{}","status":"{}"}}"#,
                    ["USDC.arb", "USDC.eth"][*asset],
                    solvent_core::asset_status::AssetStatus::ALL[*status].name()
                ),
                Op::Tick { market, bp } => {
                    let next = if *market == 0 { prices[0] * (10_000 + bp) / 10_000 } else { 10_000 + bp / 10 };
                    prices[*market] = next.max(1);
                    let name = ["BTC-PERP", "USDCARB-USD", "USDCETH-USD"][*market];
                    let price = Price::from_raw(prices[*market] * 10_000);
                    ts += 1; // a source's ticks must be later than its last one
                    step(&mut h, format!(r#"{{"type":"clock","ts":{ts}}}"#), Expect::Accept)?;
                    format!(r#"{{"type":"price","ts":{ts},"market":"{name}","source":"s1","price":"{price}"}}"#)
                }
            };
            let effects_before = h.effects.len();
            step(&mut h, line, Expect::Accept)?;
            let effects = &h.effects[effects_before..];
            let stepped = effects.iter().any(|e| matches!(e.kind, EffectKind::AssetWeight { .. }));
            if stepped && effects.iter().any(|e| matches!(e.kind, EffectKind::Liquidation { .. })) {
                STEP_LIQUIDATIONS.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let liquidations = STEP_LIQUIDATIONS.load(Ordering::Relaxed);
    eprintln!("events where a weight step liquidated someone: {liquidations}");
    assert!(liquidations > 0, "some weight step liquidated someone");
}
