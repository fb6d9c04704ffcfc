//! Funding and skew fees on the real `apply` path, with every invariant (conservation, zero-sum,
//! the reference's margins and its independent funding computation) checked after every event.

mod support;

use solvent_core::effect::EffectKind;
use solvent_core::{Config, Event, Quote};
use support::{Expect, Harness, Step};

/// One market, three sources that stay fresh for days, a 1 s basis EMA (so trades above the
/// index make a premium), funding on with `extra` added to the market.
fn config(extra: &str) -> Config {
    let toml = format!(
        r#"
settlement_asset = "USDC"
max_accounts = 1000
[[markets]]
name = "X-PERP"
tier_basis = "size"
tier_mode = "marginal"
im_factor = "2"
liquidation_buffer = "0"
sources = ["s1", "s2", "s3"]
quorum = 2
max_age_ms = 604800000
max_deviation = "0.5"
max_jump = "10"
mark_ema_ms = 1000
tiers = [ {{ from = "0", mm_rate = "0.05", penalty_rate = "0.01" }} ]
{extra}
"#
    );
    Config::from_toml(&toml).unwrap()
}

fn step(harness: &mut Harness, line: &str) -> Vec<solvent_core::Effect> {
    let event = Event::parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
    let before = harness.effects.len();
    harness.step(Step::line_of(event).expect(Expect::Accept)).unwrap_or_else(|e| panic!("{e}"));
    harness.effects[before..].to_vec()
}

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}

/// Index 100 from three sources, two funded accounts, and alice long `size` from bob at `price`.
fn opened(extra: &str, size: &str, price: &str) -> Harness {
    let mut harness = Harness::new(&config(extra));
    for source in ["s1", "s2", "s3"] {
        step(
            &mut harness,
            &format!(r#"{{"type":"price","ts":1000,"market":"X-PERP","source":"{source}","price":"100"}}"#),
        );
    }
    for name in ["alice", "bob"] {
        step(
            &mut harness,
            &format!(r#"{{"type":"deposit","ts":1000,"account":"{name}","asset":"USDC","amount":"1000000"}}"#),
        );
    }
    step(
        &mut harness,
        &format!(
            r#"{{"type":"trade","ts":2000,"market":"X-PERP","buyer":"alice","seller":"bob","size":"{size}","price":"{price}"}}"#
        ),
    );
    harness
}

fn clock(harness: &mut Harness, ts: u64) -> Vec<solvent_core::Effect> {
    step(harness, &format!(r#"{{"type":"clock","ts":{ts}}}"#))
}

fn settlement(harness: &Harness, name: &str) -> Quote {
    harness.engine.account(name).unwrap().settlement
}

/// A persistent 1% premium (trade at 101 against an index of 100, mark = index + basis EMA) over a
/// day of hourly intervals with Hyperliquid's defaults: F = 0.95% per hour; alice (long 10 at mark
/// 101) pays 10 x 101 x 0.0095 = 9.595 an hour, 230.28 over 24 hours, and bob receives exactly that.
#[test]
fn a_day_of_hourly_funding_moves_value_from_longs_to_shorts_exactly() {
    let mut harness = opened("funding_enabled = true", "10", "101");
    let mark = harness.engine.markets()[0].mark_price.unwrap();
    assert_eq!(mark.to_string(), "101");
    let (alice0, bob0, fund0) =
        (settlement(&harness, "alice"), settlement(&harness, "bob"), harness.engine.insurance_fund());
    let started = clock(&mut harness, 3_000);
    assert!(started.is_empty(), "the first clock event starts the interval: {started:?}");
    let mut paid = Vec::new();
    for hour in 1..=24u64 {
        let effects = clock(&mut harness, hour * 3_600_000);
        for effect in &effects {
            if let EffectKind::Funding { account, rate, amount, .. } = &effect.kind {
                assert_eq!(*rate, q("0.0095"), "1% premium -> 0.95% with the defaults");
                paid.push((account.clone().unwrap(), *amount));
            }
        }
    }
    assert_eq!(paid.len(), 48, "one funding effect per holder per hour");
    assert!(paid.iter().all(|(name, amount)| *amount == if name == "alice" { q("-9.595") } else { q("9.595") }));
    assert_eq!(settlement(&harness, "alice").checked_sub(alice0).unwrap(), q("-230.28"));
    assert_eq!(settlement(&harness, "bob").checked_sub(bob0).unwrap(), q("230.28"));
    assert_eq!(harness.engine.insurance_fund(), fund0, "an exact split leaves nothing to the fund");
}

/// A size whose funding is not a whole number of units: the payer pays the ceiling, the receiver
/// gets the floor, the fund keeps the remainder; nothing is created (the harness checks
/// conservation after every event).
#[test]
fn funding_rounding_goes_against_both_holders_and_the_remainder_to_the_fund() {
    let mut harness = opened("funding_enabled = true\nfunding_interval_ms = 1000", "0.00000003", "101");
    let fund0 = harness.engine.insurance_fund();
    clock(&mut harness, 2_500);
    let effects = clock(&mut harness, 3_000);
    let amounts: Vec<Quote> = effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Funding { amount, .. } => Some(*amount),
            _ => None,
        })
        .collect();
    // 0.00000003 x 101 x 0.0095 = 0.0000000287850 exactly: 2.8785e-8.
    assert_eq!(amounts, vec![q("-0.000000028785"), q("0.000000028785")]);
    assert_eq!(harness.engine.insurance_fund(), fund0);
    // A rate of 1/3 of a unit at 16 decimals cannot split exactly.
    let mut harness = opened(
        "funding_enabled = true\nfunding_interval_ms = 1000\nfunding_interest_rate = \"0.00000001\"\nfunding_clamp = \"0.0005\"",
        "0.00000001",
        "100.00000001",
    );
    clock(&mut harness, 2_500);
    let effects = clock(&mut harness, 3_000);
    let total: i128 = effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Funding { amount, .. } => Some(amount.raw()),
            _ => None,
        })
        .sum();
    // Notional 1.00000001e-6 x 1e-8: the long pays 101 units, the short receives 100.
    assert_eq!(total, -1, "holders never receive more than is paid");
    assert_eq!(harness.engine.insurance_fund().raw(), -total);
}

/// Funding off (the default): clock events over many hours change nothing and emit nothing.
#[test]
fn funding_off_by_default_changes_nothing() {
    let mut harness = opened("", "10", "101");
    let alice = settlement(&harness, "alice");
    for hour in 1..=3u64 {
        assert!(clock(&mut harness, hour * 3_600_000).is_empty());
    }
    assert_eq!(settlement(&harness, "alice"), alice);
    assert!(harness.engine.markets()[0].perp.is_none());
}

/// Funding switched on by a `params` event starts at the next clock event; switched off again it
/// stops. The hash changes when it is on (state) and the interval restarts.
#[test]
fn params_switch_funding_on_and_off() {
    let mut harness = opened("", "10", "101");
    let hash_off = harness.engine.state_hash();
    step(
        &mut harness,
        r#"{"type":"params","ts":2000,"market":"X-PERP","funding_enabled":true,"funding_interval_ms":3600000}"#,
    );
    assert_ne!(harness.engine.state_hash(), hash_off);
    clock(&mut harness, 3_000);
    let effects = clock(&mut harness, 3_600_000);
    assert_eq!(effects.iter().filter(|e| matches!(e.kind, EffectKind::Funding { .. })).count(), 2);
    step(&mut harness, r#"{"type":"params","ts":3600000,"market":"X-PERP","funding_enabled":false}"#);
    let effects = clock(&mut harness, 7_200_000);
    assert!(effects.iter().all(|e| !matches!(e.kind, EffectKind::Funding { .. })));
    let refused = Event::parse_line(br#"{"type":"params","ts":7200000,"market":"X-PERP","funding_cap":"0"}"#).unwrap();
    harness.step(Step::line_of(refused).expect(Expect::Reject("params_out_of_bounds"))).unwrap();
}
