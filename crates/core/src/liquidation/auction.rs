//! Dutch auctions of the liquidation inventory to backstop makers.
//!
//! Each market has at most one live auction, always for its whole current inventory. The price
//! is relative to the live mark: it starts `auction_start_premium` better than mark for the
//! protocol and moves linearly to `auction_floor_discount` worse than mark over
//! `auction_duration_ms` of engine time. A take may be partial; it must leave the taker at or
//! above initial margin. When the duration ends with inventory left, the auction ends
//! (`expired`) and a new one starts for the remainder; when netting flips the inventory's side,
//! likewise (`flipped`). The inventory's realized gain or loss against its takeover price goes to
//! the insurance fund (a loss beyond the fund becomes bad debt, repaid by socialized loss).

use crate::effect::{Effect, EffectKind, EffectSink};
use crate::engine::Engine;
use crate::error::Error;
use crate::event::AuctionTake;
use crate::liquidation::bankruptcy::fund_after;
use crate::num::{mul_div, Overflow, Price, Rate, Round, Size};
use crate::state::{Auction, Market, MarketId, Position};
use crate::trade::fill;

/// Pure: the auction price at `now_ms` for a live `mark`. Selling rounds up, buying down (the
/// taker pays the rounding).
pub fn auction_price(market: &Market, auction: &Auction, mark: Price, now_ms: u64) -> Result<Price, Overflow> {
    price_after(market, auction.selling, mark, now_ms.saturating_sub(auction.start_ts))
}

/// Pure: the auction price `elapsed_ms` into an auction (capped at the duration: the floor).
pub fn price_after(market: &Market, selling: bool, mark: Price, elapsed_ms: u64) -> Result<Price, Overflow> {
    let params = &market.params;
    let one = i128::from(Rate::ONE_RAW);
    let elapsed = i128::from(elapsed_ms.min(params.auction_duration_ms));
    let span = i128::from(params.auction_start_premium.raw()) + i128::from(params.auction_floor_discount.raw());
    let decayed = mul_div(span, elapsed, i128::from(params.auction_duration_ms), Round::Down)?;
    let premium = i128::from(params.auction_start_premium.raw()) - decayed; // better than mark when > 0
    let (factor, round) = if selling { (one + premium, Round::Up) } else { (one - premium, Round::Down) };
    let raw = mul_div(i128::from(mark.raw()), factor, one, round)?;
    i64::try_from(raw.max(1)).map(Price::from_raw).map_err(|_| Overflow)
}

/// Pure: the backstop rebate of a take of `size` at `price`: `incentive_rebate_rate` × notional
/// when the price lies in one of the market's cliff ranges, rounded down, capped at `fund` (the
/// insurance fund pays it: value moved, never created).
pub fn incentive_rebate(
    params: &crate::config::MarketParams,
    size: Size,
    price: Price,
    fund: crate::num::Quote,
) -> Result<crate::num::Quote, Overflow> {
    let rate = params.incentive_rebate_rate;
    if !rate.is_positive() || !params.cliff_ranges.iter().any(|r| r.contains(price)) {
        return Ok(crate::num::Quote::ZERO);
    }
    let rebate = size.mul_price(price).mul_rate(rate, Round::Down)?;
    Ok(rebate.min(fund.max(crate::num::Quote::ZERO)))
}

impl Engine {
    /// End auctions past their duration or whose inventory is gone or flipped.
    pub(crate) fn expire_auctions(&mut self, seq: u64, out: &mut Vec<Effect>) {
        let now = self.last_ts;
        for i in 0..self.markets.len() {
            let market = &self.markets[i];
            let Some(auction) = market.auction else { continue };
            let size = market.inventory.size;
            let reason = if size.is_zero() {
                "sold"
            } else if size.is_positive() != auction.selling {
                "flipped"
            } else if now >= auction.start_ts.saturating_add(market.params.auction_duration_ms) {
                "expired"
            } else {
                continue;
            };
            self.end_auction(MarketId(i as u16), reason, seq, out);
        }
    }

    fn end_auction(&mut self, market_id: MarketId, reason: &str, seq: u64, out: &mut Vec<Effect>) {
        let market = &mut self.markets[market_id.0 as usize];
        let Some(auction) = market.auction.take() else { return };
        let kind = EffectKind::AuctionEnded {
            auction: auction.id.to_string(),
            market: market.name.to_string(),
            reason: reason.into(),
            remaining: market.inventory.size.checked_abs().unwrap_or(Size::MAX),
        };
        out.emit(seq, self.last_ts, kind);
    }

    /// Start an auction in every live market with inventory and none running.
    pub(crate) fn start_auctions(&mut self, seq: u64, out: &mut Vec<Effect>) {
        let now = self.last_ts;
        let wanted = |m: &Market| !m.inventory.size.is_zero() && m.auction.is_none() && !m.frozen;
        if !self.markets.iter().any(wanted) {
            return;
        }
        // Auction ids are hashed state: hand them out in market-name order, not config order.
        let mut order: Vec<usize> = (0..self.markets.len()).collect();
        order.sort_unstable_by(|a, b| self.markets[*a].name.cmp(&self.markets[*b].name));
        for i in order {
            let market = &self.markets[i];
            let Some(mark) = market.mark_price else { continue };
            if market.inventory.size.is_zero() || market.auction.is_some() || market.frozen {
                continue;
            }
            let auction =
                Auction { id: self.next_auction_id, start_ts: now, selling: market.inventory.size.is_positive() };
            let duration = market.params.auction_duration_ms;
            let (Ok(start_price), Ok(floor_price)) =
                (price_after(market, auction.selling, mark, 0), price_after(market, auction.selling, mark, duration))
            else {
                continue;
            };
            let kind = EffectKind::AuctionStarted {
                auction: auction.id.to_string(),
                market: market.name.to_string(),
                side: if auction.selling { "sell" } else { "buy" }.into(),
                size: market.inventory.size.checked_abs().unwrap_or(Size::MAX),
                start_price,
                floor_price,
                duration_ms: market.params.auction_duration_ms,
            };
            self.next_auction_id += 1;
            self.markets[i].auction = Some(auction);
            out.emit(seq, now, kind);
        }
    }

    /// An `auction_take` event: the bidder takes `size` of the inventory at the current price.
    pub(crate) fn auction_take(&mut self, seq: u64, take: &AuctionTake, out: &mut Vec<Effect>) -> Result<(), Error> {
        let now = take.ts.max(self.last_ts);
        let unknown = || Error::UnknownAuction(take.auction.clone());
        let id: u64 = take.auction.parse().map_err(|_| unknown())?;
        if id.to_string() != take.auction {
            return Err(unknown()); // "01" is not auction 1
        }
        let market_index =
            self.markets.iter().position(|m| m.auction.is_some_and(|a| a.id == id)).ok_or_else(unknown)?;
        let market_id = MarketId(market_index as u16);
        let market = &self.markets[market_index];
        let auction = market.auction.ok_or_else(unknown)?;
        if !self.market_live_at(market_id, now) {
            return Err(Error::MarketFrozen { market: market.name.to_string(), what: "an auction take" });
        }
        if market.inventory.size.is_zero() || market.inventory.size.is_positive() != auction.selling {
            // Sold out or flipped by netting within this same event: the auction is over.
            return Err(unknown());
        }
        let remaining = market.inventory.size.checked_abs()?;
        if take.size > remaining || now >= auction.start_ts.saturating_add(market.params.auction_duration_ms) {
            let remaining = if take.size > remaining { remaining } else { Size::ZERO };
            return Err(Error::AuctionSizeExceeded {
                auction: take.auction.clone(),
                size: take.size.to_string(),
                remaining: remaining.to_string(),
            });
        }
        let mark = market.mark_price.ok_or_else(|| Error::NoMarkPrice(market.name.to_string()))?;
        let price = auction_price(market, &auction, mark, now)?;
        let bidder_id = self.account_id(&take.bidder)?;
        let bidder_delta = if auction.selling { take.size } else { take.size.checked_neg()? };
        let bidder = &self.accounts[bidder_id.0 as usize];
        let (bidder_after, _) = self.filled(bidder, market_id, bidder_delta, price, crate::num::Quote::ZERO, now)?;
        let inventory_fill = fill(market.inventory, bidder_delta.checked_neg()?, price)?;
        let bidder_before = self.accounts[bidder_id.0 as usize].size(market_id);
        let open_interest = self.open_interest_after(
            market_id,
            &[(bidder_before, bidder_after.size(market_id)), (market.inventory.size, inventory_fill.position.size)],
        )?;
        let (fund, bad_debt) = fund_after(self.insurance_fund, self.bad_debt, inventory_fill.realized_pnl)?;
        let rebate = incentive_rebate(&market.params, take.size, price, fund)?;
        let mut bidder_after = bidder_after;
        bidder_after.settlement = bidder_after.settlement.checked_add(rebate)?;
        // Everything is checked: commit (the take's ts is trusted time, as `apply` will record).
        self.last_ts = now;
        *self.account_mut(bidder_id) = bidder_after;
        let market = &mut self.markets[market_index];
        market.inventory = inventory_fill.position;
        market.open_interest = open_interest;
        self.insurance_fund = fund;
        self.bad_debt = bad_debt;
        let remaining = self.markets[market_index].inventory.size.checked_abs()?;
        let kind = EffectKind::AuctionFill {
            auction: take.auction.clone(),
            market: self.markets[market_index].name.to_string(),
            bidder: take.bidder.clone(),
            size: take.size,
            price,
            remaining,
            inventory_pnl: inventory_fill.realized_pnl,
            rebate: (!rebate.is_zero()).then_some(rebate),
        };
        out.emit(seq, now, kind);
        if !inventory_fill.realized_pnl.is_zero() {
            self.push_insurance(seq, out, "inventory_pnl", inventory_fill.realized_pnl, None);
        }
        if !rebate.is_zero() {
            // Moved from the fund to the bidder (the fund never goes below zero: capped above).
            self.insurance_fund = self.insurance_fund.checked_sub(rebate)?;
            self.push_insurance(seq, out, "incentive_rebate", rebate.checked_neg()?, Some(take.bidder.clone()));
        }
        Ok(())
    }

    /// The inventory position of a market (for the dump and tests).
    pub fn inventory(&self, market_id: MarketId) -> Position {
        self.markets[market_id.0 as usize].inventory
    }
}
