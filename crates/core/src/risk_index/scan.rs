//! The full scan's fast path: an account's exact margin (equity − Σ MM at 10^-24, `Fine`) in a
//! few i128 operations per entry, with every per-market quantity computed once per scan.
//!
//! Per market and MM bracket the scan precomputes, at the current mark `m` and the bracket's rate
//! `r` (exposure `x` = |size| in size basis, |size| × m in notional basis; marginal MM of `x` in
//! the bracket = r·x − c, whole MM = r·x, c = 0):
//!
//! - `long` = m × (F − r) and `short` = −m × (F + r), with F = 10^8 (Fine per Quote raw), so that
//!   F × size × m − MM = |size| × (`long` or `short`, by the sign of size) + `constant`;
//! - `constant` = c × m (size basis) or c (notional basis);
//! - `end`: one past the largest |size| raw inside the bracket, found exactly by integer division
//!   in notional basis (|size| × m ≤ X ⟺ |size| ≤ ⌊X / m⌋ for m > 0), and capped so that
//!   |size| × max(|long|, |short|) < 2^118.
//!
//! An account's margin is then F × (settlement − Σ cost) + Σ (|size| × per unit + constant) +
//! Σ amount × (index × weight) over its other collateral: one multiply per entry and one per
//! account. Every term is bounded before it is formed (see [`ScanContext::margin_over_slack`]),
//! so nothing can overflow; where a bound is not met (huge magnitudes, a position beyond the
//! precomputed brackets, a market without a mark, [`ENTRIES_LIMIT`] entries or more) the answer
//! is `None` and the caller computes the exact health.

use crate::config::{MarketParams, TierBasis, TierMode};
use crate::margin::{mul_i128, FINE_PER_QUOTE};
use crate::num::Size;
use crate::state::{Account, Asset, AssetId, Market, Position};

/// Every product term (a position's, a bracket constant, a collateral entry's) is below
/// 2^TERM_BITS in magnitude.
const TERM_BITS: u32 = 118;
/// The largest term magnitude allowed: 2^TERM_BITS − 1.
const TERM_MAX: u128 = (1 << TERM_BITS) - 1;
/// Fewer than this many positions and collateral entries per account on the fast path (a power
/// of two).
const ENTRIES_LIMIT: usize = 32;

/// One MM bracket of one market at the scan's mark (see the module documentation). 64 bytes: a
/// market's first bracket is its whole entry in [`ScanContext::markets`].
#[derive(Clone, Copy, Debug)]
struct Bracket {
    /// One past the largest |size| raw in the bracket; 0 for an unusable market (nothing fits).
    end: u64,
    /// Fine per unit of |size|, for a long and for a short position.
    per_unit: [i128; 2],
    constant: i128,
}

const NO_BRACKET: Bracket = Bracket { end: 0, per_unit: [0; 2], constant: 0 };

/// A collateral asset at the scan's index: Fine per raw unit (index × weight; 0 while its index
/// market has no index, the asset then counts zero), and one past the largest amount raw whose
/// term stays below 2^118.
#[derive(Clone, Copy, Debug)]
struct AssetView {
    per_unit: i128,
    end: u64,
}

pub(crate) struct ScanContext {
    /// Per market, its first bracket (nearly every position lies in it).
    markets: Vec<Bracket>,
    /// Per market, the range of its further brackets in `beyond`.
    beyond_ranges: Vec<(u32, u32)>,
    beyond: Vec<Bracket>,
    assets: Vec<AssetView>,
    /// Per asset, its index market, and its value per raw unit at Quote raw (down, up).
    asset_markets: Vec<u16>,
    asset_values: Vec<(i128, i128)>,
    /// Per market, what portfolio margin's closed form reads (see [`PortfolioView`]).
    portfolio: Vec<PortfolioView>,
}

/// One market as portfolio margin's closed form reads it, in basis points (10^-4), each rounded
/// the way that makes the bound larger.
///
/// Every leg the engine holds is linear in its price, so when every leg's `pm_range` is at most
/// the smallest jump of the extended table, each scenario moves leg m by a fraction t of its
/// range with t in [-1, 1] common to all legs, and t = ±1 are scenarios. Then, with V_m the
/// leg's value: S = Σ |V_m| r_m and J = |Σ V_m r_m| exactly (the closed form of
/// `portfolio::Portfolio::of`). The scan bounds MM from these in
/// i128 with multiplications only (values at Quote raw, rates in basis points), and compares
/// with exact equity.
#[derive(Clone, Copy, Debug, Default)]
struct PortfolioView {
    /// Mark raw (0: no mark, no fast path).
    mark: i64,
    /// `pm_range` rounded down and up to basis points; `range_hi` = 0 when it exceeds
    /// [`crate::portfolio::SMALLEST_JUMP`] (no fast path).
    range_lo: i128,
    range_hi: i128,
    /// `pm_correlation` rounded down (a lower ρ never lowers the bound: S >= J).
    loading: i128,
    /// `pm_mm_factor` rounded down and up; `pm_floor` rounded up.
    mm_factor_lo: i128,
    mm_factor_hi: i128,
    floor_hi: i128,
}

/// What [`ScanContext::portfolio_parts`] bounds (10^-28, and the floor rate in basis points).
struct PortfolioParts {
    scenario_hi: i128,
    credit_lo: i128,
    floor_hi: i128,
}

/// Basis points in one (Rate raw per basis point: 10^4).
const BP: i64 = 10_000;

fn bp_down(rate: i64) -> i128 {
    i128::from(rate.div_euclid(BP))
}

fn bp_up(rate: i64) -> i128 {
    i128::from(rate.div_euclid(BP) + i64::from(rate.rem_euclid(BP) != 0))
}

/// Whether `x` lies in [−2^bits, 2^bits).
#[inline(always)]
fn fits(x: i128, bits: u32) -> bool {
    (x.wrapping_add(1 << bits) as u128) >> (bits + 1) == 0
}

/// One past the largest `n` raw with n × per_unit.abs() ≤ TERM_MAX, at most 2^64 − 1.
fn term_end(per_unit: u128) -> u64 {
    let largest = TERM_MAX.checked_div(per_unit).unwrap_or(u128::MAX);
    u64::try_from(largest).map_or(u64::MAX, |n| n.saturating_add(1))
}

/// The MM brackets of a market at `mark`, in increasing order of size; cut short where a bound
/// would not hold (the positions beyond the last one go to the exact path).
fn brackets(params: &MarketParams, mark: i64) -> Vec<Bracket> {
    let mut out = Vec::new();
    if mark <= 0 {
        return out;
    }
    let (mark, notional) = (i128::from(mark), params.tier_basis == TierBasis::Notional);
    // Marginal: Σ over the brackets below of rate × width (exposure raw × Rate raw).
    let mut below = 0i128;
    for (k, tier) in params.tiers.iter().enumerate() {
        let rate = i128::from(tier.mm_rate.raw());
        let c = match params.tier_mode {
            TierMode::Marginal => rate.checked_mul(tier.from_raw).and_then(|v| v.checked_sub(below)),
            TierMode::Whole => Some(0),
        };
        let constant = if notional { c } else { c.and_then(|c| c.checked_mul(mark)) };
        let long = mark.checked_mul(FINE_PER_QUOTE - rate);
        let short = mark.checked_mul(FINE_PER_QUOTE + rate).map(|v| -v);
        let (Some(constant), Some(long), Some(short)) = (constant, long, short) else { break };
        if constant.unsigned_abs() > TERM_MAX {
            break;
        }
        let next = params.tiers.get(k + 1).map(|t| t.from_raw);
        // The largest exposure in the bracket: marginal x ≤ next, whole x < next.
        let top = next.map(|n| if params.tier_mode == TierMode::Whole { n - 1 } else { n });
        let top_size = top.map_or(u64::MAX, |x| {
            let size = if notional { x / mark } else { x };
            u64::try_from(size.max(0)).unwrap_or(u64::MAX)
        });
        let cap = term_end(long.unsigned_abs().max(short.unsigned_abs()));
        let end = top_size.saturating_add(1).min(cap);
        out.push(Bracket { end, per_unit: [long, short], constant });
        match next.and_then(|n| rate.checked_mul(n - tier.from_raw)).and_then(|w| below.checked_add(w)) {
            Some(sum) if end > top_size => below = sum,
            _ => break, // the last bracket, or cut short by a bound
        }
    }
    out
}

/// Per asset, Fine per raw unit at the scan's index (index x weight; 0 while its index market
/// has no index: the asset then counts zero).
fn assets_view(assets: &[Asset], markets: &[Market]) -> Vec<AssetView> {
    assets
        .iter()
        .map(|a| {
            let index = markets[a.index_market.0 as usize].index_price;
            let per_unit = index.map_or(0, |i| i128::from(i.raw()) * i128::from(a.weight.raw()));
            AssetView { per_unit, end: term_end(per_unit.unsigned_abs()) }
        })
        .collect()
}

impl ScanContext {
    pub fn new(assets: &[Asset], markets: &[Market]) -> ScanContext {
        let asset_views = assets_view(assets, markets);
        let asset_markets = assets.iter().map(|a| a.index_market.0).collect();
        let (mut firsts, mut beyond_ranges, mut beyond) = (Vec::new(), Vec::new(), Vec::new());
        for m in markets {
            let all = m.mark_price.map_or_else(Vec::new, |mark| brackets(&m.params, mark.raw()));
            firsts.push(all.first().copied().unwrap_or(NO_BRACKET));
            let start = beyond.len() as u32;
            beyond.extend(all.iter().skip(1));
            beyond_ranges.push((start, beyond.len() as u32));
        }
        let portfolio = markets
            .iter()
            .map(|m| {
                let p = &m.params.portfolio;
                let eligible = p.pm_range.raw() <= crate::portfolio::SMALLEST_JUMP;
                PortfolioView {
                    mark: m.mark_price.map_or(0, |p| p.raw()),
                    range_lo: bp_down(p.pm_range.raw()),
                    range_hi: if eligible { bp_up(p.pm_range.raw()) } else { 0 },
                    loading: bp_down(p.pm_correlation.raw()),
                    mm_factor_lo: bp_down(p.pm_mm_factor.raw()),
                    mm_factor_hi: bp_up(p.pm_mm_factor.raw()),
                    floor_hi: bp_up(p.pm_floor.raw()),
                }
            })
            .collect();
        // Per asset, its value per raw unit at Quote raw (index x weight / 10^8), down and up.
        let asset_values = assets
            .iter()
            .map(|a| {
                let index = markets[a.index_market.0 as usize].index_price.map_or(0, |i| i128::from(i.raw()));
                let fine = index * i128::from(a.weight.raw());
                (fine / FINE_PER_QUOTE, (fine + FINE_PER_QUOTE - 1) / FINE_PER_QUOTE)
            })
            .collect();
        ScanContext {
            markets: firsts,
            beyond_ranges,
            beyond,
            assets: asset_views,
            asset_markets,
            asset_values,
            portfolio,
        }
    }

    /// Whether a portfolio-margined account is certainly not below maintenance, from the closed
    /// form of [`PortfolioView`]: exact equity minus an upper bound of MM is at least two Quote
    /// units (equity rounds down and MM up, once each). `None` where a bound of the i128
    /// arithmetic is not met or a leg's range is beyond the closed form. Units: values V at
    /// Quote raw, rates in basis points; S and J at 10^-20, the MM terms at 10^-28.
    fn portfolio_certainly_above(&self, account: &Account) -> Option<bool> {
        const LEGS: usize = 8;
        let (positions, collateral) = (account.positions.as_slice(), account.collateral.as_slice());
        if positions.len() > LEGS || collateral.len() > LEGS {
            return None;
        }
        if collateral.is_empty() {
            return self.portfolio_positions_only(account);
        }
        // Legs: (market, value down, value up): exact for positions, collateral in an interval.
        let mut legs = [(u16::MAX, 0i128, 0i128); 2 * LEGS];
        let mut count = 0;
        let mut equity = mul_i128(account.settlement.raw(), FINE_PER_QUOTE)?; // Fine, exact
        for p in positions {
            let view = self.portfolio.get(p.market.0 as usize)?;
            let value = i128::from(p.size.raw()) * i128::from(view.mark); // exact, < 2^126
            if view.mark == 0 || !fits(value, 100) || !fits(p.cost.raw(), 100) {
                return None;
            }
            equity = equity.checked_add(mul_i128(value - p.cost.raw(), FINE_PER_QUOTE)?)?;
            legs[count] = (p.market.0, value, value); // positions are sorted by market: distinct
            count += 1;
        }
        for (asset, amount) in collateral {
            let view = self.assets.get(asset.0 as usize)?;
            if view.per_unit == 0 || amount.raw().unsigned_abs() >= view.end {
                return None; // no index yet, or a zero weight: the exact path decides
            }
            equity = equity.checked_add(i128::from(amount.raw()) * view.per_unit)?;
            let (down, up) = *self.asset_values.get(asset.0 as usize)?;
            let (down, up) = (mul_i128(i128::from(amount.raw()), down)?, mul_i128(i128::from(amount.raw()), up)?);
            let market = *self.asset_markets.get(asset.0 as usize)?;
            match legs[..count].iter_mut().find(|l| l.0 == market) {
                Some(leg) => {
                    leg.1 = leg.1.checked_add(down)?;
                    leg.2 = leg.2.checked_add(up)?;
                }
                None => {
                    legs[count] = (market, down, up);
                    count += 1;
                }
            }
        }
        let parts = self.portfolio_parts(legs[..count].iter().copied())?;
        // T: exact tiered MM = equity − exact tiered margin (Fine).
        let tiered_margin = self.tiered_margin_over_slack(account)? + (positions.len() as i128 + 1) * FINE_PER_QUOTE;
        let tier = equity.checked_sub(tiered_margin)?;
        Self::portfolio_verdict(equity, tier, &parts)
    }

    /// [`ScanContext::portfolio_certainly_above`] of an account without collateral other than
    /// the settlement asset: its legs are its positions, one per market.
    #[inline(always)]
    fn portfolio_positions_only(&self, account: &Account) -> Option<bool> {
        let mut equity = mul_i128(account.settlement.raw(), FINE_PER_QUOTE)?; // Fine, exact
        let mut tier = 0i128; // Σ tier MM, Fine, exact
        let mut bad = false;
        let legs = account.positions.iter().map(|p| {
            let mark = self.portfolio.get(p.market.0 as usize).map_or(0, |v| v.mark);
            let value = i128::from(p.size.raw()) * i128::from(mark); // exact, < 2^126
            let term = self.position_term(p); // F x value − tier MM, below 2^119
            bad |= mark == 0 || !fits(value, 100) || !fits(p.cost.raw(), 100) || term.is_none();
            if !bad {
                // |value − cost| < 2^101 and F < 2^27: the products fit; at most 8 positions.
                let fine = value * FINE_PER_QUOTE;
                equity = equity.saturating_add(fine - p.cost.raw() * FINE_PER_QUOTE);
                tier = tier.saturating_add(fine - term.unwrap_or(0));
            }
            (p.market.0, value, value)
        });
        let parts = self.portfolio_parts(legs)?;
        if bad || !fits(equity, 125) || !fits(tier, 125) {
            return None;
        }
        Self::portfolio_verdict(equity, tier, &parts)
    }

    /// Exact equity (Fine) less the bound of MM from `parts` and the exact tier sum `tier`
    /// (Fine), against the slack of two Quote units.
    #[inline(always)]
    fn portfolio_verdict(equity: i128, tier: i128, parts: &PortfolioParts) -> Option<bool> {
        let tier28 = mul_i128(tier, i128::from(BP))?;
        let offset = tier28.checked_sub(parts.credit_lo)?;
        let floor_term = mul_i128(tier, parts.floor_hi)?;
        let mm = parts.scenario_hi.max(offset).max(floor_term);
        let slack = 2 * FINE_PER_QUOTE * i128::from(BP);
        Some(mul_i128(equity, i128::from(BP))?.checked_sub(mm)? >= slack)
    }

    /// The scenario term's upper bound, the offset credit's lower bound (10^-28) and the floor
    /// rate (basis points, up) of legs `(market, value down, value up)`.
    #[inline(always)]
    fn portfolio_parts(&self, legs: impl Iterator<Item = (u16, i128, i128)>) -> Option<PortfolioParts> {
        let one = i128::from(BP);
        let (mut s_hi, mut s_lo, mut sum, mut error) = (0i128, 0i128, 0i128, 0i128);
        let mut loadings = crate::portfolio::TwoLowest::default();
        let (mut mm_lo, mut mm_hi, mut floor_hi) = (0i128, 0i128, 0i128);
        for (market, down, up) in legs {
            let view = self.portfolio.get(usize::from(market))?;
            if view.range_hi == 0 {
                return None;
            }
            let biggest = down.checked_abs()?.max(up.checked_abs()?);
            let smallest = if down <= 0 && up >= 0 { 0 } else { down.abs().min(up.abs()) };
            s_hi = s_hi.checked_add(mul_i128(biggest, view.range_hi)?)?;
            s_lo = s_lo.checked_add(mul_i128(smallest, view.range_lo)?)?;
            sum = sum.checked_add(mul_i128(down, view.range_lo)?)?;
            // |Σ V r| moves by at most the value's width x r and |V| x the range's rounding to
            // basis points (the grid's inner points are exact fractions of the range).
            let width = mul_i128(up - down, view.range_hi)?;
            let rounding = mul_i128(biggest, view.range_hi - view.range_lo)?;
            error = error.checked_add(width)?.checked_add(rounding)?;
            loadings.push(view.loading);
            mm_lo = mm_lo.max(view.mm_factor_lo);
            mm_hi = mm_hi.max(view.mm_factor_hi);
            floor_hi = floor_hi.max(view.floor_hi);
        }
        let j_hi = sum.checked_abs()?.checked_add(error)?;
        // Loadings are at most 10^4 basis points: the product fits i64, whose division by a
        // constant is a multiplication (i128's is a library call).
        let rho = loadings.pair().map_or(0, |(a, b)| i128::from((a as i64 * b as i64) / BP)); // down
        let loss = mul_i128(rho, j_hi)?.checked_add(mul_i128(one - rho, s_hi)?)?;
        let scenario_hi = mul_i128(mm_hi, loss)?;
        let spread_lo = (s_lo - j_hi).max(0);
        let credit_lo = mul_i128(mul_i128(mm_lo, rho)?, spread_lo)?;
        Some(PortfolioParts { scenario_hi, credit_lo, floor_hi })
    }

    /// The Fine term of a position beyond its market's first bracket (|size| × per unit +
    /// constant, below 2^119), if its bracket was precomputed.
    #[inline(never)]
    fn term_beyond(&self, position: &Position) -> Option<i128> {
        let (start, end) = *self.beyond_ranges.get(position.market.0 as usize)?;
        let abs = position.size.raw().unsigned_abs();
        let bracket = self.beyond.get(start as usize..end as usize)?.iter().find(|b| abs < b.end)?;
        Some(i128::from(abs) * bracket.per_unit[usize::from(position.size.is_negative())] + bracket.constant)
    }

    /// The Fine term of a position (below 2^119), if its bracket was precomputed.
    #[inline(always)]
    fn position_term(&self, position: &Position) -> Option<i128> {
        let first = self.markets.get(position.market.0 as usize)?;
        let abs = position.size.raw().unsigned_abs();
        if abs < first.end {
            Some(i128::from(abs) * first.per_unit[usize::from(position.size.is_negative())])
        } else {
            self.term_beyond(position)
        }
    }

    /// The Fine term of a collateral entry (amount × index × weight, below 2^118), if the
    /// amount is within its bound.
    #[inline(always)]
    fn collateral_term(&self, asset: AssetId, amount: Size) -> Option<i128> {
        let view = self.assets.get(asset.0 as usize)?;
        (amount.raw().unsigned_abs() < view.end).then(|| i128::from(amount.raw()) * view.per_unit)
    }

    /// Exact margin (equity − Σ MM, Fine) of a tiered `account` minus the rounding slack,
    /// (positions + 1) Quote units, or `None` where a bound is not met or the account is under
    /// another margin model (then the exact definition decides).
    ///
    /// The commonest accounts, one position and at most one collateral entry, take straight-line
    /// code: position term below 2^119, collateral term below 2^118, settlement − cost checked and
    /// below 2^97 before it is scaled by F < 2^27 (< 2^124): the result is below 2^125.
    #[inline(always)]
    pub(crate) fn margin_over_slack(&self, account: &Account) -> Option<i128> {
        if !account.margin_model.is_tiered() {
            return None;
        }
        self.tiered_margin_over_slack(account)
    }

    /// [`ScanContext::margin_over_slack`] by the tier tables whatever the account's model.
    #[inline(always)]
    fn tiered_margin_over_slack(&self, account: &Account) -> Option<i128> {
        let [position] = account.positions.as_slice() else { return self.margin_over_slack_general(account) };
        let mut fine = self.position_term(position)?;
        match account.collateral.as_slice() {
            [] => {}
            [(asset, amount)] => fine += self.collateral_term(*asset, *amount)?,
            _ => return self.margin_over_slack_general(account),
        }
        let quote = account.settlement.raw().checked_sub(position.cost.raw())?;
        if !fits(quote, 97) {
            return None;
        }
        Some((quote - 2) * FINE_PER_QUOTE + fine)
    }

    /// [`ScanContext::margin_over_slack`] for any account.
    ///
    /// Bounds: fewer than 32 positions and 32 collateral entries; settlement − Σ cost is summed
    /// with checked arithmetic and must lie below 2^97 before the slack is taken and it is scaled
    /// by F < 2^27 (< 2^124). Each position term is below 2^119, each collateral term below
    /// 2^118, fewer than 32 of each: the Fine sum stays below 2^124 + 2^123, and the result below
    /// 2^126.
    #[inline(never)]
    fn margin_over_slack_general(&self, account: &Account) -> Option<i128> {
        let (positions, collateral) = (account.positions.as_slice(), account.collateral.as_slice());
        if positions.len() >= ENTRIES_LIMIT || collateral.len() >= ENTRIES_LIMIT {
            return None;
        }
        let mut quote = account.settlement.raw(); // settlement − Σ cost, Quote raw
        let mut fine = 0i128; // Σ |size| × per unit + constants + collateral, Fine
        for position in positions {
            fine += self.position_term(position)?;
            quote = quote.checked_sub(position.cost.raw())?;
        }
        for (asset, amount) in collateral {
            fine += self.collateral_term(*asset, *amount)?;
        }
        if !fits(quote, 97) {
            return None;
        }
        Some((quote - (positions.len() as i128 + 1)) * FINE_PER_QUOTE + fine)
    }

    /// Whether `account` is certainly not below maintenance: its exact margin is at least
    /// (positions + 1) Quote units, the most the engine's rounding can take (equity rounds down,
    /// each position's MM up, by less than one unit each). `false` means "not known".
    #[inline(always)]
    pub fn certainly_above(&self, account: &Account) -> bool {
        if !account.margin_model.is_tiered() {
            return self.portfolio_certainly_above(account) == Some(true);
        }
        self.tiered_margin_over_slack(account).is_some_and(|m| m >= 0)
    }

    /// Exact margin (equity − Σ MM, Fine) of `account`, or `None` where a bound is not met.
    #[cfg(test)]
    fn margin(&self, account: &Account) -> Option<i128> {
        let slack = (account.positions.len() as i128 + 1) * FINE_PER_QUOTE;
        self.margin_over_slack(account).map(|m| m + slack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Tier};
    use crate::margin::{collateral_fine, health, position_mm_fine};
    use crate::num::{Price, Quote, Rate, Size};
    use crate::state::{AssetId, MarketId, Position};
    use ethnum::I256;

    /// Equity − Σ MM at 10^-24, in 256-bit arithmetic from the margin module's exact parts.
    fn exact_margin(account: &Account, assets: &[Asset], markets: &[Market]) -> I256 {
        let mut total = collateral_fine(account, assets, markets);
        for p in &account.positions {
            let market = &markets[p.market.0 as usize];
            let mark = market.mark_price.expect("positions have a mark");
            let upnl = I256::from(p.size.raw()) * I256::from(mark.raw()) - I256::from(p.cost.raw());
            total += upnl * I256::from(FINE_PER_QUOTE) - position_mm_fine(&market.params, p.size, mark);
        }
        total
    }

    /// Tier tables with the default's rates, bounds in the basis's unit (BTC, or 10^5 USDC).
    fn set_tiers(market: &mut Market, basis: TierBasis, mode: TierMode) {
        market.params.tier_basis = basis;
        market.params.tier_mode = mode;
        let unit = match basis {
            TierBasis::Size => i128::from(Size::ONE_RAW),
            TierBasis::Notional => 100_000 * Quote::ONE_RAW,
        };
        let rates = ["0.025", "0.05", "0.1", "0.2"].map(|r| Rate::parse(r).expect("literal"));
        market.params.tiers = [0i128, 50, 250, 1_000]
            .iter()
            .zip(rates)
            .map(|(from, mm_rate)| Tier { from_raw: from * unit, mm_rate, penalty_rate: Rate::ZERO })
            .collect();
    }

    /// The portfolio-margin bound never clears an account the exact definition finds below
    /// maintenance, across parameters, tier bases and modes, collateral and leverage; and it
    /// clears most accounts that are far from their requirement.
    #[test]
    fn portfolio_bound_is_sound() {
        let engine = crate::Engine::new(&Config::embedded_default());
        let assets = engine.assets().to_vec();
        let mut markets = engine.markets().to_vec();
        set_tiers(&mut markets[1], TierBasis::Notional, TierMode::Marginal);
        set_tiers(&mut markets[2], TierBasis::Size, TierMode::Whole);
        let mut next = crate::num::xorshift(0x9a11_0c0f_fee5_0001);
        let (mut cleared, mut far) = (0, 0);
        for round in 0..6_000 {
            for m in markets.iter_mut() {
                let p = &mut m.params.portfolio;
                p.pm_range = Rate::from_raw(1_000_000 + (next() % 50_000_000) as i64);
                p.pm_correlation = Rate::from_raw((next() % 100_000_001) as i64);
                p.pm_mm_factor = Rate::from_raw(10_000_000 + (next() % 200_000_000) as i64);
                p.pm_floor = Rate::from_raw((next() % 100_000_001) as i64);
                m.mark_price = Some(Price::from_raw(((next() >> 40) as i64).max(1) * 1_000));
                m.index_price = m.mark_price;
            }
            let mut account = Account::new("a");
            account.margin_model = crate::state::MarginModel::Portfolio;
            if next().is_multiple_of(3) {
                account.collateral.push((AssetId((next() % 2) as u16), Size::from_raw((next() >> 30) as i64)));
            }
            for market in 0..3u16 {
                if next().is_multiple_of(2) {
                    let magnitude = ((next() >> (20 + next() % 30)) as i64).max(1);
                    let size = Size::from_raw(if next().is_multiple_of(2) { magnitude } else { -magnitude });
                    let cost = size.mul_price(markets[market as usize].mark_price.unwrap());
                    account.positions.push(Position { market: MarketId(market), size, cost });
                }
            }
            let Ok(before) = health(&account, &assets, &markets) else { continue };
            // Settlement from well below to well above the requirement.
            let leverage = [-1i128, 0, 1, 2, 4, 10, 100][round % 7];
            account.settlement = Quote::from_raw(before.maintenance_margin.raw() * leverage - before.equity.raw());
            let Ok(health) = health(&account, &assets, &markets) else { continue };
            let context = ScanContext::new(&assets, &markets);
            let clear = context.certainly_above(&account);
            if clear {
                assert!(!health.below_maintenance(), "round {round}: {account:?} {health:?}");
                cleared += 1;
            }
            far += usize::from(leverage >= 10 && !account.positions.is_empty());
        }
        assert!(cleared * 10 > far * 7, "the bound clears most accounts far from the requirement ({cleared} of {far})");
    }

    /// A size raw whose exposure is within two units of a bracket bound of `market`.
    fn edge_size(market: &Market, mark: i64, next: &mut impl FnMut() -> u64) -> i64 {
        let tiers = &market.params.tiers;
        let from = tiers[(next() % tiers.len() as u64) as usize].from_raw;
        let at = match market.params.tier_basis {
            TierBasis::Size => from,
            TierBasis::Notional => from / i128::from(mark),
        };
        (at + (next() % 5) as i128 - 2).clamp(1, i128::from(i64::MAX)) as i64
    }

    /// One account: where the fast margin answers it is exact, and "certainly above" is never
    /// said of an account the exact health finds below maintenance. Whether the fast path answered.
    fn check(account: &Account, assets: &[Asset], markets: &[Market]) -> bool {
        let context = ScanContext::new(assets, markets);
        let Some(margin) = context.margin(account) else { return false };
        assert_eq!(I256::from(margin), exact_margin(account, assets, markets), "{account:?}");
        if context.certainly_above(account) {
            let health = health(account, assets, markets).expect("a bounded margin has a health");
            assert!(!health.below_maintenance(), "{account:?}");
        }
        true
    }

    /// Wherever the scan's margin answers, it equals the exact margin (so its verdict agrees with
    /// the exact health), across bases, modes, bracket edges, collateral, several positions and
    /// magnitudes up to the ends of the ranges; at ordinary magnitudes it nearly always answers.
    #[test]
    fn agrees_with_exact_health() {
        let engine = crate::Engine::new(&Config::embedded_default());
        let assets = engine.assets().to_vec();
        let mut markets = engine.markets().to_vec();
        let mut next = crate::num::xorshift(0x9e37_79b9_7f4a_7c15);
        for bits in [12u32, 30, 40, 50, 62, 63] {
            let (mut decided, rounds) = (0, 4_000);
            for _ in 0..rounds {
                let magnitude = |n: u64| ((n >> (64 - bits)) as i64).max(1);
                for m in markets.iter_mut() {
                    let basis = if next().is_multiple_of(2) { TierBasis::Size } else { TierBasis::Notional };
                    set_tiers(m, basis, if next().is_multiple_of(2) { TierMode::Marginal } else { TierMode::Whole });
                    m.mark_price = Some(Price::from_raw(magnitude(next())));
                    m.index_price = m.mark_price;
                }
                let mut account = Account::new("a");
                let settlement = i128::from(magnitude(next())) * (next() % 3) as i128 - 1_000;
                account.settlement = Quote::from_raw(if bits == 63 { settlement << 62 } else { settlement });
                if next().is_multiple_of(4) {
                    account.collateral.push((AssetId(0), Size::from_raw(magnitude(next()))));
                }
                for market in 0..3u16 {
                    if next().is_multiple_of(2) {
                        let m = &markets[market as usize];
                        let mark = m.mark_price.expect("set above").raw();
                        let abs =
                            if next().is_multiple_of(2) { edge_size(m, mark, &mut next) } else { magnitude(next()) };
                        let size = Size::from_raw(if next().is_multiple_of(2) { abs } else { -abs });
                        let cost = size.mul_price(Price::from_raw(magnitude(next())));
                        account.positions.push(Position { market: MarketId(market), size, cost });
                    }
                }
                decided += usize::from(check(&account, &assets, &markets));
            }
            if bits <= 30 {
                assert!(decided * 100 >= rounds * 99, "the fast path decides ({decided} of {rounds}, {bits} bits)");
            }
        }
    }

    /// Markets in every basis × mode, at a few marks; positions exactly at, and two units either
    /// side of, every bracket bound: the fast path answers every one (it holds every bracket at
    /// these magnitudes) and exactly.
    #[test]
    fn bracket_edges_are_exact() {
        let engine = crate::Engine::new(&Config::embedded_default());
        let assets = engine.assets().to_vec();
        let mut markets = engine.markets().to_vec();
        for (basis, mode) in [TierBasis::Size, TierBasis::Notional]
            .into_iter()
            .flat_map(|b| [(b, TierMode::Marginal), (b, TierMode::Whole)])
        {
            for mark in [1i64, 7, 99_999_999, 1_000_000_000_000, 1_234_567_890_123] {
                let market = &mut markets[0];
                set_tiers(market, basis, mode);
                market.mark_price = Some(Price::from_raw(mark));
                for from in market.params.tiers.iter().map(|t| t.from_raw).collect::<Vec<_>>() {
                    let at = if basis == TierBasis::Size { from } else { from / i128::from(mark) };
                    for abs in (at - 2..=at + 2).filter(|s| *s > 0 && *s < 1 << 62) {
                        for size in [abs as i64, -(abs as i64)] {
                            let mut account = Account::new("a");
                            account.settlement = Quote::from_raw(i128::from(size).abs() * i128::from(mark) / 3);
                            let cost = Size::from_raw(size).mul_price(Price::from_raw(mark / 2 + 1));
                            account.positions.push(Position { market: MarketId(0), size: Size::from_raw(size), cost });
                            assert!(check(&account, &assets, &markets), "{basis:?} {mode:?} {mark} {size}");
                        }
                    }
                }
            }
        }
    }

    /// Accounts whose exact margin lies within a few Quote units of the rounding band's edges:
    /// "certainly above" is said only where the exact health agrees (a slack one unit smaller
    /// fails this test).
    #[test]
    fn rounding_band_edges() {
        let engine = crate::Engine::new(&Config::embedded_default());
        let (assets, markets) = (engine.assets().to_vec(), engine.markets().to_vec());
        let mut markets = markets;
        let mut next = crate::num::xorshift(0x2545_f491_4f6c_dd1d);
        let (mut above, mut rounds) = (0, 0);
        for _ in 0..3_000 {
            for m in markets.iter_mut() {
                m.mark_price = Some(Price::from_raw((next() % 2_000_000_000_000) as i64 + 1));
                m.index_price = m.mark_price;
            }
            let mut account = Account::new("a");
            if next().is_multiple_of(3) {
                account.collateral.push((AssetId(0), Size::from_raw((next() % 1_000_000_000) as i64 + 1)));
            }
            for market in 0..3u16 {
                if next().is_multiple_of(2) {
                    continue;
                }
                let size = Size::from_raw((next() % 20_000_000_000) as i64 - 10_000_000_000);
                let cost = size.mul_price(Price::from_raw((next() % 2_000_000_000_000) as i64 + 1));
                if !size.is_zero() {
                    account.positions.push(Position { market: MarketId(market), size, cost });
                }
            }
            // Settlement so that the margin lies in [k, k + 1) Quote units, k within 2 of the slack.
            let without = exact_margin(&account, &assets, &markets);
            let unit = I256::from(FINE_PER_QUOTE);
            let k = I256::from(account.positions.len() as i128 + (next() % 5) as i128 - 1);
            let settlement = (k * unit - without).div_euclid(unit) + I256::ONE;
            account.settlement = Quote::from_raw(settlement.as_i128());
            rounds += 1;
            assert!(check(&account, &assets, &markets), "{account:?}");
            above += usize::from(ScanContext::new(&assets, &markets).certainly_above(&account));
        }
        assert!(above * 4 > rounds && above * 4 < rounds * 3, "both sides of the slack ({above} of {rounds})");
    }

    #[test]
    fn fits_is_a_signed_range() {
        for bits in [0u32, 1, 97, 120, 126] {
            let top = 1i128 << bits;
            assert!(fits(top - 1, bits) && fits(-top, bits) && fits(0, bits));
            assert!(!fits(top, bits) && !fits(-top - 1, bits));
        }
        assert!(!fits(i128::MAX, 120) && !fits(i128::MIN, 120));
    }
}
