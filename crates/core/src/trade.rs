//! Trades from the matching engine: position updates, realized PnL, fees, initial-margin checks.
//!
//! Cost basis is exact (sum of size x price). Reducing a position by q of its size s removes
//! ceil(cost x |q| / |s|) of cost (rounded toward +infinity, so realized PnL rounds against the
//! account by less than one unit; the remainder stays in the open position's basis, so no value
//! leaves the account). A full close removes the cost exactly.

use crate::engine::Engine;
use crate::error::Error;
use crate::event::Trade;
use crate::num::{Overflow, Price, Quote, Rate, Round, Size};
use crate::state::{Account, AccountId, MarketId, Position};

/// The outcome of adding a signed `delta` to a position at `price`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub position: Position,
    pub realized_pnl: Quote,
    /// True when |size| grows or the side flips: such a fill needs initial margin.
    pub adds_exposure: bool,
}

/// Pure leaf: apply a fill of signed `delta` at `price` to `position`.
pub fn fill(position: Position, delta: Size, price: Price) -> Result<Fill, Overflow> {
    let size = position.size;
    let new_size = size.checked_add(delta)?;
    let same_side = size.is_zero() || size.signum() == delta.signum();
    if same_side {
        let cost = position.cost.checked_add(delta.mul_price(price))?;
        let position = Position { size: new_size, cost, ..position };
        return Ok(Fill { position, realized_pnl: Quote::ZERO, adds_exposure: true });
    }
    let closing = delta.checked_abs()?.min(size.checked_abs()?);
    let removed = if closing == size.checked_abs()? {
        position.cost
    } else {
        position.cost.mul_ratio(closing, size.checked_abs()?, Round::Up)?
    };
    // Closing |closing| of a long sells at price; of a short buys at price.
    let closing_signed = if size.is_positive() { closing } else { closing.checked_neg()? };
    let realized_pnl = closing_signed.mul_price(price).checked_sub(removed)?;
    let remaining_cost = position.cost.checked_sub(removed)?;
    let flipped = !new_size.is_zero() && new_size.signum() != size.signum();
    let cost = if flipped { remaining_cost.checked_add(new_size.mul_price(price))? } else { remaining_cost };
    debug_assert!(!flipped || remaining_cost.is_zero(), "a flip closes the old side fully");
    let cost = if new_size.is_zero() { Quote::ZERO } else { cost };
    Ok(Fill { position: Position { size: new_size, cost, ..position }, realized_pnl, adds_exposure: flipped })
}

/// Pure leaf: whether `price` lies within `max_deviation` x `mark` of `mark`, decided exactly
/// (|price - mark| x 10^8 <= deviation raw x mark, in i128: no rounding, no overflow).
pub fn within_band(price: Price, mark: Price, max_deviation: Rate) -> bool {
    let distance = (i128::from(price.raw()) - i128::from(mark.raw())).abs();
    distance * i128::from(Rate::ONE.raw()) <= i128::from(max_deviation.raw()) * i128::from(mark.raw())
}

/// One party's side of a trade, before it is written.
struct PartyFill {
    id: AccountId,
    position: Position,
    settlement: Quote,
    open_interest_delta: Size,
}

/// The account a trade's party fills in: the named one, or its isolated wallet of the market.
fn party_name<'a>(account: &'a str, isolated: bool, market: &str) -> std::borrow::Cow<'a, str> {
    if isolated {
        std::borrow::Cow::Owned(crate::event::isolated_account(account, market))
    } else {
        std::borrow::Cow::Borrowed(account)
    }
}

/// Long open interest added by moving a holder from `old` to `new` size.
pub fn open_interest_delta(old: Size, new: Size) -> Result<Size, Overflow> {
    new.max(Size::ZERO).checked_sub(old.max(Size::ZERO))
}

impl Engine {
    pub(crate) fn trade(&mut self, trade: &Trade) -> Result<(), Error> {
        let market_id = self.market_id(&trade.market)?;
        if trade.buyer == trade.seller {
            return Err(Error::SelfTrade(trade.buyer.clone()));
        }
        let buyer_id = self.account_id(&party_name(&trade.buyer, trade.buyer_isolated, &trade.market))?;
        let seller_id = self.account_id(&party_name(&trade.seller, trade.seller_isolated, &trade.market))?;
        let market = &self.markets[market_id.0 as usize];
        let Some(mark) = market.mark_price else {
            return Err(Error::NoMarkPrice(trade.market.clone()));
        };
        let max_deviation = market.params.max_trade_deviation;
        if !within_band(trade.price, mark, max_deviation) {
            return Err(Error::PriceOutOfBand {
                market: trade.market.clone(),
                price: trade.price.to_string(),
                mark: mark.to_string(),
                max_deviation: max_deviation.to_string(),
            });
        }
        let delta_sell = trade.size.checked_neg()?;
        // Skew fees (a market with `skew_scale` only): each side priced against traders' skew.
        let (skew_buyer, skew_seller, skew_pool) = match market.perp {
            None => (Quote::ZERO, Quote::ZERO, Quote::ZERO),
            Some(_) => crate::funding::trade_skew_fees(market, trade.size)?,
        };
        let buyer_fee = trade.buyer_fee.checked_add(skew_buyer)?;
        let seller_fee = trade.seller_fee.checked_add(skew_seller)?;
        let buyer = self.party_fill(buyer_id, market_id, trade.size, trade.price, buyer_fee, trade.ts)?;
        let seller = self.party_fill(seller_id, market_id, delta_sell, trade.price, seller_fee, trade.ts)?;
        let market = &self.markets[market_id.0 as usize];
        let open_interest =
            market.open_interest.checked_add(buyer.open_interest_delta)?.checked_add(seller.open_interest_delta)?;
        let fees = self.fees_collected.checked_add(buyer_fee)?.checked_add(seller_fee)?;
        debug_assert!(!open_interest.is_negative(), "open interest is a sum of long sizes");
        if let Some(cap) =
            market.params.oi_cap.filter(|cap| open_interest > *cap && open_interest > market.open_interest)
        {
            return Err(Error::OpenInterestCap {
                market: trade.market.clone(),
                open_interest: open_interest.to_string(),
                cap: cap.to_string(),
            });
        }
        self.write_book(market_id, None, open_interest);
        assert!(!fees.is_negative(), "fees collected never go negative (rebates come out of the skew pool)");
        self.fees_collected = fees;
        if let Some(state) = self.markets[market_id.0 as usize].perp.as_deref_mut() {
            state.skew_pool = skew_pool;
        }
        for party in [buyer, seller] {
            let account = self.account_mut(party.id);
            account.settlement = party.settlement;
            account.set_position(party.position);
        }
        self.sample_basis(market_id, trade.price, trade.size, trade.ts);
        Ok(())
    }

    /// One party's side of a trade, computed and checked (frozen markets and initial margin when
    /// it adds exposure) without writing anything.
    fn party_fill(
        &mut self,
        id: AccountId,
        market: MarketId,
        delta: Size,
        price: Price,
        fee: Quote,
        now_ms: u64,
    ) -> Result<PartyFill, Error> {
        let account = &self.accounts[id.0 as usize];
        let before =
            account.position(market).copied().unwrap_or(Position { market, size: Size::ZERO, cost: Quote::ZERO });
        let outcome = fill(before, delta, price)?;
        let settlement = account.settlement.checked_add(outcome.realized_pnl)?.checked_sub(fee)?;
        let open_interest_delta = open_interest_delta(before.size, outcome.position.size)?;
        let party = PartyFill { id, position: outcome.position, settlement, open_interest_delta };
        if outcome.adds_exposure {
            self.check_new_exposure(&party, before, now_ms)?;
        }
        Ok(party)
    }

    /// Judge the account as it would be after `party`: written in place, judged, and restored
    /// before anything else runs (the risk index never sees it; no copy of the account is made).
    fn check_new_exposure(&mut self, party: &PartyFill, before: Position, now_ms: u64) -> Result<(), Error> {
        let index = party.id.0 as usize;
        let settlement_before = std::mem::replace(&mut self.accounts[index].settlement, party.settlement);
        self.accounts[index].set_position(party.position);
        let frozen = self.frozen_dependency_at(&self.accounts[index], now_ms);
        // The exact health only where the division-free test cannot decide, or to report a refusal.
        let quick = crate::margin::below_initial_quick(&self.accounts[index], &self.assets, &self.markets);
        let health = (quick != Some(false)).then(|| self.health_of(&self.accounts[index]));
        let account = &mut self.accounts[index];
        account.settlement = settlement_before;
        account.set_position(before);
        if let Some(frozen) = frozen {
            let market = self.markets[frozen.0 as usize].name.to_string();
            return Err(Error::MarketFrozen { market, what: "new exposure" });
        }
        let Some(health) = health else { return Ok(()) };
        let health = health?;
        if health.below_initial() {
            return Err(Error::InsufficientMargin {
                account: self.accounts[index].name.to_string(),
                equity: health.equity,
                required: health.initial_margin,
            });
        }
        Ok(())
    }

    /// Feed the trade price into the basis EMA, weighted by the trade's share of the open
    /// interest, and re-derive the mark (when `mark_ema_ms` > 0).
    fn sample_basis(&mut self, market_id: MarketId, trade_price: Price, size: Size, ts: u64) {
        let market = &mut self.markets[market_id.0 as usize];
        let ema_ms = market.params.mark_ema_ms;
        let Some(index) = market.index_price.filter(|_| ema_ms > 0 && !market.frozen) else { return };
        let elapsed_ms = ts.saturating_sub(market.basis_ts);
        market.basis_ema_raw = crate::oracle::updated_basis(
            market.basis_ema_raw,
            index,
            trade_price,
            elapsed_ms,
            ema_ms,
            size,
            market.open_interest,
        );
        market.basis_ts = ts;
        market.mark_price = Some(crate::oracle::mark_from(index, market.basis_ema_raw, &market.params));
    }

    /// The account after a fill and its fee, checked against initial margin when the fill adds
    /// exposure; and the change in long open interest.
    pub(crate) fn filled(
        &self,
        account: &Account,
        market: MarketId,
        delta: Size,
        price: Price,
        fee: Quote,
        now_ms: u64,
    ) -> Result<(Account, Size), Error> {
        let before =
            account.position(market).copied().unwrap_or(Position { market, size: Size::ZERO, cost: Quote::ZERO });
        let outcome = fill(before, delta, price)?;
        let mut after = account.clone();
        after.settlement = after.settlement.checked_add(outcome.realized_pnl)?.checked_sub(fee)?;
        after.set_position(outcome.position);
        if outcome.adds_exposure {
            if let Some(frozen) = self.frozen_dependency_at(&after, now_ms) {
                let market = self.markets[frozen.0 as usize].name.to_string();
                return Err(Error::MarketFrozen { market, what: "new exposure" });
            }
            let health = self.health_of(&after)?;
            if health.below_initial() {
                return Err(Error::InsufficientMargin {
                    account: account.name.to_string(),
                    equity: health.equity,
                    required: health.initial_margin,
                });
            }
        }
        Ok((after, open_interest_delta(before.size, outcome.position.size)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(size: &str, cost: &str) -> Position {
        Position { market: MarketId(0), size: Size::parse(size).unwrap(), cost: Quote::parse(cost).unwrap() }
    }
    fn s(text: &str) -> Size {
        Size::parse(text).unwrap()
    }
    fn p(text: &str) -> Price {
        Price::parse(text).unwrap()
    }

    #[test]
    fn open_add_reduce_close_flip() {
        let opened = fill(pos("0", "0"), s("2"), p("100")).unwrap();
        assert_eq!(opened.position, pos("2", "200"));
        assert!(opened.adds_exposure);
        let added = fill(opened.position, s("1"), p("130")).unwrap();
        assert_eq!(added.position, pos("3", "330"));
        let reduced = fill(added.position, s("-1"), p("150")).unwrap();
        assert_eq!(reduced.position, pos("2", "220"));
        assert_eq!(reduced.realized_pnl, Quote::parse("40").unwrap());
        assert!(!reduced.adds_exposure);
        let flipped = fill(reduced.position, s("-5"), p("90")).unwrap();
        assert_eq!(flipped.realized_pnl, Quote::parse("-40").unwrap());
        assert_eq!(flipped.position, pos("-3", "-270"));
        assert!(flipped.adds_exposure);
        let closed = fill(flipped.position, s("3"), p("80")).unwrap();
        assert_eq!(closed.realized_pnl, Quote::parse("30").unwrap());
        assert_eq!(closed.position, pos("0", "0"));
    }

    #[test]
    fn partial_reduce_rounds_realized_against_the_account() {
        // 3 long at a cost of 100 (entry 33.33..); sell 1 at 40: exact realized 40 - 33.33.. .
        let one_third = fill(pos("3", "100"), s("-1"), p("40")).unwrap();
        let removed = Quote::parse("100").unwrap().checked_sub(one_third.position.cost).unwrap();
        assert_eq!(removed, Quote::parse("33.3333333333333334").unwrap());
        assert_eq!(one_third.realized_pnl, Quote::parse("6.6666666666666666").unwrap());
        // Short: 3 short at cost -100; buy back 1 at 30: exact gain 33.33.. - 30, rounded down.
        let short = fill(pos("-3", "-100"), s("1"), p("30")).unwrap();
        assert_eq!(short.realized_pnl, Quote::parse("3.3333333333333333").unwrap());
        assert_eq!(short.position.cost, Quote::parse("-66.6666666666666667").unwrap());
    }
}
