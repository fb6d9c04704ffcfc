//! Shared test support: the reference evaluator, event generators, and the invariant checks
//! (DESIGN section 3) that every property test runs after every event.
//!
//! - [`check_all`]: state-only invariants of an engine against the test's own ledger of accepted
//!   deposits and withdrawals: reference equity / MM / IM equal the engine's exactly (1),
//!   conservation per asset (invariant 1), zero-sum positions and open interest (2), the insurance
//!   fund never negative (6), and a well-formed ledger.
//! - [`Harness`]: applies [`Step`]s through the real `apply` / `apply_line` paths and checks, per
//!   step, that a rejection is clean (5), that the outcome agrees with the reference's admission
//!   rules (initial margin for new exposure and withdrawals), then runs [`check_all`].
//! - [`Harness::replay_check`]: determinism (4).
#![allow(dead_code)]

pub mod gen;
pub mod reference;

use num_rational::BigRational;
use num_traits::{Signed, Zero};
use solvent_core::state::Account;
use solvent_core::{Config, Effect, Engine, Event, Quote, Size};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the test itself knows went in and out: deposits and withdrawals the engine ACCEPTED,
/// per asset name, in natural units (exact).
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub deposited: BTreeMap<String, BigRational>,
    pub withdrawn: BTreeMap<String, BigRational>,
}

impl Ledger {
    /// Record an event the engine accepted (anything else is ignored).
    pub fn record_accepted(&mut self, event: &Event) {
        let (book, transfer) = match event {
            Event::Deposit(t) => (&mut self.deposited, t),
            Event::Withdraw(t) => (&mut self.withdrawn, t),
            _ => return,
        };
        *book.entry(transfer.asset.clone()).or_insert_with(BigRational::zero) += reference::quote(transfer.amount);
    }

    pub fn deposited(&self, asset: &str) -> BigRational {
        self.deposited.get(asset).cloned().unwrap_or_else(BigRational::zero)
    }

    pub fn withdrawn(&self, asset: &str) -> BigRational {
        self.withdrawn.get(asset).cloned().unwrap_or_else(BigRational::zero)
    }

    pub fn net(&self, asset: &str) -> BigRational {
        self.deposited(asset) - self.withdrawn(asset)
    }
}

/// Every state-only invariant; `Err` describes the first violation.
pub fn check_all(engine: &Engine, ledger: &Ledger) -> Result<(), String> {
    check_well_formed(engine)?;
    reference::check_engine(engine)?;
    check_conservation(engine, ledger)?;
    check_zero_sum(engine)?;
    Ok(())
}

/// Invariant 1, exact, per asset. Settlement asset: net transfers = account balances + unrealized
/// PnL at mark of every position (protocol inventory included) + insurance fund + fees collected.
/// Other assets: net transfers = account balances. Both equal the engine's own flow counters.
pub fn check_conservation(engine: &Engine, ledger: &Ledger) -> Result<(), String> {
    let settlement = engine.settlement_asset();
    for asset in ledger.deposited.keys().chain(ledger.withdrawn.keys()) {
        if asset != settlement && !engine.assets().iter().any(|a| &*a.name == asset) {
            return Err(format!("conservation: the engine accepted a transfer of unknown asset {asset}"));
        }
    }
    let flows = engine.settlement_flows();
    if reference::quote(flows.deposited) != ledger.deposited(settlement)
        || reference::quote(flows.withdrawn) != ledger.withdrawn(settlement)
    {
        return Err(format!(
            "conservation: engine {settlement} flows in {} / out {} but accepted deposits {} / withdrawals {}",
            flows.deposited,
            flows.withdrawn,
            reference::show(&ledger.deposited(settlement)),
            reference::show(&ledger.withdrawn(settlement))
        ));
    }
    let mut held = BigRational::zero();
    for account in engine.accounts() {
        held += reference::quote(account.settlement);
        for position in &account.positions {
            held += position_value(engine, position)?;
        }
    }
    for market in engine.markets() {
        held += position_value(engine, &market.inventory)?;
    }
    held += reference::quote(engine.insurance_fund());
    held += reference::quote(engine.fees_collected());
    if held != ledger.net(settlement) {
        return Err(format!(
            "conservation: {settlement} deposits - withdrawals = {} but balances + unrealized PnL + insurance fund \
             + fees = {} (difference {})",
            reference::show(&ledger.net(settlement)),
            reference::show(&held),
            reference::show(&(&held - ledger.net(settlement)))
        ));
    }
    for (i, asset) in engine.assets().iter().enumerate() {
        let id = solvent_core::state::AssetId(i as u16);
        let flows = engine.asset_flows(id);
        if reference::size(flows.deposited) != ledger.deposited(&asset.name)
            || reference::size(flows.withdrawn) != ledger.withdrawn(&asset.name)
        {
            return Err(format!(
                "conservation: engine {} flows in {} / out {} but accepted deposits {} / withdrawals {}",
                asset.name,
                flows.deposited,
                flows.withdrawn,
                reference::show(&ledger.deposited(&asset.name)),
                reference::show(&ledger.withdrawn(&asset.name))
            ));
        }
        let total: BigRational =
            engine.accounts().iter().map(|a| reference::size(a.collateral_balance(id))).fold(BigRational::zero(), |s, x| s + x);
        if total != ledger.net(&asset.name) {
            return Err(format!(
                "conservation: {} deposits - withdrawals = {} but account balances sum to {}",
                asset.name,
                reference::show(&ledger.net(&asset.name)),
                reference::show(&total)
            ));
        }
    }
    Ok(())
}

/// Unrealized PnL at mark of a position (an empty one must carry no cost).
fn position_value(engine: &Engine, position: &solvent_core::state::Position) -> Result<BigRational, String> {
    let market = &engine.markets()[position.market.0 as usize];
    if position.size.is_zero() {
        return Ok(-reference::quote(position.cost));
    }
    let mark = market.mark_price.ok_or_else(|| format!("a position in {} has no mark price", market.name))?;
    Ok(reference::upnl(position, mark))
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
        let bytes = gen::to_json_line(&event).into_bytes();
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
            Input::Event(e) => format!("apply      {}", gen::to_json_line(e)),
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
    /// Whether to compare with the reference after each step (all property tests do).
    pub check_every_step: bool,
}

impl Harness {
    pub fn new(config: &Config) -> Harness {
        Harness {
            engine: Engine::new(config),
            ledger: Ledger::default(),
            effects: Vec::new(),
            seq: 0,
            steps: Vec::new(),
            outcomes: Vec::new(),
            hashes: Vec::new(),
            check_every_step: true,
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
                Err(format!("{problem}\nat step #{}: {}\nsteps before:\n{repro}", self.steps.len() + 1, step.describe()))
            }
        }
    }

    fn try_step(&mut self, step: &Step) -> Result<Outcome, String> {
        let before = self.engine.clone();
        let hash_before = self.engine.state_hash();
        let effects_before = self.effects.len();
        self.seq += 1;
        let seq = self.seq;
        let admission = step.meaning().map(|event| admission(&before, event));
        let outcome = match &step.input {
            Input::Event(event) => match self.engine.apply(seq, event, &mut self.effects) {
                Ok(()) => Outcome::Accepted,
                Err(error) => {
                    if self.effects.len() != effects_before {
                        return Err(format!("rejected ({}) but effects were appended", error.kind()));
                    }
                    // What `solvent replay` writes for a refused event.
                    self.effects.push(Effect::rejected(seq, event.ts(), &error));
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
            }
        }
        if self.check_every_step {
            check_all(&self.engine, &self.ledger)?;
        }
        self.steps.push(step.clone());
        self.outcomes.push(outcome.clone());
        self.hashes.push(hash_after);
        Ok(outcome)
    }

    /// Invariant 4: the logged steps applied to a fresh engine built from `config` give
    /// byte-identical effects and the same state hash after every step. With `order` the first
    /// `order.len()` steps (which must commute, e.g. deposits of distinct accounts at one ts) are
    /// applied in that order instead, and only the hashes from then on are compared.
    pub fn replay_check(&self, config: &Config, order: Option<&[usize]>) -> Result<(), String> {
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
                        effects.push(Effect::rejected(seq, event.ts(), &error));
                    }
                }
                Input::Line { bytes, .. } => engine.apply_line(seq, bytes, &mut effects),
            }
            if position + 1 >= prefix && engine.state_hash() != self.hashes[position] {
                return Err(format!(
                    "replay: state hash differs after step #{} ({}):\n{}",
                    position + 1,
                    self.steps[i].describe(),
                    self.transcript()
                ));
            }
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

/// The outcome of an `apply_line` from the effects it appended.
fn line_outcome(new_effects: &[Effect], seq: u64) -> Result<Outcome, String> {
    let mut rejected = None;
    for effect in new_effects {
        if effect.seq != seq {
            return Err(format!("effect with seq {} appended while applying seq {seq}", effect.seq));
        }
        if effect.type_name() == "rejected" {
            let value: serde_json::Value =
                serde_json::from_str(&effect.to_json_line()).map_err(|e| format!("effect is not JSON: {e}"))?;
            let kind = value["error"].as_str().ok_or("rejected effect without `error`")?.to_string();
            if value["message"].as_str().is_none_or(str::is_empty) {
                return Err("rejected effect without a message".into());
            }
            rejected = Some(kind);
        }
    }
    match rejected {
        Some(kind) if new_effects.len() == 1 => Ok(Outcome::Rejected(kind)),
        Some(kind) => Err(format!("a rejected line ({kind}) also emitted other effects: {new_effects:?}")),
        None => Ok(Outcome::Accepted),
    }
}

/// Everything readable about two engines is equal (the hash should already say so).
fn same_state(a: &Engine, b: &Engine) -> Result<(), String> {
    let checks = [
        ("accounts", a.accounts() == b.accounts()),
        ("markets", a.markets() == b.markets()),
        ("assets", a.assets() == b.assets()),
        ("insurance fund", a.insurance_fund() == b.insurance_fund()),
        ("fees", a.fees_collected() == b.fees_collected()),
        ("settlement flows", a.settlement_flows() == b.settlement_flows()),
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

/// The reference's verdict on an event before it is applied: the error kinds that apply (a
/// rejection must carry one of them), and whether the event must be accepted when none applies.
#[derive(Clone, Debug)]
pub struct Admission {
    pub errors: Vec<&'static str>,
    pub must_accept: bool,
}

impl Admission {
    fn check(&self, outcome: &Outcome) -> Result<(), String> {
        match outcome {
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

/// Whether `amount` (parsed at Quote precision) is a whole number of `Size` raw units.
fn fits_size(amount: Quote) -> bool {
    amount.raw() % (Quote::ONE_RAW / i128::from(Size::ONE_RAW)) == 0
}

/// The reference's admission rules for `event` against the state `engine` (DESIGN sections 2, 4):
/// references must exist, time must not go backwards, a withdrawal needs the balance and must
/// leave collateral value + min(0, unrealized PnL) >= initial margin, and a trade that adds
/// exposure for a party (grows its position or flips it) must leave that party's equity >= its
/// initial margin. Reductions are always allowed. Only for well-formed events (positive amounts,
/// sizes and prices); the parser's checks are the generator's business.
pub fn admission(engine: &Engine, event: &Event) -> Admission {
    let mut errors = Vec::new();
    let mut must_accept = true;
    if event.ts() < engine.last_ts() {
        errors.push("time_backwards");
    }
    let settlement = engine.settlement_asset();
    let asset_id = |name: &str| engine.assets().iter().position(|a| &*a.name == name);
    match event {
        Event::Deposit(t) => {
            if t.asset != settlement && asset_id(&t.asset).is_none() {
                errors.push("unknown_asset");
            } else if t.asset != settlement && !fits_size(t.amount) {
                errors.push("too_many_decimals");
            }
            must_accept = t.amount.is_positive();
        }
        Event::Withdraw(t) => {
            let known_asset = t.asset == settlement || asset_id(&t.asset).is_some();
            if !known_asset {
                errors.push("unknown_asset");
            }
            match engine.account(&t.account) {
                None => errors.push("unknown_account"),
                Some(_) if !known_asset => {}
                Some(account) => {
                    if t.asset != settlement && !fits_size(t.amount) {
                        errors.push("too_many_decimals");
                    } else {
                        withdraw_rule(engine, account, t, &mut errors);
                    }
                }
            }
            must_accept = t.amount.is_positive();
        }
        Event::Trade(t) => trade_rule(engine, t, &mut errors, &mut must_accept),
        Event::Price(p) => match engine.markets().iter().find(|m| *m.name == p.market) {
            None => errors.push("unknown_market"),
            Some(market) => {
                if !market.sources.iter().any(|s| *s.name == p.source) {
                    errors.push("unknown_source");
                }
                // The oracle's own defences may refuse a tick; no must-accept here.
                must_accept = false;
            }
        },
        Event::Params(p) => {
            if !engine.markets().iter().any(|m| *m.name == p.market) {
                errors.push("unknown_market");
            }
            // Validity of the new table is the generator's expectation.
            must_accept = false;
        }
        Event::Clock { .. } => {}
        Event::AuctionTake(_) => must_accept = false,
    }
    Admission { errors, must_accept }
}

fn withdraw_rule(engine: &Engine, account: &Account, t: &solvent_core::event::Transfer, errors: &mut Vec<&'static str>) {
    let mut after = account.clone();
    if t.asset == engine.settlement_asset() {
        if account.settlement < t.amount {
            errors.push("insufficient_balance");
            return;
        }
        after.settlement = Quote::from_raw(account.settlement.raw() - t.amount.raw());
    } else {
        let id = solvent_core::state::AssetId(engine.assets().iter().position(|a| *a.name == t.asset).unwrap() as u16);
        let amount = t.amount.raw() / (Quote::ONE_RAW / i128::from(Size::ONE_RAW));
        let balance = i128::from(account.collateral_balance(id).raw());
        if balance < amount {
            errors.push("insufficient_balance");
            return;
        }
        after.collateral.retain(|(a, _)| *a != id);
        if balance > amount {
            after.collateral.push((id, Size::from_raw((balance - amount) as i64)));
            after.collateral.sort_by_key(|(a, _)| *a);
        }
    }
    match reference::account_health(&after, engine.assets(), engine.markets()) {
        Ok(health) if health.may_withdraw() => {}
        Ok(_) => errors.push("withdrawal_exceeds_free_collateral"),
        Err(_) => errors.push("overflow"),
    }
}

fn trade_rule(engine: &Engine, t: &solvent_core::event::Trade, errors: &mut Vec<&'static str>, must_accept: &mut bool) {
    *must_accept = t.size.is_positive() && t.price.is_positive();
    let Some(market_index) = engine.markets().iter().position(|m| *m.name == t.market) else {
        errors.push("unknown_market");
        return;
    };
    if t.buyer == t.seller {
        errors.push("self_trade");
        return;
    }
    let (Some(buyer), Some(seller)) = (engine.account(&t.buyer), engine.account(&t.seller)) else {
        errors.push("unknown_account");
        return;
    };
    if engine.markets()[market_index].mark_price.is_none() {
        errors.push("no_mark_price");
        return;
    }
    if !*must_accept {
        return;
    }
    let market = solvent_core::state::MarketId(market_index as u16);
    let sell = Size::from_raw(-t.size.raw());
    for (account, delta, fee) in [(buyer, t.size, t.buyer_fee), (seller, sell, t.seller_fee)] {
        if let Some(after) = reference::exposure_adding_fill(account, market, delta, t.price, fee) {
            match reference::account_health(&after, engine.assets(), engine.markets()) {
                Ok(health) if health.meets_initial() => {}
                Ok(_) => {
                    if !errors.contains(&"insufficient_margin") {
                        errors.push("insufficient_margin");
                    }
                }
                Err(_) => errors.push("overflow"),
            }
        }
    }
}
