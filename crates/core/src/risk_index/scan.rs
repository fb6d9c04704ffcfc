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
use crate::margin::FINE_PER_QUOTE;
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

impl ScanContext {
    pub fn new(assets: &[Asset], markets: &[Market]) -> ScanContext {
        let assets = assets
            .iter()
            .map(|a| {
                let index = markets[a.index_market.0 as usize].index_price;
                let per_unit = index.map_or(0, |i| i128::from(i.raw()) * i128::from(a.weight.raw()));
                AssetView { per_unit, end: term_end(per_unit.unsigned_abs()) }
            })
            .collect();
        let (mut firsts, mut beyond_ranges, mut beyond) = (Vec::new(), Vec::new(), Vec::new());
        for m in markets {
            let all = m.mark_price.map_or_else(Vec::new, |mark| brackets(&m.params, mark.raw()));
            firsts.push(all.first().copied().unwrap_or(NO_BRACKET));
            let start = beyond.len() as u32;
            beyond.extend(all.iter().skip(1));
            beyond_ranges.push((start, beyond.len() as u32));
        }
        ScanContext { markets: firsts, beyond_ranges, beyond, assets }
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
        self.margin_over_slack(account).is_some_and(|m| m >= 0)
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
