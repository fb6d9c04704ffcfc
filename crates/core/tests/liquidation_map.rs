//! The liquidation map against a brute-force replay: for every level of every direction, a clone
//! of the engine is moved to that price through real price events, and the accounts the engine
//! liquidates there are collected. Each account's first level in each direction must be the
//! map's bucket for it (compared as account counts and sizes per bucket), on a small book with
//! single positions, cross-margined accounts (BTC and ETH positions) and multi-collateral accounts
//! (BTC and ETH collateral, so that the map's market moves their collateral), in size-basis
//! marginal tiers and in notional-basis whole tiers (non-linear: brackets crossed in the range).

use solvent_core::effect::EffectKind;
use solvent_core::liquidation_map::{DEFAULT_MAP_RANGE, DEFAULT_MAP_STEP};
use solvent_core::{Config, Effect, Engine, Rate, Size};
use std::collections::BTreeSet;

const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];

fn apply(engine: &mut Engine, seq: &mut u64, line: &str) -> Vec<Effect> {
    *seq += 1;
    let mut out = Vec::new();
    engine.apply_line(*seq, line.as_bytes(), &mut out);
    assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{line}: {out:?}");
    out
}

/// A book on the default markets with the jump clamp opened (levels are reached in one tick).
fn book(notional_whole: bool) -> (Engine, u64) {
    let text = solvent_core::DEFAULT_CONFIG_TOML.replace("max_jump = \"0.10\"", "max_jump = \"100\"");
    let mut engine = Engine::new(&Config::from_toml(&text).unwrap());
    let mut seq = 0;
    let mut line = |engine: &mut Engine, text: String| apply(engine, &mut seq, &text);
    for (market, price) in [("BTC-PERP", "10000"), ("ETH-PERP", "500"), ("SOL-PERP", "20")] {
        for source in SOURCES {
            line(
                &mut engine,
                format!(r#"{{"type":"price","ts":1000,"market":"{market}","source":"{source}","price":"{price}"}}"#),
            );
        }
    }
    if notional_whole {
        line(&mut engine, r#"{"type":"params","ts":1000,"market":"BTC-PERP","tier_basis":"notional","tier_mode":"whole","tiers":[{"from":"0","mm_rate":"0.025","penalty_rate":"0.005"},{"from":"300000","mm_rate":"0.05","penalty_rate":"0.01"},{"from":"1500000","mm_rate":"0.1","penalty_rate":"0.025"}]}"#.into());
    }
    line(&mut engine, r#"{"type":"fund_deposit","ts":1000,"amount":"1000000000000"}"#.into());
    line(&mut engine, r#"{"type":"deposit","ts":1000,"account":"mm","asset":"USDC","amount":"1000000000000"}"#.into());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..48u64 {
        let name = format!("a{i:02}");
        let long = next() % 3 != 0;
        // Sizes: mostly small, some across brackets (50 BTC and more), odd decimals.
        let size = match next() % 6 {
            0 => 40 + next() % 30,
            1 => 120 + next() % 200,
            _ => 1 + next() % 12,
        } as f64
            + (next() % 1000) as f64 / 1000.0;
        let size = format!("{size:.3}");
        let notional: f64 = size.parse::<f64>().unwrap() * 10_000.0;
        // Equity between 11% (21% with the 10% whole bracket) and 60% of notional: liquidation
        // levels spread over the range.
        let floor = if notional_whole { 0.21 } else { 0.11 };
        let equity = notional * (floor + (next() % 40) as f64 / 100.0);
        let kind = i % 4;
        if kind == 2 {
            // Multi-collateral: part of the equity in BTC and ETH (indexed on their markets).
            let btc = equity * 0.4 / 9_000.0;
            let eth = equity * 0.3 / 425.0;
            line(
                &mut engine,
                format!(r#"{{"type":"deposit","ts":1000,"account":"{name}","asset":"BTC","amount":"{btc:.6}"}}"#),
            );
            line(
                &mut engine,
                format!(r#"{{"type":"deposit","ts":1000,"account":"{name}","asset":"ETH","amount":"{eth:.6}"}}"#),
            );
            line(
                &mut engine,
                format!(
                    r#"{{"type":"deposit","ts":1000,"account":"{name}","asset":"USDC","amount":"{:.2}"}}"#,
                    equity * 0.35
                ),
            );
        } else {
            line(
                &mut engine,
                format!(r#"{{"type":"deposit","ts":1000,"account":"{name}","asset":"USDC","amount":"{equity:.2}"}}"#),
            );
        }
        let (buyer, seller) = if long { (name.as_str(), "mm") } else { ("mm", name.as_str()) };
        line(
            &mut engine,
            format!(
                r#"{{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"10000"}}"#
            ),
        );
        if kind == 1 {
            // Cross-margined: an ETH position too, either way.
            let eth = format!("{:.2}", size.parse::<f64>().unwrap() * 4.0);
            let (buyer, seller) = if next() % 2 == 0 { (name.as_str(), "mm") } else { ("mm", name.as_str()) };
            line(
                &mut engine,
                format!(
                    r#"{{"type":"trade","ts":1000,"market":"ETH-PERP","buyer":"{buyer}","seller":"{seller}","size":"{eth}","price":"500"}}"#
                ),
            );
        }
    }
    line(&mut engine, r#"{"type":"clock","ts":2000}"#.into());
    (engine, seq)
}

/// The accounts liquidated when BTC-PERP's sources all report `price` (a fresh clone each time).
fn liquidated_at(engine: &Engine, seq: u64, price: solvent_core::Price) -> BTreeSet<String> {
    let mut clone = engine.clone();
    let mut seq = seq;
    let mut liquidated = BTreeSet::new();
    for source in SOURCES {
        let line = format!(r#"{{"type":"price","ts":2001,"market":"BTC-PERP","source":"{source}","price":"{price}"}}"#);
        for effect in apply(&mut clone, &mut seq, &line) {
            if let EffectKind::Liquidation { account, .. } = effect.kind {
                liquidated.insert(account);
            }
        }
    }
    assert_eq!(clone.markets()[0].mark_price, Some(price), "the level is reached in one move");
    liquidated
}

fn check_against_replay(notional_whole: bool) -> (usize, usize) {
    let (engine, seq) = book(notional_whole);
    let map = engine.liquidation_map("BTC-PERP", DEFAULT_MAP_STEP, DEFAULT_MAP_RANGE).unwrap();
    assert_eq!((map.down.len(), map.up.len()), (100, 100));
    let btc = engine.market_id("BTC-PERP").unwrap();
    let size_of = |name: &str| engine.account(name).unwrap().size(btc).raw().unsigned_abs();
    let mut counted = (0, 0);
    for (side, buckets) in [(0, &map.down), (1, &map.up)] {
        let mut seen = BTreeSet::new();
        for (k, bucket) in buckets.iter().enumerate() {
            let step = if side == 0 { -1 } else { 1 } * (k as i64 + 1) * DEFAULT_MAP_STEP.raw();
            assert_eq!(bucket.move_rate, Rate::from_raw(step));
            let first: BTreeSet<String> =
                liquidated_at(&engine, seq, bucket.price).into_iter().filter(|a| !seen.contains(a)).collect();
            let size: u64 = first.iter().map(|a| size_of(a)).sum();
            assert_eq!(
                (bucket.accounts, bucket.size),
                (first.len() as u64, Size::from_raw(size as i64)),
                "side {side} level {k} at {}: replay liquidates {first:?}",
                bucket.price
            );
            assert_eq!(bucket.notional, bucket.size.mul_price(bucket.price));
            seen.extend(first);
        }
        if side == 0 {
            counted.0 = seen.len()
        } else {
            counted.1 = seen.len()
        }
    }
    counted
}

#[test]
fn the_map_equals_a_brute_force_replay_at_every_level() {
    let (down, up) = check_against_replay(false);
    assert!(down >= 15 && up >= 5, "the book spreads liquidations over both sides ({down} down, {up} up)");
}

#[test]
fn the_map_equals_a_brute_force_replay_with_notional_whole_tiers() {
    let (down, up) = check_against_replay(true);
    assert!(down >= 15 && up >= 5, "the book spreads liquidations over both sides ({down} down, {up} up)");
}

#[test]
fn the_map_refuses_bad_arguments_with_the_field() {
    let (engine, _) = book(false);
    let kind = |step: &str, range: &str| {
        engine.liquidation_map("BTC-PERP", Rate::parse(step).unwrap(), Rate::parse(range).unwrap()).unwrap_err()
    };
    assert!(kind("0", "0.5").to_string().contains("`step`"));
    assert!(kind("0.01", "1").to_string().contains("`range`"));
    assert!(kind("0.0001", "0.5").to_string().contains("`step`"), "at most 1000 buckets");
    assert_eq!(kind("0.01", "0.005").kind(), "params_out_of_bounds");
    assert_eq!(
        engine.liquidation_map("NOPE", DEFAULT_MAP_STEP, DEFAULT_MAP_RANGE).unwrap_err().kind(),
        "unknown_market"
    );
}
