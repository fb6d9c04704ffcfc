//! The engine: owns the state and applies events. `apply` either changes the state and appends
//! effects, or returns an error and changes nothing (handlers validate fully before they write).

use crate::config::Config;
use crate::effect::Effect;
use crate::error::Error;
use crate::event::{Event, Parsed, ParsedLine};
use crate::margin::{self, Health};
use crate::names::NameIndex;
use crate::num::{Overflow, Quote, Size};
use crate::risk_index::{RiskIndex, RiskIndexStats};
use crate::state::{Account, AccountId, Asset, AssetId, Flows, Market, MarketId, Position, Source, SourceStatus};

/// The solvency state machine. `Serialize`/`Deserialize` give a snapshot of the whole state
/// (the name index is rebuilt on load: see [`Engine::from_snapshot`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Engine {
    pub(crate) settlement_name: Box<str>,
    pub(crate) max_accounts: usize,
    pub(crate) markets: Vec<Market>,
    pub(crate) assets: Vec<Asset>,
    pub(crate) accounts: Vec<Account>,
    #[serde(skip)]
    pub(crate) account_ids: NameIndex,
    pub(crate) insurance_fund: Quote,
    /// Protocol losses (inventory realized below cost) that the fund could not pay and that no
    /// account could absorb yet; repaid first by fund inflows, then by socialized loss.
    pub(crate) bad_debt: Quote,
    pub(crate) fees_collected: Quote,
    pub(crate) settlement_flows: Flows<Quote>,
    /// Per collateral asset, at `Quote` precision (the amounts as given): wider than any one
    /// account's balance, so one account at its limit cannot stop everyone's deposits.
    pub(crate) asset_flows: Vec<Flows<Quote>>,
    /// Per collateral asset (same index as `assets`): what the protocol bought by collateral
    /// conversion and still holds, with its cost basis (`liquidation/collateral.rs`).
    #[serde(default)]
    pub(crate) collateral_holdings: Vec<crate::state::CollateralHolding>,
    pub(crate) last_ts: u64,
    /// Sequence number of the last event offered to `apply` (accepted or not); not hashed.
    pub(crate) last_seq: u64,
    /// Id of the next Dutch auction.
    pub(crate) next_auction_id: u64,
    /// Largest clock step one event may make (`Config::max_clock_jump_ms`).
    pub(crate) max_clock_jump_ms: u64,
    /// Head of the hash chain over every effect of every accepted event (`effect::chain_link`);
    /// hashed and snapshotted.
    pub(crate) effect_chain: [u8; 32],
    /// Derived state: which accounts a price move can have pushed below maintenance.
    /// Not serialized and not hashed; rebuilt by [`Engine::from_snapshot`].
    #[serde(skip)]
    pub(crate) risk: RiskIndex,
    /// Scratch of the running waterfall (ADL books, losses to socialize); empty between events.
    #[serde(skip)]
    pub(crate) waterfall: crate::liquidation::adl_book::WaterfallScratch,
    /// Latest market-less `signal` values, by name.
    #[serde(default)]
    pub(crate) signals: crate::signal::Signals,
    /// Markets with a running MM phase-in (derived from the markets; rebuilt on load).
    #[serde(skip)]
    pub(crate) phase_ins: u32,
    /// Markets with funding / skew state (derived from the markets; rebuilt on load): 0 keeps
    /// every funding and alert path off the hot path.
    #[serde(skip)]
    pub(crate) perp_markets: u32,
    /// The protocol's net position was negative at the end of the last accepted event
    /// (`protocol_book.rs`): derived, so neither hashed nor snapshotted; recomputed on load.
    #[serde(skip)]
    pub(crate) protocol_underwater: bool,
    /// Assets with a running weight phase (derived from the assets; rebuilt on load): 0 keeps
    /// the weight steps off the hot path.
    #[serde(skip)]
    pub(crate) weight_phases: u32,
}

/// Which collateral asset a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetRef {
    Settlement,
    Other(AssetId),
}

impl Engine {
    /// A fresh engine for a validated configuration.
    pub fn new(config: &Config) -> Engine {
        let markets: Vec<Market> = config
            .markets
            .iter()
            .enumerate()
            .map(|(i, m)| Market {
                name: m.name.as_str().into(),
                params: m.params.clone(),
                sources: m
                    .sources
                    .iter()
                    .zip(&m.source_keys)
                    .map(|(name, key)| Source {
                        name: name.as_str().into(),
                        public_key: *key,
                        latest: None,
                        status: SourceStatus::Missing,
                        counters: Default::default(),
                    })
                    .collect(),
                unknown_source_ticks: 0,
                index_price: None,
                mark_price: None,
                // A market with no price yet is frozen; quorum thaws it (`oracle_thawed`).
                frozen: true,
                clamped: false,
                jump_anchor: None,
                basis_ema_raw: 0,
                basis_ts: 0,
                open_interest: Size::ZERO,
                inventory: Position { market: MarketId(i as u16), size: Size::ZERO, cost: Quote::ZERO },
                auction: None,
                phase_in: None,
                signals: Vec::new(),
                perp: m.params.perp.used().then(Box::default),
                liquidations: Vec::new(),
            })
            .collect();
        let market_id = |name: &str| MarketId(markets.iter().position(|m| &*m.name == name).expect("validated") as u16);
        let assets: Vec<Asset> = config
            .assets
            .iter()
            .map(|a| {
                let risk = crate::asset_status::AssetRisk::of(a);
                Asset {
                    name: a.name.as_str().into(),
                    weight: risk.normal_weight(),
                    index_market: market_id(&a.index_market),
                    risk,
                    collateral_haircut: a.collateral_haircut,
                }
            })
            .collect();
        Engine {
            risk: RiskIndex::new(markets.len(), 0),
            settlement_name: config.settlement_asset.as_str().into(),
            max_accounts: config.max_accounts,
            asset_flows: vec![Flows::default(); assets.len()],
            collateral_holdings: vec![Default::default(); assets.len()],
            markets,
            assets,
            accounts: Vec::new(),
            account_ids: NameIndex::default(),
            insurance_fund: Quote::ZERO,
            bad_debt: Quote::ZERO,
            fees_collected: Quote::ZERO,
            settlement_flows: Flows::default(),
            last_ts: 0,
            last_seq: 0,
            next_auction_id: 1,
            max_clock_jump_ms: config.max_clock_jump_ms,
            waterfall: Default::default(),
            phase_ins: 0,
            weight_phases: 0,
            perp_markets: config.markets.iter().filter(|m| m.params.perp.used()).count() as u32,
            protocol_underwater: false,
            effect_chain: crate::effect::CHAIN_GENESIS,
            signals: Vec::new(),
        }
    }

    /// Restore an engine from a deserialized snapshot: rebuilds the name index and checks that
    /// account names are unique and ids dense.
    pub fn from_snapshot(mut engine: Engine) -> Result<Engine, String> {
        engine.account_ids = NameIndex::with_capacity(engine.accounts.len());
        for (i, account) in engine.accounts.iter().enumerate() {
            if !engine.account_ids.insert(&account.name, AccountId(i as u32), &engine.accounts) {
                return Err(format!("snapshot lists account {:?} twice", account.name));
            }
        }
        if engine.asset_flows.len() != engine.assets.len() {
            return Err("snapshot: asset flow table does not match the assets".into());
        }
        if engine.collateral_holdings.is_empty() {
            // A snapshot from before collateral liquidation: the protocol held nothing.
            engine.collateral_holdings = vec![Default::default(); engine.assets.len()];
        }
        if engine.collateral_holdings.len() != engine.assets.len() {
            return Err("snapshot: collateral holdings table does not match the assets".into());
        }
        engine.check_snapshot_references()?;
        engine.risk = RiskIndex::new(engine.markets.len(), engine.accounts.len());
        engine.phase_ins = engine.markets.iter().filter(|m| m.phase_in.is_some()).count() as u32;
        engine.perp_markets = engine.markets.iter().filter(|m| m.perp.is_some()).count() as u32;
        engine.protocol_underwater = engine.protocol_underwater_of();
        engine.weight_phases = engine.assets.iter().filter(|a| a.risk.phase.is_some()).count() as u32;
        Ok(engine)
    }

    /// The ids a snapshot's tables hold point inside the tables, and each market's parameters are
    /// valid: a snapshot whose checksum matches but whose content is inconsistent is refused
    /// instead of panicking later (found by the snapshot decoder's property test).
    fn check_snapshot_references(&self) -> Result<(), String> {
        let (markets, assets) = (self.markets.len(), self.assets.len());
        if markets == 0 || markets > crate::config::MAX_MARKETS || assets > crate::config::MAX_ASSETS {
            return Err("snapshot: market or asset table out of bounds".into());
        }
        if self.assets.iter().any(|a| a.index_market.0 as usize >= markets) {
            return Err("snapshot: an asset's index market does not exist".into());
        }
        let bad_haircut =
            |a: &Asset| a.collateral_haircut.is_negative() || a.collateral_haircut >= crate::num::Rate::ONE;
        let bad_holding = |h: &crate::state::CollateralHolding| {
            h.size.is_negative() || h.cost.is_negative() || (h.size.is_zero() && !h.cost.is_zero())
        };
        if self.assets.iter().any(bad_haircut) || self.collateral_holdings.iter().any(bad_holding) {
            return Err("snapshot: a collateral haircut or holding is out of bounds".into());
        }
        for asset in &self.assets {
            asset.risk.check().map_err(|e| format!("snapshot: asset {}: {e}", asset.name))?;
            if !asset.weight.is_fraction() {
                return Err(format!("snapshot: asset {}: effective weight out of [0, 1]", asset.name));
            }
        }
        for (i, market) in self.markets.iter().enumerate() {
            market.params.validate().map_err(|e| format!("snapshot: market {}: {e}", market.name))?;
            if market.inventory.market.0 as usize != i || market.sources.len() > crate::config::MAX_SOURCES {
                return Err(format!("snapshot: market {}: inconsistent inventory or sources", market.name));
            }
        }
        for account in &self.accounts {
            let bad_position = account.positions.iter().any(|p| p.market.0 as usize >= markets);
            let bad_collateral = account.collateral.iter().any(|(asset, _)| asset.0 as usize >= assets);
            if bad_position || bad_collateral {
                return Err(format!(
                    "snapshot: account {:?} refers to a market or asset that does not exist",
                    account.name
                ));
            }
        }
        Ok(())
    }

    /// Apply one event with sequence number `seq`. On success effects are appended to `out`; on
    /// error the state is unchanged and nothing is appended.
    pub fn apply(&mut self, seq: u64, event: &Event, out: &mut Vec<Effect>) -> Result<(), Error> {
        self.last_seq = seq;
        event.validate()?;
        self.apply_valid(event, seq, out)
    }

    /// [`Engine::apply`] after `event.validate()` passed (`last_seq` already set).
    fn apply_valid(&mut self, event: &Event, seq: u64, out: &mut Vec<Effect>) -> Result<(), Error> {
        let ts = event.ts();
        let advances_clock = event.advances_clock();
        if advances_clock {
            self.check_clock_step(ts)?;
        }
        let effects_before = out.len();
        let previous_ts = self.last_ts; // handlers for clock and the takes commit time early
        let result = match event {
            Event::Deposit(t) => self.deposit(t),
            Event::Withdraw(t) => self.withdraw(t),
            Event::Price(p) => self.price(seq, p, out),
            Event::Trade(t) => self.trade(t),
            Event::AuctionTake(a) => self.auction_take(seq, a, out),
            Event::CollateralTake(t) => self.collateral_take(seq, t, out),
            Event::Clock { ts } => self.clock(seq, *ts, out),
            Event::Params(p) => self.params(seq, p, out),
            Event::FundDeposit { amount, .. } => self.fund_deposit(*amount),
            Event::Signal(s) => self.signal(s),
            Event::IsolatedMargin(m) => self.isolated_margin(m),
            Event::MarginModel(m) => self.margin_model(m),
            Event::AssetStatus(a) => self.asset_status(seq, a, out),
        };
        match result {
            Ok(()) => {
                let clock_moved = advances_clock && ts > previous_ts;
                if advances_clock {
                    self.last_ts = ts;
                }
                if clock_moved && !matches!(event, Event::Params(_)) {
                    // MM phase-ins step on clock-advancing events, never on the announcing one.
                    self.step_phase_ins(ts);
                }
                if clock_moved && !matches!(event, Event::AssetStatus(_)) {
                    // Weight phases step on clock-advancing events, never on an announcing one.
                    self.step_weight_phases(seq, ts, out);
                }
                if clock_moved && !matches!(event, Event::Clock { .. }) {
                    // Time passed: sources may have aged out (a clock event did this itself).
                    self.refresh_all_markets(seq, out);
                } else if let Event::Params(p) = event {
                    if let Ok(id) = self.market_id(&p.market) {
                        self.refresh_market(id, seq, out);
                    }
                }
                // Every accepted event may have moved a mark (re-judging) or a balance: run the
                // waterfall so that no live account is left below maintenance.
                self.settle_risk(seq, out);
                self.exposure_alerts(seq, self.last_ts, out);
                self.solvency_alert(seq, out);
                self.chain_effects(&out[effects_before..]);
                Ok(())
            }
            Err(error) => {
                debug_assert_eq!(out.len(), effects_before, "a rejected event emits nothing");
                out.truncate(effects_before);
                self.count_oracle_rejection(&error);
                Err(error)
            }
        }
    }

    /// A clock-advancing `ts` must not go backwards, nor jump more than `max_clock_jump_ms`
    /// ahead (one bad writer could otherwise freeze every market and stop liquidations by
    /// making all honest later events `time_backwards`). While the clock is still 0 (nothing has
    /// set it), the first time is bounded only by `MAX_TS_MS`.
    fn check_clock_step(&self, ts: u64) -> Result<(), Error> {
        let last_ts = self.last_ts;
        if ts < last_ts {
            return Err(Error::TimeBackwards { ts, last_ts });
        }
        let limit =
            if last_ts == 0 { crate::config::MAX_TS_MS } else { last_ts.saturating_add(self.max_clock_jump_ms) };
        if ts > limit.min(crate::config::MAX_TS_MS) {
            return Err(Error::ClockJump { ts, last_ts, max_jump_ms: self.max_clock_jump_ms });
        }
        Ok(())
    }

    /// Parse and apply one input line; a refusal becomes a `rejected` effect. Empty lines are skipped.
    pub fn apply_line(&mut self, seq: u64, line: &[u8], out: &mut Vec<Effect>) {
        self.apply_parsed(seq, &ParsedLine::parse(line), out);
    }

    /// [`Engine::apply_line`] for a line parsed beforehand (possibly on another thread): the same
    /// effects and state. The parser made every check of [`Event::validate`], so it is not rerun.
    pub fn apply_parsed(&mut self, seq: u64, line: &ParsedLine, out: &mut Vec<Effect>) {
        match &line.0 {
            Parsed::Blank => {}
            Parsed::Event(event) => {
                debug_assert_eq!(event.validate(), Ok(()), "the parser validates what it accepts");
                self.last_seq = seq;
                if let Err(error) = self.apply_valid(event, seq, out) {
                    // A refused tick's ts is the source's claim, not time: report the engine clock.
                    let ts = if event.advances_clock() { event.ts().max(self.last_ts) } else { self.last_ts };
                    out.push(Effect::rejected(seq, ts, &error));
                }
            }
            Parsed::Refused(error) => {
                self.last_seq = seq;
                out.push(Effect::rejected(seq, self.last_ts, error));
            }
        }
    }

    /// Fold the effects of an accepted event into the chain: the one place every effect of the
    /// state machine's history passes. Refusals (`rejected`, and `oracle_rejected` with
    /// `event_refused`) are built outside it and not chained: they change no state.
    fn chain_effects(&mut self, effects: &[Effect]) {
        for effect in effects {
            debug_assert!(effect.rejection_kind().is_none(), "an accepted event emits no refusal");
            self.effect_chain = crate::effect::chain_link(&self.effect_chain, effect);
        }
    }

    // ---- lookups ----

    pub fn market_id(&self, name: &str) -> Result<MarketId, Error> {
        self.markets
            .iter()
            .position(|m| &*m.name == name)
            .map(|i| MarketId(i as u16))
            .ok_or_else(|| Error::UnknownMarket(name.to_string()))
    }

    pub fn asset_ref(&self, name: &str) -> Result<AssetRef, Error> {
        if name == &*self.settlement_name {
            return Ok(AssetRef::Settlement);
        }
        self.assets
            .iter()
            .position(|a| &*a.name == name)
            .map(|i| AssetRef::Other(AssetId(i as u16)))
            .ok_or_else(|| Error::UnknownAsset(name.to_string()))
    }

    pub fn account_id(&self, name: &str) -> Result<AccountId, Error> {
        self.account_ids.get(name, &self.accounts).ok_or_else(|| Error::UnknownAccount(name.to_string()))
    }

    pub(crate) fn health_of(&self, account: &Account) -> Result<Health, Overflow> {
        margin::health(account, &self.assets, &self.markets)
    }

    /// Write access to an account. Every change to an account goes through here, so that the risk
    /// index rechecks it at the next pass.
    pub(crate) fn account_mut(&mut self, id: AccountId) -> &mut Account {
        self.risk.touch(id);
        self.waterfall.touch(id);
        if let Some(undo) = self.waterfall.undo.as_mut() {
            undo.save(id, &self.accounts[id.0 as usize]);
        }
        &mut self.accounts[id.0 as usize]
    }

    /// The one write of the insurance fund and bad debt: neither is ever negative (asserted in
    /// release builds: a negative fund would be value created from nothing).
    pub(crate) fn write_fund(&mut self, fund: Quote, bad_debt: Quote) {
        assert!(!fund.is_negative(), "insurance fund written negative: {fund}");
        assert!(!bad_debt.is_negative(), "bad debt written negative: {bad_debt}");
        self.insurance_fund = fund;
        self.bad_debt = bad_debt;
    }

    /// The one write of a market's open interest (and, when given, its inventory): open interest
    /// is a sum of long sizes, never negative; an empty inventory carries no cost.
    pub(crate) fn write_book(&mut self, market: MarketId, inventory: Option<Position>, open_interest: Size) {
        assert!(!open_interest.is_negative(), "open interest written negative: {open_interest}");
        let market = &mut self.markets[market.0 as usize];
        if let Some(inventory) = inventory {
            assert!(!inventory.size.is_zero() || inventory.cost.is_zero(), "an empty inventory has no cost");
            assert_eq!(inventory.market, market.inventory.market, "the inventory stays in its market");
            market.inventory = inventory;
        }
        market.open_interest = open_interest;
    }

    /// Write access for a deposit to an existing account, without queuing it for the risk index.
    /// A deposit only adds a non-negative amount of an asset (collateral counts at a non-negative
    /// weight times a positive price) and changes no position, so the account's equity rises or
    /// stays at every price and its requirements do not move: whatever the index last concluded
    /// (a certified safe box, parked, untracked, or a candidate that the next pass rechecks
    /// anyway) still holds. Debug builds check every pass against the full scan.
    ///
    /// Under portfolio margin, collateral other than the settlement asset (`collateral`) also
    /// moves the scenarios' losses, so such a deposit to such an account queues it like any
    /// other write; a settlement deposit only raises equity there too.
    pub(crate) fn account_mut_deposit(&mut self, id: AccountId, collateral: bool) -> &mut Account {
        if collateral && !self.accounts[id.0 as usize].margin_model.is_tiered() {
            return self.account_mut(id);
        }
        &mut self.accounts[id.0 as usize]
    }

    // ---- read access for the CLI, the server, tests and the reference evaluator ----

    pub fn markets(&self) -> &[Market] {
        &self.markets
    }
    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.account_ids.get(name, &self.accounts).map(|id| &self.accounts[id.0 as usize])
    }
    pub fn settlement_asset(&self) -> &str {
        &self.settlement_name
    }
    pub fn insurance_fund(&self) -> Quote {
        self.insurance_fund
    }
    /// Protocol bad debt (see the field); conservation counts it as a liability.
    pub fn bad_debt(&self) -> Quote {
        self.bad_debt
    }
    pub fn fees_collected(&self) -> Quote {
        self.fees_collected
    }
    pub fn settlement_flows(&self) -> Flows<Quote> {
        self.settlement_flows
    }
    pub fn asset_flows(&self, asset: AssetId) -> Flows<Quote> {
        self.asset_flows[asset.0 as usize]
    }
    /// What the protocol holds of a collateral asset (bought by collateral conversion).
    pub fn collateral_holding(&self, asset: AssetId) -> crate::state::CollateralHolding {
        self.collateral_holdings[asset.0 as usize]
    }
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    /// Largest clock step one event may make (`max_clock_jump_ms` of the config).
    pub fn max_clock_jump_ms(&self) -> u64 {
        self.max_clock_jump_ms
    }
    /// Accounts the waterfall has evaluated to rank holders for ADL or to socialize a loss, over
    /// the engine's life (not state: not hashed, not in snapshots). Telemetry and tests.
    pub fn waterfall_work(&self) -> u64 {
        self.waterfall.work
    }
    /// Head of the effect hash chain (genesis: all zero).
    pub fn effect_chain_head(&self) -> [u8; 32] {
        self.effect_chain
    }
    /// Counters and sizes of the risk index (benchmarks, telemetry).
    pub fn risk_index_stats(&self) -> RiskIndexStats {
        self.risk.stats()
    }
    /// Health of a named account at current marks.
    pub fn health(&self, name: &str) -> Result<Health, Error> {
        let account = self.account(name).ok_or_else(|| Error::UnknownAccount(name.to_string()))?;
        Ok(self.health_of(account)?)
    }
}
