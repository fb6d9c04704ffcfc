//! Bankruptcy: the insurance fund, auto-deleveraging (ADL) and socialized loss.
//!
//! A bankrupt account (negative equity, nothing left to liquidate gently) first has all of its
//! non-settlement collateral sold to the protocol (`collateral.rs`); the deficit left is covered
//! by the insurance fund first. What the fund cannot cover is split over the account's positions
//! by notional; in a market with ADL on, that position is closed against opposite-side accounts
//! ranked by profit x effective leverage (BitMEX), highest first (ties by name), at the bankrupt
//! position's bankruptcy price (the price at which closing it all absorbs its share). Size no
//! counterparty can take goes to the inventory at mark. Whatever loss is still left is shared
//! pro rata by accounts with positions and positive equity, never by an account without one.

use super::adl_book::PendingLoss;
use crate::effect::{Effect, EffectKind, EffectSink};
use crate::engine::Engine;
use crate::num::{Overflow, Price, Quote, Round, Size};
use crate::state::{AccountId, MarketId};
use crate::trade::fill;
use ethnum::I256;

/// Pure: the fund and bad debt after the protocol books `pnl` (a penalty, an inventory gain or
/// loss, a payout). Inflows repay bad debt first; a loss beyond the fund becomes bad debt.
pub fn fund_after(fund: Quote, bad_debt: Quote, pnl: Quote) -> Result<(Quote, Quote), Overflow> {
    let net = fund.checked_sub(bad_debt)?.checked_add(pnl)?;
    Ok(if net.is_negative() { (Quote::ZERO, net.checked_neg()?) } else { (net, Quote::ZERO) })
}

/// An ADL ranking score, fixed point with 18 decimals (saturating: ranks stay ordered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score(I256);

impl Score {
    /// BitMEX: PnL% x effective leverage when in profit, PnL% / effective leverage otherwise,
    /// with PnL% = upnl / |cost| and effective leverage = |size| x mark / equity.
    pub fn bitmex(upnl: Quote, cost: Quote, notional: Quote, equity: Quote) -> Score {
        let upnl = I256::from(upnl.raw());
        let cost = I256::from(cost.raw()).abs().max(I256::ONE);
        let notional = I256::from(notional.raw()).max(I256::ONE);
        let equity = I256::from(equity.raw()).max(I256::ONE);
        let (num, den) =
            if upnl > I256::ZERO { (upnl * notional, cost * equity) } else { (upnl * equity, cost * notional) };
        // |num| <= 2^254 / 10^18 is far beyond any real book; saturate rather than overflow.
        let scale = I256::from(10i128.pow(18));
        let value = num.checked_mul(scale).map_or(if num > I256::ZERO { I256::MAX } else { I256::MIN }, |n| n / den);
        Score(value)
    }

    /// A decimal rendering with 8 places, for effects (saturating).
    pub fn to_decimal(self) -> String {
        let scaled = self.0 / I256::from(10i128.pow(10));
        let raw = i64::try_from(scaled).unwrap_or(if scaled > I256::ZERO { i64::MAX } else { i64::MIN });
        Price::from_raw(raw).to_string()
    }
}

impl Engine {
    /// Cover a bankrupt account: fund, then ADL per market, then socialized loss.
    pub(crate) fn resolve_bankruptcy(
        &mut self,
        id: AccountId,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<(), Overflow> {
        // The account's own collateral pays first: all of it is sold to the protocol.
        self.convert_collateral(id, super::collateral::Scope::All, "bankruptcy", seq, out)?;
        let health = self.health_of(&self.accounts[id.0 as usize])?;
        let deficit = health.equity.checked_neg()?;
        if !deficit.is_positive() {
            return Ok(());
        }
        let name = self.accounts[id.0 as usize].name.to_string();
        let cover = deficit.min(self.insurance_fund);
        let account = self.account_mut(id);
        account.settlement = account.settlement.checked_add(cover)?;
        let fund = self.insurance_fund.checked_sub(cover)?;
        self.write_fund(fund, self.bad_debt);
        out.emit(seq, self.last_ts, EffectKind::Bankruptcy { account: name.clone(), deficit, covered_by_fund: cover });
        if cover.is_positive() {
            self.push_insurance(seq, out, "bankruptcy_cover", cover.checked_neg()?, Some(name.clone()));
        }
        let remaining = deficit.checked_sub(cover)?;
        self.close_bankrupt_positions(id, remaining, seq, out)?;
        let equity = self.health_of(&self.accounts[id.0 as usize])?.equity;
        if equity.is_negative() {
            // Socialized with the other losses of this pass, at its end (`socialize_pending`).
            let loss = equity.checked_neg()?;
            self.waterfall.pending.push(PendingLoss { id, loss });
        }
        Ok(())
    }

    /// Socialize the losses that bankruptcies of this pass left, in the order they arose: each
    /// takes what the eligible accounts' equity still allows; what nobody could absorb becomes
    /// protocol bad debt (the account is made whole to zero equity either way, so the same loss
    /// is not raised again at every later event). One scan of the accounts for the whole pass.
    pub(crate) fn socialize_pending(&mut self, seq: u64, out: &mut Vec<Effect>) {
        let pending = std::mem::take(&mut self.waterfall.pending);
        if pending.is_empty() {
            return;
        }
        let bankrupts: Vec<AccountId> = pending.iter().map(|p| p.id).collect();
        if let Err(Overflow) = self.socialize_all(&pending, &bankrupts, seq, out) {
            let names: Vec<&str> = pending.iter().map(|p| &*self.accounts[p.id.0 as usize].name).collect();
            let message = format!("socializing the losses of {names:?}: arithmetic overflow, left for the next event");
            self.alert(seq, out, "liquidation_overflow", "", message);
        }
    }

    fn socialize_all(
        &mut self,
        pending: &[PendingLoss],
        bankrupts: &[AccountId],
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<(), Overflow> {
        let (eligible, total) = self.socialization_base(bankrupts)?;
        let mut left = total;
        let mut plan: Vec<(PendingLoss, Quote, Quote)> = Vec::with_capacity(pending.len());
        for p in pending {
            let absorbed = p.loss.min(left);
            left = left.checked_sub(absorbed)?;
            plan.push((*p, absorbed, p.loss.checked_sub(absorbed)?));
        }
        let absorbed_total = total.checked_sub(left)?;
        let residual_total = plan.iter().try_fold(Quote::ZERO, |acc, (_, _, r)| acc.checked_add(*r))?;
        let shares =
            if absorbed_total.is_positive() { pro_rata(absorbed_total, &eligible, total)? } else { Vec::new() };
        let bad_debt = self.bad_debt.checked_add(residual_total)?;
        let mut debits = Vec::with_capacity(shares.len());
        for ((id, _), share) in eligible.iter().zip(&shares) {
            debits.push((*id, self.accounts[id.0 as usize].settlement.checked_sub(*share)?));
        }
        let mut credits = Vec::with_capacity(plan.len());
        for (p, _, _) in &plan {
            credits.push((p.id, self.accounts[p.id.0 as usize].settlement.checked_add(p.loss)?));
        }
        // The plan moves value to zero: debits of the eligible equal what the bankrupts get
        // beyond the new bad debt.
        let debited = shares.iter().try_fold(Quote::ZERO, |acc, s| acc.checked_add(*s))?;
        assert_eq!(debited, absorbed_total, "socialized shares sum to what is absorbed");
        // Commit: nothing below can fail.
        for (id, settlement) in debits.into_iter().chain(credits) {
            self.account_mut(id).settlement = settlement;
        }
        self.write_fund(self.insurance_fund, bad_debt);
        for (p, absorbed, residual) in plan {
            let name = self.accounts[p.id.0 as usize].name.to_string();
            if absorbed.is_positive() {
                let kind = EffectKind::SocializedLoss {
                    amount: absorbed,
                    accounts: eligible.len() as u64,
                    bankrupt: name.clone(),
                };
                out.emit(seq, self.last_ts, kind);
            }
            if residual.is_positive() {
                let message =
                    format!("{residual} of loss from {name} could not be absorbed: carried as protocol bad debt");
                self.alert(seq, out, "loss_unabsorbed", "", message);
            }
        }
        Ok(())
    }

    /// Accounts that can absorb a socialized loss (a position and positive equity, none of
    /// `exclude`), sorted by name, with their equity; and the total.
    fn socialization_base(&mut self, exclude: &[AccountId]) -> Result<(Vec<(AccountId, Quote)>, Quote), Overflow> {
        let mut eligible: Vec<(AccountId, Quote)> = Vec::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let id = AccountId(i as u32);
            if account.positions.is_empty() || exclude.contains(&id) {
                continue;
            }
            let equity = self.health_of(account)?.equity;
            if equity.is_positive() {
                eligible.push((id, equity));
            }
        }
        self.waterfall.work += self.accounts.len() as u64;
        eligible.sort_unstable_by(|a, b| self.accounts[a.0 .0 as usize].name.cmp(&self.accounts[b.0 .0 as usize].name));
        let total = eligible.iter().try_fold(Quote::ZERO, |acc, (_, e)| acc.checked_add(*e))?;
        Ok((eligible, total))
    }

    /// Close every position of a bankrupt account: by ADL where on and a loss remains, else to the
    /// inventory at mark. `loss` is split over positions by notional (the last takes the rest).
    fn close_bankrupt_positions(
        &mut self,
        id: AccountId,
        loss: Quote,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<(), Overflow> {
        let positions = self.accounts[id.0 as usize].positions.clone();
        let mut notionals = Vec::with_capacity(positions.len());
        for p in &positions {
            let mark = self.markets[p.market.0 as usize].mark_price.ok_or(Overflow)?;
            notionals.push(p.size.checked_abs()?.mul_price(mark));
        }
        let total = notionals.iter().try_fold(Quote::ZERO, |acc, n| acc.checked_add(*n))?;
        let mut left = loss;
        for (i, p) in positions.iter().enumerate() {
            let share = if i + 1 == positions.len() || total.is_zero() {
                left
            } else {
                loss.mul_ratio_quote(notionals[i], total, Round::Down)?
            };
            left = left.checked_sub(share)?;
            let market = &self.markets[p.market.0 as usize];
            let mark = market.mark_price.ok_or(Overflow)?;
            let unplaced = if share.is_positive() && market.params.adl_enabled {
                self.deleverage(id, p.market, share, seq, out)?
            } else {
                p.size
            };
            if !unplaced.is_zero() {
                let before = self.health_of(&self.accounts[id.0 as usize])?;
                self.move_to_inventory(id, p.market, unplaced, mark, Quote::ZERO, seq, out)?;
                self.emit_full_close(id, p.market, unplaced, mark, before, seq, out)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_full_close(
        &self,
        id: AccountId,
        market_id: MarketId,
        closed: Size,
        mark: Price,
        before: crate::margin::Health,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<(), Overflow> {
        let after = self.health_of(&self.accounts[id.0 as usize])?;
        out.emit(
            seq,
            self.last_ts,
            EffectKind::Liquidation {
                account: self.accounts[id.0 as usize].name.to_string(),
                market: self.markets[market_id.0 as usize].name.to_string(),
                closed_size: closed,
                price: mark,
                penalty: Quote::ZERO,
                full: true,
                equity_before: before.equity,
                maintenance_margin_before: before.maintenance_margin,
                equity_after: after.equity,
                maintenance_margin_after: after.maintenance_margin,
            },
        );
        Ok(())
    }

    /// ADL the bankrupt position in `market_id` so that it absorbs `loss`; returns the signed
    /// size no counterparty could take.
    fn deleverage(
        &mut self,
        id: AccountId,
        market_id: MarketId,
        loss: Quote,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<Size, Overflow> {
        let position = *self.accounts[id.0 as usize].position(market_id).ok_or(Overflow)?;
        let mark = self.markets[market_id.0 as usize].mark_price.ok_or(Overflow)?;
        let size_abs = position.size.checked_abs()?;
        // Bankruptcy price: a long sells higher, a short buys lower, by loss / |size|, at most one
        // mark (the price stays within [1 raw, 2 x mark]): a loss out of all proportion to the
        // position (fees of a closed position, say) is not pushed onto the counterparties at a
        // price no book could print; what ADL does not absorb is socialized.
        let round = if position.size.is_positive() { Round::Up } else { Round::Down };
        let shift = match loss.div_size(size_abs, round) {
            Ok(shift) => shift.min(mark),
            Err(Overflow) => mark,
        };
        let price_raw = if position.size.is_positive() {
            mark.raw().checked_add(shift.raw())
        } else {
            mark.raw().checked_sub(shift.raw())
        };
        let bankruptcy_price = Price::from_raw(price_raw.ok_or(Overflow)?.max(1));
        let mut remaining = position.size;
        let bankrupt = self.accounts[id.0 as usize].name.to_string();
        // Each cross either closes the counterparty's position (it leaves the book) or the rest
        // of the bankrupt's: at most one more round than there are holders.
        for _ in 0..=self.accounts.len() {
            if remaining.is_zero() {
                break;
            }
            let Some((counterparty, score)) = self.adl_best(market_id, -position.size.signum(), id)? else { break };
            let theirs = self.accounts[counterparty.0 as usize].size(market_id);
            let take_abs = theirs.checked_abs()?.min(remaining.checked_abs()?);
            let take = if position.size.is_positive() { take_abs } else { take_abs.checked_neg()? };
            self.cross(id, counterparty, market_id, take, bankruptcy_price)?;
            remaining = remaining.checked_sub(take)?;
            out.emit(
                seq,
                self.last_ts,
                EffectKind::Adl {
                    account: self.accounts[counterparty.0 as usize].name.to_string(),
                    counterparty: bankrupt.clone(),
                    market: self.markets[market_id.0 as usize].name.to_string(),
                    size: take.checked_neg()?,
                    price: bankruptcy_price,
                    rank_score: score.to_decimal(),
                },
            );
        }
        Ok(remaining)
    }

    /// `seller_side` (the bankrupt) closes `size` (signed, its own side) against `other` at `price`.
    fn cross(
        &mut self,
        bankrupt: AccountId,
        other: AccountId,
        market_id: MarketId,
        size: Size,
        price: Price,
    ) -> Result<(), Overflow> {
        let a = &self.accounts[bankrupt.0 as usize];
        let b = &self.accounts[other.0 as usize];
        let pa = *a.position(market_id).ok_or(Overflow)?;
        let pb = *b.position(market_id).ok_or(Overflow)?;
        let fa = fill(pa, size.checked_neg()?, price)?;
        let fb = fill(pb, size, price)?;
        let open_interest =
            self.open_interest_after(market_id, &[(pa.size, fa.position.size), (pb.size, fb.position.size)])?;
        let settle_a = a.settlement.checked_add(fa.realized_pnl)?;
        let settle_b = b.settlement.checked_add(fb.realized_pnl)?;
        let account = self.account_mut(bankrupt);
        account.settlement = settle_a;
        account.set_position(fa.position);
        let account = self.account_mut(other);
        account.settlement = settle_b;
        account.set_position(fb.position);
        self.write_book(market_id, None, open_interest);
        Ok(())
    }

    /// Accounts holding the side opposite to `side` (a signum) in a market, ranked for ADL:
    /// highest score first, ties by name. `exclude` is the bankrupt account.
    pub fn adl_ranking(
        &self,
        market_id: MarketId,
        side: i32,
        exclude: Option<AccountId>,
    ) -> Result<Vec<(AccountId, Score)>, Overflow> {
        let mark = self.markets[market_id.0 as usize].mark_price.ok_or(Overflow)?;
        let mut ranked = Vec::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let id = AccountId(i as u32);
            let Some(p) = account.position(market_id) else { continue };
            if Some(id) == exclude || p.size.signum() != -side {
                continue;
            }
            let health = self.health_of(account)?;
            let score =
                Score::bitmex(p.unrealized_pnl(mark)?, p.cost, p.size.checked_abs()?.mul_price(mark), health.equity);
            ranked.push((id, score));
        }
        ranked.sort_by(|a, b| {
            b.1.cmp(&a.1).then_with(|| self.accounts[a.0 .0 as usize].name.cmp(&self.accounts[b.0 .0 as usize].name))
        });
        Ok(ranked)
    }

    /// Share `amount` pro rata to equity over accounts with a position and positive equity
    /// (never one without a position), debiting their settlement balance. Returns what was
    /// absorbed (at most their total equity); the caller credits it. Every debit is computed
    /// before any is written: on overflow nothing is debited.
    pub(crate) fn socialize(
        &mut self,
        amount: Quote,
        exclude: Option<AccountId>,
        bankrupt: &str,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<Quote, Overflow> {
        let (eligible, total) = self.socialization_base(exclude.as_slice())?;
        let absorbed = amount.min(total);
        if absorbed.is_positive() {
            let shares = pro_rata(absorbed, &eligible, total)?;
            let mut debits = Vec::with_capacity(shares.len());
            for ((id, _), share) in eligible.iter().zip(&shares) {
                debits.push((*id, self.accounts[id.0 as usize].settlement.checked_sub(*share)?));
            }
            let debited = shares.iter().try_fold(Quote::ZERO, |acc, s| acc.checked_add(*s))?;
            assert_eq!(debited, absorbed, "socialized shares sum to what is absorbed");
            for (id, settlement) in debits {
                self.account_mut(id).settlement = settlement;
            }
            let kind = EffectKind::SocializedLoss {
                amount: absorbed,
                accounts: eligible.len() as u64,
                bankrupt: bankrupt.into(),
            };
            out.emit(seq, self.last_ts, kind);
        }
        Ok(absorbed)
    }

    /// Protocol bad debt is repaid by socialized loss when accounts can absorb it. On overflow
    /// nothing moves and an alert says so (the debt stays, and is tried again next event).
    pub(crate) fn repay_bad_debt(&mut self, seq: u64, out: &mut Vec<Effect>) {
        if !self.bad_debt.is_positive() {
            return;
        }
        let repaid = self
            .socialize(self.bad_debt, None, "protocol", seq, out)
            .and_then(|absorbed| self.bad_debt.checked_sub(absorbed));
        match repaid {
            Ok(bad_debt) => {
                self.write_fund(self.insurance_fund, bad_debt);
            }
            Err(Overflow) => {
                let message = format!("repaying bad debt of {}: arithmetic overflow, nothing moved", self.bad_debt);
                self.alert(seq, out, "liquidation_overflow", "", message);
            }
        }
    }
}

/// Pure: split `amount` over `weights` (sum `total`) rounding each share down, then hand the
/// remaining raw units one each to the first accounts, so the shares sum to `amount` exactly
/// and none exceeds its weight (amount <= total).
fn pro_rata(amount: Quote, weights: &[(AccountId, Quote)], total: Quote) -> Result<Vec<Quote>, Overflow> {
    let mut shares = Vec::with_capacity(weights.len());
    let mut assigned = Quote::ZERO;
    for (_, weight) in weights {
        let share = amount.mul_ratio_quote(*weight, total, Round::Down)?;
        assigned = assigned.checked_add(share)?;
        shares.push(share);
    }
    let mut left = amount.checked_sub(assigned)?.raw();
    for (share, (_, weight)) in shares.iter_mut().zip(weights) {
        if left == 0 {
            break;
        }
        if *share < *weight {
            *share = share.checked_add(Quote::from_raw(1))?;
            left -= 1;
        }
    }
    debug_assert_eq!(left, 0, "shares sum to the amount");
    Ok(shares)
}
