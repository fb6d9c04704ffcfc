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
    scan: ScanContext,
    /// Per market, whether it can liquidate now (a frozen market holds its accounts).
    live: Vec<bool>,
    /// Per asset, the weight when it is indexed on the map's market (Fine per raw unit of amount
    /// per raw unit of price), else 0.
    asset_slope: Vec<i128>,
    /// The market tables at each level (built on first need: the exact path is rare).
    at_level: std::cell::OnceCell<[Vec<Vec<Market>>; 2]>,
}

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
        let mut totals = [vec![(Size::ZERO, 0u64); buckets], vec![(Size::ZERO, 0u64); buckets]];
        for account in &self.accounts {
            let Some(position) = account.position(market_id) else { continue };
            if !context.may_liquidate(account) {
                continue;
            }
            let linear = context.linear(account, position.size);
            for side in [Side::Down, Side::Up] {
                let first = match linear {
                    Some((over_slack, slope)) => context.first_level_linear(account, over_slack, slope, side),
                    None => context.first_level_exact(account, side, 0),
                };
                if let Some(k) = first {
                    let slot = &mut totals[side as usize][k];
                    slot.0 = slot.0.checked_add(position.size.checked_abs()?)?;
                    slot.1 += 1;
                }
            }
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
        let live =
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
            scan: ScanContext::new(&engine.assets, &engine.markets),
            live,
            asset_slope,
            at_level: std::cell::OnceCell::new(),
        })
    }

    /// Whether the account's liquidation waits on no frozen market other than the map's own.
    fn may_liquidate(&self, account: &Account) -> bool {
        let live = |m: MarketId| m == self.market || self.live[m.0 as usize];
        account.positions.iter().all(|p| live(p.market))
            && account.collateral.iter().all(|(asset, _)| live(self.engine.assets[asset.0 as usize].index_market))
    }

    /// The account's exact margin minus its rounding slack at the current mark, and the slope of
    /// its margin in the market's mark (Fine per raw price unit), when the margin is linear in the
    /// mark over every level and the fast path's bounds hold.
    fn linear(&self, account: &Account, size: Size) -> Option<(i128, i128)> {
        let over_slack = self.scan.margin_over_slack(account)?;
        let params = &self.engine.markets[self.market.0 as usize].params;
        let mm_slope = match params.tier_basis {
            // MM = mark × (exact MM at a mark of one raw unit): linear in the mark.
            TierBasis::Size => margin::position_mm_fine_narrow(params, size, Price::from_raw(1))?,
            TierBasis::Notional => self.notional_slope(params, size)?,
        };
        let mut slope = mul_i128(i128::from(size.raw()), FINE_PER_QUOTE)?.checked_sub(mm_slope)?;
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
    /// linear in the mark is below maintenance, if any.
    fn first_level_linear(&self, account: &Account, over_slack: i128, slope: i128, side: Side) -> Option<usize> {
        // Moving toward this side lowers the margin by |slope| per raw unit, or raises it.
        let falling = match side {
            Side::Down => slope > 0,
            Side::Up => slope < 0,
        };
        if over_slack < 0 {
            return self.first_level_exact(account, side, 0); // in the rounding band already
        }
        if !falling {
            return None; // the margin only grows this way, from at least the slack
        }
        let levels = &self.levels[side as usize];
        let drop = |k: usize| mul_i128(slope.abs(), (i128::from(levels[k]) - i128::from(self.mark)).abs());
        // The first level where the exact margin falls below the slack (drop > over_slack): the
        // drop grows with k, so a binary search finds it.
        let (mut lo, mut hi) = (0, levels.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if drop(mid).is_none_or(|d| d > over_slack) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let slack = (account.positions.len() as i128 + 1) * FINE_PER_QUOTE;
        let k = lo;
        if k == levels.len() {
            return None;
        }
        // Exact margin at level k = over_slack + slack − drop: negative means below for certain.
        let certain = drop(k).is_none_or(|d| d > over_slack.saturating_add(slack));
        if certain {
            Some(k)
        } else {
            self.first_level_exact(account, side, k)
        }
    }

    /// The first level at or after `from` on `side` where the exact health is below maintenance.
    #[cold]
    #[inline(never)]
    fn first_level_exact(&self, account: &Account, side: Side, from: usize) -> Option<usize> {
        let tables = self.at_level.get_or_init(|| [self.tables(Side::Down), self.tables(Side::Up)]);
        let tables = &tables[side as usize];
        (from..tables.len())
            .find(|&k| margin::health(account, &self.engine.assets, &tables[k]).is_ok_and(|h| h.below_maintenance()))
    }

    /// The market tables at each level of `side`: the map's market at that mark, its index moved
    /// by the same amount (at least one raw unit).
    fn tables(&self, side: Side) -> Vec<Vec<Market>> {
        self.levels[side as usize]
            .iter()
            .map(|&price| {
                let mut markets = self.engine.markets.clone();
                let market = &mut markets[self.market.0 as usize];
                market.mark_price = Some(Price::from_raw(price));
                if let Some(index) = market.index_price {
                    let moved = i128::from(index.raw()) + i128::from(price) - i128::from(self.mark);
                    market.index_price = Some(Price::from_raw(moved.clamp(1, i128::from(i64::MAX)) as i64));
                }
                markets
            })
            .collect()
    }
}
