//! Funding, skew fees and exposure alerts (docs/margin.md has the rules and worked examples).
//!
//! **Funding.** On every `clock` event each market with `funding_enabled` samples its premium
//! (mark - index) / index; at each interval boundary the average premium P of the interval gives
//! F = P + clamp(I - P, -clamp, +clamp), plus the skew term, capped at ±cap per interval. Every
//! holder (the protocol's inventory included) owes size x mark x F: longs pay shorts when F > 0.
//! Each holder's balance change is rounded down (against the holder: a payer pays the ceiling, a
//! receiver gets the floor); what the accounts paid net goes to the insurance fund, which also
//! books the inventory's share, so the fund keeps the rounding remainder and nothing is created.
//!
//! **Skew.** Traders' skew = long open interest - short open interest of the accounts, which by
//! zero-sum is minus the protocol's inventory. A fill of signed size q against skew S costs
//! q x index x (S + q/2) / skew_scale (Synthetix perps v2): each side of a trade is priced so;
//! a positive cost is a fee (rounded up) into the market's skew pool, a negative one a rebate
//! (rounded down) paid from the pool, never beyond it. The pool is part of `fees_collected`.
//! With `max_funding_velocity` the funding rate gains a term that drifts at
//! clamp(S / skew_scale, -1, 1) x max_funding_velocity per day (Synthetix funding velocity).
//!
//! Nothing here runs for a market whose parameters use none of it: `Market::perp` is `None`.

use crate::config::PerpParams;
use crate::effect::{EffectKind, EffectSink};
use crate::engine::Engine;
use crate::num::{mul_div, Overflow, Price, Quote, Rate, Round, Size};
use crate::state::{AccountId, Market, MarketId};
use serde::{Deserialize, Serialize};

/// Milliseconds in a day (the unit of the funding velocity).
pub const DAY_MS: u64 = 86_400_000;
/// Funding rates are carried at 16 decimals (`Rate` has 8): one unit is 10^-16.
pub const RATE16_ONE: i128 = 10_000_000_000_000_000;
const RATE_TO_RATE16: i128 = RATE16_ONE / Rate::ONE_RAW as i128;

/// A market's funding and skew state (hashed and snapshotted when present).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerpState {
    /// Engine time of the next funding boundary; 0 until the first `clock` event starts it.
    pub next_funding_ts: u64,
    /// Sum of the interval's premium samples (`Rate` raw) and their number.
    pub premium_sum: i128,
    pub premium_samples: u64,
    /// The velocity-driven part of the funding rate, per day, 16 decimals.
    pub velocity_rate: i128,
    /// The rate of the last settlement (16 decimals, for all the intervals it settled).
    pub last_rate: i128,
    /// What the heavy side paid in skew fees, less the rebates paid out (inside `fees_collected`).
    pub skew_pool: Quote,
    /// Whether |skew| / the protocol's delta was above its alert threshold at the last check.
    pub skew_alerted: bool,
    pub delta_alerted: bool,
}

/// Pure: one premium sample, (mark - index) / index as a `Rate`, rounded down.
pub fn premium_sample(mark: Price, index: Price) -> Result<Rate, Overflow> {
    let diff = i128::from(mark.raw()) - i128::from(index.raw());
    let raw = mul_div(diff, i128::from(Rate::ONE_RAW), i128::from(index.raw()), Round::Down)?;
    Ok(Rate::from_raw(i64::try_from(raw).map_err(|_| Overflow)?))
}

/// Pure: the average of `samples` premium samples summing to `sum`, rounded down (0 without one).
pub fn average_premium(sum: i128, samples: u64) -> Rate {
    if samples == 0 {
        return Rate::ZERO;
    }
    Rate::from_raw(sum.div_euclid(i128::from(samples)) as i64)
}

/// Pure: F = P + clamp(I - P, -clamp, +clamp), then bounded to ±cap (one interval).
pub fn premium_rate(premium: Rate, params: &PerpParams) -> Rate {
    let (p, i) = (i128::from(premium.raw()), i128::from(params.funding_interest_rate.raw()));
    let clamp = i128::from(params.funding_clamp.raw());
    let cap = i128::from(params.funding_cap.raw());
    let rate = p + (i - p).clamp(-clamp, clamp);
    Rate::from_raw(rate.clamp(-cap, cap) as i64)
}

/// Pure: the funding velocity, clamp(skew / skew_scale, -1, 1) x max_funding_velocity, per day per
/// day at 16 decimals, rounded down.
pub fn funding_velocity(skew: Size, params: &PerpParams) -> Result<i128, Overflow> {
    let Some(scale) = params.skew_scale else { return Ok(0) };
    let max = i128::from(params.max_funding_velocity.raw()) * RATE_TO_RATE16;
    let velocity = mul_div(i128::from(skew.raw()), max, i128::from(scale.raw()), Round::Down)?;
    Ok(velocity.clamp(-max, max))
}

/// Pure: the skew term over `span_ms` starting at velocity rate `start` (per day, 16 decimals):
/// the average of the rate at both ends times the span in days, and the rate at the end. Both
/// rounded down.
pub fn velocity_term(start: i128, velocity: i128, span_ms: u64) -> Result<(i128, i128), Overflow> {
    let day = i128::from(DAY_MS);
    let end = start.checked_add(mul_div(velocity, i128::from(span_ms), day, Round::Down)?).ok_or(Overflow)?;
    let sum = start.checked_add(end).ok_or(Overflow)?;
    let term = mul_div(sum, i128::from(span_ms), 2 * day, Round::Down)?;
    Ok((term, end))
}

/// Pure: the funding rate of a settlement covering `intervals` intervals (16 decimals) and the
/// velocity rate after it.
pub fn settlement_rate(
    state: &PerpState,
    params: &PerpParams,
    skew: Size,
    intervals: u64,
) -> Result<(i128, i128), Overflow> {
    let k = i128::from(intervals);
    let premium = premium_rate(average_premium(state.premium_sum, state.premium_samples), params);
    let base = i128::from(premium.raw()).checked_mul(RATE_TO_RATE16 * k).ok_or(Overflow)?;
    let span_ms = params.funding_interval_ms.checked_mul(intervals).ok_or(Overflow)?;
    let velocity = funding_velocity(skew, params)?;
    let (term, velocity_rate) = velocity_term(state.velocity_rate, velocity, span_ms)?;
    let cap = i128::from(params.funding_cap.raw()) * RATE_TO_RATE16 * k;
    let rate = base.checked_add(term).ok_or(Overflow)?.clamp(-cap, cap);
    Ok((rate, velocity_rate))
}

/// Pure: a holder's balance change for funding at `rate` (16 decimals): -(size x mark x rate),
/// rounded down (against the holder).
pub fn funding_change(size: Size, mark: Price, rate: i128) -> Result<Quote, Overflow> {
    let notional = size.mul_price(mark).raw();
    Ok(Quote::from_raw(mul_div(notional, rate.checked_neg().ok_or(Overflow)?, RATE16_ONE, Round::Down)?))
}

/// Pure: the exact skew cost of a fill of signed `size` against traders' skew `skew`:
/// size x index x (skew + size/2) / skew_scale, rounded as asked (Synthetix perps v2: the fill
/// price is index x (1 + (skew + size/2) / skew_scale)).
pub fn skew_cost(size: Size, skew: Size, index: Price, scale: Size, round: Round) -> Result<Quote, Overflow> {
    let notional = size.mul_price(index).raw();
    let midpoint = 2 * i128::from(skew.raw()) + i128::from(size.raw());
    Ok(Quote::from_raw(mul_div(notional, midpoint, 2 * i128::from(scale.raw()), round)?))
}

/// Traders' skew of a market: long minus short open interest of the accounts, which is minus the
/// protocol's inventory (positions sum to zero).
pub fn traders_skew(market: &Market) -> Size {
    Size::from_raw(market.inventory.size.raw().saturating_neg())
}

/// Traders' long and short open interest (the protocol's inventory excluded).
pub fn traders_open_interest(market: &Market) -> (Size, Size) {
    let inventory = market.inventory.size.raw();
    let long = market.open_interest.raw() - inventory.max(0);
    (Size::from_raw(long), Size::from_raw(long.saturating_add(inventory)))
}

/// The two sides' skew fees of a trade (positive: paid; negative: a rebate) and the pool after.
pub(crate) fn trade_skew_fees(market: &Market, size: Size) -> Result<(Quote, Quote, Quote), Overflow> {
    let (Some(scale), Some(state)) = (market.params.perp.skew_scale, market.perp.as_deref()) else {
        return Ok((Quote::ZERO, Quote::ZERO, market.perp.as_ref().map_or(Quote::ZERO, |s| s.skew_pool)));
    };
    let Some(index) = market.index_price.or(market.mark_price) else {
        return Ok((Quote::ZERO, Quote::ZERO, state.skew_pool));
    };
    let skew = traders_skew(market);
    let sides = [size, size.checked_neg()?];
    let mut costs = [Quote::ZERO; 2];
    let mut pool = state.skew_pool;
    for (cost, side) in costs.iter_mut().zip(sides) {
        let fee = skew_cost(side, skew, index, scale, Round::Up)?;
        if fee.is_positive() {
            *cost = fee;
            pool = pool.checked_add(fee)?;
        }
    }
    for (cost, side) in costs.iter_mut().zip(sides) {
        let exact = skew_cost(side, skew, index, scale, Round::Up)?;
        if !exact.is_positive() {
            // |x| rounded down is -(x rounded up) for x <= 0.
            let rebate = exact.checked_neg()?.min(pool);
            pool = pool.checked_sub(rebate)?;
            *cost = rebate.checked_neg()?;
        }
    }
    assert!(!pool.is_negative(), "the skew pool never pays more than it holds");
    Ok((costs[0], costs[1], pool))
}

/// One holder's funding: who, its size and its balance change.
struct Payment {
    account: Option<AccountId>,
    size: Size,
    change: Quote,
}

impl Engine {
    /// A `clock` event's funding work: sample every market with funding on, settle those whose
    /// boundary the clock reached. Skipped entirely when no market uses funding or skew state.
    pub(crate) fn funding_on_clock(&mut self, seq: u64, ts: u64, out: &mut Vec<crate::effect::Effect>) {
        if self.perp_markets == 0 {
            return;
        }
        for i in 0..self.markets.len() {
            let market = &self.markets[i];
            if market.perp.is_none() || !market.params.perp.funding_enabled {
                continue;
            }
            self.sample_premium(MarketId(i as u16));
            let state = self.markets[i].perp.as_deref().expect("checked above");
            let interval_ms = self.markets[i].params.perp.funding_interval_ms;
            if state.next_funding_ts == 0 {
                let next = (ts / interval_ms + 1) * interval_ms;
                let state = self.markets[i].perp.as_deref_mut().expect("checked above");
                state.next_funding_ts = next;
                state.premium_sum = 0;
                state.premium_samples = 0;
            } else if ts >= state.next_funding_ts {
                let intervals = (ts - state.next_funding_ts) / interval_ms + 1;
                if let Err(Overflow) = self.settle_funding(MarketId(i as u16), intervals, seq, ts, out) {
                    let market = self.markets[i].name.to_string();
                    let message = format!("funding of {market} overflowed and was not settled");
                    out.emit(seq, ts, EffectKind::Alert { alert: "funding_overflow".into(), market, message });
                }
                let state = self.markets[i].perp.as_deref_mut().expect("checked above");
                state.next_funding_ts = state.next_funding_ts.saturating_add(intervals * interval_ms);
                state.premium_sum = 0;
                state.premium_samples = 0;
            }
        }
    }

    /// Add this clock event's premium sample (a frozen or unpriced market gives none).
    fn sample_premium(&mut self, id: MarketId) {
        let market = &mut self.markets[id.0 as usize];
        let (Some(mark), Some(index), false) = (market.mark_price, market.index_price, market.frozen) else { return };
        let Ok(sample) = premium_sample(mark, index) else { return };
        let state = market.perp.as_deref_mut().expect("a funding market has state");
        // Bounded: at most one sample per clock event, each below 2^63 in magnitude.
        state.premium_sum = state.premium_sum.saturating_add(i128::from(sample.raw()));
        state.premium_samples = state.premium_samples.saturating_add(1);
    }

    /// Settle `intervals` intervals of funding in one market: every change is computed before
    /// anything is written, so an overflow leaves the state untouched.
    fn settle_funding(
        &mut self,
        id: MarketId,
        intervals: u64,
        seq: u64,
        ts: u64,
        out: &mut Vec<crate::effect::Effect>,
    ) -> Result<(), Overflow> {
        let market = &self.markets[id.0 as usize];
        let Some(mark) = market.mark_price else { return Ok(()) };
        let state = market.perp.as_deref().expect("a funding market has state");
        let (rate, velocity_rate) = settlement_rate(state, &market.params.perp, traders_skew(market), intervals)?;
        let mut payments = Vec::new();
        let mut accounts_net = Quote::ZERO;
        for (i, account) in self.accounts.iter().enumerate() {
            let Some(position) = account.position(id) else { continue };
            let change = funding_change(position.size, mark, rate)?;
            account.settlement.checked_add(change)?;
            accounts_net = accounts_net.checked_add(change)?;
            payments.push(Payment { account: Some(AccountId(i as u32)), size: position.size, change });
        }
        let inventory = market.inventory.size;
        if !inventory.is_zero() {
            let change = funding_change(inventory, mark, rate)?;
            payments.push(Payment { account: None, size: inventory, change });
        }
        // The fund receives what the accounts paid net: the inventory's share and the rounding.
        let fund_delta = accounts_net.checked_neg()?;
        let (fund, bad_debt) =
            crate::liquidation::bankruptcy::fund_after(self.insurance_fund, self.bad_debt, fund_delta)?;
        self.write_funding(id, &payments, rate, velocity_rate, mark, seq, ts, out);
        if !fund_delta.is_zero() {
            self.write_fund(fund, bad_debt);
            let kind =
                EffectKind::Insurance { reason: "funding".into(), amount: fund_delta, balance: fund, account: None };
            out.emit(seq, ts, kind);
        }
        Ok(())
    }

    /// Write the computed payments (each account through `account_mut`, so the risk index
    /// rechecks it: a payment moves equity like a price move) and emit one `funding` effect each.
    #[allow(clippy::too_many_arguments)]
    fn write_funding(
        &mut self,
        id: MarketId,
        payments: &[Payment],
        rate: i128,
        velocity_rate: i128,
        mark: Price,
        seq: u64,
        ts: u64,
        out: &mut Vec<crate::effect::Effect>,
    ) {
        let market_name = self.markets[id.0 as usize].name.to_string();
        for payment in payments {
            let account = match payment.account {
                Some(account_id) => {
                    let account = self.account_mut(account_id);
                    account.settlement = account.settlement.checked_add(payment.change).expect("checked before");
                    Some(account.name.to_string())
                }
                None => None,
            };
            let kind = EffectKind::Funding {
                account,
                market: market_name.clone(),
                size: payment.size,
                price: mark,
                rate: Quote::from_raw(rate),
                amount: payment.change,
            };
            out.emit(seq, ts, kind);
        }
        let state = self.markets[id.0 as usize].perp.as_deref_mut().expect("a funding market has state");
        state.velocity_rate = velocity_rate;
        state.last_rate = rate;
    }

    /// After every accepted event: an `alert` when a market's |skew| or protocol delta crosses
    /// its threshold (once per crossing, either way). Nothing runs when no market has perp state.
    pub(crate) fn exposure_alerts(&mut self, seq: u64, ts: u64, out: &mut Vec<crate::effect::Effect>) {
        if self.perp_markets == 0 {
            return;
        }
        for market in &mut self.markets {
            let Some(state) = market.perp.as_deref() else { continue };
            let skew = i128::from(market.inventory.size.raw()).abs();
            let skew_above = market.params.perp.skew_alert.map(|limit| skew > i128::from(limit.raw()));
            let delta = market.mark_price.map(|mark| market.inventory.size.mul_price(mark).raw().abs());
            let delta_above = match (market.params.perp.protocol_delta_alert, delta) {
                (Some(limit), Some(delta)) => Some(delta > limit.raw()),
                _ => None,
            };
            let (was_skew, was_delta) = (state.skew_alerted, state.delta_alerted);
            let skew_now = skew_above.unwrap_or(false);
            let delta_now = delta_above.unwrap_or(false);
            if skew_now != was_skew {
                let (alert, message) = crossing("skew", skew_now, &market.name, traders_skew(market).to_string());
                out.emit(seq, ts, EffectKind::Alert { alert, market: market.name.to_string(), message });
            }
            if delta_now != was_delta {
                let notional = Quote::from_raw(delta.unwrap_or(0)).to_string();
                let (alert, message) = crossing("protocol_delta", delta_now, &market.name, notional);
                out.emit(seq, ts, EffectKind::Alert { alert, market: market.name.to_string(), message });
            }
            let state = market.perp.as_deref_mut().expect("checked above");
            state.skew_alerted = skew_now;
            state.delta_alerted = delta_now;
        }
    }

    /// Create, keep or drop a market's perp state after its parameters changed from `before` by an
    /// event at `ts`; a change of interval or of `funding_enabled` restarts the interval there
    /// (samples dropped). Markets with funding in the config start at their first `clock` event.
    pub(crate) fn sync_perp_state(&mut self, id: MarketId, before: &PerpParams, ts: u64) {
        let market = &mut self.markets[id.0 as usize];
        let now = &market.params.perp;
        let had = market.perp.is_some();
        let keep_pool = market.perp.as_ref().is_some_and(|s| !s.skew_pool.is_zero());
        if !had && now.used() {
            let next_funding_ts = (ts / now.funding_interval_ms + 1) * now.funding_interval_ms;
            market.perp = Some(Box::new(PerpState { next_funding_ts, ..PerpState::default() }));
        } else if had && !now.used() && !keep_pool {
            market.perp = None;
        } else if let Some(state) = market.perp.as_deref_mut() {
            if now.funding_enabled != before.funding_enabled || now.funding_interval_ms != before.funding_interval_ms {
                // The interval restarts at the event's time: the next boundary after it.
                state.next_funding_ts = (ts / now.funding_interval_ms + 1) * now.funding_interval_ms;
                state.premium_sum = 0;
                state.premium_samples = 0;
            }
        }
        match (had, market.perp.is_some()) {
            (false, true) => self.perp_markets += 1,
            (true, false) => self.perp_markets -= 1,
            _ => {}
        }
    }
}

#[cold]
fn crossing(what: &str, above: bool, market: &str, value: String) -> (String, String) {
    let direction = if above { "above" } else { "back_below" };
    let alert = format!("{what}_{direction}_threshold");
    let message =
        format!("{what} of {market} is {value}, {} its alert threshold", if above { "above" } else { "back below" });
    (alert, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        Rate::parse(text).unwrap()
    }

    /// Hyperliquid's published figures: hourly, interest 0.00125% per hour, clamp 0.05%, cap 4%
    /// per hour; a 1% premium gives a funding rate of 0.95%.
    #[test]
    fn hyperliquid_one_percent_premium_gives_ninety_five_basis_points() {
        let params = PerpParams { funding_enabled: true, ..PerpParams::default() };
        assert_eq!(params.funding_interval_ms, 3_600_000);
        assert_eq!(params.funding_interest_rate, rate("0.0000125"));
        assert_eq!(premium_rate(rate("0.01"), &params), rate("0.0095"));
        // A premium within the clamp of the interest rate pays the interest rate.
        assert_eq!(premium_rate(rate("0.0001"), &params), rate("0.0000125"));
        assert_eq!(premium_rate(Rate::ZERO, &params), rate("0.0000125"));
        // The cap: 10% premium pays 4%.
        assert_eq!(premium_rate(rate("0.10"), &params), rate("0.04"));
        assert_eq!(premium_rate(rate("-0.10"), &params), rate("-0.04"));
    }

    /// Synthetix SIP-279: oracle 2,000, skew 100 ETH, skewScale 10^6 ETH, a 100 ETH long fills at
    /// 2,000 x (1 + (100 + 50) / 10^6) = 2,000.3: the fill costs 0.3 per ETH, 30 in all.
    #[test]
    fn synthetix_premium_vector_fills_at_2000_point_3() {
        let s = |v: &str| Size::parse(v).unwrap();
        let cost = skew_cost(s("100"), s("100"), Price::parse("2000").unwrap(), s("1000000"), Round::Up).unwrap();
        assert_eq!(cost, Quote::parse("30").unwrap());
        let per_unit = cost.div_size(s("100"), Round::Up).unwrap();
        assert_eq!(Price::parse("2000").unwrap().raw() + per_unit.raw(), Price::parse("2000.3").unwrap().raw());
        // A 100 ETH short against the same skew is paid: (100 - 50) / 10^6 of 200,000 = 10.
        let short = skew_cost(s("-100"), s("100"), Price::parse("2000").unwrap(), s("1000000"), Round::Up).unwrap();
        assert_eq!(short, Quote::parse("-10").unwrap());
    }

    /// Synthetix SIP-279 funding velocity: skew 100 ETH, skewScale 10^6, maxFundingVelocity 300%
    /// per day per day: the rate drifts 0.03% per day; after one day 0.03%, and the average over
    /// the day, 0.015%, on 200,000 of notional is 30.
    #[test]
    fn synthetix_velocity_reaches_three_basis_points_after_a_day() {
        let s = |v: &str| Size::parse(v).unwrap();
        let params =
            PerpParams { skew_scale: Some(s("1000000")), max_funding_velocity: rate("3"), ..PerpParams::default() };
        let velocity = funding_velocity(s("100"), &params).unwrap();
        assert_eq!(velocity, 3 * RATE16_ONE / 10_000); // 0.0003 per day per day
        let (term, end) = velocity_term(0, velocity, DAY_MS).unwrap();
        assert_eq!(end, 3 * RATE16_ONE / 10_000);
        assert_eq!(term, 15 * RATE16_ONE / 100_000);
        let change = funding_change(s("100"), Price::parse("2000").unwrap(), term).unwrap();
        assert_eq!(change, Quote::parse("-30").unwrap());
    }

    /// An engine with one market at index 2,000 whose protocol inventory is `inventory` (the
    /// traders' skew is minus it), alice and bob funded, and `perp` switched on.
    fn engine_with_skew(inventory: &str, perp: PerpParams) -> Engine {
        let mut config = crate::Config::embedded_default();
        config.markets.truncate(1);
        config.assets.clear();
        config.markets[0].params.perp = perp;
        config.markets[0].params.max_age_ms = 604_800_000;
        let mut engine = Engine::new(&config);
        let mut out = Vec::new();
        for (seq, line) in [
            r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s1","price":"2000"}"#,
            r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s2","price":"2000"}"#,
            r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s3","price":"2000"}"#,
            r#"{"type":"deposit","ts":1000,"account":"alice","asset":"USDC","amount":"10000000"}"#,
            r#"{"type":"deposit","ts":1000,"account":"bob","asset":"USDC","amount":"10000000"}"#,
        ]
        .iter()
        .enumerate()
        {
            engine.apply_line(seq as u64 + 1, line.as_bytes(), &mut out);
        }
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{out:?}");
        let size = Size::parse(inventory).unwrap();
        engine.markets[0].inventory.size = size;
        engine.markets[0].inventory.cost = size.mul_price(Price::parse("2000").unwrap());
        engine
    }

    fn trade(engine: &mut Engine, seq: u64, size: &str) -> (Quote, Quote) {
        let (alice, bob) = (engine.account("alice").unwrap().settlement, engine.account("bob").unwrap().settlement);
        let line = format!(
            r#"{{"type":"trade","ts":{},"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"{size}","price":"2000"}}"#,
            1000 + seq
        );
        let mut out = Vec::new();
        engine.apply_line(seq, line.as_bytes(), &mut out);
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{out:?}");
        let paid = |name: &str, before: Quote| before.checked_sub(engine.account(name).unwrap().settlement).unwrap();
        (paid("alice", alice), paid("bob", bob))
    }

    /// The skew fee on the engine's trade path. Traders net long 100 (the protocol short 100):
    /// the buyer of 100 adds to the heavy side and pays 100 x 2,000 x (100 + 50) / 10^6 = 30; the
    /// seller balances (cost 100 x 2,000 x (50 - 100) / 10^6 = -10) and pays nothing but is paid
    /// 10 from what the buyer put in the pool. A heavier skew (300: a one-sided flow into the
    /// protocol's inventory) raises the same buyer's fee to 70; fees never exceed what is in the
    /// pool plus what the trade pays, and `fees_collected` holds the pool.
    #[test]
    fn a_one_sided_skew_raises_the_fee_and_the_balancing_side_pays_none() {
        let perp = PerpParams { skew_scale: Some(Size::parse("1000000").unwrap()), ..PerpParams::default() };
        let mut engine = engine_with_skew("-100", perp.clone());
        let (buyer, seller) = trade(&mut engine, 10, "100");
        assert_eq!(buyer, Quote::parse("30").unwrap());
        assert_eq!(seller, Quote::parse("-10").unwrap(), "the balancing side is paid a rebate");
        assert_eq!(engine.markets[0].perp.as_ref().unwrap().skew_pool, Quote::parse("20").unwrap());
        assert_eq!(engine.fees_collected(), Quote::parse("20").unwrap());
        let mut heavier = engine_with_skew("-300", perp.clone());
        let (buyer, seller) = trade(&mut heavier, 10, "100");
        assert_eq!(buyer, Quote::parse("70").unwrap(), "100 x 2,000 x (300 + 50) / 10^6");
        assert_eq!(seller, Quote::parse("-50").unwrap());
        // No skew: both sides pay the half-size premium 100 x 2,000 x 50 / 10^6 = 10.
        let mut flat = engine_with_skew("0", perp);
        assert_eq!(trade(&mut flat, 10, "100"), (Quote::parse("10").unwrap(), Quote::parse("10").unwrap()));
    }

    /// SIP-279's funding velocity on the engine's clock path: traders net long 100 (alice long 100
    /// at 2,000, the protocol short 100), skew_scale 10^6, max_funding_velocity 3 per day per day,
    /// no premium and no interest, one daily interval: after the day alice has paid exactly 30 and
    /// the protocol's inventory received it (into the insurance fund). Twice the skew (alice long
    /// 200): twice the velocity on twice the notional, 120.
    #[test]
    fn synthetix_funding_velocity_pays_thirty_after_a_day() {
        for (skew, want) in [("100", "30"), ("200", "120")] {
            let perp = PerpParams {
                funding_enabled: true,
                funding_interval_ms: DAY_MS,
                funding_interest_rate: Rate::ZERO,
                funding_clamp: Rate::ZERO,
                skew_scale: Some(Size::parse("1000000").unwrap()),
                max_funding_velocity: rate("3"),
                ..PerpParams::default()
            };
            let mut engine = engine_with_skew(&format!("-{skew}"), perp);
            let size = Size::parse(skew).unwrap();
            let alice = engine.account_id("alice").unwrap();
            let cost = size.mul_price(Price::parse("2000").unwrap());
            engine.account_mut(alice).set_position(crate::state::Position { market: MarketId(0), size, cost });
            let mut out = Vec::new();
            let settled_before = engine.account("alice").unwrap().settlement;
            // Hourly clock events (the default max_clock_jump_ms is an hour) over one day.
            for hour in 0..=24u64 {
                engine.apply_line(
                    100 + hour,
                    format!(r#"{{"type":"clock","ts":{}}}"#, hour * 3_600_000 + 1).as_bytes(),
                    &mut out,
                );
            }
            let paid = settled_before.checked_sub(engine.account("alice").unwrap().settlement).unwrap();
            assert_eq!(paid, Quote::parse(want).unwrap(), "skew {skew}");
            assert_eq!(engine.insurance_fund(), Quote::parse(want).unwrap());
        }
    }

    #[test]
    fn premium_samples_and_average_round_down() {
        let p = |v: &str| Price::parse(v).unwrap();
        assert_eq!(premium_sample(p("101"), p("100")).unwrap(), rate("0.01"));
        assert_eq!(premium_sample(p("100"), p("300")).unwrap(), Rate::from_raw(-66_666_667));
        assert_eq!(average_premium(5, 2), Rate::from_raw(2));
        assert_eq!(average_premium(-5, 2), Rate::from_raw(-3));
        assert_eq!(average_premium(7, 0), Rate::ZERO);
    }
}
