//! Shared test support: the reference evaluator, event generators, and the invariant checks
//! that the property tests run after every event.
//!
//! - [`check_all`]: state-only invariants of an engine against the test's own [`Ledger`] of
//!   accepted deposits and withdrawals: the reference's equity, unrealized PnL, equity without
//!   profit, MM and IM equal the engine's exactly for every account; conservation per asset
//!   (invariant 1, with the protocol's inventory, insurance fund, bad debt and fees); zero-sum
//!   positions and open interest (2); no account left below maintenance while its market is live
//!   (3); insurance fund and bad debt never negative (6); a well-formed ledger.
//! - [`Harness`]: applies [`Step`]s through the real `apply` / `apply_line` paths and checks, per
//!   step, that a refusal is clean (5: same hash, same readable state, no effect appended by
//!   `apply`, exactly one refusal effect from `apply_line`), that the outcome agrees with the
//!   reference's admission rules ([`admission`]), then runs [`check_all`].
//! - [`Harness::replay_check`]: determinism (4).
//!
//! Other test files can reuse all of it with `mod support;`.
#![allow(dead_code)]

pub mod gen;
pub mod json_line;
pub mod reference;

use num_bigint::BigInt;
use num_traits::{Signed, Zero};
use solvent_core::state::Account;
use solvent_core::{Config, Effect, Engine, Event, Quote, Size};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The settlement asset of the configurations these tests use.
pub const SETTLEMENT: &str = "USDC";

/// What the test itself knows went in and out: deposits and withdrawals the engine ACCEPTED,
/// per asset name, exact, in units of 1e-16 of the asset (`Quote` raw: how amounts are parsed).
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub deposited: BTreeMap<String, BigInt>,
    pub withdrawn: BTreeMap<String, BigInt>,
    /// The effective collateral weights by the documented rule; `None` (a ledger built without
    /// its config): the engine's weights are used.
    pub weights: Option<reference::WeightModel>,
}

impl Ledger {
    /// Record an event the engine accepted (anything else is ignored).
    pub fn record_accepted(&mut self, event: &Event) {
        if let Some(weights) = self.weights.as_mut() {
            weights.record_accepted(event);
        }
        let (book, asset, amount) = match event {
            Event::Deposit(t) => (&mut self.deposited, t.asset.as_str(), t.amount),
            Event::Withdraw(t) => (&mut self.withdrawn, t.asset.as_str(), t.amount),
            // A top-up of the insurance fund comes in from outside, in the settlement asset.
            Event::FundDeposit { amount, .. } => (&mut self.deposited, SETTLEMENT, *amount),
            _ => return,
        };
        *book.entry(asset.to_string()).or_insert_with(BigInt::zero) += BigInt::from(amount.raw());
    }

    pub fn deposited(&self, asset: &str) -> BigInt {
        self.deposited.get(asset).cloned().unwrap_or_else(BigInt::zero)
    }

    pub fn withdrawn(&self, asset: &str) -> BigInt {
        self.withdrawn.get(asset).cloned().unwrap_or_else(BigInt::zero)
    }

    pub fn net(&self, asset: &str) -> BigInt {
        self.deposited(asset) - self.withdrawn(asset)
    }
}

/// Every state-only invariant; `Err` describes the first violation.
pub fn check_all(engine: &Engine, ledger: &Ledger) -> Result<(), String> {
    check_all_with(engine, ledger, &mut reference::Memo::default())
}

/// [`check_all`] reusing reference results of accounts whose inputs did not change.
pub fn check_all_with(engine: &Engine, ledger: &Ledger, memo: &mut reference::Memo) -> Result<(), String> {
    check_well_formed(engine)?;
    let assets = match &ledger.weights {
        Some(weights) => weights.assets(engine)?,
        None => engine.assets().to_vec(),
    };
    let accounts_upnl = reference::check_engine_with(engine, &assets, memo)?;
    conservation(engine, ledger, accounts_upnl)?;
    check_zero_sum(engine)?;
    check_maintenance_with(engine, &assets, memo)?;
    Ok(())
}

/// Invariant 3: no account stays below maintenance after an event while its market is not
/// frozen: an account with a position in a live market has equity >= MM (by the reference's
/// numbers); an account with no position left whose collateral prices are live has equity >= 0
/// (bankruptcy, ADL and socialized loss settle the rest).
pub fn check_maintenance(engine: &Engine, memo: &mut reference::Memo) -> Result<(), String> {
    check_maintenance_with(engine, engine.assets(), memo)
}

/// [`check_maintenance`] with the reference's own `assets`.
pub fn check_maintenance_with(
    engine: &Engine,
    assets: &[solvent_core::state::Asset],
    memo: &mut reference::Memo,
) -> Result<(), String> {
    let frozen = |m: solvent_core::state::MarketId| engine.markets()[m.0 as usize].frozen;
    for account in engine.accounts() {
        let health = memo.health(account, assets, engine.markets())?;
        let show = reference::show_raw;
        if account.positions.iter().any(|p| !frozen(p.market)) {
            if health.equity_raw < health.mm_raw && !held_by_rules(engine, account, &health.equity_raw, &health.mm_raw)
            {
                return Err(format!(
                    "invariant 3: account {} stays below maintenance: equity {} < MM {} with a position in a live \
                     market",
                    account.name,
                    show(&health.equity_raw),
                    show(&health.mm_raw)
                ));
            }
        } else if account.positions.is_empty()
            && !dependent_markets(engine, account).into_iter().any(frozen)
            && health.equity_raw < BigInt::zero()
        {
            return Err(format!(
                "invariant 3: account {} has no position and negative equity {}",
                account.name,
                show(&health.equity_raw)
            ));
        }
    }
    Ok(())
}

/// Accounts the checks let stay under MM because a per-event cap was used up (tests read it to
/// show the path is reached).
pub static CAP_HOLDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The exceptions to invariant 3 (docs/liquidation.md section 3.1): an account may stay under MM
/// while each of its live positions is held by a venue rule at the engine clock: in a chunk
/// cooldown (Hyperliquid), or in a market whose per-event cap (dYdX's per-block limits) this
/// event has used up: the room left, the smaller of cap - use per cap, is under the minimum
/// notional (or one unit of size at mark). In both cases its equity is not negative (bankruptcy
/// is never held) and not under MM x `backstop_mm_fraction` (exact: equity < MM x fraction is
/// the backstop's full close; the engine rounds the threshold up, so it closes no later).
fn held_by_rules(engine: &Engine, account: &Account, equity_raw: &BigInt, mm_raw: &BigInt) -> bool {
    if equity_raw < &BigInt::zero() {
        return false;
    }
    let id = engine.account_id(&account.name).expect("a listed account");
    let mut capped = false;
    let held = account.positions.iter().filter(|p| !engine.markets()[p.market.0 as usize].frozen).all(|p| {
        let market = &engine.markets()[p.market.0 as usize];
        let rules = &market.params.rules;
        let fraction = BigInt::from(rules.backstop_mm_fraction.raw());
        let one = BigInt::from(solvent_core::Rate::ONE_RAW);
        if equity_raw * &one < mm_raw * &fraction {
            return false;
        }
        let cooling = rules.liquidation_chunk_notional.is_some()
            && market.liquidation_record(id).is_some_and(|r| engine.last_ts() < r.cooldown_until_ms);
        let out_of_room = cap_room(engine, id, p.market).is_some_and(|room| {
            let mark = market.mark_price.expect("a live market with positions has a mark");
            // One raw unit of size (1e-8) at mark, in Quote raw (1e-16): the mark's raw value.
            let one_unit = BigInt::from(mark.raw());
            let floor = BigInt::from(rules.min_liquidation_notional.raw()).max(one_unit);
            room < floor
        });
        capped |= out_of_room && !cooling;
        cooling || out_of_room
    });
    if held && capped {
        CAP_HOLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    held
}

/// The room the per-event caps of `market` leave `id` after the last event (`Quote` raw), or
/// `None` when the market has no cap.
fn cap_room(
    engine: &Engine,
    id: solvent_core::state::AccountId,
    market: solvent_core::state::MarketId,
) -> Option<BigInt> {
    let rules = &engine.markets()[market.0 as usize].params.rules;
    let (account_used, market_used) = engine.event_liquidated_notional(id, market);
    let room = |cap: Option<Quote>, used: Quote| {
        cap.map(|c| (BigInt::from(c.raw()) - BigInt::from(used.raw())).max(BigInt::zero()))
    };
    [
        room(rules.max_account_liquidation_notional, account_used),
        room(rules.max_event_liquidation_notional, market_used),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Invariant 1, exact, per asset. Settlement asset: net transfers = account balances + unrealized
/// PnL at mark of every position (protocol inventory included) + insurance fund - bad debt + fees
/// collected. Other assets: net transfers = account balances. Both equal the engine's own flow
/// counters.
pub fn check_conservation(engine: &Engine, ledger: &Ledger) -> Result<(), String> {
    let mut accounts_upnl = BigInt::zero();
    for account in engine.accounts() {
        for position in &account.positions {
            accounts_upnl += position_value(engine, position)?;
        }
    }
    conservation(engine, ledger, accounts_upnl)
}

/// Quote raw (1e-16) per Size raw (1e-8).
fn quote_per_size() -> BigInt {
    BigInt::from(Quote::ONE_RAW / i128::from(Size::ONE_RAW))
}

/// `accounts_upnl`: the exact sum of every account position's unrealized PnL, in `Quote` raw.
fn conservation(engine: &Engine, ledger: &Ledger, accounts_upnl: BigInt) -> Result<(), String> {
    let settlement = engine.settlement_asset();
    for asset in ledger.deposited.keys().chain(ledger.withdrawn.keys()) {
        if asset != settlement && !engine.assets().iter().any(|a| &*a.name == asset) {
            return Err(format!("conservation: the engine accepted a transfer of unknown asset {asset}"));
        }
    }
    let show = reference::show_raw;
    let flows = engine.settlement_flows();
    let (deposited, withdrawn) = (ledger.deposited(settlement), ledger.withdrawn(settlement));
    if BigInt::from(flows.deposited.raw()) != deposited || BigInt::from(flows.withdrawn.raw()) != withdrawn {
        return Err(format!(
            "conservation: engine {settlement} flows in {} / out {} but accepted deposits {} / withdrawals {}",
            flows.deposited,
            flows.withdrawn,
            show(&deposited),
            show(&withdrawn)
        ));
    }
    let mut held = accounts_upnl;
    for account in engine.accounts() {
        held += BigInt::from(account.settlement.raw());
    }
    check_protocol_book(engine, &(ledger.net(settlement) - &held))?;
    for market in engine.markets() {
        held += position_value(engine, &market.inventory)?;
    }
    // The fund never goes negative: a deficit it cannot cover is held apart as bad debt (owed by the
    // protocol until ADL or socialized loss absorbs it), so the protocol's net is fund - bad debt.
    held += BigInt::from(engine.insurance_fund().raw());
    held -= BigInt::from(engine.bad_debt().raw());
    held += BigInt::from(engine.fees_collected().raw());
    // What the protocol paid for the collateral it bought and still holds left the settlement
    // balances: an outflow, carried at cost.
    for holding in engine.collateral_holdings() {
        held -= BigInt::from(holding.cost.raw());
    }
    let net = ledger.net(settlement);
    if held != net {
        return Err(format!(
            "conservation: {settlement} deposits - withdrawals = {} but balances + unrealized PnL + insurance fund \
             - bad debt + fees - collateral holdings' cost = {} (difference {})",
            show(&net),
            show(&held),
            show(&(&held - &net))
        ));
    }
    for (i, asset) in engine.assets().iter().enumerate() {
        let id = solvent_core::state::AssetId(i as u16);
        let flows = engine.asset_flows(id);
        let (deposited, withdrawn) = (ledger.deposited(&asset.name), ledger.withdrawn(&asset.name));
        if BigInt::from(flows.deposited.raw()) != deposited || BigInt::from(flows.withdrawn.raw()) != withdrawn {
            return Err(format!(
                "conservation: engine {} flows in {} / out {} but accepted deposits {} / withdrawals {}",
                asset.name,
                flows.deposited,
                flows.withdrawn,
                show(&deposited),
                show(&withdrawn)
            ));
        }
        let balances: BigInt = engine.accounts().iter().map(|a| BigInt::from(a.collateral_balance(id).raw())).sum();
        let holding = engine.collateral_holding(id);
        if holding.size.is_negative()
            || holding.cost.is_negative()
            || (holding.size.is_zero() && !holding.cost.is_zero())
        {
            return Err(format!("collateral holding of {} out of bounds: {holding:?}", asset.name));
        }
        let total = (balances + BigInt::from(holding.size.raw())) * quote_per_size();
        let net = ledger.net(&asset.name);
        if total != net {
            return Err(format!(
                "conservation: {} deposits - withdrawals = {} but account balances + protocol holdings ({}) sum to {}",
                asset.name,
                show(&net),
                holding.size,
                show(&total)
            ));
        }
    }
    Ok(())
}

/// The protocol's net position (`Engine::protocol_book`) is what conservation leaves once every
/// trader is paid: `after_traders` = deposits - withdrawals - Σ (settlement + unrealized PnL) of
/// the accounts, less the fees collected, plus the protocol's collateral holdings at index (zero
/// before an index); its per-market parts add up; the alert flag agrees.
fn check_protocol_book(engine: &Engine, after_traders: &BigInt) -> Result<(), String> {
    let mut expected = after_traders - BigInt::from(engine.fees_collected().raw());
    for (i, asset) in engine.assets().iter().enumerate() {
        let holding = engine.collateral_holding(solvent_core::state::AssetId(i as u16));
        if let Some(index) = engine.markets()[asset.index_market.0 as usize].index_price {
            expected += BigInt::from(holding.size.raw()) * BigInt::from(index.raw());
        }
    }
    let book = engine.protocol_book().map_err(|e| format!("protocol book: {e:?}"))?;
    let net = BigInt::from(book.net_position.raw());
    if net != expected {
        return Err(format!(
            "protocol book: net position {} but conservation leaves {} after the traders and the fees",
            book.net_position,
            reference::show_raw(&expected)
        ));
    }
    let parts: i128 = book.inventory.values().map(|m| m.unrealized_pnl.raw()).sum();
    let holdings: i128 = book.collateral.values().map(|h| h.unrealized_pnl.raw()).sum();
    let quick = engine.protocol_net_position().map_err(|e| format!("protocol net: {e:?}"))?;
    let consistent = parts == book.inventory_unrealized_pnl.raw() && holdings == book.collateral_unrealized_pnl.raw();
    if !consistent || quick != book.net_position || book.solvent == net.is_negative() {
        return Err(format!("protocol book: parts {parts}, quick net {quick} and verdict disagree with {book:?}"));
    }
    Ok(())
}

/// Unrealized PnL at mark of a position in `Quote` raw (an empty one must carry no cost).
fn position_value(engine: &Engine, position: &solvent_core::state::Position) -> Result<BigInt, String> {
    let market = &engine.markets()[position.market.0 as usize];
    if position.size.is_zero() {
        return Ok(-BigInt::from(position.cost.raw()));
    }
    let mark = market.mark_price.ok_or_else(|| format!("a position in {} has no mark price", market.name))?;
    Ok(BigInt::from(position.size.raw()) * BigInt::from(mark.raw()) - BigInt::from(position.cost.raw()))
}

/// Invariant 2: per market, the sizes of all holders (protocol inventory included) sum to zero,
/// and open interest is the sum of the long sizes of all holders.
pub fn check_zero_sum(engine: &Engine) -> Result<(), String> {
    for (i, market) in engine.markets().iter().enumerate() {
        let id = solvent_core::state::MarketId(i as u16);
        let mut sum = i128::from(market.inventory.size.raw());
        let mut longs = i128::from(market.inventory.size.raw()).max(0);
        for account in engine.accounts() {
            let s = i128::from(account.size(id).raw());
            sum += s;
            longs += s.max(0);
        }
        if sum != 0 {
            return Err(format!(
                "zero-sum: sizes in {} (inventory {} included) sum to {}",
                market.name,
                market.inventory.size,
                Size::from_raw(sum as i64)
            ));
        }
        if i128::from(market.open_interest.raw()) != longs {
            return Err(format!(
                "open interest of {} is {} but long sizes sum to {}",
                market.name,
                market.open_interest,
                Size::from_raw(longs as i64)
            ));
        }
    }
    Ok(())
}

/// Structural checks: names unique and findable, collateral and positions sorted without zeros,
/// collateral never negative, a closed inventory carries no cost, the insurance fund never
/// negative (invariant 6), fees never negative.
pub fn check_well_formed(engine: &Engine) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for account in engine.accounts() {
        if !names.insert(account.name.clone()) {
            return Err(format!("account {} appears twice", account.name));
        }
        if engine.account(&account.name).map(|a| &a.name) != Some(&account.name) {
            return Err(format!("account {} cannot be found by name", account.name));
        }
        check_account_shape(engine, account)?;
    }
    for market in engine.markets() {
        if market.inventory.size.is_zero() && !market.inventory.cost.is_zero() {
            return Err(format!("{}: empty inventory with cost {}", market.name, market.inventory.cost));
        }
    }
    if engine.insurance_fund().is_negative() {
        return Err(format!("insurance fund is negative: {}", engine.insurance_fund()));
    }
    if engine.bad_debt().is_negative() {
        return Err(format!("bad debt is negative: {}", engine.bad_debt()));
    }
    if engine.fees_collected().is_negative() {
        return Err(format!("fees collected are negative: {}", engine.fees_collected()));
    }
    Ok(())
}

fn check_account_shape(engine: &Engine, account: &Account) -> Result<(), String> {
    for pair in account.collateral.windows(2) {
        if pair[0].0 >= pair[1].0 {
            return Err(format!("account {}: collateral not strictly sorted", account.name));
        }
    }
    for (asset, balance) in &account.collateral {
        if (asset.0 as usize) >= engine.assets().len() || !balance.is_positive() {
            return Err(format!("account {}: collateral entry {asset:?} = {balance}", account.name));
        }
    }
    for pair in account.positions.windows(2) {
        if pair[0].market >= pair[1].market {
            return Err(format!("account {}: positions not strictly sorted", account.name));
        }
    }
    for position in &account.positions {
        if position.size.is_zero() {
            return Err(format!("account {}: a stored position has size zero", account.name));
        }
        if (position.market.0 as usize) >= engine.markets().len() {
            return Err(format!("account {}: position in unknown market {:?}", account.name, position.market));
        }
        if position.cost.is_negative() != position.size.is_negative() && !position.cost.is_zero() {
            return Err(format!(
                "account {}: cost basis {} has the wrong sign for size {}",
                account.name, position.cost, position.size
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Steps and the harness.

/// How a step reaches the engine.
#[derive(Clone, Debug)]
pub enum Input {
    /// `Engine::apply` with a typed event.
    Event(Event),
    /// `Engine::apply_line` with raw bytes; `meaning` is the event the test built the line from
    /// (`None` for deliberately malformed lines).
    Line { bytes: Vec<u8>, meaning: Option<Event> },
}

/// What the generator intends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No expectation beyond the reference's admission rules.
    Any,
    Accept,
    /// Rejected with this error kind.
    Reject(&'static str),
}

#[derive(Clone, Debug)]
pub struct Step {
    pub input: Input,
    pub expect: Expect,
}

impl Step {
    pub fn event(event: Event) -> Step {
        Step { input: Input::Event(event), expect: Expect::Any }
    }
    pub fn line_of(event: Event) -> Step {
        let bytes = json_line::to_json_line(&event).into_bytes();
        Step { input: Input::Line { bytes, meaning: Some(event) }, expect: Expect::Any }
    }
    pub fn raw(line: &str) -> Step {
        Step { input: Input::Line { bytes: line.as_bytes().to_vec(), meaning: None }, expect: Expect::Any }
    }
    pub fn expect(mut self, expect: Expect) -> Step {
        self.expect = expect;
        self
    }
    /// The event this step means, if it is one.
    pub fn meaning(&self) -> Option<&Event> {
        match &self.input {
            Input::Event(e) => Some(e),
            Input::Line { meaning, .. } => meaning.as_ref(),
        }
    }
    /// One line for a reproduction: the JSON line, tagged with the path it took.
    pub fn describe(&self) -> String {
        match &self.input {
            Input::Event(e) => format!("apply      {}", json_line::to_json_line(e)),
            Input::Line { bytes, .. } => format!("apply_line {}", String::from_utf8_lossy(bytes)),
        }
    }
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected(String),
}

/// Applies steps and checks everything after each one. Keeps a log for determinism checks.
pub struct Harness {
    pub engine: Engine,
    pub ledger: Ledger,
    pub effects: Vec<Effect>,
    pub seq: u64,
    pub steps: Vec<Step>,
    pub outcomes: Vec<Outcome>,
    pub hashes: Vec<String>,
    /// [`ledger_hash`] after each step: the state without the effect chain head.
    pub ledger_hashes: Vec<String>,
    /// Whether to run the reference (admission and [`check_all`]) at each step; rejection
    /// cleanliness and the generator's expectations are checked regardless.
    pub check_every_step: bool,
    memo: reference::Memo,
}

impl Harness {
    pub fn new(config: &Config) -> Harness {
        Harness {
            engine: Engine::new(config),
            ledger: Ledger { weights: Some(reference::WeightModel::new(config)), ..Ledger::default() },
            effects: Vec::new(),
            seq: 0,
            steps: Vec::new(),
            outcomes: Vec::new(),
            hashes: Vec::new(),
            ledger_hashes: Vec::new(),
            check_every_step: true,
            memo: reference::Memo::default(),
        }
    }

    pub fn default_config() -> Harness {
        Harness::new(&Config::embedded_default())
    }

    /// The log so far as a reproduction (one line per step, with its outcome).
    pub fn transcript(&self) -> String {
        let mut text = String::new();
        for (i, (step, outcome)) in self.steps.iter().zip(&self.outcomes).enumerate() {
            let _ = writeln!(text, "  #{:<3} {}   => {:?}", i + 1, step.describe(), outcome);
        }
        text
    }

    /// Apply one step through the real path and check everything. `Err` carries a reproduction.
    pub fn step(&mut self, step: Step) -> Result<Outcome, String> {
        match self.try_step(&step) {
            Ok(outcome) => Ok(outcome),
            Err(problem) => {
                let repro = self.transcript();
                Err(format!(
                    "{problem}\nat step #{}: {}\nsteps before:\n{repro}",
                    self.steps.len() + 1,
                    step.describe()
                ))
            }
        }
    }

    fn try_step(&mut self, step: &Step) -> Result<Outcome, String> {
        let before = self.engine.clone();
        let hash_before = self.engine.state_hash();
        let effects_before = self.effects.len();
        self.seq += 1;
        let seq = self.seq;
        let admission = step.meaning().filter(|_| self.check_every_step).map(|event| admission(&before, event));
        let outcome = match &step.input {
            Input::Event(event) => match self.engine.apply(seq, event, &mut self.effects) {
                Ok(()) => {
                    for effect in &self.effects[effects_before..] {
                        if effect.seq != seq || effect.rejection_kind().is_some() {
                            return Err(format!("accepted, but emitted {}", effect.to_json_line()));
                        }
                    }
                    Outcome::Accepted
                }
                Err(error) => {
                    if self.effects.len() != effects_before {
                        return Err(format!("rejected ({}) but effects were appended", error.kind()));
                    }
                    // What `solvent replay` writes for a refused event.
                    self.effects.push(refusal_effect(&self.engine, seq, event, &error));
                    Outcome::Rejected(error.kind().to_string())
                }
            },
            Input::Line { bytes, meaning } => {
                if let Some(event) = meaning {
                    let parsed = Event::parse_line(bytes);
                    if parsed.as_ref() != Ok(event) {
                        return Err(format!("the line does not parse to the event it was built from: {parsed:?}"));
                    }
                }
                self.engine.apply_line(seq, bytes, &mut self.effects);
                line_outcome(&self.effects[effects_before..], seq)?
            }
        };
        let hash_after = self.engine.state_hash();
        if let Outcome::Rejected(kind) = &outcome {
            // Invariant 5: a rejected event leaves the state (and so its hash) unchanged.
            if hash_after != hash_before {
                return Err(format!("rejected ({kind}) but the state hash changed"));
            }
            same_state(&before, &self.engine).map_err(|e| format!("rejected ({kind}) but {e}"))?;
        }
        match (&step.expect, &outcome) {
            (Expect::Any, _) | (Expect::Accept, Outcome::Accepted) => {}
            (Expect::Reject(want), Outcome::Rejected(got)) if want == got => {}
            (expect, got) => return Err(format!("expected {expect:?}, got {got:?}")),
        }
        if let Some(rule) = admission {
            rule.check(&outcome)?;
        }
        if outcome == Outcome::Accepted {
            if let Some(event) = step.meaning() {
                self.ledger.record_accepted(event);
            } else if let (Input::Line { bytes, .. }, Some(weights)) = (&step.input, self.ledger.weights.as_mut()) {
                // A raw line the engine accepted still moves the clock the weight rule follows.
                if let Ok(event) = Event::parse_line(bytes) {
                    weights.record_accepted(&event);
                }
            }
            if self.check_every_step {
                check_funding(&before, &self.engine, step, &self.effects[effects_before..])?;
            }
        }
        if self.check_every_step {
            check_all_with(&self.engine, &self.ledger, &mut self.memo)?;
        }
        self.steps.push(step.clone());
        self.outcomes.push(outcome.clone());
        self.hashes.push(hash_after);
        self.ledger_hashes.push(ledger_hash(&self.engine));
        Ok(outcome)
    }

    /// Invariant 4: the logged steps applied to a fresh engine built from `config` give the same
    /// state hash after every step and, with `compare_effects`, byte-identical effects. With `order`
    /// the first `order.len()` steps (which must commute, e.g. deposits of distinct accounts at one
    /// ts) are applied in that order instead, and hashes are compared from the end of that prefix.
    /// Effects are compared only for the same config and order: a different event order or config
    /// order is a different input, and may list the same effects in another order.
    pub fn replay_check(&self, config: &Config, order: Option<&[usize]>, compare_effects: bool) -> Result<(), String> {
        let mut engine = Engine::new(config);
        let mut effects = Vec::new();
        let prefix = order.map_or(0, <[usize]>::len);
        let mut indices: Vec<usize> = order.map(<[usize]>::to_vec).unwrap_or_default();
        indices.extend(prefix..self.steps.len());
        for (position, &i) in indices.iter().enumerate() {
            let seq = position as u64 + 1;
            match &self.steps[i].input {
                Input::Event(event) => {
                    if let Err(error) = engine.apply(seq, event, &mut effects) {
                        effects.push(refusal_effect(&engine, seq, event, &error));
                    }
                }
                Input::Line { bytes, .. } => engine.apply_line(seq, bytes, &mut effects),
            }
            // Same order: compare after every step; another order: from the end of the prefix on
            // the steps are the same, so comparing at the end of the prefix and at the end suffices.
            let compare = if order.is_none() { true } else { position + 1 == prefix || position + 1 == indices.len() };
            // The chain head follows the order of the effects, which another config order or event
            // order may change where one event touches several markets or accounts: without the
            // effect comparison, only the state apart from the chain head is compared.
            let differs = if compare_effects {
                engine.state_hash() != self.hashes[position]
            } else {
                ledger_hash(&engine) != self.ledger_hashes[position]
            };
            if compare && differs {
                return Err(format!(
                    "replay: state hash differs after step #{} ({}):\n{}",
                    position + 1,
                    self.steps[i].describe(),
                    self.transcript()
                ));
            }
        }
        if !compare_effects {
            return Ok(());
        }
        let expected: Vec<String> = self.effects.iter().map(Effect::to_json_line).collect();
        let got: Vec<String> = effects.iter().map(Effect::to_json_line).collect();
        if expected != got {
            let first = expected.iter().zip(&got).position(|(a, b)| a != b).unwrap_or(expected.len().min(got.len()));
            return Err(format!(
                "replay: effects differ at effect {first} ({} vs {} effects):\nfirst:  {:?}\nreplay: {:?}",
                expected.len(),
                got.len(),
                expected.get(first),
                got.get(first)
            ));
        }
        Ok(())
    }
}

/// The effect `apply_line` (and so `solvent replay`) writes for a refused event: at the event's
/// ts when it is trusted time, else at the engine clock (a tick's ts is its source's claim).
/// The state hash without its last 32 bytes of input, the effect chain head (`hash.rs`).
pub fn ledger_hash(engine: &Engine) -> String {
    let mut bytes = Vec::new();
    engine.encode_canonical(&mut bytes);
    assert_eq!(bytes[bytes.len() - 32..], engine.effect_chain_head(), "the encoding ends with the chain head");
    bytes.truncate(bytes.len() - 32);
    blake3::hash(&bytes).to_hex().to_string()
}

fn refusal_effect(engine: &Engine, seq: u64, event: &Event, error: &solvent_core::Error) -> Effect {
    let ts = if event.advances_clock() { event.ts().max(engine.last_ts()) } else { engine.last_ts() };
    Effect::rejected(seq, ts, error)
}

/// The outcome of an `apply_line` from the effects it appended: a refused event gives exactly one
/// effect that reports the refusal (`rejected`, or `oracle_rejected` with `event_refused`).
fn line_outcome(new_effects: &[Effect], seq: u64) -> Result<Outcome, String> {
    let mut rejected = None;
    for effect in new_effects {
        if effect.seq != seq {
            return Err(format!("effect with seq {} appended while applying seq {seq}", effect.seq));
        }
        if let Some(kind) = effect.rejection_kind() {
            let value: serde_json::Value =
                serde_json::from_str(&effect.to_json_line()).map_err(|e| format!("effect is not JSON: {e}"))?;
            if value["message"].as_str().is_none_or(str::is_empty) {
                return Err(format!("refusal effect without a message: {}", effect.to_json_line()));
            }
            rejected = Some(kind.to_string());
        }
    }
    match rejected {
        Some(kind) if new_effects.len() == 1 => Ok(Outcome::Rejected(kind)),
        Some(kind) => Err(format!("a refused line ({kind}) also emitted other effects: {new_effects:?}")),
        None => Ok(Outcome::Accepted),
    }
}

/// Everything readable about two engines is equal (the hash should already say so), except the
/// per-source telemetry counters, which count refused ticks by design and are not hashed.
fn same_state(a: &Engine, b: &Engine) -> Result<(), String> {
    let without_telemetry = |engine: &Engine| -> Vec<solvent_core::state::Market> {
        let mut markets = engine.markets().to_vec();
        for market in &mut markets {
            market.unknown_source_ticks = 0;
            for source in &mut market.sources {
                source.counters = Default::default();
            }
        }
        markets
    };
    let checks = [
        ("accounts", a.accounts() == b.accounts()),
        ("markets", without_telemetry(a) == without_telemetry(b)),
        ("assets", a.assets() == b.assets()),
        ("insurance fund", a.insurance_fund() == b.insurance_fund()),
        ("fees", a.fees_collected() == b.fees_collected()),
        ("settlement flows", a.settlement_flows() == b.settlement_flows()),
        ("collateral holdings", a.collateral_holdings() == b.collateral_holdings()),
        ("last ts", a.last_ts() == b.last_ts()),
    ];
    for (what, equal) in checks {
        if !equal {
            return Err(format!("the {what} changed"));
        }
    }
    for i in 0..a.assets().len() {
        let id = solvent_core::state::AssetId(i as u16);
        if a.asset_flows(id) != b.asset_flows(id) {
            return Err(format!("the flows of asset {} changed", a.assets()[i].name));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Admission: what the reference says the engine must decide.

/// The reference's verdict on an event before it is applied: the error kinds that apply (the
/// event must be refused, with one of them), kinds the engine may refuse with although the
/// reference cannot tell for sure (`possible`), and whether the event must be accepted when no
/// error applies.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    pub errors: Vec<&'static str>,
    pub possible: Vec<&'static str>,
    pub must_accept: bool,
}

impl Admission {
    fn error(&mut self, kind: &'static str) {
        if !self.errors.contains(&kind) {
            self.errors.push(kind);
        }
    }

    fn check(&self, outcome: &Outcome) -> Result<(), String> {
        match outcome {
            Outcome::Rejected(kind) if self.possible.contains(&kind.as_str()) => Ok(()),
            Outcome::Rejected(kind) if self.errors.is_empty() && self.must_accept => {
                Err(format!("the reference admits this event but the engine rejected it ({kind})"))
            }
            Outcome::Rejected(kind) if !self.errors.is_empty() && !self.errors.contains(&kind.as_str()) => {
                Err(format!("rejected as {kind}, but the reference expects one of {:?}", self.errors))
            }
            Outcome::Accepted if !self.errors.is_empty() => {
                Err(format!("accepted, but the reference rejects it: {:?}", self.errors))
            }
            _ => Ok(()),
        }
    }
}

/// The `funding` effects of an accepted event equal the reference's independent computation
/// (clock events only settle funding; every other event emits none).
fn check_funding(before: &Engine, after: &Engine, step: &Step, effects: &[Effect]) -> Result<(), String> {
    let got: Vec<(Option<String>, String, BigInt)> = effects
        .iter()
        .filter_map(|e| match &e.kind {
            solvent_core::EffectKind::Funding { account, market, amount, .. } => {
                Some((account.clone(), market.clone(), BigInt::from(amount.raw())))
            }
            _ => None,
        })
        .collect();
    let want = match step.meaning() {
        Some(Event::Clock { ts }) => reference::expected_funding(before, after, *ts),
        Some(_) => Vec::new(),
        None => return Ok(()),
    };
    // An overflowing settlement is skipped with an alert; the generator's books never overflow.
    if got != want {
        return Err(format!("funding: engine paid {got:?}, the reference expects {want:?}"));
    }
    Ok(())
}

/// Whether `amount` (parsed at Quote precision) is a whole number of `Size` raw units.
fn fits_size(amount: Quote) -> bool {
    amount.raw() % (Quote::ONE_RAW / i128::from(Size::ONE_RAW)) == 0
}

/// The reference's admission rules for `event` against the state `engine`:
/// references must exist, time must not go backwards, a withdrawal needs the balance and must
/// leave collateral value + min(0, unrealized PnL) >= initial margin, and a trade that adds
/// exposure for a party (grows its position or flips it) must leave that party's equity >= its
/// initial margin. Reductions are always allowed. Only for well-formed events (positive amounts,
/// sizes and prices); the parser's checks are the generator's business.
pub fn admission(engine: &Engine, event: &Event) -> Admission {
    let mut verdict = Admission { must_accept: true, ..Admission::default() };
    if event.advances_clock() && event.ts() < engine.last_ts() {
        verdict.error("time_backwards");
    }
    let jump_limit = if engine.last_ts() == 0 {
        solvent_core::config::MAX_TS_MS
    } else {
        engine.last_ts().saturating_add(engine.max_clock_jump_ms())
    };
    if event.advances_clock() && event.ts() > jump_limit.min(solvent_core::config::MAX_TS_MS) {
        verdict.error("clock_jump");
    }
    let settlement = engine.settlement_asset();
    let asset_id = |name: &str| engine.assets().iter().position(|a| &*a.name == name);
    match event {
        Event::Deposit(t) => {
            if t.asset != settlement && asset_id(&t.asset).is_none() {
                verdict.error("unknown_asset");
            } else if t.asset != settlement && !fits_size(t.amount) {
                verdict.error("too_many_decimals");
            } else if t.asset == settlement {
                let held = engine.account(&t.account).map_or(0, |a| a.settlement.raw());
                if BigInt::from(held) + BigInt::from(t.amount.raw())
                    > BigInt::from(solvent_core::transfer::MAX_SETTLEMENT_BALANCE.raw())
                {
                    verdict.error("balance_limit");
                }
            }
            verdict.must_accept = t.amount.is_positive();
        }
        Event::Withdraw(t) => {
            let known_asset = t.asset == settlement || asset_id(&t.asset).is_some();
            if !known_asset {
                verdict.error("unknown_asset");
            }
            match engine.account(&t.account) {
                None => verdict.error("unknown_account"),
                Some(_) if !known_asset => {}
                Some(account) => {
                    if t.asset != settlement && !fits_size(t.amount) {
                        verdict.error("too_many_decimals");
                    } else {
                        withdraw_rule(engine, account, t, &mut verdict);
                    }
                }
            }
            verdict.must_accept &= t.amount.is_positive();
        }
        Event::Trade(t) => trade_rule(engine, t, &mut verdict),
        Event::Price(p) => match engine.markets().iter().find(|m| *m.name == p.market) {
            None => verdict.error("unknown_market"),
            Some(market) => match market.sources.iter().find(|s| *s.name == p.source) {
                None => verdict.error("unknown_source"),
                Some(source) => {
                    // Arrival checks: not too far ahead of the engine clock,
                    // newer than the source's last tick. Judging happens later and refuses nothing.
                    if p.ts > engine.last_ts().saturating_add(market.params.max_future_ms) {
                        verdict.error("future_ts");
                    }
                    if source.latest.is_some_and(|last| p.ts <= last.ts) {
                        verdict.error("replayed");
                    }
                    if source.public_key.is_some() {
                        verdict.must_accept = false;
                    }
                    verdict.must_accept &= p.price.is_positive();
                }
            },
        },
        Event::Params(p) => {
            if !engine.markets().iter().any(|m| *m.name == p.market) {
                verdict.error("unknown_market");
            }
            // Validity of the new table is the generator's expectation.
            verdict.must_accept = false;
        }
        Event::Clock { .. } => {}
        Event::FundDeposit { amount, .. } => verdict.must_accept = amount.is_positive(),
        Event::Signal(signal) => {
            let known = signal.market.as_ref().is_none_or(|m| engine.markets().iter().any(|x| *x.name == **m));
            if known {
                verdict.must_accept = true;
            } else {
                verdict.error("unknown_market");
            }
        }
        // Auction rules (price, size, the taker's margin) are the liquidation tests' business.
        Event::AuctionTake(_) => verdict.must_accept = false,
        Event::CollateralTake(t) => collateral_take_rule(engine, t, &mut verdict),
        Event::IsolatedMargin(m) => isolated_rule(engine, m, &mut verdict),
        Event::MarginModel(m) => margin_model_rule(engine, m, &mut verdict),
        Event::AssetStatus(a) => {
            if a.asset == settlement {
                verdict.error("invalid_field_type");
            } else if asset_id(&a.asset).is_none() {
                verdict.error("unknown_asset");
            }
        }
    }
    verdict
}

/// A collateral take, from docs/liquidation.md: the asset must be a collateral asset (not the
/// settlement asset), the size at most the protocol's holding, the asset's index market live, the
/// bidder known and holding the settlement balance to pay size x ceil(index x (1 - h')), h' =
/// the haircut halved (rounded down); afterwards the bidder must pass the withdrawal rule.
fn collateral_take_rule(engine: &Engine, t: &solvent_core::event::CollateralTake, verdict: &mut Admission) {
    verdict.must_accept = t.size.is_positive();
    if t.asset == engine.settlement_asset() {
        return verdict.error("not_collateral_asset");
    }
    let Some(i) = engine.assets().iter().position(|a| *a.name == t.asset) else {
        return verdict.error("unknown_asset");
    };
    let id = solvent_core::state::AssetId(i as u16);
    if t.size > engine.collateral_holding(id).size {
        return verdict.error("collateral_holdings_exceeded");
    }
    let asset = &engine.assets()[i];
    let market = &engine.markets()[asset.index_market.0 as usize];
    if market.frozen {
        return verdict.error("market_frozen");
    }
    if may_age_out(engine, asset.index_market, t.ts) {
        verdict.possible.push("market_frozen");
    }
    let Some(bidder) = engine.account(&t.bidder) else { return verdict.error("unknown_account") };
    let index = BigInt::from(market.index_price.expect("a live market has an index").raw());
    let one = BigInt::from(solvent_core::Rate::ONE_RAW);
    let factor = &one - BigInt::from(asset.collateral_haircut.raw() / 2);
    let price = (index * factor + &one - 1) / &one; // ceiling (both positive)
    let paid = BigInt::from(t.size.raw()) * &price; // Quote raw: 8 + 8 decimals
    if BigInt::from(bidder.settlement.raw()) < paid {
        return verdict.error("insufficient_balance");
    }
    let mut after = bidder.clone();
    after.settlement = Quote::from_raw(i128::try_from(BigInt::from(bidder.settlement.raw()) - paid).unwrap());
    let Ok(balance) = bidder.collateral_balance(id).checked_add(t.size) else { return verdict.error("overflow") };
    after.set_collateral(id, balance);
    frozen_rule(engine, &after, t.ts, verdict);
    match reference::account_health(&after, engine.assets(), engine.markets()) {
        Ok(health) if health.may_withdraw() => {}
        Ok(_) => verdict.error("insufficient_margin"),
        Err(_) => verdict.error("overflow"),
    }
}

/// A margin-model choice: the account must exist; a change must not depend on a frozen market
/// and must leave collateral + min(0, unrealized PnL) at or above the initial margin under the
/// new model (the reference's); choosing the model in force is accepted and changes nothing.
fn margin_model_rule(engine: &Engine, m: &solvent_core::event::MarginModelChoice, verdict: &mut Admission) {
    let Some(account) = engine.account(&m.account) else {
        verdict.error("unknown_account");
        return;
    };
    if account.margin_model == m.model {
        return;
    }
    let mut after = account.clone();
    after.margin_model = m.model;
    frozen_rule(engine, &after, m.ts, verdict);
    match reference::account_health(&after, engine.assets(), engine.markets()) {
        Ok(health) if health.may_withdraw() => {}
        Ok(_) => verdict.error("margin_model_refused"),
        Err(_) => verdict.error("overflow"),
    }
}

/// An isolated-margin move: the market must exist, the giving side (the cross account for a
/// positive amount, the isolated wallet `account#market` for a negative one) must exist, hold
/// the amount and pass the withdrawal rule afterwards; the receiving side must stay within the
/// per-account balance limit.
fn isolated_rule(engine: &Engine, m: &solvent_core::event::IsolatedMargin, verdict: &mut Admission) {
    verdict.must_accept = !m.amount.is_zero();
    if !engine.markets().iter().any(|x| *x.name == m.market) {
        verdict.error("unknown_market");
        return;
    }
    let wallet = solvent_core::event::isolated_account(&m.account, &m.market);
    let (from, to) = if m.amount.is_positive() {
        (m.account.as_str(), wallet.as_str())
    } else {
        (wallet.as_str(), m.account.as_str())
    };
    let amount = m.amount.raw().abs();
    let Some(giver) = engine.account(from) else {
        verdict.error("unknown_account");
        return;
    };
    let received = BigInt::from(engine.account(to).map_or(0, |a| a.settlement.raw())) + BigInt::from(amount);
    if received > BigInt::from(solvent_core::transfer::MAX_SETTLEMENT_BALANCE.raw()) {
        verdict.error("balance_limit");
    }
    if giver.settlement.raw() < amount {
        verdict.error("insufficient_balance");
        return;
    }
    let mut after = giver.clone();
    after.settlement = Quote::from_raw(giver.settlement.raw() - amount);
    frozen_rule(engine, &after, m.ts, verdict);
    match reference::account_health(&after, engine.assets(), engine.markets()) {
        Ok(health) if health.may_withdraw() => {}
        Ok(_) => verdict.error("withdrawal_exceeds_free_collateral"),
        Err(_) => verdict.error("overflow"),
    }
}

/// The account a trade's party fills in: the named one, or its isolated wallet of the market.
fn party<'a>(engine: &'a Engine, name: &str, isolated: bool, market: &str) -> Option<&'a Account> {
    if isolated {
        engine.account(&solvent_core::event::isolated_account(name, market))
    } else {
        engine.account(name)
    }
}

fn withdraw_rule(engine: &Engine, account: &Account, t: &solvent_core::event::Transfer, verdict: &mut Admission) {
    let mut after = account.clone();
    if t.asset == engine.settlement_asset() {
        if account.settlement < t.amount {
            verdict.error("insufficient_balance");
            return;
        }
        after.settlement = Quote::from_raw(account.settlement.raw() - t.amount.raw());
    } else {
        let id = solvent_core::state::AssetId(engine.assets().iter().position(|a| *a.name == t.asset).unwrap() as u16);
        let amount = t.amount.raw() / (Quote::ONE_RAW / i128::from(Size::ONE_RAW));
        let balance = i128::from(account.collateral_balance(id).raw());
        if balance < amount {
            verdict.error("insufficient_balance");
            return;
        }
        after.collateral.retain(|(a, _)| *a != id);
        if balance > amount {
            after.collateral.push((id, Size::from_raw((balance - amount) as i64)));
            after.collateral.sort_by_key(|(a, _)| *a);
        }
    }
    frozen_rule(engine, &after, t.ts, verdict);
    match reference::account_health(&after, engine.assets(), engine.markets()) {
        Ok(health) if health.may_withdraw() => {}
        Ok(_) => verdict.error("withdrawal_exceeds_free_collateral"),
        Err(_) => verdict.error("overflow"),
    }
}

/// New exposure and withdrawals wait while the account's margin depends on a frozen market's
/// held price. A market frozen now must refuse; one whose sources would age past `max_age_ms`
/// by the event's ts may be judged frozen at that ts (the oracle tests pin that judgement down).
fn frozen_rule(engine: &Engine, after: &Account, ts: u64, verdict: &mut Admission) {
    let markets = dependent_markets(engine, after);
    if markets.iter().any(|m| engine.markets()[m.0 as usize].frozen) {
        verdict.error("market_frozen");
    } else if markets.iter().any(|m| may_age_out(engine, *m, ts)) && !verdict.possible.contains(&"market_frozen") {
        verdict.possible.push("market_frozen");
    }
}

/// Whether some source of `market` would be older than `max_age_ms` at `ts`.
fn may_age_out(engine: &Engine, market: solvent_core::state::MarketId, ts: u64) -> bool {
    let market = &engine.markets()[market.0 as usize];
    ts > engine.last_ts()
        && market.sources.iter().any(|s| s.latest.is_some_and(|t| t.ts.saturating_add(market.params.max_age_ms) < ts))
}

/// The markets whose held price an account's margin depends on (the rule documented on the
/// engine's `frozen_dependency`): those it holds positions in, and, when it has positions or a
/// negative settlement balance, those that index its collateral.
pub fn dependent_markets(engine: &Engine, account: &Account) -> Vec<solvent_core::state::MarketId> {
    let mut markets: Vec<_> = account.positions.iter().map(|p| p.market).collect();
    if !account.positions.is_empty() || account.settlement.is_negative() {
        markets.extend(account.collateral.iter().map(|(asset, _)| engine.assets()[asset.0 as usize].index_market));
    }
    markets
}

fn trade_rule(engine: &Engine, t: &solvent_core::event::Trade, verdict: &mut Admission) {
    verdict.must_accept = t.size.is_positive() && t.price.is_positive();
    let Some(market_index) = engine.markets().iter().position(|m| *m.name == t.market) else {
        verdict.error("unknown_market");
        return;
    };
    if t.buyer == t.seller {
        verdict.error("self_trade");
        return;
    }
    let buyer = party(engine, &t.buyer, t.buyer_isolated, &t.market);
    let seller = party(engine, &t.seller, t.seller_isolated, &t.market);
    let (Some(buyer), Some(seller)) = (buyer, seller) else {
        verdict.error("unknown_account");
        return;
    };
    let Some(mark) = engine.markets()[market_index].mark_price else {
        verdict.error("no_mark_price");
        return;
    };
    // Every fill within the market's band around the mark, decided exactly in big integers.
    let distance = (BigInt::from(t.price.raw()) - BigInt::from(mark.raw())).magnitude().clone();
    let band = BigInt::from(engine.markets()[market_index].params.max_trade_deviation.raw()) * BigInt::from(mark.raw());
    if BigInt::from(distance) * BigInt::from(solvent_core::Rate::ONE_RAW) > band {
        verdict.error("price_out_of_band");
        return;
    }
    if !verdict.must_accept {
        return;
    }
    let market = solvent_core::state::MarketId(market_index as u16);
    let sell = Size::from_raw(-t.size.raw());
    // An open-interest cap refuses a trade that raises long open interest above it.
    let long = |size: i64| i128::from(size.max(0));
    let delta = |account: &Account, d: i64| {
        let old = account.size(market).raw();
        long(old + d) - long(old)
    };
    let state = &engine.markets()[market_index];
    let oi_before = i128::from(state.open_interest.raw());
    let oi_after = oi_before + delta(buyer, t.size.raw()) + delta(seller, sell.raw());
    if state.params.oi_cap.is_some_and(|cap| oi_after > i128::from(cap.raw()) && oi_after > oi_before) {
        verdict.error("open_interest_cap");
    }
    let (skew_buyer, skew_seller) = reference::expected_skew_fees(state, t.size);
    let buyer_fee = Quote::from_raw(t.buyer_fee.raw() + skew_buyer.raw());
    let seller_fee = Quote::from_raw(t.seller_fee.raw() + skew_seller.raw());
    for (account, delta, fee) in [(buyer, t.size, buyer_fee), (seller, sell, seller_fee)] {
        if let Some(after) = reference::exposure_adding_fill(account, market, delta, t.price, fee) {
            frozen_rule(engine, &after, t.ts, verdict);
            match reference::account_health(&after, engine.assets(), engine.markets()) {
                Ok(health) if health.meets_initial() => {}
                Ok(_) => verdict.error("insufficient_margin"),
                Err(_) => verdict.error("overflow"),
            }
        }
    }
}
