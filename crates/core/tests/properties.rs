//! Property tests of the core engine against the reference evaluator and the invariants of
//! docs/concepts.md, over random event sequences through the real `apply` / `apply_line` paths;
//! plus fixed scenarios checked against hand-computed numbers from docs/concepts.md.

mod support;

use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use solvent_core::config::{MarketParams, TierBasis, TierMode};
use solvent_core::event::{PriceTick, Trade, Transfer};
use solvent_core::margin::Health;
use solvent_core::{Config, Engine, Event, Price, Quote, Rate, Size};
use std::collections::BTreeMap;
use std::sync::Mutex;
use support::gen::{self, Resolver, Scenario};
use support::reference;
use support::{check_all, Expect, Harness, Outcome, Step};

// ---------------------------------------------------------------------------------------------
// The main property.

/// What the sequences exercised, tallied over a whole run (printed, and checked for coverage).
static TALLY: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn event_type(step: &Step) -> &'static str {
    match step.meaning() {
        Some(Event::Deposit(_)) => "deposit",
        Some(Event::Withdraw(_)) => "withdraw",
        Some(Event::Price(_)) => "price",
        Some(Event::Trade(_)) => "trade",
        Some(Event::Params(_)) => "params",
        Some(Event::Clock { .. }) => "clock",
        Some(Event::AuctionTake(_)) => "auction_take",
        Some(Event::CollateralTake(_)) => "collateral_take",
        Some(Event::FundDeposit { .. }) => "fund_deposit",
        Some(Event::Signal(_)) => "signal",
        Some(Event::IsolatedMargin(_)) => "isolated_margin",
        Some(Event::MarginModel(_)) => "margin_model",
        Some(Event::AssetStatus(_)) => "asset_status",
        None => "raw_line",
    }
}

/// How an accepted trade changed a party's position.
fn position_change(before: i64, after: i64) -> &'static str {
    match (before, after) {
        (0, _) => "open",
        (_, 0) => "close",
        (b, a) if (b > 0) != (a > 0) => "flip",
        (b, a) if a.abs() > b.abs() => "add",
        _ => "reduce",
    }
}

/// Run one scenario with every check after every event, then the determinism checks.
fn run_scenario(scenario: &Scenario) -> Result<BTreeMap<String, u64>, String> {
    let mut tally = BTreeMap::<String, u64>::new();
    let config = gen::property_config();
    let mut harness = Harness::new(&config);
    let mut resolver = Resolver::new(scenario);
    let (deposits, ticks) = resolver.opening();
    let opening_deposits = deposits.len();
    for step in deposits.into_iter().chain(ticks) {
        harness.step(step)?;
    }
    for timed in &scenario.ops {
        for step in resolver.resolve(timed, &harness.engine) {
            apply_and_tally(&mut harness, step, &mut tally)?;
        }
    }
    let positions: usize = harness.engine.accounts().iter().map(|a| a.positions.len()).sum();
    *tally.entry("open positions at end".into()).or_default() += positions as u64;
    // Invariant 4: a second fresh engine gives byte-identical effects and the same hash after
    // every event; and the hash does not depend on the order in which the opening deposits
    // created the accounts.
    harness.replay_check(&config, None, true)?;
    let order = resolver.shuffled_order(opening_deposits);
    harness.replay_check(&config, Some(&order), false).map_err(|e| format!("account creation order: {e}"))?;
    Ok(tally)
}

/// Apply one step (all checks run inside the harness) and count what it exercised.
fn apply_and_tally(harness: &mut Harness, step: Step, tally: &mut BTreeMap<String, u64>) -> Result<(), String> {
    let kind = event_type(&step);
    let via = if matches!(step.input, support::Input::Event(_)) { "apply" } else { "line" };
    let sizes_before = trade_sizes(&harness.engine, &step);
    let effects_before = harness.effects.len();
    let steps_before: Vec<u64> = phase_steps(&harness.engine);
    let outcome = harness.step(step)?;
    // MM phase-ins: events run while one is in progress, and steps that moved the effective rates.
    let steps_after = phase_steps(&harness.engine);
    if harness.engine.markets().iter().any(|m| m.phase_in.is_some()) {
        *tally.entry("phase-in running".into()).or_default() += 1;
    }
    if steps_before.iter().zip(&steps_after).any(|(b, a)| a > b) {
        *tally.entry("phase-in step".into()).or_default() += 1;
    }
    let label = match &outcome {
        Outcome::Accepted => "accepted".to_string(),
        Outcome::Rejected(kind) => kind.clone(),
    };
    *tally.entry(format!("{kind}: {label}")).or_default() += 1;
    *tally.entry(format!("path {via}")).or_default() += 1;
    for effect in &harness.effects[effects_before..] {
        *tally.entry(format!("effect {}", effect.type_name())).or_default() += 1;
        if matches!(effect.kind, solvent_core::EffectKind::AuctionFill { rebate: Some(_), .. }) {
            *tally.entry("effect auction_fill with a rebate".into()).or_default() += 1;
        }
        if let solvent_core::EffectKind::Liquidation { account, .. } = &effect.kind {
            let portfolio = harness.engine.account(account).is_some_and(|a| !a.margin_model.is_tiered());
            if portfolio {
                *tally.entry("effect liquidation of a portfolio-margined account".into()).or_default() += 1;
            }
        }
        if let solvent_core::EffectKind::Insurance { reason, .. } = &effect.kind {
            *tally.entry(format!("effect insurance {reason}")).or_default() += 1;
        }
    }
    let event_effects = &harness.effects[effects_before..];
    let weight_step = event_effects.iter().any(|e| matches!(e.kind, solvent_core::EffectKind::AssetWeight { .. }));
    if weight_step && event_effects.iter().any(|e| matches!(e.kind, solvent_core::EffectKind::Liquidation { .. })) {
        *tally.entry("liquidation at a weight step".into()).or_default() += 1;
    }
    if harness.engine.markets().iter().any(|m| !m.liquidations.is_empty()) {
        *tally.entry("chunk episode open".into()).or_default() += 1;
    }
    if let (Outcome::Accepted, Some(Event::Trade(t))) = (&outcome, harness.steps.last().unwrap().meaning()) {
        if t.buyer_isolated || t.seller_isolated {
            *tally.entry("trade isolated: accepted".into()).or_default() += 1;
        }
    }
    if let (Outcome::Accepted, Some(before)) = (&outcome, sizes_before) {
        let after = trade_sizes(&harness.engine, harness.steps.last().unwrap()).unwrap();
        for (b, a) in before.iter().zip(after) {
            *tally.entry(format!("trade position {}", position_change(*b, a))).or_default() += 1;
        }
    }
    Ok(())
}

/// Per market, the steps its running MM phase-in has taken (0 when none runs).
fn phase_steps(engine: &Engine) -> Vec<u64> {
    engine.markets().iter().map(|m| m.phase_in.as_ref().map_or(0, |p| p.steps)).collect()
}

/// Buyer and seller sizes in the market of a trade step (None for other steps or unknown names).
fn trade_sizes(engine: &Engine, step: &Step) -> Option<[i64; 2]> {
    let Some(Event::Trade(trade)) = step.meaning() else { return None };
    let market = engine.market_id(&trade.market).ok()?;
    let size = |name: &str, isolated: bool| {
        let wallet = solvent_core::event::isolated_account(name, &trade.market);
        engine.account(if isolated { &wallet } else { name }).map(|a| a.size(market).raw())
    };
    Some([size(&trade.buyer, trade.buyer_isolated)?, size(&trade.seller, trade.seller_isolated)?])
}

/// Sequences per test run: 1,000 (PROPTEST_CASES overrides it, e.g. for a longer soak).
fn total_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

/// `cases` random sequences, each checked by [`run_scenario`]; proptest shrinks a failure.
fn run_property(cases: u32) -> Result<(), String> {
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&gen::scenario(16..=40), |scenario| {
        let tally = run_scenario(&scenario).map_err(TestCaseError::fail)?;
        let mut total = TALLY.lock().unwrap();
        for (key, n) in tally {
            *total.entry(key).or_default() += n;
        }
        *total.entry("sequences".into()).or_default() += 1;
        Ok(())
    });
    result.map_err(|error| error.to_string())
}

/// The main property: after every event of every sequence, the reference equals the engine for
/// every account (equity, unrealized PnL, equity without profit, MM, IM), conservation and
/// zero-sum hold, a refused event changed nothing, the outcome agrees with the reference's
/// admission rules; and per sequence, a replay is byte-identical and the hash does not depend on
/// the order in which accounts were created. The 1,000 sequences are split over the available
/// cores (each worker is an independent proptest runner with its own seed and shrinking).
#[test]
fn engine_matches_reference_and_invariants_hold_on_random_sequences() {
    let cases = total_cases();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4) as u32;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let share = cases / workers + u32::from(w < cases % workers);
                scope.spawn(move || run_property(share))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().expect("worker panicked").err()).collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let tally = TALLY.lock().unwrap().clone();
    for (key, n) in &tally {
        println!("{n:>8}  {key}");
    }
    // The generator must reach the interesting paths, or the property proves little.
    let at_least = [
        ("sequences", 1000),
        ("path apply", 8_000),
        ("path line", 8_000),
        ("deposit: accepted", 1_000),
        ("fund_deposit: accepted", 100),
        ("price: accepted", 8_000),
        ("trade: accepted", 1_500),
        ("trade: insufficient_margin", 1_500),
        ("trade: market_frozen", 200),
        ("trade: no_mark_price", 100),
        ("trade: unknown_account", 100),
        ("trade position open", 2_000),
        ("trade position add", 110),
        ("trade position reduce", 200),
        ("trade position close", 80),
        ("trade position flip", 110), // 140-206 over five runs with the margin-model ops
        ("withdraw: accepted", 400),
        ("withdraw: withdrawal_exceeds_free_collateral", 60),
        ("withdraw: insufficient_balance", 300),
        ("params: accepted", 400),
        ("params: invalid_params", 100),
        ("phase-in running", 700), // 944-1,242 over four runs since the asset-status ops joined the mix
        ("signal: accepted", 150),
        ("effect liquidity_incentive", 50),
        ("phase-in step", 50),
        ("trade: open_interest_cap", 5),
        ("clock: time_backwards", 15),
        ("raw_line: invalid_json", 25),
        ("effect oracle_frozen", 200),
        ("effect liquidation", 12),
        ("chunk episode open", 100),
        ("effect funding", 100),
        ("isolated_margin: accepted", 150),
        ("margin_model: accepted", 300),
        ("margin_model: margin_model_refused", 5),
        ("trade isolated: accepted", 10),
        ("collateral_take: collateral_holdings_exceeded", 100),
        ("collateral_take: not_collateral_asset", 30),
        ("asset_status: accepted", 100),
        ("asset_status: unknown_asset", 5),
        ("raw_line: unknown_asset_status", 5),
        ("effect asset_weight", 100),
        ("open positions at end", 2_000),
    ];
    let missing: Vec<String> = at_least
        .iter()
        .map(|(key, min)| (key, min * u64::from(cases) / 1000))
        .filter(|(key, min)| tally.get(**key).copied().unwrap_or(0) < *min)
        .map(|(key, min)| format!("{key}: {} < {min}", tally.get(*key).copied().unwrap_or(0)))
        .collect();
    assert!(missing.is_empty(), "the generator did not cover: {missing:?}");
}

/// The state hash is canonical: listing the config's markets and assets in another order gives the
/// same hash after every event (hash.rs: "independent of insertion order, config order and hash-map
/// order"). Sequences are resolved without the reference checks (the main property runs those),
/// then replayed on a reversed config.
#[test]
fn state_hash_ignores_config_order_on_random_sequences() {
    let config = ProptestConfig { cases: total_cases() / 5, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&gen::scenario(16..=40), |scenario| {
        let mut harness = Harness::new(&gen::property_config());
        harness.check_every_step = false;
        let mut resolver = Resolver::new(&scenario);
        let (deposits, ticks) = resolver.opening();
        let run = |harness: &mut Harness, step: Step| harness.step(step).map(|_| ()).map_err(TestCaseError::fail);
        for step in deposits.into_iter().chain(ticks) {
            run(&mut harness, step)?;
        }
        for timed in &scenario.ops {
            for step in resolver.resolve(timed, &harness.engine) {
                run(&mut harness, step)?;
            }
        }
        let mut reversed = gen::property_config();
        reversed.markets.reverse();
        reversed.assets.reverse();
        harness.replay_check(&reversed, None, false).map_err(TestCaseError::fail)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed scenarios (hand-computed from the formulas of docs/concepts.md).

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}

fn price_line(ts: u64, market: &str, source: &str, price: &str) -> Step {
    Step::line_of(Event::Price(PriceTick {
        ts,
        market: market.into(),
        source: source.into(),
        price: Price::parse(price).unwrap(),
        conf: None,
        sig: None,
    }))
}

fn deposit(ts: u64, account: &str, asset: &str, amount: &str) -> Event {
    Event::Deposit(Transfer { ts, account: account.into(), asset: asset.into(), amount: q(amount) })
}

fn trade(ts: u64, market: &str, buyer: &str, seller: &str, size: &str, price: &str) -> Event {
    Event::Trade(Trade {
        ts,
        market: market.into(),
        buyer: buyer.into(),
        seller: seller.into(),
        size: Size::parse(size).unwrap(),
        price: Price::parse(price).unwrap(),
        buyer_fee: Quote::ZERO,
        seller_fee: Quote::ZERO,
        buyer_isolated: false,
        seller_isolated: false,
    })
}

fn health(harness: &Harness, name: &str) -> Health {
    harness.engine.health(name).unwrap()
}

#[test]
fn design_example_alice_300_btc() {
    let mut h = Harness::default_config();
    for source in ["s1", "s2", "s3"] {
        h.step(price_line(1_000, "BTC-PERP", source, "10000").expect(Expect::Accept)).unwrap();
    }
    h.step(Step::event(deposit(2_000, "alice", "USDC", "400000")).expect(Expect::Accept)).unwrap();
    h.step(Step::line_of(deposit(2_000, "bob", "USDC", "1000000")).expect(Expect::Accept)).unwrap();
    h.step(Step::line_of(trade(3_000, "BTC-PERP", "alice", "bob", "300", "10000")).expect(Expect::Accept)).unwrap();

    let alice = health(&h, "alice");
    assert_eq!(alice.equity, q("400000"));
    assert_eq!(alice.unrealized_pnl, Quote::ZERO);
    // (50 x 2.5% + 200 x 5% + 50 x 10%) x 10,000 = 162,500; IM = 2 x MM.
    assert_eq!(alice.maintenance_margin, q("162500"));
    assert_eq!(alice.initial_margin, q("325000"));
    assert_eq!(health(&h, "bob").maintenance_margin, q("162500"));

    for source in ["s1", "s2", "s3"] {
        h.step(price_line(4_000, "BTC-PERP", source, "9500").expect(Expect::Accept)).unwrap();
    }
    let alice = health(&h, "alice");
    assert_eq!(alice.unrealized_pnl, q("-150000"));
    assert_eq!(alice.equity, q("250000"));
    assert_eq!(alice.equity_without_profit, q("250000"));
    // (50 x 2.5% + 200 x 5% + 50 x 10%) x 9,500 = 154,375.
    assert_eq!(alice.maintenance_margin, q("154375"));
    assert_eq!(alice.initial_margin, q("308750"));
    let bob = health(&h, "bob");
    assert_eq!(bob.unrealized_pnl, q("150000"));
    assert_eq!(bob.equity, q("1150000"));
    assert_eq!(bob.equity_without_profit, q("1000000"), "paper profit does not count for withdrawals");

    // A withdrawal of 100,000 by alice is rejected and the state hash is unchanged (both paths).
    let hash = h.engine.state_hash();
    let withdraw =
        Event::Withdraw(Transfer { ts: 5_000, account: "alice".into(), asset: "USDC".into(), amount: q("100000") });
    let mut out = Vec::new();
    let error = h.engine.apply(99, &withdraw, &mut out).unwrap_err();
    assert_eq!(error.kind(), "withdrawal_exceeds_free_collateral");
    assert!(out.is_empty());
    assert_eq!(h.engine.state_hash(), hash);
    h.step(Step::line_of(withdraw).expect(Expect::Reject("withdrawal_exceeds_free_collateral"))).unwrap();
    assert_eq!(h.engine.state_hash(), hash);
    let effect = h.effects.last().unwrap().to_json_line();
    assert!(effect.contains(r#""error":"withdrawal_exceeds_free_collateral""#), "{effect}");

    // Bob's free collateral is 1,000,000 - 308,750 (his 150,000 of paper profit is not free).
    let free =
        Event::Withdraw(Transfer { ts: 5_000, account: "bob".into(), asset: "USDC".into(), amount: q("691250") });
    let over = Event::Withdraw(Transfer {
        ts: 5_000,
        account: "bob".into(),
        asset: "USDC".into(),
        amount: q("691250.0000000000000001"),
    });
    h.step(Step::event(over).expect(Expect::Reject("withdrawal_exceeds_free_collateral"))).unwrap();
    h.step(Step::event(free).expect(Expect::Accept)).unwrap();
    let bob = health(&h, "bob");
    assert_eq!(bob.equity_without_profit, bob.initial_margin);
    check_all(&h.engine, &h.ledger).unwrap();
    h.replay_check(&Config::embedded_default(), None, true).unwrap();
}

#[test]
fn design_example_1200_btc_marginal_and_whole() {
    let mut h = Harness::default_config();
    for source in ["s1", "s2", "s3"] {
        h.step(price_line(0, "BTC-PERP", source, "20000").expect(Expect::Accept)).unwrap();
    }
    h.step(Step::event(deposit(0, "carol", "USDC", "10000000")).expect(Expect::Accept)).unwrap();
    h.step(Step::event(deposit(0, "dave", "USDC", "10000000")).expect(Expect::Accept)).unwrap();
    h.step(Step::event(trade(0, "BTC-PERP", "carol", "dave", "1200", "20000")).expect(Expect::Accept)).unwrap();
    // (50 x 2.5% + 200 x 5% + 750 x 10% + 200 x 20%) x 20,000 = 2,525,000.
    assert_eq!(health(&h, "carol").maintenance_margin, q("2525000"));
    assert_eq!(health(&h, "dave").maintenance_margin, q("2525000"));
    let whole = r#"{"type":"params","ts":0,"market":"BTC-PERP","tier_mode":"whole"}"#;
    h.step(Step::raw(whole).expect(Expect::Accept)).unwrap();
    // 1,200 x 20% x 20,000 = 4,800,000.
    assert_eq!(health(&h, "carol").maintenance_margin, q("4800000"));
    assert_eq!(health(&h, "carol").initial_margin, q("9600000"));
}

#[test]
fn reference_reproduces_the_design_numbers_on_its_own() {
    let params = Config::embedded_default().markets[0].params.clone();
    let mm = |params: &MarketParams, size: &str, mark: &str| {
        let exact = reference::exact_position_mm(params, Size::parse(size).unwrap(), Price::parse(mark).unwrap());
        reference::show(&exact)
    };
    assert_eq!(mm(&params, "300", "10000"), "162500");
    assert_eq!(mm(&params, "-300", "10000"), "162500");
    assert_eq!(mm(&params, "300", "9500"), "154375");
    assert_eq!(mm(&params, "1200", "20000"), "2525000");
    assert_eq!(mm(&params, "50", "1"), "1.25");
    assert_eq!(mm(&params, "0.00000001", "0.00000001"), "0.0000000000000000025");
    let whole = MarketParams { tier_mode: TierMode::Whole, ..params.clone() };
    assert_eq!(mm(&whole, "1200", "20000"), "4800000");
    // Bracket b contains x when from_b <= x < from_{b+1}: exactly 50 is in the 5% bracket.
    assert_eq!(mm(&whole, "50", "1"), "2.5");
    assert_eq!(mm(&whole, "49.99999999", "1"), "1.24999999975");
    // Binance form on notional brackets: MM = notional x rate - maintenance amount.
    let mut notional = params.clone();
    notional.tier_basis = TierBasis::Notional;
    for (tier, from) in notional.tiers.iter_mut().zip(["0", "500000", "2500000", "10000000"]) {
        tier.from_raw = q(from).raw();
    }
    assert_eq!(mm(&notional, "300", "10000"), "162500");
    assert_eq!(mm(&MarketParams { tier_mode: TierMode::Whole, ..notional }, "300", "10000"), "300000");
    // Rounding: MM rounds up and equity down, to 1e-16.
    let third = num_rational::BigRational::new(1.into(), 3.into());
    assert_eq!(reference::show_raw(&reference::to_quote_raw(&third, true)), "0.3333333333333334");
    assert_eq!(reference::show_raw(&reference::to_quote_raw(&third, false)), "0.3333333333333333");
    assert_eq!(reference::show_raw(&reference::to_quote_raw(&-third, false)), "-0.3333333333333334");
}

#[test]
fn state_hash_ignores_account_creation_order_and_config_order() {
    let events = |names: &[&str]| -> Vec<Event> {
        let mut list: Vec<Event> = names.iter().map(|n| deposit(7, n, "USDC", "1000.5")).collect();
        list.push(deposit(7, "bob", "BTC", "0.25"));
        list
    };
    let mut forward = Harness::default_config();
    for event in events(&["alice", "bob", "carol"]) {
        forward.step(Step::event(event).expect(Expect::Accept)).unwrap();
    }
    let mut config = Config::embedded_default();
    config.markets.reverse();
    config.assets.reverse();
    let mut backward = Harness::new(&config);
    for event in events(&["carol", "bob", "alice"]) {
        backward.step(Step::line_of(event).expect(Expect::Accept)).unwrap();
    }
    assert_eq!(forward.engine.state_hash(), backward.engine.state_hash());
    // ... and it does depend on the state: one more unit somewhere changes it.
    backward.step(Step::event(deposit(7, "alice", "USDC", "0.0000000000000001"))).unwrap();
    assert_ne!(forward.engine.state_hash(), backward.engine.state_hash());
}

/// Two liquidations in one event, in two markets: the auctions they start get ids. The state hash
/// covers the ids, so they must not depend on the order of markets in the config (hash.rs promises
/// a hash independent of config order), and the same auction must get the same id.
#[test]
fn auction_ids_do_not_depend_on_config_order() {
    let events = [
        r#"{"type":"price","ts":0,"market":"BTC-PERP","source":"s1","price":"10000"}"#,
        r#"{"type":"price","ts":0,"market":"BTC-PERP","source":"s2","price":"10000"}"#,
        r#"{"type":"price","ts":0,"market":"BTC-PERP","source":"s3","price":"10000"}"#,
        r#"{"type":"price","ts":0,"market":"SOL-PERP","source":"s1","price":"20"}"#,
        r#"{"type":"price","ts":0,"market":"SOL-PERP","source":"s2","price":"20"}"#,
        r#"{"type":"price","ts":0,"market":"SOL-PERP","source":"s3","price":"20"}"#,
        r#"{"type":"deposit","ts":0,"account":"bob","asset":"USDC","amount":"10000000"}"#,
        r#"{"type":"deposit","ts":0,"account":"alice","asset":"USDC","amount":"5000"}"#,
        r#"{"type":"deposit","ts":0,"account":"carol","asset":"BTC","amount":"1"}"#,
        // alice: long 10 BTC-PERP (IM 5,000 = her equity). carol: long 8,000 SOL-PERP on 1 BTC of
        // collateral (9,000 at weight 0.9; IM 8,000).
        r#"{"type":"trade","ts":1,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"10","price":"10000"}"#,
        r#"{"type":"trade","ts":1,"market":"SOL-PERP","buyer":"carol","seller":"bob","size":"8000","price":"20"}"#,
        // SOL -3%: carol's equity 4,200 vs MM 3,880: still healthy.
        r#"{"type":"price","ts":2,"market":"SOL-PERP","source":"s1","price":"19.4"}"#,
        r#"{"type":"price","ts":2,"market":"SOL-PERP","source":"s2","price":"19.4"}"#,
        r#"{"type":"price","ts":2,"market":"SOL-PERP","source":"s3","price":"19.4"}"#,
        // BTC -5%: alice's equity 0 and carol's 3,750 (collateral 8,550) are both below MM, in the
        // same event (the tick that brings quorum back at 9,500).
        r#"{"type":"price","ts":3,"market":"BTC-PERP","source":"s1","price":"9500"}"#,
        r#"{"type":"price","ts":3,"market":"BTC-PERP","source":"s2","price":"9500"}"#,
        r#"{"type":"price","ts":3,"market":"BTC-PERP","source":"s3","price":"9500"}"#,
    ];
    let run = |config: &Config| {
        let mut engine = Engine::new(config);
        let mut out = Vec::new();
        for (i, line) in events.iter().enumerate() {
            engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
        }
        let rejected: Vec<String> =
            out.iter().filter(|e| e.rejection_kind().is_some()).map(|e| e.to_json_line()).collect();
        assert!(rejected.is_empty(), "{rejected:?}");
        let auctions: BTreeMap<String, u64> =
            engine.markets().iter().filter_map(|m| m.auction.map(|a| (m.name.to_string(), a.id))).collect();
        (engine.state_hash(), auctions)
    };
    let config = Config::embedded_default();
    let mut reversed = config.clone();
    reversed.markets.reverse();
    reversed.assets.reverse();
    let (hash, auctions) = run(&config);
    assert_eq!(auctions.len(), 2, "both liquidations start an auction: {auctions:?}");
    let (hash_reversed, auctions_reversed) = run(&reversed);
    assert_eq!(auctions, auctions_reversed, "auction ids depend on the order of markets in the config");
    assert_eq!(hash, hash_reversed);
}

/// `Engine::apply` is a public entry point: an `Event` value that the line parser would refuse
/// (non-positive amount, price or size, negative fee) must be refused by `apply` too, cleanly.
#[test]
fn typed_events_are_validated_like_lines() {
    let mut base = Harness::default_config();
    for source in ["s1", "s2", "s3"] {
        base.step(price_line(0, "BTC-PERP", source, "10000")).unwrap();
    }
    base.step(Step::event(deposit(0, "alice", "USDC", "100000"))).unwrap();
    base.step(Step::event(deposit(0, "bob", "USDC", "100000"))).unwrap();
    let transfer = |kind: &str, amount: i128| {
        let t = Transfer { ts: 0, account: "alice".into(), asset: "USDC".into(), amount: Quote::from_raw(amount) };
        if kind == "deposit" {
            Event::Deposit(t)
        } else {
            Event::Withdraw(t)
        }
    };
    let bad_trade = |edit: &dyn Fn(&mut Trade)| {
        let Event::Trade(mut t) = trade(0, "BTC-PERP", "alice", "bob", "1", "10000") else { unreachable!() };
        edit(&mut t);
        Event::Trade(t)
    };
    let tick = |price: i64| {
        Event::Price(PriceTick {
            ts: 0,
            market: "BTC-PERP".into(),
            source: "s4".into(),
            price: Price::from_raw(price),
            conf: None,
            sig: None,
        })
    };
    let cases: Vec<(&str, Event)> = vec![
        ("deposit of 0", transfer("deposit", 0)),
        ("deposit of -1", transfer("deposit", -1)),
        ("withdrawal of 0", transfer("withdraw", 0)),
        ("withdrawal of -5", transfer("withdraw", -5 * Quote::ONE_RAW)),
        ("price of 0", tick(0)),
        ("price of -1", tick(-Price::ONE_RAW)),
        ("trade size 0", bad_trade(&|t| t.size = Size::ZERO)),
        ("trade size -1", bad_trade(&|t| t.size = Size::from_raw(-Size::ONE_RAW))),
        ("trade price 0", bad_trade(&|t| t.price = Price::ZERO)),
        ("trade price -1", bad_trade(&|t| t.price = Price::from_raw(-Price::ONE_RAW))),
        ("buyer fee -1", bad_trade(&|t| t.buyer_fee = Quote::from_raw(-Quote::ONE_RAW))),
        ("seller fee -1", bad_trade(&|t| t.seller_fee = Quote::from_raw(-Quote::ONE_RAW))),
        ("fund deposit of 0", Event::FundDeposit { ts: 0, amount: Quote::ZERO }),
        ("fund deposit of -1", Event::FundDeposit { ts: 0, amount: Quote::from_raw(-Quote::ONE_RAW) }),
    ];
    let mut accepted = Vec::new();
    for (what, event) in cases {
        // The line form of each is refused by the parser.
        let line = support::json_line::to_json_line(&event);
        assert!(Event::parse_str(&line).is_err(), "{what}: the parser accepts {line}");
        let mut engine = base.engine.clone();
        let hash = engine.state_hash();
        let mut out = Vec::new();
        match engine.apply(1_000, &event, &mut out) {
            Ok(()) => accepted.push(format!("{what}: {line}")),
            Err(_) => {
                assert!(out.is_empty(), "{what}");
                assert_eq!(engine.state_hash(), hash, "{what}");
            }
        }
    }
    assert!(accepted.is_empty(), "Engine::apply accepted events the parser refuses:\n{}", accepted.join("\n"));
}

/// The checks themselves can fail: a ledger off by one unit, or a health off by one unit, is caught.
#[test]
fn the_checks_detect_a_one_unit_discrepancy() {
    let mut h = Harness::default_config();
    for source in ["s1", "s2", "s3"] {
        h.step(price_line(0, "ETH-PERP", source, "500.12345678")).unwrap();
    }
    h.step(Step::event(deposit(0, "alice", "USDC", "5000"))).unwrap();
    h.step(Step::event(deposit(0, "bob", "ETH", "3"))).unwrap();
    h.step(Step::event(trade(0, "ETH-PERP", "alice", "bob", "7.5", "499.9"))).unwrap();
    check_all(&h.engine, &h.ledger).unwrap();

    for asset in ["USDC", "ETH"] {
        let mut ledger = h.ledger.clone();
        let unit = if asset == "USDC" { "0.0000000000000001" } else { "0.00000001" };
        ledger.record_accepted(&deposit(0, "x", asset, unit));
        let error = check_all(&h.engine, &ledger).unwrap_err();
        assert!(error.contains("conservation"), "{error}");
    }
    let account = h.engine.account("alice").unwrap();
    let reference = reference::account_health(account, h.engine.assets(), h.engine.markets()).unwrap();
    let exact = h.engine.health("alice").unwrap();
    reference.matches(&exact).unwrap();
    let one = Quote::from_raw(1);
    let tampered = [
        Health { equity: exact.equity.checked_add(one).unwrap(), ..exact },
        Health { unrealized_pnl: exact.unrealized_pnl.checked_sub(one).unwrap(), ..exact },
        Health { equity_without_profit: exact.equity_without_profit.checked_add(one).unwrap(), ..exact },
        Health { maintenance_margin: exact.maintenance_margin.checked_sub(one).unwrap(), ..exact },
        Health { initial_margin: exact.initial_margin.checked_add(one).unwrap(), ..exact },
    ];
    for health in tampered {
        assert!(reference.matches(&health).is_err(), "{health:?}");
    }
    // Bob: ETH collateral at 0.85 x index; short 7.5 ETH-PERP.
    let bob = h.engine.account("bob").unwrap();
    let reference = reference::account_health(bob, h.engine.assets(), h.engine.markets()).unwrap();
    let index = reference::price(Price::parse("500.12345678").unwrap());
    let collateral =
        reference::size(Size::parse("3").unwrap()) * &index * reference::rate(Rate::parse("0.85").unwrap());
    assert_eq!(reference.collateral_exact, collateral);
    let upnl =
        reference::size(Size::parse("-7.5").unwrap()) * (&index - reference::price(Price::parse("499.9").unwrap()));
    assert_eq!(reference.upnl_exact, upnl);
}

/// A closing trade in a market with a small `skew_scale` charges a skew fee of millions, leaving
/// an account with a one-unit position in another market and a deficit some 10^15 times its
/// notional. Its bankruptcy price (loss / size) would not fit a `Price`: ADL is priced at most
/// one mark away and the rest socialized, so the account is resolved, not skipped on overflow.
/// Found by the main property; every check runs after every step.
#[test]
fn a_deficit_far_beyond_a_tiny_position_is_resolved_not_skipped() {
    let mut h = Harness::default_config();
    for (market, price) in [("SOL-PERP", "20"), ("BTC-PERP", "10000")] {
        for source in ["s1", "s2", "s3"] {
            h.step(price_line(0, market, source, price)).unwrap();
        }
    }
    let steps = [
        Step::event(deposit(0, "alice", "USDC", "751509")),
        Step::event(deposit(0, "bob", "USDC", "108526.0039884567632433")),
        Step::event(deposit(0, "bob", "BTC", "8.57287665")),
        Step::event(deposit(0, "carol", "USDC", "512740.0610268964634351")),
        Step::event(trade(0, "SOL-PERP", "carol", "bob", "9284.09469192", "20")),
        Step::event(trade(0, "BTC-PERP", "bob", "alice", "0.00000001", "10000")),
        Step::raw(r#"{"type":"params","ts":0,"market":"SOL-PERP","skew_scale":"50"}"#),
        Step::event(trade(0, "SOL-PERP", "bob", "carol", "9284.09469192", "20")),
    ];
    for step in steps {
        let shown = step.describe();
        assert_eq!(h.step(step).unwrap(), Outcome::Accepted, "{shown}");
    }
    let overflowed = h.effects.iter().any(|e| e.type_name() == "alert" && format!("{e:?}").contains("overflow"));
    assert!(!overflowed, "no step of the waterfall was skipped on overflow");
    let bob = h.engine.account("bob").unwrap();
    assert!(bob.positions.is_empty(), "the bankrupt's position was closed: {:?}", bob.positions);
    assert!(h.effects.iter().any(|e| e.type_name() == "adl"), "ADL took the position at a bounded price");
}

/// A sequence the main property found once: a portfolio-margined account without positions
/// (negative settlement balance, ETH collateral) whose collateral scenarios put MM above its
/// equity while the equity was still positive: below maintenance but not a candidate, so the risk
/// index kept no box for it; when ETH fell further and its equity turned negative, only the full
/// scan saw it. Such accounts are now rechecked at every pass.
#[test]
fn portfolio_account_below_maintenance_without_positions_stays_watched() {
    let empty = || gen::Opening { usdc: 0, btc: None, eth: None };
    let scenario = gen::Scenario {
        accounts: vec!["carol", "dave", "judy"],
        funded: 3,
        opening: vec![
            empty(),
            empty(),
            gen::Opening { usdc: 581718611574713395, btc: None, eth: Some(1611057536171102000) },
            empty(),
            empty(),
            empty(),
            empty(),
            empty(),
        ],
        opening_ticks: [0, 0, 3],
        order_keys: vec![0; 24],
        ops: vec![
            gen::Timed {
                dt: 0,
                json: false,
                op: gen::Op::TickRound {
                    market: 1,
                    first: 0,
                    count: 3,
                    step_bps: 0,
                    gap_bps: 0,
                    noise_bps: [0, -1, 0, 0, 0],
                    lag: 0,
                },
            },
            gen::Timed {
                dt: 0,
                json: false,
                op: gen::Op::Trade {
                    market: 2,
                    a: 2,
                    b: 2,
                    a_buys: false,
                    size: gen::SizeMode::Reduce(1),
                    price_bps: 0,
                    fine: 0,
                    fees: None,
                    isolated: 0,
                },
            },
            gen::Timed {
                dt: 0,
                json: false,
                op: gen::Op::Params {
                    market: 2,
                    change: gen::ParamsChange::Funding {
                        enabled: true,
                        interval_ms: 1000,
                        interest: 0,
                        clamp: 0,
                        cap: 2000,
                        skew_scale_units: 50,
                        velocity_pct: 0,
                        skew_alert_units: 0,
                    },
                },
            },
            gen::Timed { dt: 0, json: false, op: gen::Op::MarginModel { account: 2, portfolio: true } },
            gen::Timed {
                dt: 0,
                json: false,
                op: gen::Op::Trade {
                    market: 2,
                    a: 2,
                    b: 2,
                    a_buys: false,
                    size: gen::SizeMode::Reduce(652),
                    price_bps: 0,
                    fine: 0,
                    fees: None,
                    isolated: 0,
                },
            },
            gen::Timed {
                dt: 0,
                json: false,
                op: gen::Op::Tick {
                    market: 1,
                    source: 2,
                    step_bps: -3,
                    gap_bps: 0,
                    noise_bps: 0,
                    fine: 5375049971634438678,
                    conf_bp: None,
                    lag: 492,
                },
            },
            gen::Timed {
                dt: 19,
                json: true,
                op: gen::Op::TickRound {
                    market: 0,
                    first: 0,
                    count: 4,
                    step_bps: 69,
                    gap_bps: 0,
                    noise_bps: [13, -3, 22, -32, 24],
                    lag: 257,
                },
            },
            gen::Timed {
                dt: 91,
                json: true,
                op: gen::Op::Withdraw { account: 0, asset: 1, mode: gen::WithdrawMode::Free { plus_one: true } },
            },
            gen::Timed {
                dt: 115,
                json: false,
                op: gen::Op::Tick {
                    market: 2,
                    source: 3,
                    step_bps: 38,
                    gap_bps: 0,
                    noise_bps: -29,
                    fine: 3199919107198962541,
                    conf_bp: None,
                    lag: 569,
                },
            },
            gen::Timed { dt: 0, json: false, op: gen::Op::Deposit { account: 8, asset: 0, seed: 6067985437514082846 } },
            gen::Timed { dt: 93, json: false, op: gen::Op::MarginModel { account: 2, portfolio: true } },
            gen::Timed { dt: 69, json: true, op: gen::Op::AuctionTake { market: 0, bidder: 6, frac_bp: 1361 } },
            gen::Timed {
                dt: 117,
                json: false,
                op: gen::Op::Params {
                    market: 2,
                    change: gen::ParamsChange::Funding {
                        enabled: true,
                        interval_ms: 3804,
                        interest: 152,
                        clamp: 352,
                        cap: 3689,
                        skew_scale_units: 100000,
                        velocity_pct: 220,
                        skew_alert_units: 1,
                    },
                },
            },
            gen::Timed {
                dt: 25,
                json: true,
                op: gen::Op::TickRound {
                    market: 2,
                    first: 4,
                    count: 5,
                    step_bps: -118,
                    gap_bps: -580,
                    noise_bps: [7, 11, 17, 9, 8],
                    lag: 172,
                },
            },
            gen::Timed {
                dt: 994,
                json: true,
                op: gen::Op::TickRound {
                    market: 1,
                    first: 3,
                    count: 4,
                    step_bps: -124,
                    gap_bps: -635,
                    noise_bps: [-21, -4, 9, 35, -16],
                    lag: 789,
                },
            },
            gen::Timed {
                dt: 0,
                json: true,
                op: gen::Op::Trade {
                    market: 2,
                    a: 7,
                    b: 2,
                    a_buys: true,
                    size: gen::SizeMode::Flip(8125),
                    price_bps: -97,
                    fine: 566654765312326612,
                    fees: Some((292, 627)),
                    isolated: 0,
                },
            },
        ],
    };
    run_scenario(&scenario).unwrap();
}
