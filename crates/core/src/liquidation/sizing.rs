//! Pure leaves of partial liquidation: the penalty for a closed slice and the smallest slice
//! that restores equity >= MM x (1 + buffer).
//!
//! Closing happens off the **top** of a position (highest bracket first): closing q of a position
//! of size x releases the MM of the exposure range [x - q, x] and costs the penalty rates of the
//! same range. Closing at mark leaves equity unchanged (realized = unrealized), so only the
//! penalty moves it.

use crate::config::{MarketParams, TierBasis, TierMode};
use crate::margin;
use crate::num::{Overflow, Price, Quote, Rate, Round, Size};
use ethnum::I256;

/// Units of 10^-32 settlement: exposure raw x rate raw x rate raw (x mark raw in size basis).
type Ultra = I256;

/// Sum over brackets of (overlap of [lo, hi] with the bracket) x rate(bracket), in exposure raw x
/// rate raw. `lo`/`hi` are exposure raw (Size raw or notional Quote raw, per the basis).
fn bracket_integral(params: &MarketParams, lo: i128, hi: i128, rate: impl Fn(usize) -> i64) -> I256 {
    let mut total = I256::ZERO;
    for (i, tier) in params.tiers.iter().enumerate() {
        let upper = params.tiers.get(i + 1).map_or(i128::MAX, |t| t.from_raw);
        let overlap = hi.min(upper) - lo.max(tier.from_raw);
        if overlap > 0 {
            total += I256::from(overlap) * I256::from(rate(i));
        }
    }
    total
}

/// [`penalty`] in i128 arithmetic (the same exact value), `None` where a product might not fit.
fn penalty_narrow(params: &MarketParams, lo: i128, hi: i128, mark: Price) -> Option<Quote> {
    let in_first = hi <= params.tiers.get(1).map_or(i128::MAX, |t| t.from_raw) && lo >= params.tiers[0].from_raw;
    let weighted = if in_first {
        // All of [lo, hi] lies in the first bracket (most closes): one product, the same sum.
        margin::mul_i128((hi - lo).max(0), i128::from(params.tiers[0].penalty_rate.raw()))?
    } else {
        let mut weighted = 0i128;
        for (i, tier) in params.tiers.iter().enumerate() {
            let upper = params.tiers.get(i + 1).map_or(i128::MAX, |t| t.from_raw);
            let overlap = hi.min(upper) - lo.max(tier.from_raw);
            if overlap > 0 {
                weighted = weighted.checked_add(margin::mul_i128(overlap, i128::from(tier.penalty_rate.raw()))?)?;
            }
        }
        weighted
    };
    let fine = match params.tier_basis {
        TierBasis::Size => margin::mul_i128(weighted, i128::from(mark.raw()))?,
        TierBasis::Notional => weighted,
    };
    Some(Quote::from_raw(crate::num::div_1e8(fine, Round::Up)))
}

fn exposure(params: &MarketParams, size_abs: Size, mark: Price) -> i128 {
    let s = i128::from(size_abs.raw());
    match params.tier_basis {
        TierBasis::Size => s,
        TierBasis::Notional => s * i128::from(mark.raw()),
    }
}

/// Penalty for closing `closed` off the top of a position of `size_abs` at `mark`: the marginal
/// bracket penalty rates over the closed range x mark, rounded up (against the account).
pub fn penalty(params: &MarketParams, size_abs: Size, closed: Size, mark: Price) -> Result<Quote, Overflow> {
    let hi = exposure(params, size_abs, mark);
    let lo = exposure(params, size_abs.checked_sub(closed)?, mark);
    if let Some(quote) = penalty_narrow(params, lo, hi, mark) {
        return Ok(quote);
    }
    let weighted = bracket_integral(params, lo, hi, |i| params.tiers[i].penalty_rate.raw());
    let fine = match params.tier_basis {
        TierBasis::Size => weighted * I256::from(mark.raw()),
        TierBasis::Notional => weighted,
    };
    let divisor = I256::from(Rate::ONE_RAW as i128);
    let mut q = fine / divisor;
    if fine % divisor > I256::ZERO {
        q += I256::ONE;
    }
    i128::try_from(q).map(Quote::from_raw).map_err(|_| Overflow)
}

/// Whether closing `closed` restores the account: equity - penalty >= ceil(MM after x (1 + buffer)).
/// `other_mm` is the MM of the account's other positions.
pub fn restores(
    params: &MarketParams,
    size_abs: Size,
    closed: Size,
    mark: Price,
    equity: Quote,
    other_mm: Quote,
) -> Result<bool, Overflow> {
    Ok(restoring_close(params, size_abs, closed, mark, equity, other_mm)?.is_some())
}

/// A partial close that restores the account, with the numbers its check computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    /// Size closed off the top (positive).
    pub size: Size,
    /// [`penalty`] for it (before any cap at the account's equity).
    pub penalty: Quote,
    /// `margin::position_mm` of what is left of the position.
    pub remaining_mm: Quote,
}

/// [`restores`], returning what it computed when the close restores the account.
fn restoring_close(
    params: &MarketParams,
    size_abs: Size,
    closed: Size,
    mark: Price,
    equity: Quote,
    other_mm: Quote,
) -> Result<Option<Close>, Overflow> {
    let remaining = size_abs.checked_sub(closed)?;
    let remaining_mm = margin::position_mm(params, remaining, mark)?;
    let mm_after = other_mm.checked_add(remaining_mm)?;
    let factor = Rate::ONE.checked_add(params.liquidation_buffer)?;
    let target = mm_after.mul_rate(factor, Round::Up)?;
    let penalty = penalty(params, size_abs, closed, mark)?;
    let left = equity.checked_sub(penalty)?;
    Ok((left >= target).then_some(Close { size: closed, penalty, remaining_mm }))
}

/// Smallest size to close off the top of the position so that the account is restored, or
/// `None` when closing all of it is needed (or is not enough).
pub fn partial_close_size(
    params: &MarketParams,
    size_abs: Size,
    mark: Price,
    equity: Quote,
    other_mm: Quote,
) -> Result<Option<Size>, Overflow> {
    // Only the marginal estimate reads the position's own MM.
    let own_mm = match params.tier_mode {
        TierMode::Marginal => margin::position_mm(params, size_abs, mark)?,
        TierMode::Whole => Quote::ZERO,
    };
    Ok(partial_close_given(params, size_abs, mark, equity, other_mm, own_mm)?.map(|close| close.size))
}

/// [`partial_close_size`] with the penalty and remaining MM the search computed for the size it
/// returns. `own_mm` is the position's own MM (`margin::position_mm(params, size_abs, mark)`,
/// which debug builds check), read for marginal brackets only.
pub fn partial_close_given(
    params: &MarketParams,
    size_abs: Size,
    mark: Price,
    equity: Quote,
    other_mm: Quote,
    own_mm: Quote,
) -> Result<Option<Close>, Overflow> {
    debug_assert!(
        params.tier_mode == TierMode::Whole || Ok(own_mm) == margin::position_mm(params, size_abs, mark),
        "the caller's MM is exact"
    );
    let check = |q: Size| restoring_close(params, size_abs, q, mark, equity, other_mm);
    let guess = match params.tier_mode {
        TierMode::Marginal => marginal_estimate(params, size_abs, mark, equity, other_mm.checked_add(own_mm)?)?,
        TierMode::Whole => None,
    };
    if let Some(q) = guess {
        // The estimate is exact up to rounding of per-position MM: a few raw units settle it.
        let mut candidate = q;
        for _ in 0..16 {
            if candidate >= size_abs {
                return Ok(None);
            }
            if let Some(close) = check(candidate)? {
                return Ok(Some(close));
            }
            candidate = candidate.checked_add(Size::from_raw(1))?;
        }
    }
    match smallest_by_bisection(size_abs, |q| Ok(check(q)?.is_some()))? {
        Some(q) => check(q),
        None => Ok(None),
    }
}

/// What the venue rules ([`crate::config::LiquidationRules`]) make of one position's step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Close this (a full close when `close.size` is the whole position).
    Close { close: Close, kind: PlanKind },
    /// Nothing now: the position is in its chunk cooldown and the account is above the backstop
    /// threshold.
    Hold,
}

/// Which rule sized a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanKind {
    /// The smallest restoring slice (raised to the minimum notional), or all of it.
    Restore,
    /// One chunk of a large position: a cooldown follows.
    Chunk,
    /// Equity under MM x `backstop_mm_fraction`: the whole position at once.
    Backstop,
}

/// The position and account a plan is made for.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub size_abs: Size,
    pub mark: Price,
    /// The account's equity and MM before the step; `own_mm` is this position's MM.
    pub equity: Quote,
    pub account_mm: Quote,
    pub own_mm: Quote,
    /// The position's chunk record, if it is in an episode.
    pub record: Option<crate::state::LiquidationRecord>,
    pub now_ms: u64,
}

/// Whether equity is under the backstop threshold: equity < ceil(MM x fraction) (rounded up:
/// the full close comes no later). Always false with the fraction at 0.
pub fn below_backstop(params: &MarketParams, equity: Quote, account_mm: Quote) -> Result<bool, Overflow> {
    let fraction = params.rules.backstop_mm_fraction;
    if !fraction.is_positive() {
        return Ok(false);
    }
    Ok(equity < account_mm.mul_rate(fraction, Round::Up)?)
}

/// Whether the position is liquidated in chunks: chunks are configured and it is in an episode
/// already, or it is worth more than `liquidation_chunk_notional` at mark.
pub fn chunked(params: &MarketParams, step: &Step) -> bool {
    match params.rules.liquidation_chunk_notional {
        None => false,
        Some(limit) => step.record.is_some() || step.size_abs.mul_price(step.mark) > limit,
    }
}

/// The venue rules applied to one position (docs/liquidation.md section 3.1), in this order:
/// under the backstop threshold, everything; a chunked position in its cooldown, nothing; a
/// chunked position, one chunk (`liquidation_chunk_rate` x the episode's peak size, rounded up);
/// else the smallest restoring slice. Then a partial close is raised to the minimum notional,
/// and becomes a full close when what it leaves is worth less than that minimum.
pub fn plan(params: &MarketParams, step: &Step, other_mm: Quote) -> Result<Plan, Overflow> {
    let restore = || partial_close_given(params, step.size_abs, step.mark, step.equity, other_mm, step.own_mm);
    plan_with(params, step, restore)
}

/// [`plan`] with the smallest restoring slice found by `restore` (the tier tables' search for
/// tiered accounts, the exact definition's for any other margin model).
pub fn plan_with(
    params: &MarketParams,
    step: &Step,
    restore: impl FnOnce() -> Result<Option<Close>, Overflow>,
) -> Result<Plan, Overflow> {
    let full = |kind| -> Result<Plan, Overflow> {
        let close = Close {
            size: step.size_abs,
            penalty: penalty(params, step.size_abs, step.size_abs, step.mark)?,
            remaining_mm: Quote::ZERO,
        };
        Ok(Plan::Close { close, kind })
    };
    if below_backstop(params, step.equity, step.account_mm)? {
        return full(PlanKind::Backstop);
    }
    let (wanted, kind) = if chunked(params, step) {
        if step.record.is_some_and(|r| step.now_ms < r.cooldown_until_ms) {
            return Ok(Plan::Hold);
        }
        let peak = step.record.map_or(step.size_abs, |r| r.peak.max(step.size_abs));
        (Some(peak.mul_rate(params.rules.liquidation_chunk_rate, Round::Up)?), PlanKind::Chunk)
    } else {
        (restore()?.map(|c| c.size), PlanKind::Restore)
    };
    let Some(mut size) = wanted.filter(|q| q.is_positive() && *q < step.size_abs) else { return full(kind) };
    let minimum = params.rules.min_liquidation_notional;
    if minimum.is_positive() {
        size = size.max(minimum.div_price(step.mark, Round::Up)?);
        if size >= step.size_abs || step.size_abs.checked_sub(size)?.mul_price(step.mark) < minimum {
            return full(kind);
        }
    }
    let remaining_mm = margin::position_mm(params, step.size_abs.checked_sub(size)?, step.mark)?;
    let close = Close { size, penalty: penalty(params, step.size_abs, size, step.mark)?, remaining_mm };
    Ok(Plan::Close { close, kind })
}

/// Whether the market caps what one event may liquidate (per account or in all).
pub fn capped(params: &MarketParams) -> bool {
    let r = &params.rules;
    r.max_account_liquidation_notional.is_some() || r.max_event_liquidation_notional.is_some()
}

/// The per-event caps (docs/liquidation.md section 3.1, rule 7) applied to a planned close of a
/// position of `size_abs` at `mark`, given the notional this event has already liquidated from
/// the account's position (`account_used`) and in the market (`market_used`). The room left is
/// the smaller of each cap less its use; a close is cut to the room (rounded down: the cap is
/// never exceeded) and `None` (hold, nothing now) when the room is under the minimum notional
/// (or one unit of size at mark): no sliver. A backstop close is never cut (the safety rule).
pub fn cap_close(
    params: &MarketParams,
    size_abs: Size,
    mark: Price,
    planned: Close,
    kind: PlanKind,
    (account_used, market_used): (Quote, Quote),
) -> Result<Option<Close>, Overflow> {
    let rules = &params.rules;
    if kind == PlanKind::Backstop {
        return Ok(Some(planned));
    }
    let room = |cap: Option<Quote>, used: Quote| cap.map(|c| c.checked_sub(used).map(|r| r.max(Quote::ZERO)));
    let left = match (
        room(rules.max_account_liquidation_notional, account_used),
        room(rules.max_event_liquidation_notional, market_used),
    ) {
        (None, None) => return Ok(Some(planned)),
        (Some(one), None) | (None, Some(one)) => one?,
        (Some(a), Some(b)) => a?.min(b?),
    };
    let one_unit = Size::from_raw(1).mul_price(mark);
    if left < rules.min_liquidation_notional.max(one_unit) {
        return Ok(None);
    }
    let most = left.div_price(mark, Round::Down)?;
    if planned.size <= most {
        return Ok(Some(planned));
    }
    debug_assert!(most.is_positive() && most < size_abs);
    let remaining_mm = margin::position_mm(params, size_abs.checked_sub(most)?, mark)?;
    Ok(Some(Close { size: most, penalty: penalty(params, size_abs, most, mark)?, remaining_mm }))
}

/// Bisection over raw sizes in [1, size_abs - 1] for the smallest restoring size; 64 steps bound it.
pub(crate) fn smallest_by_bisection(
    size_abs: Size,
    pred: impl Fn(Size) -> Result<bool, Overflow>,
) -> Result<Option<Size>, Overflow> {
    let max_partial = size_abs.raw() - 1;
    if max_partial < 1 || !pred(Size::from_raw(max_partial))? {
        return Ok(None);
    }
    let (mut lo, mut hi) = (1i64, max_partial); // pred(hi) holds
    for _ in 0..64 {
        if lo >= hi {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if pred(Size::from_raw(mid))? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(Size::from_raw(hi)))
}

/// Exact solve for marginal brackets, walking down from the top bracket: the exposure to close
/// so that released MM x (1 + b) - penalty covers the deficit MM x (1 + b) - equity.
/// `mm_total` is the account's MM (every position's, this one's included).
fn marginal_estimate(
    params: &MarketParams,
    size_abs: Size,
    mark: Price,
    equity: Quote,
    mm_total: Quote,
) -> Result<Option<Size>, Overflow> {
    match marginal_estimate_narrow(params, size_abs, mark, equity, mm_total) {
        Some(estimate) => estimate,
        None => marginal_estimate_wide(params, size_abs, mark, equity, mm_total),
    }
}

/// [`marginal_estimate`] in 256-bit arithmetic.
fn marginal_estimate_wide(
    params: &MarketParams,
    size_abs: Size,
    mark: Price,
    equity: Quote,
    mm_total: Quote,
) -> Result<Option<Size>, Overflow> {
    let one = I256::from(Rate::ONE_RAW as i128);
    let factor = one + I256::from(params.liquidation_buffer.raw());
    // Deficit in Ultra: (MM x (1 + b) - equity) x 10^16 (Quote raw x rate raw x rate raw).
    let mut need: Ultra = (I256::from(mm_total.raw()) * factor - I256::from(equity.raw()) * one) * one;
    if need <= I256::ZERO {
        return Ok(Some(Size::ZERO));
    }
    let mark_factor = match params.tier_basis {
        TierBasis::Size => I256::from(mark.raw()),
        TierBasis::Notional => I256::ONE,
    };
    let x = exposure(params, size_abs, mark);
    let mut top = x;
    for tier in params.tiers.iter().rev() {
        if top <= tier.from_raw {
            continue;
        }
        let portion = top - tier.from_raw;
        let slope = (I256::from(tier.mm_rate.raw()) * factor - I256::from(tier.penalty_rate.raw()) * one) * mark_factor;
        if slope > I256::ZERO {
            let capacity = I256::from(portion) * slope;
            if capacity >= need {
                let closed = x - top + ceil_div(need, slope);
                return Ok(Some(exposure_to_size(params, closed, mark)?));
            }
            need -= capacity;
        }
        top = tier.from_raw;
    }
    Ok(None)
}

/// [`marginal_estimate`] in checked i128 arithmetic: the same result, or `None` where a value
/// might not fit (then the 256-bit walk runs).
fn marginal_estimate_narrow(
    params: &MarketParams,
    size_abs: Size,
    mark: Price,
    equity: Quote,
    mm_total: Quote,
) -> Option<Result<Option<Size>, Overflow>> {
    let one = i128::from(Rate::ONE_RAW);
    let factor = one + i128::from(params.liquidation_buffer.raw());
    let deficit = margin::mul_i128(mm_total.raw(), factor)?.checked_sub(margin::mul_i128(equity.raw(), one)?)?;
    let mut need = margin::mul_i128(deficit, one)?;
    if need <= 0 {
        return Some(Ok(Some(Size::ZERO)));
    }
    let mark_factor = match params.tier_basis {
        TierBasis::Size => i128::from(mark.raw()),
        TierBasis::Notional => 1,
    };
    let x = exposure(params, size_abs, mark);
    let mut top = x;
    for tier in params.tiers.iter().rev() {
        if top <= tier.from_raw {
            continue;
        }
        let portion = top - tier.from_raw;
        let per_rate = i128::from(tier.mm_rate.raw()) * factor - i128::from(tier.penalty_rate.raw()) * one;
        let slope = margin::mul_i128(per_rate, mark_factor)?;
        if slope > 0 {
            let capacity = margin::mul_i128(portion, slope)?;
            if capacity >= need {
                let closed = x - top + (need / slope + i128::from(need % slope > 0));
                return Some(exposure_to_size(params, closed, mark).map(Some));
            }
            need -= capacity;
        }
        top = tier.from_raw;
    }
    Some(Ok(None))
}

fn ceil_div(n: I256, d: I256) -> i128 {
    let q = n / d;
    let q = if n % d > I256::ZERO { q + I256::ONE } else { q };
    i128::try_from(q).unwrap_or(i128::MAX)
}

fn exposure_to_size(params: &MarketParams, closed: i128, mark: Price) -> Result<Size, Overflow> {
    let raw = match params.tier_basis {
        TierBasis::Size => closed,
        TierBasis::Notional => crate::num::div_round(closed, i128::from(mark.raw()), Round::Up)?,
    };
    i64::try_from(raw).map(Size::from_raw).map_err(|_| Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Tier};
    use crate::num::Quote;

    fn one_tier(mm: &str, pen: &str) -> MarketParams {
        let mut params = Config::embedded_default().markets[0].params.clone();
        params.tiers =
            vec![Tier { from_raw: 0, mm_rate: Rate::parse(mm).unwrap(), penalty_rate: Rate::parse(pen).unwrap() }];
        // The worked examples are stated without the venue rules of the embedded default.
        params.liquidation_buffer = Rate::ZERO;
        params.rules = crate::config::LiquidationRules::default();
        params
    }

    /// A step for a 100-unit long at 100 (one tier at 10% MM: MM 1,000) with `equity`.
    fn step_at(equity: i64, record: Option<crate::state::LiquidationRecord>, now_ms: u64) -> Step {
        let mm = Quote::from_int(1_000).unwrap();
        Step {
            size_abs: Size::from_int(100).unwrap(),
            mark: Price::from_int(100).unwrap(),
            equity: Quote::from_int(equity).unwrap(),
            account_mm: mm,
            own_mm: mm,
            record,
            now_ms,
        }
    }

    fn planned(params: &MarketParams, step: &Step) -> (Size, PlanKind) {
        match plan(params, step, Quote::ZERO).unwrap() {
            Plan::Close { close, kind } => (close.size, kind),
            Plan::Hold => panic!("held"),
        }
    }

    #[test]
    fn minimum_notional_raises_a_sliver_and_closes_a_small_remainder() {
        let mut params = one_tier("0.10", "0.01");
        // Without the rule: 1.11111112 (worth 111.11).
        assert_eq!(planned(&params, &step_at(990, None, 0)), (Size::parse("1.11111112").unwrap(), PlanKind::Restore));
        // dYdX-style minimum of 1,000 at mark 100: at least 10 units.
        params.rules.min_liquidation_notional = Quote::from_int(1_000).unwrap();
        assert_eq!(planned(&params, &step_at(990, None, 0)), (Size::from_int(10).unwrap(), PlanKind::Restore));
        // 19 units (1,900): the minimum slice of 10 would leave 900 < 1,000, so all 19 close.
        let mut step = step_at(990, None, 0);
        step.size_abs = Size::from_int(19).unwrap();
        step.own_mm = margin::position_mm(&params, step.size_abs, step.mark).unwrap();
        step.account_mm = step.own_mm;
        step.equity = step.own_mm.checked_sub(Quote::from_int(1).unwrap()).unwrap();
        assert_eq!(planned(&params, &step), (Size::from_int(19).unwrap(), PlanKind::Restore));
        // 20 units: 10 close and 10 (1,000) stay.
        step.size_abs = Size::from_int(20).unwrap();
        step.own_mm = margin::position_mm(&params, step.size_abs, step.mark).unwrap();
        step.account_mm = step.own_mm;
        step.equity = step.own_mm.checked_sub(Quote::from_int(1).unwrap()).unwrap();
        assert_eq!(planned(&params, &step), (Size::from_int(10).unwrap(), PlanKind::Restore));
    }

    #[test]
    fn large_positions_close_in_chunks_of_the_peak_with_a_cooldown() {
        let mut params = one_tier("0.10", "0.01");
        params.rules.liquidation_chunk_notional = Some(Quote::from_int(5_000).unwrap());
        params.rules.liquidation_cooldown_ms = 30_000;
        // Worth 10,000 > 5,000: a 20% chunk, though 1.11 would restore.
        assert_eq!(planned(&params, &step_at(990, None, 0)), (Size::from_int(20).unwrap(), PlanKind::Chunk));
        // In an episode that peaked at 150: 30 per chunk, once the cooldown is over.
        let record = crate::state::LiquidationRecord {
            account: crate::state::AccountId(0),
            long: true,
            peak: Size::from_int(150).unwrap(),
            cooldown_until_ms: 30_000,
        };
        assert_eq!(plan(&params, &step_at(990, Some(record), 29_999), Quote::ZERO).unwrap(), Plan::Hold);
        assert_eq!(
            planned(&params, &step_at(990, Some(record), 30_000)),
            (Size::from_int(30).unwrap(), PlanKind::Chunk)
        );
    }

    /// The safety rule: under MM x backstop fraction neither the cooldown nor the chunk size
    /// protects the position; it closes in full at once.
    #[test]
    fn below_the_backstop_threshold_the_cooldown_does_not_hold() {
        let mut params = one_tier("0.10", "0.01");
        params.rules.liquidation_chunk_notional = Some(Quote::from_int(5_000).unwrap());
        params.rules.liquidation_cooldown_ms = 30_000;
        params.rules.backstop_mm_fraction = Rate::parse("0.66666667").unwrap();
        let record = crate::state::LiquidationRecord {
            account: crate::state::AccountId(0),
            long: true,
            peak: Size::from_int(100).unwrap(),
            cooldown_until_ms: 30_000,
        };
        // ceil(1,000 x 0.66666667) = 666.66667: 667 is above it (held), 666 below (all of it).
        assert_eq!(plan(&params, &step_at(667, Some(record), 0), Quote::ZERO).unwrap(), Plan::Hold);
        assert_eq!(
            planned(&params, &step_at(666, Some(record), 0)),
            (Size::from_int(100).unwrap(), PlanKind::Backstop)
        );
        assert_eq!(planned(&params, &step_at(666, None, 0)), (Size::from_int(100).unwrap(), PlanKind::Backstop));
    }

    #[test]
    fn worked_example_ten_short_at_100_closes_1_111() {
        // One tier at 10% MM, 1% penalty, buffer 0; a 100-unit long at 100: MM = 1,000.
        // Equity 990 is 10 short of MM: close 10 / (100 x (10% - 1%)) = 1.11111111.. (rounded up).
        let params = one_tier("0.10", "0.01");
        let size = Size::from_int(100).unwrap();
        let mark = Price::from_int(100).unwrap();
        let equity = Quote::from_int(990).unwrap();
        let q = partial_close_size(&params, size, mark, equity, Quote::ZERO).unwrap().unwrap();
        assert_eq!(q, Size::parse("1.11111112").unwrap());
        assert!(restores(&params, size, q, mark, equity, Quote::ZERO).unwrap());
        assert!(!restores(&params, size, Size::parse("1.11111111").unwrap(), mark, equity, Quote::ZERO).unwrap());
        assert_eq!(penalty(&params, size, q, mark).unwrap(), Quote::parse("1.111111120000").unwrap());
    }

    #[test]
    fn whole_mode_uses_bisection_and_agrees_with_the_predicate() {
        let mut params = Config::embedded_default().markets[0].params.clone();
        params.tier_mode = TierMode::Whole;
        let size = Size::from_int(300).unwrap();
        let mark = Price::from_int(9_000).unwrap();
        let equity = Quote::from_int(250_000).unwrap();
        let q = partial_close_size(&params, size, mark, equity, Quote::ZERO).unwrap().unwrap();
        assert!(restores(&params, size, q, mark, equity, Quote::ZERO).unwrap());
        assert!(!restores(&params, size, q.checked_sub(Size::from_raw(1)).unwrap(), mark, equity, Quote::ZERO).unwrap());
    }

    /// The i128 penalty equals the 256-bit one across bases, bracket edges and magnitudes.
    #[test]
    fn narrow_penalty_agrees_with_wide() {
        let size_basis = Config::embedded_default().markets[0].params.clone();
        let mut notional = size_basis.clone();
        notional.tier_basis = TierBasis::Notional;
        for (tier, from) in notional.tiers.iter_mut().zip([0i128, 5, 25, 100]) {
            tier.from_raw = from * 100_000 * Quote::ONE_RAW;
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..5_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bits = [20, 35, 45, 62][round as usize % 4];
            let size = Size::from_raw(((state >> (64 - bits)) as i64).max(2));
            let closed = Size::from_raw(((state >> 3) as i64 % size.raw()).max(1));
            let mark = Price::from_raw(((state >> (66 - bits)) as i64).max(1));
            for params in [&size_basis, &notional] {
                let (hi, lo) =
                    (exposure(params, size, mark), exposure(params, size.checked_sub(closed).unwrap(), mark));
                if let Some(narrow) = penalty_narrow(params, lo, hi, mark) {
                    let weighted = bracket_integral(params, lo, hi, |i| params.tiers[i].penalty_rate.raw());
                    let fine = match params.tier_basis {
                        TierBasis::Size => weighted * I256::from(mark.raw()),
                        TierBasis::Notional => weighted,
                    };
                    let divisor = I256::from(Rate::ONE_RAW as i128);
                    let wide = fine / divisor + if fine % divisor > I256::ZERO { I256::ONE } else { I256::ZERO };
                    assert_eq!(I256::from(narrow.raw()), wide, "{size:?} {closed:?} {mark:?}");
                }
            }
        }
    }

    /// The i128 estimate equals the 256-bit one wherever it answers.
    #[test]
    fn narrow_estimate_agrees_with_wide() {
        let mut params = Config::embedded_default().markets[0].params.clone();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut answered = 0;
        for round in 0..5_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            params.liquidation_buffer = Rate::from_raw([0, 10_000_000, 50_000_000][round as usize % 3]);
            let bits = [30, 40, 50, 60][round as usize % 4];
            let size = Size::from_raw(((state >> (64 - bits)) as i64).max(1));
            let mark = Price::from_raw(((state.rotate_left(21) >> (64 - bits)) as i64).max(1));
            let mm = margin::position_mm(&params, size, mark).unwrap();
            let equity = Quote::from_raw(mm.raw() - (state as i128 % (mm.raw().max(1) + 1)));
            if let Some(narrow) = marginal_estimate_narrow(&params, size, mark, equity, mm) {
                answered += 1;
                assert_eq!(
                    narrow,
                    marginal_estimate_wide(&params, size, mark, equity, mm),
                    "{size:?} {mark:?} {equity:?}"
                );
            }
        }
        assert!(answered > 1_000, "the narrow path answers ({answered})");
    }

    #[test]
    fn hopeless_accounts_need_a_full_close() {
        let params = one_tier("0.10", "0.01");
        let size = Size::from_int(100).unwrap();
        let mark = Price::from_int(100).unwrap();
        assert_eq!(partial_close_size(&params, size, mark, Quote::from_int(-5).unwrap(), Quote::ZERO).unwrap(), None);
    }
}
