//! The liquidation map: per market, the positions that would be liquidated at each price level
//! in each direction, every other price held. Read-only, exact and integer; one pass over the
//! accounts (never per tick).
//!
//! Levels are k × `step` from the current mark, k = 1..=⌊`range` / `step`⌋, each direction,
//! rounded toward the mark. At a level the market's mark is the level and its index moves by the
//! same amount (the basis is held), so collateral indexed on the market moves with it. An
//! account is counted, with the whole size of its position in the market, in the bucket of the
//! **first** level (going out from the mark) at which the engine would find it below maintenance:
//! its own liquidation level, cross-margined positions in other markets and collateral valued as
//! they are. Accounts that depend on another frozen market are skipped (their liquidation waits).
//!
//! Decision per level is the engine's: below iff rounded equity < Σ rounded MM. Where the account's
//! margin is linear in the mark over the whole range (size-basis tiers, or a notional-basis
//! position that stays in its bracket) the first level is found by a binary search over exact
//! i128 products, starting from the full scan's exact margin, and only a level inside the rounding
//! band is decided by the exact health at that level; any other account is decided by the exact
//! health at each level in turn.
//!
//! **Which accounts are evaluated.** Where the risk index has settled on the current state
//! ([`crate::risk_index::RiskIndex::map_visits`]), only the accounts it cannot clear are
//! evaluated: those with an edge of their certified box in the map's market inside the range of
//! the levels (for an account with one position the edge is its liquidation price, up to the
//! rounding slack), queued, candidates or always rechecked. Every other account is boxed with a
//! band in the map's market that holds every level's mark and index, and the box proves it not
//! below maintenance at every level: it is in no bucket. Elsewhere every account is evaluated.
//! Debug builds compare the two on small books.

use crate::config::TierBasis;
use crate::engine::Engine;
use crate::error::Error;
use crate::margin::{self, mul_i128, FINE_PER_QUOTE};
use crate::num::{Price, Quote, Rate, Size};
use crate::risk_index::scan::ScanContext;
use crate::state::{Account, Market, MarketId};
use serde::Serialize;

/// Most buckets per direction.
pub const MAX_MAP_BUCKETS: usize = 1_000;
/// The default bucket step: 0.5%.
pub const DEFAULT_MAP_STEP: Rate = Rate::from_raw(500_000);
/// The default range: ±50%.
pub const DEFAULT_MAP_RANGE: Rate = Rate::from_raw(50_000_000);

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiquidationMap {
    pub market: String,
    pub mark: Price,
    pub step: Rate,
    pub range: Rate,
    /// The market's oracle is frozen: the map shows what would happen when its price returns at
    /// each level.
    pub frozen: bool,
    /// Mark below the current one, nearest first: long positions (mostly).
    pub down: Vec<MapBucket>,
    /// Mark above the current one, nearest first: short positions (mostly).
    pub up: Vec<MapBucket>,
}

/// The positions first liquidated at one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MapBucket {
    pub price: Price,
    /// Signed move from the current mark (k × step).
    #[serde(rename = "move")]
    pub move_rate: Rate,
    /// Σ |size| of the positions in the market of the accounts first liquidated at this level.
    pub size: Size,
    /// `size` × `price`, exact.
    pub notional: Quote,
    pub accounts: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Down,
    Up,
}

/// Everything computed once per map.
struct MapContext<'a> {
    engine: &'a Engine,
    market: MarketId,
    mark: i64,
    /// Per side, level prices (raw), nearest first.
    levels: [Vec<i64>; 2],
    /// Per side, each level's distance from the mark (raw, positive, growing).
    distances: [Vec<u64>; 2],
    /// Size basis: one past the largest |size| raw in the first bracket (u64::MAX with one).
    first_bracket_end: u64,
    scan: ScanContext,
    /// Per market, whether it can liquidate now (a frozen market holds its accounts).
    live: Vec<bool>,
    /// Every market is live (the common case: nothing to check per account).
    all_live: bool,
    /// Per asset, the weight when it is indexed on the map's market (Fine per raw unit of amount
    /// per raw unit of price), else 0.
    asset_slope: Vec<i128>,
    /// Per side, the market tables at each level (each built on first need: the exact path is
    /// rare).
    at_level: [Vec<std::cell::OnceCell<Vec<Market>>>; 2],
    /// The full scan's context at each level (built on first use): its portfolio-margin bound
    /// clears most levels of portfolio-margined accounts without the exact health.
    scan_at_level: [Vec<std::cell::OnceCell<ScanContext>>; 2],
}

/// Per side, per level: Σ |size| and the number of accounts.
type Totals = [Vec<(Size, u64)>; 2];

impl Engine {
    /// The liquidation map of `market` with buckets of `step` out to ±`range` (see the module
    /// documentation). Refused with `params_out_of_bounds` naming `step` or `range` unless
    /// 0 < step ≤ range < 1 with at most 1,000 buckets; `no_mark_price` before the first index.
    pub fn liquidation_map(&self, market: &str, step: Rate, range: Rate) -> Result<LiquidationMap, Error> {
        let market_id = self.market_id(market)?;
        let out = |field: &str, reason: &str| Error::ParamsOutOfBounds { field: field.into(), reason: reason.into() };
        if !step.is_positive() {
            return Err(out("step", "must be positive"));
        }
        if range < step || range >= Rate::ONE {
            return Err(out("range", "must be at least the step and below 1"));
        }
        let buckets = (range.raw() / step.raw()) as usize;
        if buckets > MAX_MAP_BUCKETS {
            return Err(out("step", "at most 1000 buckets per direction (range / step)"));
        }
        let state = &self.markets[market_id.0 as usize];
        let mark = state.mark_price.ok_or_else(|| Error::NoMarkPrice(market.to_string()))?;
        let context = MapContext::new(self, market_id, mark.raw(), step, buckets)?;
        let mut totals: Totals = [vec![(Size::ZERO, 0u64); buckets], vec![(Size::ZERO, 0u64); buckets]];
        let mut marked = Vec::new();
        let (lo_at_most, hi_key_at_most) = context.index_thresholds();
        let tables =
            crate::risk_index::Tables { accounts: &self.accounts, assets: &self.assets, markets: &self.markets };
        if self.risk.map_visits(tables, market_id, lo_at_most, hi_key_at_most, &mut marked) {
            context.visit_marked(&marked, &mut totals)?;
            #[cfg(debug_assertions)]
            if self.accounts.len() <= 4_096 {
                let mut every = [vec![(Size::ZERO, 0u64); buckets], vec![(Size::ZERO, 0u64); buckets]];
                context.visit_every(&mut every)?;
                assert_eq!(totals, every, "the accounts the risk index clears are in no bucket");
            }
        } else {
            context.visit_every(&mut totals)?;
        }
        let bucket_list = |side: Side| -> Vec<MapBucket> {
            let sign = if side == Side::Down { -1 } else { 1 };
            totals[side as usize]
                .iter()
                .zip(&context.levels[side as usize])
                .enumerate()
                .map(|(k, (&(size, accounts), &price))| {
                    let price = Price::from_raw(price);
                    let move_rate = Rate::from_raw(sign * (k as i64 + 1) * step.raw());
                    MapBucket { price, move_rate, size, notional: size.mul_price(price), accounts }
                })
                .collect()
        };
        Ok(LiquidationMap {
            market: market.to_string(),
            mark,
            step,
            range,
            frozen: state.frozen,
            down: bucket_list(Side::Down),
            up: bucket_list(Side::Up),
        })
    }
}

impl<'a> MapContext<'a> {
    fn new(engine: &'a Engine, market: MarketId, mark: i64, step: Rate, buckets: usize) -> Result<Self, Error> {
        let one = i128::from(Rate::ONE_RAW);
        let level = |k: usize, side: Side| -> Result<i64, Error> {
            let moved = i128::from(step.raw()) * (k as i128 + 1);
            let price = match side {
                Side::Down => (i128::from(mark) * (one - moved) + one - 1) / one, // up: toward the mark
                Side::Up => i128::from(mark) * (one + moved) / one,               // down: toward the mark
            };
            i64::try_from(price.max(1)).map_err(|_| Error::Overflow)
        };
        let levels = [
            (0..buckets).map(|k| level(k, Side::Down)).collect::<Result<Vec<_>, _>>()?,
            (0..buckets).map(|k| level(k, Side::Up)).collect::<Result<Vec<_>, _>>()?,
        ];
        let distance = |levels: &[i64]| -> Vec<u64> {
            levels.iter().map(|&p| (i128::from(p) - i128::from(mark)).unsigned_abs() as u64).collect()
        };
        let distances = [distance(&levels[0]), distance(&levels[1])];
        let tiers = &engine.markets[market.0 as usize].params.tiers;
        let first_bracket_end = tiers.get(1).map_or(u64::MAX, |t| u64::try_from(t.from_raw.max(0)).unwrap_or(u64::MAX));
        let live: Vec<bool> =
            (0..engine.markets.len()).map(|i| engine.market_live_at(MarketId(i as u16), engine.last_ts)).collect();
        let asset_slope = engine
            .assets
            .iter()
            .map(|a| if a.index_market == market { i128::from(a.weight.raw()) } else { 0 })
            .collect();
        Ok(MapContext {
            engine,
            market,
            mark,
            levels,
            distances,
            first_bracket_end,
            scan: ScanContext::new(&engine.assets, &engine.markets),
            all_live: live.iter().all(|l| *l),
            live,
            asset_slope,
            at_level: [(); 2].map(|()| (0..buckets).map(|_| std::cell::OnceCell::new()).collect()),
            scan_at_level: [(); 2].map(|()| (0..buckets).map(|_| std::cell::OnceCell::new()).collect()),
        })
    }

    /// The thresholds for [`crate::risk_index::RiskIndex::map_visits`]: every level's mark and
    /// moved index lie in [lowest, highest], lowest = the farthest level down + min(0, index −
    /// mark), highest = the farthest level up + max(0, index − mark) (the moved index is clamped
    /// to at least one raw unit and at most `i64::MAX`, which only brings it nearer). Returned as
    /// (lowest, −highest), saturated to i64 toward evaluating more accounts.
    fn index_thresholds(&self) -> (i64, i64) {
        let market = &self.engine.markets[self.market.0 as usize];
        let index = market.index_price.map_or(self.mark, Price::raw);
        let basis = i128::from(index) - i128::from(self.mark);
        let last = |side: Side| self.levels[side as usize].last().map_or(self.mark, |&p| p);
        let lowest = i128::from(last(Side::Down)) + basis.min(0);
        let highest = i128::from(last(Side::Up)) + basis.max(0);
        let saturate = |x: i128| x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        (saturate(lowest), saturate(-highest))
    }

    /// Evaluate every account, in order. As the full scan does: hint records and position
    /// blocks of accounts ahead, so that their misses overlap the work on the accounts in between.
    fn visit_every(&self, totals: &mut Totals) -> Result<(), Error> {
        use crate::prefetch::{scan_positions, scan_record, SCAN_POSITIONS_AHEAD, SCAN_RECORDS_AHEAD};
        let accounts = self.engine.accounts.as_slice();
        let near = accounts.get(SCAN_POSITIONS_AHEAD..).unwrap_or_default();
        let far = accounts.get(SCAN_RECORDS_AHEAD..).unwrap_or_default();
        for ((account, near), far) in accounts.iter().zip(near).zip(far) {
            scan_record(far);
            scan_positions(near);
            self.visit(account, totals)?;
        }
        for account in accounts.iter().skip(far.len()) {
            self.visit(account, totals)?;
        }
        Ok(())
    }

    /// Evaluate the accounts whose bit is set in `marked`, in increasing id order, hinting the
    /// records and position blocks of the marked accounts ahead.
    fn visit_marked(&self, marked: &[u64], totals: &mut Totals) -> Result<(), Error> {
        use crate::prefetch::{scan_positions, scan_record, SCAN_POSITIONS_AHEAD, SCAN_RECORDS_AHEAD};
        let accounts = self.engine.accounts.as_slice();
        let mut near = SetBits::new(marked).skip(SCAN_POSITIONS_AHEAD);
        let mut far = SetBits::new(marked).skip(SCAN_RECORDS_AHEAD);
        for id in SetBits::new(marked) {
            if let Some(account) = far.next().and_then(|i| accounts.get(i)) {
                scan_record(account);
            }
            if let Some(account) = near.next().and_then(|i| accounts.get(i)) {
                scan_positions(account);
            }
            if let Some(account) = accounts.get(id) {
                self.visit(account, totals)?;
            }
        }
        Ok(())
    }

    /// Add one account to the totals of its first level on each side.
    #[inline(always)]
    fn visit(&self, account: &Account, totals: &mut [Vec<(Size, u64)>; 2]) -> Result<(), Error> {
        let Some(position) = account.position(self.market) else { return Ok(()) };
        if !self.may_liquidate(account) {
            return Ok(());
        }
        let mut add = |side: Side, k: usize| -> Result<(), Error> {
            let slot = &mut totals[side as usize][k];
            slot.0 = slot.0.checked_add(position.size.checked_abs()?)?;
            slot.1 += 1;
            Ok(())
        };
        match self.linear(account, position.size) {
            // At or above the slack, with a margin linear in the mark: only the side toward which
            // it falls can liquidate (the other only raises it, from at least the slack).
            Some((over_slack, slope)) if over_slack >= 0 => {
                let side = match slope.signum() {
                    1 => Side::Down,
                    -1 => Side::Up,
                    _ => return Ok(()),
                };
                if let Some(k) = self.first_level_linear(account, over_slack, slope.unsigned_abs(), side) {
                    add(side, k)?;
                }
            }
            // In the rounding band already, or not linear: the exact health at each level.
            _ => {
                for side in [Side::Down, Side::Up] {
                    if let Some(k) = self.first_level_exact(account, side, 0) {
                        add(side, k)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the account's liquidation waits on no frozen market other than the map's own.
    #[inline(always)]
    fn may_liquidate(&self, account: &Account) -> bool {
        if self.all_live {
            return true;
        }
        let live = |m: MarketId| m == self.market || self.live[m.0 as usize];
        account.positions.iter().all(|p| live(p.market))
            && account.collateral.iter().all(|(asset, _)| live(self.engine.assets[asset.0 as usize].index_market))
    }

    /// The account's exact margin minus its rounding slack at the current mark, and the slope of
    /// its margin in the market's mark (Fine per raw price unit), when the margin is linear in the
    /// mark over every level and the fast path's bounds hold.
    #[inline(always)]
    fn linear(&self, account: &Account, size: Size) -> Option<(i128, i128)> {
        let over_slack = self.scan.margin_over_slack(account)?;
        let params = &self.engine.markets[self.market.0 as usize].params;
        let mm_slope = match params.tier_basis {
            // MM = mark × (exact MM at a mark of one raw unit): linear in the mark; in the first
            // bracket that is |size| × its rate.
            // (|size| < 2^63, rate < 2^63: the product is below 2^126.)
            TierBasis::Size if size.raw().unsigned_abs() < self.first_bracket_end => {
                i128::from(size.raw().unsigned_abs()) * i128::from(params.tiers[0].mm_rate.raw())
            }
            TierBasis::Size => margin::position_mm_fine_narrow(params, size, Price::from_raw(1))?,
            TierBasis::Notional => self.notional_slope(params, size)?,
        };
        // size × F is below 2^90 in magnitude; the MM slope is non-negative and below 2^126
        // (|size| × a rate, or the MM of |size| at a mark of one raw unit, which is less):
        // their difference cannot overflow.
        let mut slope = i128::from(size.raw()) * FINE_PER_QUOTE - mm_slope;
        for (asset, amount) in &account.collateral {
            let weight = self.asset_slope[asset.0 as usize];
            if weight != 0 {
                slope = slope.checked_add(mul_i128(i128::from(amount.raw()), weight)?)?;
            }
        }
        Some((over_slack, slope))
    }

    /// In notional basis, the MM slope (rate × |size|) when the position's exposure stays in one
    /// bracket at every level (then MM is linear in the mark there); `None` otherwise.
    fn notional_slope(&self, params: &crate::config::MarketParams, size: Size) -> Option<i128> {
        let abs = i128::from(size.raw()).abs();
        let low = *self.levels[Side::Down as usize].last()?;
        let high = *self.levels[Side::Up as usize].last()?;
        let bracket = |price: i64| -> Option<usize> {
            let x = mul_i128(abs, i128::from(price))?;
            Some(params.tiers.iter().rposition(|t| x >= t.from_raw).unwrap_or(0))
        };
        // Exposure grows with the mark: the lowest and highest levels in one bracket mean all are.
        if bracket(low)? != bracket(high)? {
            return None;
        }
        let lo = bracket(low)?;
        mul_i128(abs, i128::from(params.tiers[lo].mm_rate.raw()))
    }

    /// The index (0-based) of the first level on `side` at which an account whose margin is
    /// linear in the mark, at least the slack now (`over_slack` ≥ 0) and falling by `per_unit`
    /// (= |slope| > 0) per raw unit of price toward `side`, is below maintenance, if any.
    ///
    /// The exact margin at level k is `over_slack` + slack − `per_unit` × d_k (d_k = the level's
    /// distance from the mark, growing with k). It falls below the slack where
    /// `per_unit` × d_k exceeds `over_slack`: an estimate by one division, corrected by exact
    /// products. Below zero there is certain; in between (the rounding band) the exact health
    /// decides.
    #[inline(always)]
    fn first_level_linear(&self, account: &Account, over_slack: i128, per_unit: u128, side: Side) -> Option<usize> {
        debug_assert!(over_slack >= 0 && per_unit > 0);
        let distances = &self.distances[side as usize];
        let farthest = *distances.last()?;
        // Most accounts stay above the slack over the whole range: one product decides.
        if per_unit.checked_mul(u128::from(farthest)).is_some_and(|d| d <= over_slack as u128) {
            return None;
        }
        let k = first_beyond(distances, per_unit, over_slack as u128);
        if k == distances.len() {
            return None;
        }
        let slack = (account.positions.len() as u128 + 1) * FINE_PER_QUOTE as u128;
        let drop = per_unit.checked_mul(u128::from(distances[k]));
        if drop.is_none_or(|d| d > over_slack as u128 + slack) {
            Some(k) // the exact margin is negative there: below for certain
        } else {
            self.first_level_exact(account, side, k)
        }
    }

    /// The first level at or after `from` on `side` where the exact health is below maintenance.
    #[cold]
    #[inline(never)]
    fn first_level_exact(&self, account: &Account, side: Side, from: usize) -> Option<usize> {
        let tables = &self.at_level[side as usize];
        let tiered = account.margin_model.is_tiered();
        (from..tables.len()).find(|&k| {
            let markets = tables[k].get_or_init(|| self.table(self.levels[side as usize][k]));
            if !tiered {
                let scan =
                    self.scan_at_level[side as usize][k].get_or_init(|| ScanContext::new(&self.engine.assets, markets));
                if scan.certainly_above(account) {
                    return false;
                }
            }
            margin::health(account, &self.engine.assets, markets).is_ok_and(|h| h.below_maintenance())
        })
    }

    /// The market table at a level: the map's market at that mark, its index moved by the same
    /// amount (at least one raw unit).
    fn table(&self, price: i64) -> Vec<Market> {
        let mut markets = self.engine.markets.clone();
        let market = &mut markets[self.market.0 as usize];
        market.mark_price = Some(Price::from_raw(price));
        if let Some(index) = market.index_price {
            let moved = i128::from(index.raw()) + i128::from(price) - i128::from(self.mark);
            market.index_price = Some(Price::from_raw(moved.clamp(1, i128::from(i64::MAX)) as i64));
        }
        markets
    }
}

/// The first index k with `per_unit` × `distances[k]` > `margin` (`distances` grows with the
/// index, by about `distances[0]` per step; a product that overflows exceeds any margin): an
/// estimate by one 64-bit division of the leading bits, corrected by exact comparisons.
#[inline(always)]
fn first_beyond(distances: &[u64], per_unit: u128, margin: u128) -> usize {
    let beyond = |k: usize| per_unit.checked_mul(u128::from(distances[k])).is_none_or(|drop| drop > margin);
    let step = per_unit.saturating_mul(u128::from(distances[0].max(1)));
    let shift = (128 - step.leading_zeros()).saturating_sub(32);
    let (numerator, denominator) = (margin >> shift, (step >> shift).max(1));
    let estimate = u64::try_from(numerator).map_or(usize::MAX, |n| (n / denominator as u64) as usize);
    let mut k = estimate.min(distances.len());
    while k > 0 && beyond(k - 1) {
        k -= 1;
    }
    while k < distances.len() && !beyond(k) {
        k += 1;
    }
    debug_assert_eq!(
        k,
        distances.partition_point(|&d| per_unit.checked_mul(u128::from(d)).is_some_and(|x| x <= margin))
    );
    k
}

/// The indexes of the set bits of a bit set (words of 64, bit i of word w is index 64 w + i),
/// in increasing order.
struct SetBits<'a> {
    words: &'a [u64],
    word: usize,
    bits: u64,
}

impl<'a> SetBits<'a> {
    fn new(words: &'a [u64]) -> SetBits<'a> {
        SetBits { words, word: 0, bits: words.first().copied().unwrap_or(0) }
    }
}

impl Iterator for SetBits<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.word += 1;
            self.bits = *self.words.get(self.word)?;
        }
        let index = self.word * 64 + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(index)
    }
}
