//! Oracle defence on the real `apply` path: minority attackers, a Mango-shaped pump, staleness,
//! signatures, and what still works while a market is frozen.

use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use solvent_core::effect::EffectKind;
use solvent_core::event::{Event, PriceTick};
use solvent_core::oracle::tick_message;
use solvent_core::{Config, Effect, Engine, Price};

fn price(text: &str) -> Price {
    Price::parse(text).unwrap()
}

fn tick(market: &str, source: &str, p: Price, ts: u64) -> Event {
    Event::Price(PriceTick { ts, market: market.into(), source: source.into(), price: p, conf: None, sig: None })
}

fn line(engine: &mut Engine, seq: u64, text: &str) -> Vec<Effect> {
    let mut out = Vec::new();
    engine.apply_line(seq, text.as_bytes(), &mut out);
    out
}

fn apply(engine: &mut Engine, seq: u64, event: &Event) -> (Result<(), solvent_core::Error>, Vec<Effect>) {
    let mut out = Vec::new();
    let result = engine.apply(seq, event, &mut out);
    (result, out)
}

fn btc(engine: &Engine) -> &solvent_core::state::Market {
    &engine.markets()[0]
}

/// What an attacker-controlled source reports at step `step`, given the honest centre.
#[derive(Clone, Copy, Debug)]
enum Attack {
    ZeroLike,
    Huge,
    Oscillate,
    /// Just inside `max_deviation` of the current mark, pushing one way every tick.
    Creep {
        up: bool,
    },
    /// Re-send an old tick (same ts): must be refused as replayed.
    StaleReplay,
    /// Stamp the tick far in the future: must be refused.
    Future,
    /// Stop reporting, so the source goes stale.
    Silent,
}

fn attack_strategy() -> impl Strategy<Value = Attack> {
    prop_oneof![
        Just(Attack::ZeroLike),
        Just(Attack::Huge),
        Just(Attack::Oscillate),
        any::<bool>().prop_map(|up| Attack::Creep { up }),
        Just(Attack::StaleReplay),
        Just(Attack::Future),
        Just(Attack::Silent),
    ]
}

fn attacker_tick(attack: Attack, step: u64, mark: Price, now: u64, source: &str) -> Option<Event> {
    let raw = mark.raw() as i128;
    let p = match attack {
        Attack::ZeroLike => Price::from_raw(1),
        Attack::Huge => Price::from_raw(i64::MAX / 4),
        Attack::Oscillate => {
            if step.is_multiple_of(2) {
                Price::from_raw((raw * 3) as i64)
            } else {
                Price::from_raw((raw / 3) as i64)
            }
        }
        Attack::Creep { up } => {
            let step_raw = raw * 199 / 10_000; // 1.99%: inside the 2% band
            Price::from_raw((if up { raw + step_raw } else { raw - step_raw }) as i64)
        }
        // The first step sends a genuine tick at ts 1000; every later step re-sends that ts.
        Attack::StaleReplay => return Some(tick("BTC-PERP", source, mark, 1_000)),
        Attack::Future => return Some(tick("BTC-PERP", source, Price::from_raw(1), now + 60_000)),
        Attack::Silent => return None,
    };
    Some(tick("BTC-PERP", source, p, now))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// With f of 2f+1 sources lying, the mark stays within the range of the honest sources'
    /// latest prices, whatever the liars do, after every event.
    #[test]
    fn a_minority_cannot_move_the_mark(
        f in 1usize..=2,
        attacks in proptest::collection::vec(attack_strategy(), 2),
        walk in proptest::collection::vec(-50i64..=50, 20..60),
        spread in proptest::collection::vec(-20i64..=20, 5),
    ) {
        let mut config = Config::embedded_default();
        let n = 2 * f + 1;
        config.markets[0].sources.truncate(n);
        config.markets[0].source_keys.truncate(n);
        config.markets[0].params.quorum = (f + 1) as u32;
        let mut engine = Engine::new(&config);
        let sources: Vec<String> = (1..=n).map(|i| format!("s{i}")).collect();
        let (liars, honest) = sources.split_at(f);
        let mut centre: i64 = 10_000;
        let mut seq = 0;
        for (step, change) in walk.iter().enumerate() {
            let now = 1_000 * (step as u64 + 1);
            seq += 1;
            let (result, _) = apply(&mut engine, seq, &Event::Clock { ts: now });
            prop_assert!(result.is_ok());
            centre += change; // at most 0.5% a second: honest moves never hit the jump clamp
            let mut honest_prices = Vec::new();
            for (i, source) in honest.iter().enumerate() {
                let p = Price::from_int(centre + spread[i]).unwrap();
                honest_prices.push(p);
                seq += 1;
                let (result, _) = apply(&mut engine, seq, &tick("BTC-PERP", source, p, now));
                prop_assert!(result.is_ok(), "honest tick refused: {:?}", result);
                let mark = btc(&engine).mark_price;
                if let Some(mark) = mark {
                    for liar in liars.iter().enumerate() {
                        let attack = attacks[liar.0];
                        if let Some(event) = attacker_tick(attack, step as u64, mark, now, liar.1) {
                            seq += 1;
                            let (result, _) = apply(&mut engine, seq, &event);
                            if matches!(attack, Attack::Future) || (matches!(attack, Attack::StaleReplay) && step > 0) {
                                prop_assert!(result.is_err(), "{attack:?} must be refused");
                            }
                            check_mark_in_honest_range(&engine)?;
                        }
                    }
                }
            }
            check_mark_in_honest_range(&engine)?;
            let _ = honest_prices;
        }
        prop_assert!(!btc(&engine).frozen, "honest majority keeps the market live");
    }
}

/// The mark lies within [min, max] of the honest sources' latest ticks (sources s_{f+1}..s_n).
fn check_mark_in_honest_range(engine: &Engine) -> Result<(), TestCaseError> {
    let market = btc(engine);
    let n = market.sources.len();
    let f = (n - 1) / 2;
    let honest: Vec<Price> = market.sources[f..].iter().filter_map(|s| s.latest.map(|t| t.price)).collect();
    let Some(mark) = market.mark_price else { return Ok(()) };
    if honest.len() < n - f {
        return Ok(()); // before every honest source has reported once
    }
    let low = *honest.iter().min().unwrap();
    let high = *honest.iter().max().unwrap();
    prop_assert!(mark >= low && mark <= high, "mark {mark} outside honest range [{low}, {high}]");
    Ok(())
}

fn mngo_engine() -> Engine {
    let toml = solvent_core::DEFAULT_CONFIG_TOML
        .replacen("name = \"BTC-PERP\"", "name = \"MNGO-PERP\"", 1)
        .replace("index_market = \"BTC-PERP\"", "index_market = \"MNGO-PERP\"");
    Engine::new(&Config::from_toml(&toml).unwrap())
}

/// October 2022, Mango Markets: MNGO spot pumped ~10x within minutes on thin venues.
#[test]
fn mango_pump_two_of_five_sources_leave_the_mark_with_the_honest_three() {
    let mut engine = mngo_engine();
    let mut seq = 0;
    let mut step = |engine: &mut Engine, text: String| {
        seq += 1;
        line(engine, seq, &text)
    };
    let honest = ["s1", "s2", "s3"];
    let pumped = ["s4", "s5"];
    for second in 0..=300u64 {
        let now = 1_000 + second * 1_000;
        step(&mut engine, format!(r#"{{"type":"clock","ts":{now}}}"#));
        // The pump: from 0.038 to about 0.38 over five minutes on the two thin venues.
        let pumped_price = Price::from_raw(3_800_000 + 3_800_000 * 9 * second as i64 / 300);
        for source in pumped {
            step(
                &mut engine,
                format!(
                    r#"{{"type":"price","ts":{now},"market":"MNGO-PERP","source":"{source}","price":"{pumped_price}"}}"#
                ),
            );
        }
        for (i, source) in honest.iter().enumerate() {
            let p = Price::from_raw(3_800_000 + i as i64 * 1_000);
            step(
                &mut engine,
                format!(r#"{{"type":"price","ts":{now},"market":"MNGO-PERP","source":"{source}","price":"{p}"}}"#),
            );
        }
        let mark = btc(&engine).mark_price.unwrap();
        assert!(
            mark >= Price::from_raw(3_800_000) && mark <= Price::from_raw(3_802_000),
            "second {second}: mark {mark}"
        );
        assert!(!btc(&engine).frozen);
    }
    let dump = engine.market_dump("MNGO-PERP").unwrap();
    assert_eq!(dump.sources["s4"].status, "outlier");
    assert_eq!(dump.sources["s1"].status, "usable");
    assert!(dump.sources["s4"].counters.outlier >= 1);
}

/// Three of five follow a 10x pump in one tick: the majority moves the index, but the clamp holds
/// it to 10% per second of engine time, and `alert` effects flag every held step.
#[test]
fn mango_pump_three_of_five_is_rate_limited_by_the_clamp_and_flagged() {
    let mut engine = mngo_engine();
    let mut seq = 0u64;
    let mut all_effects = Vec::new();
    let mut run = |engine: &mut Engine, text: String| {
        seq += 1;
        let out = line(engine, seq, &text);
        all_effects.extend(out);
    };
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        run(
            &mut engine,
            format!(r#"{{"type":"price","ts":0,"market":"MNGO-PERP","source":"{source}","price":"0.038"}}"#),
        );
    }
    let start = btc(&engine).mark_price.unwrap();
    assert_eq!(start, price("0.038"));
    let mut marks = Vec::new();
    for second in 1..=40u64 {
        let now = second * 1_000;
        run(&mut engine, format!(r#"{{"type":"clock","ts":{now}}}"#));
        for source in ["s3", "s4", "s5"] {
            run(
                &mut engine,
                format!(r#"{{"type":"price","ts":{now},"market":"MNGO-PERP","source":"{source}","price":"0.38"}}"#),
            );
        }
        for source in ["s1", "s2"] {
            run(
                &mut engine,
                format!(r#"{{"type":"price","ts":{now},"market":"MNGO-PERP","source":"{source}","price":"0.038"}}"#),
            );
        }
        marks.push(btc(&engine).mark_price.unwrap());
    }
    // Each second the mark grows by at most 10% (plus one unit of rounding).
    let mut previous = start;
    for (second, mark) in marks.iter().enumerate() {
        let bound = Price::from_raw(previous.raw() + previous.raw() / 10 + 1);
        assert!(*mark <= bound, "second {}: {mark} > {bound}", second + 1);
        previous = *mark;
    }
    // 0.038 x 1.1^10 = 0.0986: ten seconds in, the mark is still far below the pumped 0.38.
    assert!(marks[9] < price("0.1"), "{}", marks[9]);
    assert_eq!(*marks.last().unwrap(), price("0.38"), "the majority wins in the end");
    let clamps = all_effects
        .iter()
        .filter(|e| matches!(&e.kind, EffectKind::Alert { alert, .. } if alert == "jump_clamped"))
        .count();
    assert!(clamps >= 20, "every clamped step is flagged: {clamps}");
}

/// Honest sources going silent: clock events age them out and freeze the market, holding the
/// mark, before any tick from a lone survivor can set a price.
#[test]
fn stale_sources_freeze_the_market_and_quorum_thaws_it() {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut seq = 0u64;
    let mut run = |engine: &mut Engine, text: &str| {
        seq += 1;
        line(engine, seq, text)
    };
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        run(
            &mut engine,
            &format!(r#"{{"type":"price","ts":0,"market":"BTC-PERP","source":"{source}","price":"10000"}}"#),
        );
    }
    assert!(!btc(&engine).frozen);
    assert!(run(&mut engine, r#"{"type":"clock","ts":5000}"#).is_empty(), "exactly max_age old is still fresh");
    let effects = run(&mut engine, r#"{"type":"clock","ts":5001}"#);
    let stale = effects
        .iter()
        .filter(|e| matches!(&e.kind, EffectKind::OracleRejected { reason, .. } if reason == "stale"))
        .count();
    assert_eq!(stale, 5, "{effects:?}");
    assert!(effects
        .iter()
        .any(|e| matches!(&e.kind, EffectKind::OracleFrozen { market, usable: 0, .. } if market == "BTC-PERP")));
    assert!(btc(&engine).frozen);
    // Twenty seconds of outage; then two live sources crash the price: below quorum, the mark holds.
    run(&mut engine, r#"{"type":"clock","ts":25000}"#);
    run(&mut engine, r#"{"type":"price","ts":25000,"market":"BTC-PERP","source":"s1","price":"4000"}"#);
    run(&mut engine, r#"{"type":"price","ts":25000,"market":"BTC-PERP","source":"s2","price":"4000"}"#);
    assert!(btc(&engine).frozen);
    assert_eq!(btc(&engine).mark_price, Some(price("10000")));
    // A third fresh source restores quorum: thawed at the fresh median.
    let effects = run(&mut engine, r#"{"type":"price","ts":25000,"market":"BTC-PERP","source":"s3","price":"4010"}"#);
    assert!(effects.iter().any(|e| matches!(e.kind, EffectKind::OracleThawed { usable: 3, .. })), "{effects:?}");
    assert!(!btc(&engine).frozen);
    // The clamp window grew with the 20 s outage (10% a second), so the index is not held back.
    assert_eq!(btc(&engine).index_price, Some(price("4000")));
}

#[test]
fn while_frozen_deposits_and_reductions_pass_withdrawals_and_new_exposure_do_not() {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut seq = 0u64;
    let mut run = |engine: &mut Engine, text: &str| {
        seq += 1;
        let out = line(engine, seq, text);
        out.iter().find_map(|e| e.rejection_kind().map(str::to_string))
    };
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        run(
            &mut engine,
            &format!(r#"{{"type":"price","ts":0,"market":"BTC-PERP","source":"{source}","price":"10000"}}"#),
        );
    }
    run(&mut engine, r#"{"type":"deposit","ts":0,"account":"a","asset":"USDC","amount":"100000"}"#);
    run(&mut engine, r#"{"type":"deposit","ts":0,"account":"b","asset":"USDC","amount":"100000"}"#);
    run(&mut engine, r#"{"type":"deposit","ts":0,"account":"c","asset":"USDC","amount":"100000"}"#);
    let open = r#"{"type":"trade","ts":0,"market":"BTC-PERP","buyer":"a","seller":"b","size":"2","price":"10000"}"#;
    assert_eq!(run(&mut engine, open), None);
    run(&mut engine, r#"{"type":"clock","ts":10000}"#);
    assert!(btc(&engine).frozen);
    assert_eq!(run(&mut engine, r#"{"type":"deposit","ts":10000,"account":"a","asset":"USDC","amount":"5"}"#), None);
    assert_eq!(
        run(&mut engine, r#"{"type":"withdraw","ts":10000,"account":"a","asset":"USDC","amount":"5"}"#).as_deref(),
        Some("market_frozen")
    );
    assert_eq!(
        run(&mut engine, r#"{"type":"withdraw","ts":10000,"account":"c","asset":"USDC","amount":"5"}"#),
        None,
        "an account with no exposure to the frozen price can leave"
    );
    let more = r#"{"type":"trade","ts":10000,"market":"BTC-PERP","buyer":"a","seller":"b","size":"1","price":"10000"}"#;
    assert_eq!(run(&mut engine, more).as_deref(), Some("market_frozen"));
    let reduce =
        r#"{"type":"trade","ts":10000,"market":"BTC-PERP","buyer":"b","seller":"a","size":"1","price":"10000"}"#;
    assert_eq!(run(&mut engine, reduce), None, "reducing exposure always passes");
    assert_eq!(engine.account("a").unwrap().positions[0].size, solvent_core::Size::ONE);
}

fn signed_engine(keys: &[SigningKey]) -> Engine {
    let mut toml = solvent_core::DEFAULT_CONFIG_TOML.to_string();
    let keyed: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(r#"{{ name = "s{}", public_key = "{}" }}"#, i + 1, hex::encode(k.verifying_key().to_bytes()))
        })
        .collect();
    toml =
        toml.replacen(r#"sources = ["s1", "s2", "s3", "s4", "s5"]"#, &format!("sources = [{}]", keyed.join(", ")), 1);
    Engine::new(&Config::from_toml(&toml).unwrap())
}

fn signed_tick(key: &SigningKey, source: &str, p: Price, ts: u64) -> Event {
    let signature = key.sign(&tick_message("BTC-PERP", source, p, ts));
    Event::Price(PriceTick {
        ts,
        market: "BTC-PERP".into(),
        source: source.into(),
        price: p,
        conf: None,
        sig: Some(hex::encode(signature.to_bytes())),
    })
}

#[test]
fn signed_sources_refuse_unsigned_forged_tampered_and_replayed_ticks() {
    let keys: Vec<SigningKey> = (1..=5u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
    let mut engine = signed_engine(&keys);
    for (i, key) in keys.iter().enumerate() {
        let (result, _) =
            apply(&mut engine, i as u64 + 1, &signed_tick(key, &format!("s{}", i + 1), price("10000"), 100));
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(btc(&engine).mark_price, Some(price("10000")));
    let hash = engine.state_hash();
    let unsigned = tick("BTC-PERP", "s1", price("1"), 200);
    let forged = signed_tick(&SigningKey::from_bytes(&[99; 32]), "s1", price("1"), 200);
    let other_source = signed_tick(&keys[1], "s1", price("1"), 200);
    let mut tampered = signed_tick(&keys[0], "s1", price("10000"), 200);
    if let Event::Price(t) = &mut tampered {
        t.price = price("1");
    }
    let replayed = signed_tick(&keys[0], "s1", price("10000"), 100);
    let cases = [
        (unsigned, "bad_signature"),
        (forged, "bad_signature"),
        (other_source, "bad_signature"),
        (tampered, "bad_signature"),
        (replayed, "replayed"),
    ];
    for (seq, (event, kind)) in cases.iter().enumerate() {
        let (result, out) = apply(&mut engine, 10 + seq as u64, event);
        assert_eq!(result.unwrap_err().kind(), *kind);
        assert!(out.is_empty());
        assert_eq!(engine.state_hash(), hash, "a refused tick changes nothing hashed");
    }
    let counters = engine.market_dump("BTC-PERP").unwrap().sources["s1"].counters;
    assert_eq!((counters.accepted, counters.bad_signature, counters.replayed), (1, 4, 1));
    // Through the JSON path the refusal is an `oracle_rejected` effect that names the reason.
    let Event::Price(t) = signed_tick(&keys[0], "s1", price("10001"), 300) else { unreachable!() };
    let bad_sig = "0".repeat(128);
    let text = format!(
        r#"{{"type":"price","ts":300,"market":"BTC-PERP","source":"s1","price":"{}","sig":"{bad_sig}"}}"#,
        t.price
    );
    let out = line(&mut engine, 20, &text);
    assert_eq!(out.len(), 1);
    assert!(out[0].to_json_line().contains(r#""reason":"bad_signature""#), "{}", out[0].to_json_line());
    let good = format!(
        r#"{{"type":"price","ts":300,"market":"BTC-PERP","source":"s1","price":"10001","sig":"{}"}}"#,
        t.sig.unwrap()
    );
    assert!(line(&mut engine, 21, &good).iter().all(|e| e.rejection_kind().is_none()));
}

#[test]
fn wide_confidence_makes_a_source_unusable_and_tight_confidence_weighs_more() {
    let mut engine = Engine::new(&Config::embedded_default());
    let conf_tick = |source: &str, p: &str, conf: &str| {
        format!(r#"{{"type":"price","ts":0,"market":"BTC-PERP","source":"{source}","price":"{p}","conf":"{conf}"}}"#)
    };
    let mut seq = 0;
    for (source, p, conf) in
        [("s1", "10000", "5"), ("s2", "10010", "1"), ("s3", "10020", "5"), ("s4", "10030", "5"), ("s5", "10040", "900")]
    {
        seq += 1;
        line(&mut engine, seq, &conf_tick(source, p, conf));
    }
    let dump = engine.market_dump("BTC-PERP").unwrap();
    assert_eq!(dump.sources["s5"].status, "wide_conf", "900 / 10040 is above max_conf 2%");
    // Usable: 10000, 10010 (tight), 10020, 10030: the weighted median picks the confident 10010,
    // inside the middle interval [10010, 10020].
    assert_eq!(dump.index_price, Some(price("10010")));
}
