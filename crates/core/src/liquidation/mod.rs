//! The liquidation waterfall (DESIGN section 5), run by the engine inside the event that moved a
//! mark (price, clock, params, trade, auction take):
//!
//! 1. **Trigger**: every account with equity < MM and a position in a market that is not frozen,
//!    or with no position left and negative equity, is handled, in ascending account name; the
//!    pass repeats (bounded by [`MAX_ROUNDS`]) while ADL or socialized losses push others under.
//! 2. **Partial liquidation** ([`sizing`]): positions in descending order of their MM (ties by
//!    market name); for each, the smallest size off the top that restores equity >= MM x
//!    (1 + buffer) after the penalty, else all of it. The closed size moves to the market's
//!    inventory at mark; the penalty goes to the insurance fund, capped at what the account has.
//! 3. **Bankruptcy** ([`bankruptcy`]): negative equity with nothing left to close is covered by
//!    the fund; what the fund cannot cover is absorbed by **ADL** against opposite positions at
//!    the bankruptcy price, then by **socialized loss**.
//! 4. **Auctions** ([`auction`]): inventory is offered by Dutch auction to backstop makers.
//!
//! Every step keeps value: closes at mark or at a stated price are trades, penalties and fund
//! moves are transfers. Each account's step is computed in full before it is written, so an
//! arithmetic overflow skips that account with an `alert` and never leaves half a step.

pub mod auction;
pub mod bankruptcy;
pub mod sizing;

use crate::effect::{Effect, EffectKind};
use crate::engine::Engine;
use crate::num::{Overflow, Price, Quote, Size};
use crate::state::{Account, AccountId, MarketId, Position};
use crate::trade::fill;

/// Upper bound on liquidation passes in one event.
pub const MAX_ROUNDS: usize = 64;

impl Engine {
    /// Run the waterfall until no account is below maintenance (or the round bound is hit).
    pub(crate) fn settle_risk(&mut self, seq: u64, out: &mut Vec<Effect>) {
        self.expire_auctions(seq, out);
        for round in 0..=MAX_ROUNDS {
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
                if let Err(Overflow) = self.liquidate_account(id, seq, out) {
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
        }
        // Liquidations may have sold out or flipped an inventory: end those auctions now.
        self.expire_auctions(seq, out);
        self.start_auctions(seq, out);
    }

    /// Accounts to handle now, sorted by name. Full scan of accounts with positions or a
    /// negative settlement balance (the risk index replaces this scan).
    pub(crate) fn liquidation_candidates(&self) -> Vec<AccountId> {
        let mut ids: Vec<AccountId> = (0..self.accounts.len() as u32)
            .map(AccountId)
            .filter(|id| self.needs_liquidation(&self.accounts[id.0 as usize]))
            .collect();
        ids.sort_unstable_by(|a, b| self.accounts[a.0 as usize].name.cmp(&self.accounts[b.0 as usize].name));
        ids
    }

    fn needs_liquidation(&self, account: &Account) -> bool {
        if account.positions.is_empty() && !account.settlement.is_negative() {
            return false;
        }
        let Ok(health) = self.health_of(account) else { return false };
        if !health.below_maintenance() {
            return false;
        }
        let live = |p: &Position| !self.markets[p.market.0 as usize].frozen;
        if account.positions.is_empty() {
            return health.equity.is_negative() && self.frozen_dependency(account).is_none();
        }
        account.positions.iter().any(live)
    }

    /// One account's step of the waterfall.
    fn liquidate_account(&mut self, id: AccountId, seq: u64, out: &mut Vec<Effect>) -> Result<(), Overflow> {
        let account = &self.accounts[id.0 as usize];
        let health = self.health_of(account)?;
        if !health.below_maintenance() {
            return Ok(());
        }
        let mut order: Vec<(Quote, MarketId)> = Vec::with_capacity(account.positions.len());
        for p in account.positions.iter().filter(|p| !self.markets[p.market.0 as usize].frozen) {
            let market = &self.markets[p.market.0 as usize];
            let mark = market.mark_price.ok_or(Overflow)?;
            order.push((crate::margin::position_mm(&market.params, p.size.checked_abs()?, mark)?, p.market));
        }
        order.sort_unstable_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| self.markets[a.1 .0 as usize].name.cmp(&self.markets[b.1 .0 as usize].name))
        });
        for (_, market_id) in order {
            let health = self.health_of(&self.accounts[id.0 as usize])?;
            if !health.below_maintenance() {
                return Ok(());
            }
            if health.equity.is_negative() && self.frozen_dependency(&self.accounts[id.0 as usize]).is_none() {
                return self.resolve_bankruptcy(id, seq, out);
            }
            self.close_position_step(id, market_id, seq, out)?;
        }
        let account = &self.accounts[id.0 as usize];
        let health = self.health_of(account)?;
        if health.equity.is_negative() && self.frozen_dependency(account).is_none() {
            self.resolve_bankruptcy(id, seq, out)?;
        }
        Ok(())
    }

    /// Partial (or full) close of one position to the inventory at mark, with its penalty.
    fn close_position_step(
        &mut self,
        id: AccountId,
        market_id: MarketId,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<(), Overflow> {
        let account = &self.accounts[id.0 as usize];
        let market = &self.markets[market_id.0 as usize];
        let mark = market.mark_price.ok_or(Overflow)?;
        let position = *account.position(market_id).ok_or(Overflow)?;
        let size_abs = position.size.checked_abs()?;
        let before = self.health_of(account)?;
        let own_mm = crate::margin::position_mm(&market.params, size_abs, mark)?;
        let other_mm = before.maintenance_margin.checked_sub(own_mm)?;
        let partial = sizing::partial_close_size(&market.params, size_abs, mark, before.equity, other_mm)?;
        let (closed_abs, full) = match partial {
            Some(q) if q.is_positive() && q < size_abs => (q, false),
            _ => (size_abs, true),
        };
        let full_penalty = sizing::penalty(&market.params, size_abs, closed_abs, mark)?;
        let penalty = full_penalty.min(before.equity.max(Quote::ZERO));
        let closed = if position.size.is_negative() { closed_abs.checked_neg()? } else { closed_abs };
        self.move_to_inventory(id, market_id, closed, mark, penalty, seq, out)?;
        let after = self.health_of(&self.accounts[id.0 as usize])?;
        let name = self.accounts[id.0 as usize].name.to_string();
        out.push(Effect {
            seq,
            ts: self.last_ts,
            kind: EffectKind::Liquidation {
                account: name.clone(),
                market: self.markets[market_id.0 as usize].name.to_string(),
                closed_size: closed,
                price: mark,
                penalty,
                full,
                equity_before: before.equity,
                maintenance_margin_before: before.maintenance_margin,
                equity_after: after.equity,
                maintenance_margin_after: after.maintenance_margin,
            },
        });
        if penalty.is_positive() {
            self.push_insurance(seq, out, "liquidation_penalty", penalty, Some(name));
        }
        Ok(())
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
        let account = &mut self.accounts[id.0 as usize];
        account.settlement = settlement;
        account.set_position(account_fill.position);
        let market = &mut self.markets[market_id.0 as usize];
        market.inventory = inventory_fill.position;
        market.open_interest = open_interest;
        self.insurance_fund = fund;
        self.bad_debt = bad_debt;
        if !inventory_pnl.is_zero() {
            // Opposite liquidations net inside the inventory; its realized result is the fund's.
            let kind = EffectKind::Insurance {
                reason: "inventory_pnl".into(),
                amount: inventory_pnl,
                balance: fund_netted,
                account: None,
            };
            out.push(Effect { seq, ts: self.last_ts, kind });
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
        out.push(Effect { seq, ts: self.last_ts, kind });
    }

    pub(crate) fn alert(&self, seq: u64, out: &mut Vec<Effect>, alert: &str, market: &str, message: String) {
        out.push(Effect {
            seq,
            ts: self.last_ts,
            kind: EffectKind::Alert { alert: alert.into(), market: market.into(), message },
        });
    }
}
