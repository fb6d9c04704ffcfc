//! Portfolio margin on the real `apply_line` path, every event checked by the harness (the
//! reference evaluator's exact MM and IM for every account, conservation, zero-sum, no account
//! left below maintenance, clean refusals): the worked example of docs/margin.md section 6, the
//! targets (an offset at high correlation, none at zero, never less than tiers without an
//! offset), the opt-in rule, liquidation, and the risk index's boxes against the full scan.

mod support;

use solvent_core::state::MarginModel;
use solvent_core::{Config, Engine, Price, Quote, Size};
use support::{Expect, Harness, Outcome, Step};

/// Two markets with the embedded default's BTC and ETH tables, BTC the common factor (loading 1)
/// and ETH loaded at `eth_loading` on it, so that their correlation is `eth_loading`.
fn config(eth_loading: &str) -> Config {
    let market = |name: &str, brackets: [&str; 4], loading: &str| {
        format!(
            r#"
[[markets]]
name = "{name}"
tier_basis = "size"
tier_mode = "marginal"
im_factor = "2"
liquidation_buffer = "0"
sources = ["s1", "s2", "s3"]
quorum = 2
max_age_ms = 3600000
max_deviation = "0.5"
max_jump = "10"
pm_correlation = "{loading}"
tiers = [
  {{ from = "{}", mm_rate = "0.025", penalty_rate = "0.005" }},
  {{ from = "{}", mm_rate = "0.05", penalty_rate = "0.01" }},
  {{ from = "{}", mm_rate = "0.10", penalty_rate = "0.025" }},
  {{ from = "{}", mm_rate = "0.20", penalty_rate = "0.05" }},
]
"#,
            brackets[0], brackets[1], brackets[2], brackets[3]
        )
    };
    let toml = format!(
        "settlement_asset = \"USDC\"\nmax_accounts = 10000\n{}{}",
        market("BTC-PERP", ["0", "50", "250", "1000"], "1"),
        market("ETH-PERP", ["0", "1000", "5000", "20000"], eth_loading)
    );
    Config::from_toml(&toml).unwrap()
}

/// A line through `apply_line`, with the event it means (so the harness's ledger and admission
/// rules see it).
fn step(text: &str) -> Step {
    let meaning = solvent_core::Event::parse_str(text).ok();
    Step { input: support::Input::Line { bytes: text.as_bytes().to_vec(), meaning }, expect: Expect::Any }
}

struct Run {
    harness: Harness,
    ts: u64,
}

impl Run {
    fn new(config: &Config) -> Run {
        Run { harness: Harness::new(config), ts: 1_000 }
    }

    fn line(&mut self, text: String) -> Outcome {
        self.harness.step(step(&text)).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn accept(&mut self, text: String) {
        assert_eq!(self.line(text.clone()), Outcome::Accepted, "{text}");
    }

    fn prices(&mut self, btc: &str, eth: &str) {
        self.ts += 1_000;
        self.accept(format!(r#"{{"type":"clock","ts":{}}}"#, self.ts));
        for (market, price) in [("BTC-PERP", btc), ("ETH-PERP", eth)] {
            for source in ["s1", "s2", "s3"] {
                self.accept(format!(
                    r#"{{"type":"price","ts":{},"market":"{market}","source":"{source}","price":"{price}"}}"#,
                    self.ts
                ));
            }
        }
    }

    fn deposit(&mut self, account: &str, amount: &str) {
        self.accept(format!(
            r#"{{"type":"deposit","ts":{},"account":"{account}","asset":"USDC","amount":"{amount}"}}"#,
            self.ts
        ));
    }

    fn model(&mut self, account: &str, model: &str) -> Outcome {
        self.line(format!(r#"{{"type":"margin_model","ts":{},"account":"{account}","model":"{model}"}}"#, self.ts))
    }

    fn trade(&mut self, market: &str, buyer: &str, seller: &str, size: &str, price: &str) -> Outcome {
        self.line(format!(
            r#"{{"type":"trade","ts":{},"market":"{market}","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price}"}}"#,
            self.ts
        ))
    }

    fn engine(&self) -> &Engine {
        &self.harness.engine
    }

    fn mm(&self, account: &str) -> Quote {
        self.engine().health(account).unwrap().maintenance_margin
    }
}

/// A small deterministic generator (xorshift64).
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}

/// The book of the worked example: alice long 10 BTC at 20,000 and short 100 ETH at 2,000 under
/// portfolio margin; bob only the BTC leg and carol only the ETH leg, also under portfolio margin;
/// a market maker on the other side.
fn hedged_book(eth_loading: &str) -> Run {
    let mut run = Run::new(&config(eth_loading));
    run.prices("20000", "2000");
    for (account, amount) in [("alice", "70000"), ("bob", "70000"), ("carol", "70000"), ("maker", "10000000")] {
        run.deposit(account, amount);
    }
    for account in ["alice", "bob", "carol"] {
        assert_eq!(run.model(account, "portfolio"), Outcome::Accepted);
    }
    for (buyer, seller, market, size, price) in [
        ("alice", "maker", "BTC-PERP", "10", "20000"),
        ("maker", "alice", "ETH-PERP", "100", "2000"),
        ("bob", "maker", "BTC-PERP", "10", "20000"),
        ("maker", "carol", "ETH-PERP", "100", "2000"),
    ] {
        assert_eq!(run.trade(market, buyer, seller, size, price), Outcome::Accepted);
    }
    run
}

/// docs/margin.md section 6, worked example: S = 32,000 + 32,000, J = 0, ρ = 0.9, L = 6,400,
/// mm_factor x L = 3,200, T = 10,000, the offset term is negative, the floor 5,000 binds: MM
/// 5,000 and IM 10,000, against 10,000 / 20,000 under tiers and 16,000 + 16,000 for the legs
/// margined alone.
#[test]
fn worked_example_of_the_docs() {
    let run = hedged_book("0.9");
    let alice = run.engine().account_dump("alice").unwrap();
    assert_eq!(alice.maintenance_margin, q("5000"));
    assert_eq!(alice.initial_margin, q("10000"));
    let parts = alice.portfolio.as_ref().expect("a portfolio block");
    assert_eq!((parts.standalone_loss, parts.joint_loss), (q("64000"), q("0")));
    assert_eq!(parts.correlation, solvent_core::Rate::parse("0.9").unwrap());
    assert_eq!(parts.tier_maintenance_margin, q("10000"));
    assert_eq!(parts.binding, "floor");
    assert!(alice.positions.values().all(|p| p.maintenance_margin.is_none()), "account figures only");
    assert_eq!(run.mm("bob"), q("16000"));
    assert_eq!(run.mm("carol"), q("16000"));
    // The same account under tiers.
    let mut tiered = run.engine().account("alice").unwrap().clone();
    tiered.margin_model = MarginModel::Tiered;
    let health = solvent_core::margin::health(&tiered, run.engine().assets(), run.engine().markets()).unwrap();
    assert_eq!((health.maintenance_margin, health.initial_margin), (q("10000"), q("20000")));
}

/// Targets: at correlation 0.9 the hedged account needs less than the sum of its legs' standalone
/// requirements and no less than the floor; at correlation 0 it needs no less than that sum.
#[test]
fn offsets_at_high_correlation_and_none_at_zero() {
    let high = hedged_book("0.9");
    let standalone = high.mm("bob").checked_add(high.mm("carol")).unwrap();
    let floor = q("5000"); // pm_floor 0.5 x the 10,000 of tiers
    assert!(high.mm("alice") < standalone && high.mm("alice") >= floor, "{} vs {standalone}", high.mm("alice"));
    let zero = hedged_book("0");
    let standalone = zero.mm("bob").checked_add(zero.mm("carol")).unwrap();
    assert!(zero.mm("alice") >= standalone, "{} vs {standalone}", zero.mm("alice"));
    assert_eq!(zero.mm("alice"), q("32000"));
    // A `params` event sets the loading: back to 0.9 from 0, the offset returns at once.
    let mut zero = zero;
    zero.accept(format!(r#"{{"type":"params","ts":{},"market":"ETH-PERP","pm_correlation":"0.9"}}"#, zero.ts));
    assert_eq!(zero.mm("alice"), q("5000"));
}

/// Target: an account without an offset (every leg on one side, collateral included) never
/// needs less under portfolio margin than under tiers, across sizes into the top bracket, both
/// loadings, ranges and collateral; checked at prices moved by the extended table's jumps.
#[test]
fn unhedged_accounts_never_need_less_than_tiers() {
    let mut engine = Engine::new(&config("0.9"));
    let mut seq = 0;
    let mut out = Vec::new();
    let mut line = |engine: &mut Engine, text: String| {
        seq += 1;
        out.clear();
        engine.apply_line(seq, text.as_bytes(), &mut out);
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{text}: {out:?}");
    };
    for (market, price) in [("BTC-PERP", "20000"), ("ETH-PERP", "2000")] {
        for source in ["s1", "s2", "s3"] {
            line(
                &mut engine,
                format!(r#"{{"type":"price","ts":1000,"market":"{market}","source":"{source}","price":"{price}"}}"#),
            );
        }
    }
    let mut next = xorshift(0x005e_ed0f_9a11);
    let mut checked = 0;
    for round in 0..3_000 {
        let mut markets = engine.markets().to_vec();
        // Jumps of the extended table (and none): -66%, -33%, +50%, +100%, ...
        let jump = [0i64, -66, -33, 50, 100, 200, 500][round % 7];
        for market in markets.iter_mut() {
            let moved = market.mark_price.unwrap().raw() / 100 * (100 + jump);
            market.mark_price = Some(Price::from_raw(moved));
            market.index_price = market.mark_price;
            market.params.portfolio.pm_range = solvent_core::Rate::from_raw((1 + (next() % 60) as i64) * 1_000_000);
        }
        let long = next().is_multiple_of(2);
        let mut account = solvent_core::state::Account::new("x");
        account.settlement = Quote::from_raw((next() % 1_000_000) as i128 * Quote::ONE_RAW);
        for market in 0..2u16 {
            if next().is_multiple_of(3) {
                continue;
            }
            let units = [1i64, 40, 300, 2_500, 30_000][(next() % 5) as usize];
            let raw = units * Size::ONE_RAW + (next() % 1_000) as i64;
            let size = Size::from_raw(if long { raw } else { -raw });
            let cost = size.mul_price(markets[market as usize].mark_price.unwrap());
            account.positions.push(solvent_core::state::Position {
                market: solvent_core::state::MarketId(market),
                size,
                cost,
            });
        }
        let tiered = solvent_core::margin::health(&account, engine.assets(), &markets).unwrap();
        account.margin_model = MarginModel::Portfolio;
        let portfolio = solvent_core::margin::health(&account, engine.assets(), &markets).unwrap();
        assert!(portfolio.maintenance_margin >= tiered.maintenance_margin, "round {round}: {account:?}");
        checked += usize::from(!account.positions.is_empty());
    }
    assert!(checked > 2_000, "{checked}");
}

/// Opting in is judged like a withdrawal under the new model: refused (and nothing changed) when
/// the account would not meet its initial margin; going back to tiers is judged the same way.
#[test]
fn opting_in_needs_the_new_initial_margin() {
    let mut run = Run::new(&config("0.9"));
    run.prices("20000", "2000");
    run.deposit("dave", "12000");
    run.deposit("maker", "10000000");
    assert_eq!(run.trade("BTC-PERP", "dave", "maker", "10", "20000"), Outcome::Accepted); // tier IM 10,000
                                                                                          // Alone, the BTC leg needs IM 2 x 16,000 under portfolio margin: refused.
    let refused = run
        .harness
        .step(step(&format!(r#"{{"type":"margin_model","ts":{},"account":"dave","model":"portfolio"}}"#, run.ts)));
    assert_eq!(refused.unwrap(), Outcome::Rejected("margin_model_refused".into()));
    assert_eq!(run.engine().account("dave").unwrap().margin_model, MarginModel::Tiered);
    assert_eq!(run.model("nobody", "portfolio"), Outcome::Rejected("unknown_account".into()));
    let bad = run.harness.step(
        step(&format!(r#"{{"type":"margin_model","ts":{},"account":"dave","model":"spread"}}"#, run.ts))
            .expect(Expect::Reject("invalid_field_type")),
    );
    assert_eq!(bad.unwrap(), Outcome::Rejected("invalid_field_type".into()));
    run.deposit("dave", "30000");
    assert_eq!(run.model("dave", "portfolio"), Outcome::Accepted);
    assert_eq!(run.model("dave", "portfolio"), Outcome::Accepted, "choosing the model in force changes nothing");
    assert_eq!(run.model("dave", "tiered"), Outcome::Accepted);
}

/// A hedge that breaks: BTC falls 10% while ETH rises 10%, the joint loss appears, alice falls
/// below her portfolio MM and is liquidated by the waterfall until she is restored or flat; every
/// step keeps value, zero-sum and the reference's figures (the harness checks each event).
#[test]
fn a_broken_hedge_is_liquidated() {
    let mut run = hedged_book("0.9");
    // Alice has 70,000 against MM 5,000: walk the legs apart until she is liquidated.
    let mut liquidated = false;
    for step in 1..=16 {
        let btc = 20_000 - 500 * step;
        let eth = 2_000 + 50 * step;
        let before = run.harness.effects.len();
        run.prices(&btc.to_string(), &eth.to_string());
        let effects = &run.harness.effects[before..];
        liquidated |= effects
            .iter()
            .any(|e| matches!(&e.kind, solvent_core::EffectKind::Liquidation { account, .. } if account == "alice"));
        let health = run.engine().health("alice").unwrap();
        let alice = run.engine().account("alice").unwrap();
        assert!(!health.below_maintenance() || alice.positions.is_empty(), "step {step}: {health:?}");
    }
    assert!(liquidated, "the broken hedge was liquidated");
}

/// The risk index on portfolio-margined accounts: random hedged books, random correlated and
/// uncorrelated walks; at every pass the index returns exactly the full scan's candidates (debug
/// builds also assert it inside the engine), and most accounts stay boxed rather than on the
/// always-recheck list.
#[test]
fn risk_index_boxes_agree_with_the_full_scan() {
    let mut engine = Engine::new(&config("0.8"));
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut apply = |engine: &mut Engine, text: String| {
        seq += 1;
        out.clear();
        engine.apply_line(seq, text.as_bytes(), &mut out);
        out.iter().all(|e| e.rejection_kind().is_none())
    };
    let mut ts = 1_000u64;
    let mut prices = [20_000i64, 2_000];
    let set_prices =
        |engine: &mut Engine, apply: &mut dyn FnMut(&mut Engine, String) -> bool, ts: u64, prices: &[i64; 2]| {
            assert!(apply(engine, format!(r#"{{"type":"clock","ts":{ts}}}"#)));
            for (market, price) in ["BTC-PERP", "ETH-PERP"].iter().zip(prices) {
                for source in ["s1", "s2", "s3"] {
                    let line = format!(
                        r#"{{"type":"price","ts":{ts},"market":"{market}","source":"{source}","price":"{price}"}}"#
                    );
                    assert!(apply(engine, line));
                }
            }
        };
    set_prices(&mut engine, &mut apply, ts, &prices);
    assert!(apply(
        &mut engine,
        format!(r#"{{"type":"deposit","ts":{ts},"account":"maker","asset":"USDC","amount":"1000000000"}}"#)
    ));
    let mut next = xorshift(0xb0c5_1234_9876);
    let accounts = 300;
    for i in 0..accounts {
        let name = format!("pm{i}");
        let deposit = 3_000 + next() % 20_000;
        assert!(apply(
            &mut engine,
            format!(r#"{{"type":"deposit","ts":{ts},"account":"{name}","asset":"USDC","amount":"{deposit}"}}"#)
        ));
        assert!(apply(
            &mut engine,
            format!(r#"{{"type":"margin_model","ts":{ts},"account":"{name}","model":"portfolio"}}"#)
        ));
        let btc = 1 + next() % 10;
        let eth = 5 + next() % 100;
        let (b, s) = if next().is_multiple_of(2) { (name.as_str(), "maker") } else { ("maker", name.as_str()) };
        apply(
            &mut engine,
            format!(
                r#"{{"type":"trade","ts":{ts},"market":"BTC-PERP","buyer":"{b}","seller":"{s}","size":"{btc}","price":"{}"}}"#,
                prices[0]
            ),
        );
        let (b, s) = if next().is_multiple_of(3) { (b, s) } else { (s, b) };
        apply(
            &mut engine,
            format!(
                r#"{{"type":"trade","ts":{ts},"market":"ETH-PERP","buyer":"{b}","seller":"{s}","size":"{eth}","price":"{}"}}"#,
                prices[1]
            ),
        );
    }
    let mut boxed_passes = 0;
    for _ in 0..200 {
        ts += 1_000;
        let common = (next() % 401) as i64 - 200; // bp
        for (i, price) in prices.iter_mut().enumerate() {
            let own = (next() % 201) as i64 - 100;
            let bp = if i == 0 { common + own } else { common * 9 / 10 + own };
            *price = (*price * (10_000 + bp) / 10_000).max(1);
        }
        set_prices(&mut engine, &mut apply, ts, &prices);
        let indexed = engine.liquidation_candidates_indexed();
        assert_eq!(indexed, engine.liquidation_candidates_full_scan());
        let stats = engine.risk_index_stats();
        boxed_passes += usize::from(stats.always_recheck < accounts / 10);
    }
    assert!(boxed_passes > 150, "portfolio accounts are boxed, not rechecked at every pass ({boxed_passes})");
    let portfolio = engine.accounts().iter().filter(|a| a.margin_model == MarginModel::Portfolio).count();
    assert!(portfolio >= accounts * 9 / 10, "{portfolio}");
}

/// Random hedged and one-sided portfolio books through random price walks, every event under the
/// harness's checks (the reference's exact MM and IM for every account, conservation, zero-sum,
/// no account left below maintenance while its markets are live): the waterfall's exact sizing,
/// bankruptcy, ADL and the risk index on portfolio accounts, many times over.
#[test]
fn random_portfolio_books_liquidate_under_every_check() {
    let mut next = xorshift(0x0bad_cafe_f00d_0001);
    let (mut liquidations, mut partial, mut opted) = (0, 0, 0);
    for round in 0..6 {
        let mut run = Run::new(&config(["0.8", "0.9", "0.95", "1"][round % 4]));
        run.prices("20000", "2000");
        run.deposit("maker", "100000000");
        for i in 0..12 {
            let name = format!("p{i}");
            let (btc_hundredths, eth_units) = (100 + next() % 300, 10 + next() % 30);
            let notional = btc_hundredths * 200 + eth_units * 2_000; // BTC at 20,000, ETH at 2,000
            run.deposit(&name, &(notional * (6 + next() % 8) / 100).to_string());
            let btc = format!("{}.{:02}", btc_hundredths / 100, btc_hundredths % 100);
            let eth = eth_units.to_string();
            let long_btc = next().is_multiple_of(2);
            let hedged = !next().is_multiple_of(3);
            let (b, s) = if long_btc { (name.as_str(), "maker") } else { ("maker", name.as_str()) };
            run.trade("BTC-PERP", b, s, &btc, "20000");
            let (b, s) = if hedged == long_btc { (s, b) } else { (b, s) };
            run.trade("ETH-PERP", b, s, &eth, "2000");
            run.model(&name, "portfolio"); // refused when the book needs more under portfolio margin
        }
        opted += run.engine().accounts().iter().filter(|a| !a.margin_model.is_tiered()).count();
        let (mut btc, mut eth) = (20_000i64, 2_000i64);
        for _ in 0..40 {
            let common = (next() % 601) as i64 - 300; // bp
            btc = (btc * (10_000 + common + (next() % 201) as i64 - 100) / 10_000).max(1);
            eth = (eth * (10_000 + common + (next() % 601) as i64 - 300) / 10_000).max(1);
            let before = run.harness.effects.len();
            run.prices(&btc.to_string(), &eth.to_string());
            for effect in &run.harness.effects[before..] {
                if let solvent_core::EffectKind::Liquidation { account, full, .. } = &effect.kind {
                    if run.engine().account(account).is_some_and(|a| !a.margin_model.is_tiered()) {
                        liquidations += 1;
                        partial += usize::from(!full);
                    }
                }
            }
        }
    }
    println!("{opted} accounts opted in; {liquidations} liquidations of portfolio accounts, {partial} partial");
    assert!(opted >= 25, "accounts opted in ({opted})");
    assert!(liquidations >= 20, "portfolio accounts were liquidated ({liquidations})");
    assert!(partial >= 5, "some partially ({partial})");
}
