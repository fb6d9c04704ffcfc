//! Differential tests of the risk index against the full scan.
//!
//! Random sequences (seeded, reproducible) of deposits (USDC, BTC, ETH), withdrawals, trades,
//! price ticks in all three markets (small moves, gaps up to the jump clamp, outlier sources),
//! clock steps (staleness freezes markets and fresh ticks thaw them), `params` changes (tier
//! tables in size and notional basis, `whole` brackets, IM factor, liquidation buffer, basis EMA,
//! quorum), auction takes and fund deposits, over books of up to 50 accounts. After every event:
//!
//! 1. `Engine::liquidation_candidates_indexed` (a pass of the index) equals
//!    `Engine::liquidation_candidates_full_scan`;
//! 2. no account is left below maintenance while it has a position in a live market (or, with no
//!    position, negative equity and no frozen dependency), judged from `Engine::health` and the
//!    frozen flags here, independently of the engine's own candidate logic: the waterfall saw
//!    every account that crossed;
//! 3. now and then the engine goes through a JSON snapshot and `Engine::from_snapshot`: the state
//!    hash is unchanged (the index is neither serialized nor hashed), and the restored engine (its
//!    index rebuilt) gives the same effects and hashes as the original for the rest of the run.
//!
//! Debug builds also assert inside the engine that every pass of the waterfall (including the
//! passes in the middle of an event, where candidates are not empty) equals the full scan.

use solvent_core::config::{TierBasis, TierMode, TierSpec};
use solvent_core::event::{AuctionTake, ParamsUpdate, PriceTick, Trade, Transfer};
use solvent_core::state::MarketId;
use solvent_core::{Config, Effect, Engine, Event, Price, Quote, Rate, Size};

const MARKETS: [&str; 3] = ["BTC-PERP", "ETH-PERP", "SOL-PERP"];
const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
const BASE_PRICE: [i64; 3] = [10_000, 500, 20];

/// splitmix64: small, seedable, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// Uniform in [-1, 1] x `scale`, as an integer.
    fn signed(&mut self, scale: i64) -> i64 {
        (self.below(2 * scale as u64 + 1) as i64) - scale
    }
}

/// The generator's view of the world: clock, each market's "true" price, each source's last ts.
struct Sim {
    rng: Rng,
    ts: u64,
    price: [i64; 3],
    source_ts: [[u64; 5]; 3],
    accounts: Vec<String>,
    pool: usize,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let pool = 5 + rng.below(46) as usize;
        let price = BASE_PRICE.map(|p| p * Price::ONE_RAW);
        Sim { rng, ts: 1_000, price, source_ts: [[0; 5]; 3], accounts: Vec::new(), pool }
    }

    fn name(&mut self) -> String {
        format!("acct{:02}", self.rng.below(self.pool as u64))
    }

    fn existing(&mut self) -> Option<String> {
        if self.accounts.is_empty() {
            return None;
        }
        Some(self.accounts[self.rng.below(self.accounts.len() as u64) as usize].clone())
    }

    fn tick(&mut self, market: usize, source: usize, price_raw: i64) -> Option<Event> {
        let ts = (self.source_ts[market][source] + 1).max(self.ts);
        if ts > self.ts + 1_500 {
            return None;
        }
        self.source_ts[market][source] = ts;
        Some(Event::Price(PriceTick {
            ts,
            market: MARKETS[market].into(),
            source: SOURCES[source].into(),
            price: Price::from_raw(price_raw.max(1)),
            conf: None,
            sig: None,
        }))
    }

    /// A move of each market in turn: small, or a gap; then ticks from 3 to 5 sources around it,
    /// sometimes with one liar.
    fn prices(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        for market in 0..3 {
            if market > 0 && self.rng.chance(30) {
                continue;
            }
            let move_bp = if self.rng.chance(20) { self.rng.signed(1_200) } else { self.rng.signed(80) };
            let p = self.price[market];
            self.price[market] = (p + p / 10_000 * move_bp).max(Price::ONE_RAW / 100);
            let count = 3 + self.rng.below(3) as usize;
            for source in 0..count {
                let noise = self.price[market] / 100_000 * self.rng.signed(5);
                let liar = source == 4 && self.rng.chance(30);
                let quoted = if liar { self.price[market] * 3 } else { self.price[market] + noise };
                events.extend(self.tick(market, source, quoted));
            }
        }
        events
    }

    fn deposit(&mut self) -> Event {
        let account = if self.accounts.len() < self.pool && self.rng.chance(60) {
            format!("acct{:02}", self.accounts.len())
        } else {
            self.existing().unwrap_or_else(|| self.name())
        };
        if !self.accounts.contains(&account) {
            self.accounts.push(account.clone());
        }
        let (asset, amount) = match self.rng.below(10) {
            0 | 1 => ("BTC", Quote::from_raw(i128::from(1 + self.rng.below(300)) * Quote::ONE_RAW / 100)),
            2 => ("ETH", Quote::from_raw(i128::from(1 + self.rng.below(500)) * Quote::ONE_RAW / 10)),
            _ => ("USDC", Quote::from_int(100 + self.rng.below(50_000) as i64).unwrap()),
        };
        Event::Deposit(Transfer { ts: self.ts, account, asset: asset.into(), amount })
    }

    fn withdraw(&mut self, engine: &Engine) -> Option<Event> {
        let account = self.existing()?;
        let balance = engine.account(&account)?.settlement;
        if !balance.is_positive() {
            return None;
        }
        let amount = Quote::from_raw((balance.raw() / 100 * (1 + self.rng.below(60)) as i128).max(1));
        Some(Event::Withdraw(Transfer { ts: self.ts, account, asset: "USDC".into(), amount }))
    }

    /// A trade near mark, sized to a random leverage of the buyer's equity (many are refused for
    /// initial margin, which is part of the test).
    fn trade(&mut self, engine: &Engine) -> Option<Event> {
        let market = self.rng.below(3) as usize;
        let mark = engine.markets()[market].mark_price?;
        let buyer = self.existing()?;
        let seller = self.existing()?;
        if buyer == seller {
            return None;
        }
        let equity = |name: &str| engine.health(name).map(|h| h.equity.raw()).unwrap_or(0);
        let base = equity(&buyer).min(equity(&seller)).max(Quote::ONE_RAW * 100);
        let leverage = 4 + self.rng.below(16) as i128;
        let size_raw = base * leverage / i128::from(mark.raw());
        let size_raw = i64::try_from(size_raw).ok()?.max(1);
        let price = Price::from_raw(mark.raw() + mark.raw() / 10_000 * self.rng.signed(20));
        let fee = Quote::from_raw(if self.rng.chance(30) { Quote::ONE_RAW } else { 0 });
        let (buyer, seller) = if self.rng.chance(50) { (buyer, seller) } else { (seller, buyer) };
        Some(Event::Trade(Trade {
            ts: self.ts,
            market: MARKETS[market].into(),
            buyer,
            seller,
            size: Size::from_raw(size_raw),
            price,
            buyer_fee: fee,
            seller_fee: Quote::ZERO,
            buyer_isolated: false,
            seller_isolated: false,
        }))
    }

    fn params(&mut self) -> Event {
        let market = MARKETS[self.rng.below(3) as usize].to_string();
        let mut update = ParamsUpdate { ts: self.ts, market, ..ParamsUpdate::default() };
        let tier = |from: &str, mm: &str, pen: &str| TierSpec {
            from: from.into(),
            mm_rate: Rate::parse(mm).unwrap(),
            penalty_rate: Rate::parse(pen).unwrap(),
        };
        match self.rng.below(9) {
            0 => {
                update.tiers =
                    Some(vec![tier("0", "0.025", "0.005"), tier("5", "0.05", "0.01"), tier("50", "0.1", "0.02")])
            }
            1 => update.tiers = Some(vec![tier("0", "0.08", "0.01")]),
            2 => {
                update.tier_basis = Some(TierBasis::Notional);
                update.tiers = Some(vec![
                    tier("0", "0.02", "0.005"),
                    tier("20000", "0.04", "0.01"),
                    tier("100000", "0.1", "0.02"),
                ]);
            }
            3 => {
                update.tier_basis = Some(TierBasis::Size);
                update.tiers = Some(vec![tier("0", "0.03", "0.005"), tier("2", "0.06", "0.01")]);
            }
            4 => update.tier_mode = Some(if self.rng.chance(50) { TierMode::Whole } else { TierMode::Marginal }),
            5 => update.im_factor = Some(Rate::parse(["1.5", "2", "3"][self.rng.below(3) as usize]).unwrap()),
            6 => update.liquidation_buffer = Some(Rate::parse(["0", "0.1"][self.rng.below(2) as usize]).unwrap()),
            7 => update.mark_ema_ms = Some([0, 0, 5_000][self.rng.below(3) as usize]),
            _ => update.quorum = Some(3 + self.rng.below(3) as u32),
        }
        Event::Params(Box::new(update))
    }

    fn auction_take(&mut self, engine: &Engine) -> Option<Event> {
        let (market, auction) = engine.markets().iter().find_map(|m| m.auction.map(|a| (m, a)))?;
        let remaining = market.inventory.size.checked_abs().ok()?;
        let bidder = self.existing()?;
        let size = Size::from_raw((remaining.raw() / (1 + self.rng.below(3) as i64)).max(1));
        Some(Event::AuctionTake(AuctionTake { ts: self.ts, auction: auction.id.to_string(), bidder, size }))
    }

    fn next_events(&mut self, engine: &Engine) -> Vec<Event> {
        let roll = self.rng.below(100);
        let event = match roll {
            0..=34 => return self.prices(),
            35..=44 => Some(self.deposit()),
            45..=49 => self.withdraw(engine),
            50..=79 => self.trade(engine),
            80..=86 => {
                self.ts += if self.rng.chance(5) { 6_000 } else { self.rng.below(1_000) };
                Some(Event::Clock { ts: self.ts })
            }
            87..=92 => Some(self.params()),
            93..=97 => self.auction_take(engine),
            _ => Some(Event::FundDeposit {
                ts: self.ts,
                amount: Quote::from_int(1 + self.rng.below(5_000) as i64).unwrap(),
            }),
        };
        event.into_iter().collect()
    }
}

/// Checks 1 and 2 after one event.
fn check_after_event(engine: &mut Engine, effects: &[Effect]) -> Result<(), String> {
    let full = engine.liquidation_candidates_full_scan();
    let indexed = engine.liquidation_candidates_indexed();
    if full != indexed {
        return Err(format!("index {indexed:?} != full scan {full:?}"));
    }
    let exhausted = effects.iter().any(|e| e.to_json_line().contains("liquidation_rounds_exhausted"));
    for account in engine.accounts() {
        let health = engine.health(&account.name).map_err(|e| format!("{}: {e}", account.name))?;
        if !health.below_maintenance() || exhausted {
            continue;
        }
        let frozen = |m: MarketId| engine.markets()[m.0 as usize].frozen;
        let live_position = account.positions.iter().any(|p| !frozen(p.market));
        let collateral_frozen =
            account.collateral.iter().any(|(asset, _)| frozen(engine.assets()[asset.0 as usize].index_market));
        let bankrupt_without_position =
            account.positions.is_empty() && health.equity.is_negative() && !collateral_frozen;
        // The one exception (docs/liquidation.md section 3.1): every live position in its chunk
        // cooldown, equity not negative and not under the backstop threshold.
        let id = engine.account_id(&account.name).map_err(|e| e.to_string())?;
        let held = !health.equity.is_negative()
            && account.positions.iter().filter(|p| !frozen(p.market)).all(|p| {
                let market = &engine.markets()[p.market.0 as usize];
                let cooling = market.liquidation_record(id).is_some_and(|r| engine.last_ts() < r.cooldown_until_ms);
                let backstop = solvent_core::liquidation::sizing::below_backstop(
                    &market.params,
                    health.equity,
                    health.maintenance_margin,
                );
                cooling && backstop == Ok(false)
            });
        if (live_position && !held) || bankrupt_without_position {
            return Err(format!(
                "{} left below maintenance: equity {} < MM {} (positions {:?})",
                account.name, health.equity, health.maintenance_margin, account.positions
            ));
        }
    }
    Ok(())
}

/// A JSON snapshot round trip through `Engine::from_snapshot`.
fn restored(engine: &Engine) -> Engine {
    let text = serde_json::to_string(engine).expect("engines serialize");
    let decoded: Engine = serde_json::from_str(&text).expect("snapshots decode");
    Engine::from_snapshot(decoded).expect("snapshots restore")
}

/// One sequence; returns the number of liquidation effects it produced.
fn run_sequence(seed: u64, events: usize) -> Result<usize, String> {
    let mut sim = Sim::new(seed);
    let mut engine = Engine::new(&Config::embedded_default());
    let mut twin: Option<Engine> = None;
    let mut liquidations = 0;
    let mut seq = 0u64;
    let mut applied = 0;
    for market in 0..3 {
        for source in 0..5 {
            let event = sim.tick(market, source, sim.price[market]).expect("opening ticks");
            seq += 1;
            engine.apply(seq, &event, &mut Vec::new()).map_err(|e| format!("opening tick: {e}"))?;
        }
    }
    for _ in 0..sim.pool {
        seq += 1;
        let event = sim.deposit();
        engine.apply(seq, &event, &mut Vec::new()).map_err(|e| format!("opening deposit: {e}"))?;
    }
    while applied < events {
        for event in sim.next_events(&engine) {
            seq += 1;
            applied += 1;
            let mut out = Vec::new();
            let accepted = engine.apply(seq, &event, &mut out).is_ok();
            liquidations += out.iter().filter(|e| e.type_name() == "liquidation").count();
            let context = || {
                format!("seed {seed}, event #{seq} ({}):\n{event:?}", if accepted { "accepted" } else { "rejected" })
            };
            check_after_event(&mut engine, &out).map_err(|e| format!("{}\n{e}", context()))?;
            if let Some(twin) = twin.as_mut() {
                let mut twin_out = Vec::new();
                let _ = twin.apply(seq, &event, &mut twin_out);
                if twin_out != out || twin.state_hash() != engine.state_hash() {
                    return Err(format!("{}\nthe restored engine diverged", context()));
                }
            }
            if twin.is_none() && sim.rng.chance(2) {
                let copy = restored(&engine);
                if copy.state_hash() != engine.state_hash() {
                    return Err(format!("{}\nthe snapshot round trip changed the state hash", context()));
                }
                twin = Some(copy);
            }
        }
    }
    Ok(liquidations)
}

#[test]
fn index_equals_full_scan_and_no_live_account_stays_below_maintenance() {
    let mut liquidations = 0;
    let sequences = 300;
    for seed in 0..sequences {
        liquidations += run_sequence(seed, 120).unwrap_or_else(|e| panic!("{e}"));
    }
    // The sequences must actually exercise the waterfall (the embedded default's venue rules
    // close in chunks and in full under the backstop: fewer, larger liquidations than slivers).
    assert!(liquidations > sequences as usize / 2, "only {liquidations} liquidations in {sequences} sequences");
}

/// A long run over a full pool, where accounts hold several markets and collateral and stale
/// entries accumulate (merges and compactions of the index's structures happen).
#[test]
fn long_sequences_with_many_accounts() {
    for seed in 1_000..1_003 {
        run_sequence(seed, 2_000).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A freeze parks an account that is below maintenance but cannot be liquidated; the thaw must
/// bring it back to the waterfall without any change to the account itself.
#[test]
fn parked_accounts_are_liquidated_on_thaw() {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut seq = 0;
    let mut apply = |engine: &mut Engine, event: Event| {
        seq += 1;
        let mut out = Vec::new();
        engine.apply(seq, &event, &mut out).unwrap_or_else(|e| panic!("{event:?}: {e}"));
        out
    };
    let tick = |ts: u64, source: &str, price: &str| {
        Event::Price(PriceTick {
            ts,
            market: "BTC-PERP".into(),
            source: source.into(),
            price: Price::parse(price).unwrap(),
            conf: None,
            sig: None,
        })
    };
    let usdc = |name: &str, amount: i64| {
        Event::Deposit(Transfer {
            ts: 0,
            account: name.into(),
            asset: "USDC".into(),
            amount: Quote::from_int(amount).unwrap(),
        })
    };
    for source in ["s1", "s2", "s3"] {
        apply(&mut engine, tick(0, source, "10000"));
    }
    apply(&mut engine, usdc("alice", 600));
    apply(&mut engine, usdc("bob", 100_000));
    let trade = Trade {
        ts: 0,
        market: "BTC-PERP".into(),
        buyer: "alice".into(),
        seller: "bob".into(),
        size: Size::from_int(1).unwrap(),
        price: Price::from_int(10_000).unwrap(),
        buyer_fee: Quote::ZERO,
        seller_fee: Quote::ZERO,
        buyer_isolated: false,
        seller_isolated: false,
    };
    apply(&mut engine, Event::Trade(trade));
    // Quorum 4 with 3 sources: frozen, mark held at 10,000.
    let quorum = ParamsUpdate { ts: 0, market: "BTC-PERP".into(), quorum: Some(4), ..ParamsUpdate::default() };
    apply(&mut engine, Event::Params(Box::new(quorum)));
    assert!(engine.markets()[0].frozen);
    // A tier table at 10% MM puts alice below maintenance (MM 1,000 > equity 600) while frozen:
    // she waits (parked), untouched, with no price moving.
    let tiers = vec![TierSpec {
        from: "0".into(),
        mm_rate: Rate::parse("0.1").unwrap(),
        penalty_rate: Rate::parse("0.01").unwrap(),
    }];
    let update = ParamsUpdate { ts: 0, market: "BTC-PERP".into(), tiers: Some(tiers), ..ParamsUpdate::default() };
    let out = apply(&mut engine, Event::Params(Box::new(update)));
    assert!(out.iter().all(|e| e.type_name() != "liquidation"), "{out:?}");
    assert!(engine.health("alice").unwrap().below_maintenance());
    assert!(engine.liquidation_candidates_full_scan().is_empty());
    assert!(engine.liquidation_candidates_indexed().is_empty());
    // Quorum back to 3: the thaw alone brings her to the waterfall.
    let quorum = ParamsUpdate { ts: 0, market: "BTC-PERP".into(), quorum: Some(3), ..ParamsUpdate::default() };
    let out = apply(&mut engine, Event::Params(Box::new(quorum)));
    assert!(!engine.markets()[0].frozen);
    let liquidated: Vec<String> =
        out.iter().filter(|e| e.type_name() == "liquidation").map(|e| e.to_json_line()).collect();
    assert!(liquidated.iter().any(|line| line.contains("\"alice\"")), "{out:?}");
    assert!(engine.liquidation_candidates_full_scan().is_empty());
}
