//! The liquidation waterfall, run by the engine inside the event that moved a
//! mark (price, clock, params, trade, auction take):
//!
//! 1. **Trigger**: every account with equity < MM and a position in a market that is not frozen,
//!    or with no position left and negative equity, is handled, in ascending account name; the
//!    pass repeats (bounded by [`MAX_ROUNDS`]) while ADL or socialized losses push others under.
//! 2. **Partial liquidation** ([`sizing`]): positions in descending order of their MM (ties by
//!    market name); for each, the smallest size off the top that restores equity >= MM x
//!    (1 + buffer) after the penalty, else all of it. The closed size moves to the market's
//!    inventory at mark; the penalty goes to the insurance fund, capped at what the account has.
//!    A step that leaves the settlement balance negative while the account holds other collateral
//!    sells enough of that collateral to the protocol at a haircut to index ([`collateral`]).
//! 3. **Bankruptcy** ([`bankruptcy`]): first all of the account's other collateral is sold to the
//!    protocol ([`collateral`]); negative equity left with nothing to close is covered by
//!    the fund; what the fund cannot cover is absorbed by **ADL** against opposite positions at
//!    the bankruptcy price, then by **socialized loss**.
//! 4. **Auctions** ([`auction`]): inventory is offered by Dutch auction to backstop makers.
//!
//! Every step keeps value: closes at mark or at a stated price are trades, penalties and fund
//! moves are transfers. Each account's step is computed in full before it is written, so an
//! arithmetic overflow skips that account with an `alert` and never leaves half a step.

pub(crate) mod adl_book;
pub mod auction;
pub mod bankruptcy;
pub mod collateral;
pub mod sizing;

#[cfg(test)]
mod failure_tests;

use crate::effect::{Effect, EffectKind, EffectSink};
use crate::engine::Engine;
use crate::margin::Health;
use crate::num::{Overflow, Price, Quote, Size};
use crate::risk_index::scan::ScanContext;
use crate::state::{Account, AccountId, Asset, LiquidationRecord, Market, MarketId, Position};
use crate::trade::fill;

/// The markets an account's liquidation step closes, in order (see `Engine::close_order`).
enum CloseOrder {
    One(Option<MarketId>),
    Many(std::vec::IntoIter<MarketId>),
}

impl Iterator for CloseOrder {
    type Item = MarketId;
    fn next(&mut self) -> Option<MarketId> {
        match self {
            CloseOrder::One(one) => one.take(),
            CloseOrder::Many(many) => many.next(),
        }
    }
}

/// Upper bound on liquidation passes in one event.
pub const MAX_ROUNDS: usize = 64;

/// Debug builds compare every index pass with the full scan on books up to this size.
#[cfg(debug_assertions)]
const DEBUG_CROSS_CHECK_ACCOUNTS: usize = 2_048;

/// Whether the waterfall must handle `account` (which has a position or a negative settlement
/// balance) given its health: below maintenance, and not waiting on a frozen market: with
/// positions, one of them is in a live market; without, its equity is negative and no market
/// indexing its collateral is frozen (`Engine::frozen_dependency` at the engine clock, where a
/// market is live exactly when it is not frozen). Shared by the full scan and the risk index.
pub(crate) fn needs_liquidation_given(
    account: &Account,
    health: &Health,
    assets: &[Asset],
    markets: &[Market],
) -> bool {
    if !health.below_maintenance() {
        return false;
    }
    let frozen = |m: MarketId| markets[m.0 as usize].frozen;
    if account.positions.is_empty() {
        return health.equity.is_negative()
            && !account.collateral.iter().any(|(asset, _)| frozen(assets[asset.0 as usize].index_market));
    }
    account.positions.iter().any(|p: &Position| !frozen(p.market))
}

/// What the waterfall reads of an account's health between its steps: [`Health`] without the
/// initial-margin figures, which liquidation never reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StepHealth {
    equity: Quote,
    maintenance_margin: Quote,
    unrealized_pnl: Quote,
}

impl StepHealth {
    fn below_maintenance(&self) -> bool {
        self.equity < self.maintenance_margin
    }
}

impl From<Health> for StepHealth {
    fn from(health: Health) -> StepHealth {
        let Health { equity, maintenance_margin, unrealized_pnl, .. } = health;
        StepHealth { equity, maintenance_margin, unrealized_pnl }
    }
}

/// The health of an account whose only position, `old`, a liquidation step has just reduced
/// (`after` is the account now; `close` is the step's), derived from `before` and the step's own
/// numbers instead of a second full evaluation; exactly what `margin::health` gives for `after`.
/// `None` where the caller must evaluate it in full (a magnitude near the ends of the range).
///
/// Why it is exact: equity = S + U + ⌊W / F⌋, with S the settlement balance and U the unrealized
/// PnL (both whole `Quote` units) and W the weighted other collateral at 10^-24, which the step
/// does not change; so ⌊W / F⌋ = equity − S − U carries over. MM is a sum of per-position values:
/// the remaining position's MM is the one the sizing search checked (zero after a full close).
fn health_after_single(
    before: &StepHealth,
    settlement_before: Quote,
    old: &Position,
    after: &Account,
    markets: &[Market],
    close: sizing::Close,
) -> Option<StepHealth> {
    const BOUND: u128 = 1 << 100; // far from i128's ends: no sum below can overflow
    if !after.margin_model.is_tiered() {
        return None; // MM as a sum of per-position figures is the tiered model's
    }
    let market = &markets[old.market.0 as usize];
    let mark = market.mark_price?;
    let new = match after.positions.as_slice() {
        [] => None,
        [p] if p.market == old.market => Some(*p),
        _ => return None,
    };
    let upnl_old = old.unrealized_pnl(mark).ok()?;
    let upnl_new = new.map_or(Ok(Quote::ZERO), |p| p.unrealized_pnl(mark)).ok()?;
    let values = [before.equity, before.unrealized_pnl, settlement_before, after.settlement, upnl_old, upnl_new];
    if values.iter().any(|v| v.raw().unsigned_abs() >= BOUND) || before.unrealized_pnl != upnl_old {
        return None;
    }
    let collateral_floor = before.equity.checked_sub(settlement_before).ok()?.checked_sub(upnl_old).ok()?;
    let equity = after.settlement.checked_add(collateral_floor).ok()?.checked_add(upnl_new).ok()?;
    Some(StepHealth { equity, maintenance_margin: close.remaining_mm, unrealized_pnl: upnl_new })
}

impl Engine {
    /// Run the waterfall until no account is below maintenance (or the round bound is hit).
    pub(crate) fn settle_risk(&mut self, seq: u64, out: &mut Vec<Effect>) {
        self.waterfall.start();
        self.waterfall.usage.clear();
        self.prune_liquidation_records();
        self.expire_auctions(seq, out);
        for round in 0..=MAX_ROUNDS {
            let effects_before_round = out.len();
            self.repay_bad_debt(seq, out);
            let candidates = self.liquidation_candidates();
            if candidates.is_empty() {
                break;
            }
            if round == MAX_ROUNDS {
                self.alert(
                    seq,
                    out,
                    "liquidation_rounds_exhausted",
                    "",
                    format!("{} accounts still below maintenance", candidates.len()),
                );
                break;
            }
            for id in candidates {
                self.begin_step(out.len());
                let step = self.liquidate_account(id, seq, out);
                if step.is_ok() {
                    self.commit_step();
                    self.write_liquidation_records();
                } else {
                    // Nothing of the step stays: not the fund's cover, not half an ADL.
                    self.abort_step(out);
                    self.waterfall.records.clear();
                    let name = self.accounts[id.0 as usize].name.to_string();
                    self.alert(
                        seq,
                        out,
                        "liquidation_overflow",
                        "",
                        format!("account {name}: arithmetic overflow, skipped"),
                    );
                }
            }
            self.socialize_pending(seq, out);
            if out.len() == effects_before_round {
                // A round that emitted nothing changed nothing: every candidate left is held by
                // its chunk cooldown (above the backstop threshold), and the next round would
                // find the same.
                break;
            }
        }
        self.waterfall.finish();
        self.prune_liquidation_records();
        // Liquidations may have sold out or flipped an inventory: end those auctions now.
        self.expire_auctions(seq, out);
        self.start_auctions(seq, out);
    }

    /// The notional the last accepted event liquidated, in a market with a per-event cap, from
    /// `account`'s position and in the whole market (zero in markets without a cap). Read-only
    /// telemetry of the caps (not state: neither hashed nor snapshotted).
    pub fn event_liquidated_notional(&self, account: AccountId, market: MarketId) -> (Quote, Quote) {
        self.waterfall.usage.used(account, market)
    }

    /// Accounts to handle now, sorted by name: the risk index's pass (see [`crate::risk_index`]),
    /// which returns exactly what [`Engine::liquidation_candidates_full_scan`] would. Debug builds
    /// check that on small books.
    pub(crate) fn liquidation_candidates(&mut self) -> Vec<AccountId> {
        let tables =
            crate::risk_index::Tables { accounts: &self.accounts, assets: &self.assets, markets: &self.markets };
        let found = self.risk.candidates(tables);
        #[cfg(debug_assertions)]
        if self.accounts.len() <= DEBUG_CROSS_CHECK_ACCOUNTS {
            debug_assert_eq!(found, self.liquidation_candidates_full_scan(), "risk index disagrees with the full scan");
        }
        found
    }

    /// The risk index's answer now (one pass, as the waterfall runs it): for tests and benchmarks,
    /// to compare with [`Engine::liquidation_candidates_full_scan`]. It changes only derived state.
    pub fn liquidation_candidates_indexed(&mut self) -> Vec<AccountId> {
        self.liquidation_candidates()
    }

    /// The reference for the risk index: every account that needs liquidation now, by a full scan
    /// of the accounts, sorted by name. O(accounts); for tests and benchmarks.
    pub fn liquidation_candidates_full_scan(&self) -> Vec<AccountId> {
        use crate::prefetch::{scan_positions, scan_record, SCAN_POSITIONS_AHEAD, SCAN_RECORDS_AHEAD};
        let context = ScanContext::new(&self.assets, &self.markets);
        let accounts = self.accounts.as_slice();
        let mut ids = Vec::new();
        // While there are accounts far enough ahead, hint their records and position blocks
        // (their misses then overlap the evaluation of the accounts in between); then the rest.
        let near = accounts.get(SCAN_POSITIONS_AHEAD..).unwrap_or_default();
        let far = accounts.get(SCAN_RECORDS_AHEAD..).unwrap_or_default();
        for (i, ((account, near), far)) in accounts.iter().zip(near).zip(far).enumerate() {
            scan_record(far);
            scan_positions(near);
            self.full_scan_visit(&context, AccountId(i as u32), account, &mut ids);
        }
        for (i, account) in accounts.iter().enumerate().skip(far.len()) {
            self.full_scan_visit(&context, AccountId(i as u32), account, &mut ids);
        }
        ids.sort_unstable_by(|a, b| self.accounts[a.0 as usize].name.cmp(&self.accounts[b.0 as usize].name));
        ids
    }

    /// One account of the full scan: skipped when it has nothing at risk or the scan's fast path
    /// clears it, else decided exactly (out of line: rare, and the loop keeps its registers).
    #[inline(always)]
    fn full_scan_visit(&self, context: &ScanContext, id: AccountId, account: &Account, ids: &mut Vec<AccountId>) {
        let at_risk = !account.positions.is_empty() || account.settlement.is_negative();
        if at_risk && !context.certainly_above(account) {
            self.full_scan_exact(account, id, ids);
        }
    }

    /// The full scan's exact decision for an account its fast path could not clear.
    #[cold]
    #[inline(never)]
    fn full_scan_exact(&self, account: &Account, id: AccountId, ids: &mut Vec<AccountId>) {
        if self.needs_liquidation(account) {
            ids.push(id);
        }
    }

    /// Whether the waterfall must handle `account` now: it has a position or a negative
    /// settlement balance, is below maintenance, and is not waiting on a frozen market.
    fn needs_liquidation(&self, account: &Account) -> bool {
        if account.positions.is_empty() && !account.settlement.is_negative() {
            return false;
        }
        if crate::margin::below_maintenance_quick(account, &self.assets, &self.markets) == Some(false) {
            return false;
        }
        let Ok(health) = self.health_of(account) else { return false };
        needs_liquidation_given(account, &health, &self.assets, &self.markets)
    }

    /// One account's step of the waterfall.
    fn liquidate_account(&mut self, id: AccountId, seq: u64, out: &mut Vec<Effect>) -> Result<(), Overflow> {
        let account = &self.accounts[id.0 as usize];
        let mut health = StepHealth::from(self.health_of(account)?);
        if !health.below_maintenance() {
            return Ok(());
        }
        let order = self.close_order(account)?;
        // `health` is always the account's current health: each step returns the health after it.
        for market_id in order {
            if !health.below_maintenance() {
                return Ok(());
            }
            if health.equity.is_negative() && self.frozen_dependency(&self.accounts[id.0 as usize]).is_none() {
                return self.resolve_bankruptcy(id, seq, out);
            }
            health = self.close_position_step(id, market_id, health, seq, out)?;
        }
        debug_assert_eq!(
            Ok(health),
            self.health_of(&self.accounts[id.0 as usize]).map(StepHealth::from),
            "the health carried along is current"
        );
        let account = &self.accounts[id.0 as usize];
        if health.equity.is_negative() && self.frozen_dependency(account).is_none() {
            self.resolve_bankruptcy(id, seq, out)?;
        }
        Ok(())
    }

    /// The markets of `account`'s positions to close, in the waterfall's order: live markets
    /// only, by descending MM, ties by market name. One position (the common case) needs neither
    /// its MM nor a buffer on the heap.
    fn close_order(&self, account: &Account) -> Result<CloseOrder, Overflow> {
        let live = |p: &&Position| !self.markets[p.market.0 as usize].frozen;
        if let [position] = account.positions.as_slice() {
            return Ok(CloseOrder::One(live(&position).then_some(position.market)));
        }
        let mut order: Vec<(Quote, MarketId)> = Vec::with_capacity(account.positions.len());
        for p in account.positions.iter().filter(live) {
            let market = &self.markets[p.market.0 as usize];
            let mark = market.mark_price.ok_or(Overflow)?;
            order.push((crate::margin::position_mm(&market.params, p.size.checked_abs()?, mark)?, p.market));
        }
        order.sort_unstable_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| self.markets[a.1 .0 as usize].name.cmp(&self.markets[b.1 .0 as usize].name))
        });
        Ok(CloseOrder::Many(order.into_iter().map(|(_, market)| market).collect::<Vec<_>>().into_iter()))
    }

    /// Partial (or full) close of one position to the inventory at mark, with its penalty.
    /// `before` is the account's current health; returns its health after the step.
    fn close_position_step(
        &mut self,
        id: AccountId,
        market_id: MarketId,
        before: StepHealth,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<StepHealth, Overflow> {
        let account = &self.accounts[id.0 as usize];
        let market = &self.markets[market_id.0 as usize];
        let mark = market.mark_price.ok_or(Overflow)?;
        let position = *account.position(market_id).ok_or(Overflow)?;
        let size_abs = position.size.checked_abs()?;
        debug_assert_eq!(Ok(before), self.health_of(account).map(StepHealth::from), "the caller's health is current");
        // The account's MM is the sum of its positions' (each rounded up): with one position,
        // that position's MM is the account's.
        let own_mm = match account.positions.len() {
            1 if account.margin_model.is_tiered() => before.maintenance_margin,
            _ => crate::margin::position_mm(&market.params, size_abs, mark)?,
        };
        debug_assert_eq!(Ok(own_mm), crate::margin::position_mm(&market.params, size_abs, mark));
        let other_mm = before.maintenance_margin.checked_sub(own_mm)?;
        let step = sizing::Step {
            size_abs,
            mark,
            equity: before.equity,
            account_mm: before.maintenance_margin,
            own_mm,
            record: market.liquidation_record(id).copied(),
            now_ms: self.last_ts,
        };
        let planned = match account.margin_model.is_tiered() {
            true => sizing::plan(&market.params, &step, other_mm)?,
            false => sizing::plan_with(&market.params, &step, || self.exact_restoring_close(id, market_id, &step))?,
        };
        let (close, kind) = match planned {
            sizing::Plan::Hold => return Ok(before),
            sizing::Plan::Close { close, kind } => (close, kind),
        };
        let capped = sizing::capped(&market.params);
        let close = match capped {
            false => close,
            true => {
                let used = self.waterfall.usage.used(id, market_id);
                match sizing::cap_close(&market.params, size_abs, mark, close, kind, used)? {
                    Some(close) => close,
                    None => return Ok(before),
                }
            }
        };
        if capped {
            self.waterfall.usage.step.push((id, market_id, close.size.mul_price(mark)));
        }
        debug_assert_eq!(Ok(close.penalty), sizing::penalty(&market.params, size_abs, close.size, mark));
        let (closed_abs, full) = (close.size, close.size == size_abs);
        let penalty = close.penalty.min(before.equity.max(Quote::ZERO));
        let closed = if position.size.is_negative() { closed_abs.checked_neg()? } else { closed_abs };
        let settlement_before = account.settlement;
        let single = account.positions.len() == 1;
        self.move_to_inventory(id, market_id, closed, mark, penalty, seq, out)?;
        let account = &self.accounts[id.0 as usize];
        let derived = single
            .then(|| health_after_single(&before, settlement_before, &position, account, &self.markets, close))
            .flatten();
        let after = match derived {
            Some(after) => after,
            None => StepHealth::from(self.health_of(account)?),
        };
        debug_assert_eq!(Ok(after), self.health_of(account).map(StepHealth::from), "the derived health is exact");
        // `String::from(&str)`, not `to_string()`: on a `Box<str>` that goes through `fmt`.
        let name = String::from(&*self.accounts[id.0 as usize].name);
        out.emit(
            seq,
            self.last_ts,
            EffectKind::Liquidation {
                account: name.clone(),
                market: String::from(&*self.markets[market_id.0 as usize].name),
                closed_size: closed,
                price: mark,
                penalty,
                full,
                equity_before: before.equity,
                maintenance_margin_before: before.maintenance_margin,
                equity_after: after.equity,
                maintenance_margin_after: after.maintenance_margin,
            },
        );
        if penalty.is_positive() {
            self.push_insurance(seq, out, "liquidation_penalty", penalty, Some(name));
        }
        // The effect above shows the close itself; a conversion it forces follows it.
        let after = match self.convert_after_close(id, seq, out)? {
            true => StepHealth::from(self.health_of(&self.accounts[id.0 as usize])?),
            false => after,
        };
        if kind == sizing::PlanKind::Chunk && !full {
            let market = &self.markets[market_id.0 as usize];
            let peak = step.record.map_or(size_abs, |r| r.peak.max(size_abs));
            let cooldown_until_ms = self.last_ts.saturating_add(market.params.rules.liquidation_cooldown_ms);
            let record = LiquidationRecord { account: id, long: position.size.is_positive(), peak, cooldown_until_ms };
            self.waterfall.records.push((market_id, record));
        }
        if full {
            return self.sweep_dust(id, market_id, after, seq, out);
        }
        Ok(after)
    }

    /// The smallest slice of the position in `market_id` whose close at mark, with its penalty,
    /// leaves equity >= MM x (1 + buffer) by the exact definition (`margin::health`), or `None`
    /// when only all of it will do: the sizing of margin models other than tiers, where the MM
    /// released by a close is not a function of the position alone (closing one leg of a hedge
    /// can raise it). A bisection over raw sizes (64 steps): the slice it returns restores the
    /// account; it is the smallest where restoring is monotone in the size closed.
    fn exact_restoring_close(
        &self,
        id: AccountId,
        market_id: MarketId,
        step: &sizing::Step,
    ) -> Result<Option<sizing::Close>, Overflow> {
        let params = &self.markets[market_id.0 as usize].params;
        let account = &self.accounts[id.0 as usize];
        let position = *account.position(market_id).ok_or(Overflow)?;
        let factor = crate::num::Rate::ONE.checked_add(params.liquidation_buffer)?;
        let scratch = std::cell::RefCell::new(account.clone());
        let check = |closed_abs: Size| -> Result<Option<sizing::Close>, Overflow> {
            let penalty = sizing::penalty(params, step.size_abs, closed_abs, step.mark)?;
            let closed = if position.size.is_negative() { closed_abs } else { closed_abs.checked_neg()? };
            let result = fill(position, closed, step.mark)?;
            let mut after = scratch.borrow_mut();
            after.settlement = account.settlement.checked_add(result.realized_pnl)?.checked_sub(penalty)?;
            after.positions.clone_from(&account.positions);
            after.set_position(result.position);
            let health = crate::margin::health(&after, &self.assets, &self.markets)?;
            let target = health.maintenance_margin.mul_rate(factor, crate::num::Round::Up)?;
            let remaining_mm = crate::margin::position_mm(params, step.size_abs.checked_sub(closed_abs)?, step.mark)?;
            Ok((health.equity >= target).then_some(sizing::Close { size: closed_abs, penalty, remaining_mm }))
        };
        match sizing::smallest_by_bisection(step.size_abs, |q| Ok(check(q)?.is_some()))? {
            Some(q) => check(q),
            None => Ok(None),
        }
    }

    /// Dust: an account a full close left with no position, no other collateral and a
    /// settlement balance in (0, `dust_equity`) pays that balance to the insurance fund, so no
    /// account is left holding a remainder of a few units of 10^-16 (value moved, never created).
    fn sweep_dust(
        &mut self,
        id: AccountId,
        market_id: MarketId,
        after: StepHealth,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<StepHealth, Overflow> {
        let dust = self.markets[market_id.0 as usize].params.rules.dust_equity;
        let account = &self.accounts[id.0 as usize];
        let balance = account.settlement;
        if !account.positions.is_empty() || !account.collateral.is_empty() || !balance.is_positive() || balance >= dust
        {
            return Ok(after);
        }
        debug_assert_eq!(after.equity, balance, "a flat account with no other collateral has equity = balance");
        let (fund, bad_debt) = bankruptcy::fund_after(self.insurance_fund, self.bad_debt, balance)?;
        self.account_mut(id).settlement = Quote::ZERO;
        self.write_fund(fund, bad_debt);
        let name = String::from(&*self.accounts[id.0 as usize].name);
        self.push_insurance(seq, out, "dust", balance, Some(name));
        Ok(StepHealth { equity: Quote::ZERO, ..after })
    }

    /// Keep the chunk records of positions that still exist on the same side; drop the rest
    /// (closed, flipped, or deleveraged away). Run before and after each waterfall.
    fn prune_liquidation_records(&mut self) {
        for i in 0..self.markets.len() {
            if self.markets[i].liquidations.is_empty() {
                continue;
            }
            let accounts = &self.accounts;
            let market = MarketId(i as u16);
            self.markets[i].liquidations.retain(|r| {
                let size = accounts[r.account.0 as usize].size(market);
                !size.is_zero() && size.is_positive() == r.long
            });
        }
    }

    /// Write the chunk records of a committed account step (a failed step leaves none).
    fn write_liquidation_records(&mut self) {
        for (market_id, record) in std::mem::take(&mut self.waterfall.records) {
            let records = &mut self.markets[market_id.0 as usize].liquidations;
            match records.binary_search_by_key(&record.account, |r| r.account) {
                Ok(i) => records[i] = record,
                Err(i) => records.insert(i, record),
            }
        }
    }

    /// Move `closed` (signed, same side as the account's position) from the account to the
    /// market's inventory at `price`, charging `penalty` to the account for the fund. Atomic.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn move_to_inventory(
        &mut self,
        id: AccountId,
        market_id: MarketId,
        closed: Size,
        price: Price,
        penalty: Quote,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<(), Overflow> {
        let account = &self.accounts[id.0 as usize];
        let position = *account.position(market_id).ok_or(Overflow)?;
        let account_fill = fill(position, closed.checked_neg()?, price)?;
        let market = &self.markets[market_id.0 as usize];
        let inventory_fill = fill(market.inventory, closed, price)?;
        let open_interest = self.open_interest_after(
            market_id,
            &[(position.size, account_fill.position.size), (market.inventory.size, inventory_fill.position.size)],
        )?;
        let settlement = account.settlement.checked_add(account_fill.realized_pnl)?.checked_sub(penalty)?;
        // The inventory's netting result first (its effect shows that balance), then the penalty.
        let inventory_pnl = inventory_fill.realized_pnl;
        let (fund_netted, debt_netted) = bankruptcy::fund_after(self.insurance_fund, self.bad_debt, inventory_pnl)?;
        let (fund, bad_debt) = bankruptcy::fund_after(fund_netted, debt_netted, penalty)?;
        let account = self.account_mut(id);
        account.settlement = settlement;
        account.set_position(account_fill.position);
        self.write_book(market_id, Some(inventory_fill.position), open_interest);
        self.write_fund(fund, bad_debt);
        if !inventory_pnl.is_zero() {
            // Opposite liquidations net inside the inventory; its realized result is the fund's.
            let kind = EffectKind::Insurance {
                reason: "inventory_pnl".into(),
                amount: inventory_pnl,
                balance: fund_netted,
                account: None,
            };
            out.emit(seq, self.last_ts, kind);
        }
        Ok(())
    }

    /// Long open interest after holders move from old to new sizes. The inventory counts as a
    /// holder, so that open interest stays the sum of long sizes over everyone.
    pub(crate) fn open_interest_after(&self, market_id: MarketId, moves: &[(Size, Size)]) -> Result<Size, Overflow> {
        let mut open_interest = self.markets[market_id.0 as usize].open_interest;
        for (old, new) in moves {
            open_interest = open_interest.checked_add(crate::trade::open_interest_delta(*old, *new)?)?;
        }
        Ok(open_interest)
    }

    pub(crate) fn push_insurance(
        &self,
        seq: u64,
        out: &mut Vec<Effect>,
        reason: &str,
        amount: Quote,
        account: Option<String>,
    ) {
        let kind = EffectKind::Insurance { reason: reason.into(), amount, balance: self.insurance_fund, account };
        out.emit(seq, self.last_ts, kind);
    }

    pub(crate) fn alert(&self, seq: u64, out: &mut Vec<Effect>, alert: &str, market: &str, message: String) {
        out.emit(seq, self.last_ts, EffectKind::Alert { alert: alert.into(), market: market.into(), message });
    }
}
