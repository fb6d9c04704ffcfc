//! Attacks found by trying the engine as a hostile writer would, each reproduced exactly and
//! shown to be refused with the state unchanged (docs/security.md lists them).

use solvent_core::{Config, Effect, Engine};

fn apply(engine: &mut Engine, seq: &mut u64, line: &str) -> Vec<Effect> {
    *seq += 1;
    let mut out = Vec::new();
    engine.apply_line(*seq, line.as_bytes(), &mut out);
    out
}

fn accepted(engine: &mut Engine, seq: &mut u64, line: &str) {
    let out = apply(engine, seq, line);
    assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{line}: {out:?}");
}

/// Refused with `kind`, and the state hash did not move.
fn refused(engine: &mut Engine, seq: &mut u64, line: &str, kind: &str) {
    let before = engine.state_hash();
    let out = apply(engine, seq, line);
    assert_eq!(out.len(), 1, "{line}: {out:?}");
    assert_eq!(out[0].rejection_kind(), Some(kind), "{line}: {out:?}");
    assert_eq!(engine.state_hash(), before, "{line}: a refusal changes nothing");
}

/// BTC-PERP at 10,000 from all five sources at t = 1,000; alice and bob funded.
fn priced_engine(seq: &mut u64) -> Engine {
    let mut engine = Engine::new(&Config::embedded_default());
    accepted(&mut engine, seq, r#"{"type":"clock","ts":1000}"#);
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        let tick = format!(r#"{{"type":"price","ts":1000,"market":"BTC-PERP","source":"{source}","price":"10000"}}"#);
        accepted(&mut engine, seq, &tick);
    }
    for account in ["alice", "bob", "carol"] {
        let deposit =
            format!(r#"{{"type":"deposit","ts":2000,"account":"{account}","asset":"USDC","amount":"100000"}}"#);
        accepted(&mut engine, seq, &deposit);
    }
    engine
}

/// A deposit, a trade, an auction take or a clock event stamped u64::MAX used to be accepted;
/// every honest event after it was then `time_backwards` and every market froze. Now each is
/// refused (`clock_jump`) and the honest event that follows is accepted.
#[test]
fn clock_poisoning_with_u64_max_is_refused() {
    let mut seq = 0;
    let mut engine = priced_engine(&mut seq);
    let max = u64::MAX;
    let poison = [
        format!(r#"{{"type":"deposit","ts":{max},"account":"alice","asset":"USDC","amount":"1"}}"#),
        format!(
            r#"{{"type":"trade","ts":{max},"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1","price":"10000"}}"#
        ),
        format!(r#"{{"type":"auction_take","ts":{max},"auction":"1","bidder":"alice","size":"1"}}"#),
        format!(r#"{{"type":"clock","ts":{max}}}"#),
        format!(r#"{{"type":"fund_deposit","ts":{max},"amount":"1"}}"#),
        format!(r#"{{"type":"params","ts":{max},"market":"BTC-PERP","im_factor":"2"}}"#),
    ];
    for line in &poison {
        refused(&mut engine, &mut seq, line, "clock_jump");
    }
    assert_eq!(engine.last_ts(), 2000);
    accepted(&mut engine, &mut seq, r#"{"type":"deposit","ts":3000,"account":"alice","asset":"USDC","amount":"1"}"#);
    assert!(!engine.markets()[0].frozen, "the market stays live");
}

/// The bound is per event: one step of exactly `max_clock_jump_ms` is accepted, one unit more is
/// refused; a `clock` walk in steps crosses any gap.
#[test]
fn the_clock_moves_at_most_max_clock_jump_ms_per_event() {
    let mut seq = 0;
    let mut engine = priced_engine(&mut seq);
    let jump = engine.max_clock_jump_ms();
    assert_eq!(jump, 3_600_000, "documented default: one hour");
    let over = 2000 + jump + 1;
    refused(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{over}}}"#), "clock_jump");
    accepted(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{}}}"#, 2000 + jump));
    accepted(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{}}}"#, 2000 + 2 * jump));
    assert_eq!(engine.last_ts(), 2000 + 2 * jump);
}

/// The first event that sets the clock may start at a Unix time (journals do), but not beyond
/// 9999-12-31; a configured bound is honoured.
#[test]
fn the_first_clock_may_be_a_unix_time_but_not_u64_max() {
    let mut seq = 0;
    let mut engine = Engine::new(&Config::embedded_default());
    refused(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{}}}"#, u64::MAX), "clock_jump");
    let past_9999 = solvent_core::config::MAX_TS_MS + 1;
    refused(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{past_9999}}}"#), "clock_jump");
    accepted(&mut engine, &mut seq, r#"{"type":"clock","ts":1583971200000}"#);
    let toml = solvent_core::DEFAULT_CONFIG_TOML.replace("max_clock_jump_ms = 3600000", "max_clock_jump_ms = 10");
    let mut engine = Engine::new(&Config::from_toml(&toml).unwrap());
    accepted(&mut engine, &mut seq, r#"{"type":"clock","ts":1000}"#);
    refused(&mut engine, &mut seq, r#"{"type":"clock","ts":1011}"#, "clock_jump");
    accepted(&mut engine, &mut seq, r#"{"type":"clock","ts":1010}"#);
    assert!(Config::from_toml(&toml.replace("max_clock_jump_ms = 10", "max_clock_jump_ms = 0")).is_err());
}

/// Two colluding accounts open 1 BTC at 10,000 and close it at 0.00000001: the loser's deficit
/// of 8,999.99999999 would have been socialized over honest accounts and withdrawn by the
/// winner. The closing fill is now refused (`price_out_of_band`), so is an opening one, and
/// fills at the edge of the band are accepted.
#[test]
fn off_mark_closing_trade_is_refused() {
    let mut seq = 0;
    let mut engine = priced_engine(&mut seq);
    let open =
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1","price":"10000"}"#;
    accepted(&mut engine, &mut seq, open);
    let close = r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"bob","seller":"alice","size":"1","price":"0.00000001"}"#;
    refused(&mut engine, &mut seq, close, "price_out_of_band");
    let high = r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"carol","seller":"bob","size":"0.5","price":"11000.00000001"}"#;
    refused(&mut engine, &mut seq, high, "price_out_of_band");
    let low = r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"bob","seller":"alice","size":"0.5","price":"8999.99999999"}"#;
    refused(&mut engine, &mut seq, low, "price_out_of_band");
    let edge =
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"bob","seller":"alice","size":"1","price":"9000"}"#;
    accepted(&mut engine, &mut seq, edge);
    assert!(engine.account("alice").unwrap().positions.is_empty());
    assert_eq!(engine.bad_debt(), solvent_core::Quote::ZERO);
    // A params event narrows the band; the config file sets it per market.
    accepted(&mut engine, &mut seq, r#"{"type":"params","ts":3000,"market":"BTC-PERP","max_trade_deviation":"0.01"}"#);
    let open =
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1","price":"10101"}"#;
    refused(&mut engine, &mut seq, open, "price_out_of_band");
    for bad in ["0", "-0.1"] {
        let line = format!(r#"{{"type":"params","ts":3000,"market":"BTC-PERP","max_trade_deviation":"{bad}"}}"#);
        refused(&mut engine, &mut seq, &line, "invalid_params");
    }
}

/// `pairs` long/short pairs at about 10x on BTC-PERP (deposits vary a little, so that the
/// accounts fail over several ticks), then the price falls 10% a second for 7 s. Returns the
/// waterfall's work (accounts evaluated to rank or socialize), the bankruptcies and the ADL fills.
fn mass_bankruptcy(pairs: usize) -> (u64, usize, usize) {
    let mut seq = 0;
    let mut engine = priced_engine(&mut seq);
    // The embedded default's backstop (a full close under 1/3 of MM) would close many longs
    // before they are bankrupt; this measures the work of bankruptcies, so the rules are off.
    let rules_off = r#"{"type":"params","ts":2000,"market":"BTC-PERP","liquidation_buffer":"0","min_liquidation_notional":"0","liquidation_chunk_notional":"0","backstop_mm_fraction":"0","dust_equity":"0"}"#;
    accepted(&mut engine, &mut seq, rules_off);
    for i in 0..pairs {
        let margin = 1_000 + (i % 97) * 3;
        for side in ["long", "short"] {
            let deposit =
                format!(r#"{{"type":"deposit","ts":2000,"account":"{side}{i}","asset":"USDC","amount":"{margin}"}}"#);
            accepted(&mut engine, &mut seq, &deposit);
        }
        let trade = format!(
            r#"{{"type":"trade","ts":2000,"market":"BTC-PERP","buyer":"long{i}","seller":"short{i}","size":"1","price":"10000"}}"#
        );
        accepted(&mut engine, &mut seq, &trade);
    }
    let work_before = engine.waterfall_work();
    let (mut bankruptcies, mut adl) = (0, 0);
    let mut price = 10_000u64;
    for second in 1..=7u64 {
        price = price * 9 / 10;
        let ts = 2000 + second * 1000;
        let mut effects = apply(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{ts}}}"#));
        for source in ["s1", "s2", "s3", "s4", "s5"] {
            let tick =
                format!(r#"{{"type":"price","ts":{ts},"market":"BTC-PERP","source":"{source}","price":"{price}"}}"#);
            effects.extend(apply(&mut engine, &mut seq, &tick));
        }
        assert!(effects.iter().all(|e| e.rejection_kind().is_none()), "{effects:?}");
        bankruptcies += effects.iter().filter(|e| e.type_name() == "bankruptcy").count();
        adl += effects.iter().filter(|e| e.type_name() == "adl").count();
    }
    (engine.waterfall_work() - work_before, bankruptcies, adl)
}

/// N bankruptcies in one event used to rank every holder again for each (O(N²): 0.9 s at 4,000
/// accounts, over 300 s at 100,000). The waterfall's work now grows linearly with the book:
/// four times the accounts, at most 4.5 times the work, and a small constant per account.
#[test]
fn mass_bankruptcy_work_grows_linearly() {
    let (small_work, small_bankrupt, small_adl) = mass_bankruptcy(250);
    let (large_work, large_bankrupt, large_adl) = mass_bankruptcy(1_000);
    assert!(
        small_bankrupt >= 200 && large_bankrupt >= 800,
        "most longs go bankrupt: {small_bankrupt}, {large_bankrupt}"
    );
    assert!(small_adl > 0 && large_adl >= 4 * small_adl - 10, "ADL absorbs them: {small_adl}, {large_adl}");
    eprintln!(
        "work {small_work} / {large_work}, bankrupt {small_bankrupt} / {large_bankrupt}, adl {small_adl} / {large_adl}"
    );
    let accounts = 2 * 1_000 + 3;
    assert!(large_work <= 4 * accounts as u64, "work {large_work} for {accounts} accounts");
    assert!(large_work * 2 <= small_work * 9, "work {small_work} -> {large_work} for 4x the accounts");
}

/// With the trade-basis mark on, trades of 0.00000001 BTC used to move the mark to its cap as far
/// as large ones. The EMA step is now weighted by the trade's share of the open interest.
#[test]
fn dust_trades_do_not_move_the_ema_mark() {
    let mut seq = 0;
    let mut engine = priced_engine(&mut seq);
    accepted(&mut engine, &mut seq, r#"{"type":"params","ts":2000,"market":"BTC-PERP","mark_ema_ms":1000}"#);
    let open =
        r#"{"type":"trade","ts":2000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"10","price":"10000"}"#;
    accepted(&mut engine, &mut seq, open);
    let mark = |engine: &Engine| engine.markets()[0].mark_price.unwrap();
    let price = |text: &str| solvent_core::Price::parse(text).unwrap();
    for i in 0..50u64 {
        let ts = 3000 + i * 1000;
        accepted(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{ts}}}"#));
        for source in ["s1", "s2", "s3", "s4", "s5"] {
            let tick =
                format!(r#"{{"type":"price","ts":{ts},"market":"BTC-PERP","source":"{source}","price":"10000"}}"#);
            accepted(&mut engine, &mut seq, &tick);
        }
        let dust = format!(
            r#"{{"type":"trade","ts":{ts},"market":"BTC-PERP","buyer":"carol","seller":"bob","size":"0.00000001","price":"10999"}}"#
        );
        accepted(&mut engine, &mut seq, &dust);
        // A dust share of the way (1e-9 of the basis of 999): under 1e-6 a trade, where one such
        // trade used to move the mark to its cap of 10,200.
        assert!(mark(&engine) <= price("10000.0001"), "dust trade {i} moved the mark to {}", mark(&engine));
    }
    // A trade as large as the open interest still moves it, up to the cap (2% of the index).
    let ts = 3000 + 50 * 1000;
    accepted(&mut engine, &mut seq, &format!(r#"{{"type":"clock","ts":{ts}}}"#));
    let large = format!(
        r#"{{"type":"trade","ts":{ts},"market":"BTC-PERP","buyer":"carol","seller":"bob","size":"10","price":"10999"}}"#
    );
    accepted(&mut engine, &mut seq, &large);
    assert_eq!(mark(&engine), price("10200"));
}

/// A global deposit counter as wide as one account's balance overflowed when one account
/// reached its limit, and then every deposit by anyone was refused. The limit now stops the one
/// account (`balance_limit` for the settlement asset, `overflow` past a collateral
/// balance's type) and everyone else keeps depositing.
#[test]
fn one_account_at_its_limit_does_not_stop_other_deposits() {
    let mut seq = 0;
    let mut engine = priced_engine(&mut seq);
    let max_btc = solvent_core::Size::from_raw(i64::MAX).to_string();
    let whale = format!(r#"{{"type":"deposit","ts":3000,"account":"whale","asset":"BTC","amount":"{max_btc}"}}"#);
    accepted(&mut engine, &mut seq, &whale);
    refused(
        &mut engine,
        &mut seq,
        r#"{"type":"deposit","ts":3000,"account":"whale","asset":"BTC","amount":"1"}"#,
        "overflow",
    );
    accepted(&mut engine, &mut seq, r#"{"type":"deposit","ts":3000,"account":"alice","asset":"BTC","amount":"1"}"#);
    let limit = solvent_core::transfer::MAX_SETTLEMENT_BALANCE;
    let usdc = format!(r#"{{"type":"deposit","ts":3000,"account":"whale","asset":"USDC","amount":"{limit}"}}"#);
    accepted(&mut engine, &mut seq, &usdc);
    let more = r#"{"type":"deposit","ts":3000,"account":"whale","asset":"USDC","amount":"0.0000000000000001"}"#;
    refused(&mut engine, &mut seq, more, "balance_limit");
    accepted(&mut engine, &mut seq, r#"{"type":"deposit","ts":3000,"account":"bob","asset":"USDC","amount":"1"}"#);
    accepted(&mut engine, &mut seq, r#"{"type":"fund_deposit","ts":3000,"amount":"1"}"#);
}
