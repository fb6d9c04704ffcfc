//! The liquidation map the predictive policy feeds to the cascade model, in
//! floats: per bucket of mark-price move (`BUCKET_STEP` out to `BUCKET_RANGE`,
//! each direction), the notional of the market's positions whose account's
//! equity would fall below its maintenance margin there, every other price held.
//!
//! Per account, at a trial mark `P` of market `i`: equity = settlement + weighted
//! collateral (an asset whose index market is `i` at its index price x `P / mark`)
//! + sum of `size x mark_j - cost`, MM = sum of the tables in force (the core's
//!   formula in floats, `FloatTiers`) at `mark_j`, with `mark_i = P`. The first bucket
//!   (nearest the mark) where equity < MM holds the account's position in `i`, at
//!   `|size| x P`. Accounts already below MM at the mark are left out (they are
//!   being liquidated now). One pass over the accounts: read every map interval,
//!   never per tick.

use crate::driver::FloatTiers;
use crate::error::Result;
use crate::population::{price_f64, quote_f64, size_f64};
use solvent_core::state::Account;
use solvent_core::Engine;
use solvent_models::cascade::{LiquidationMap, MapLevel};

/// Bucket width of the map, a fraction of the mark.
pub const BUCKET_STEP: f64 = 0.005;
/// The map covers moves up to this fraction each way.
pub const BUCKET_RANGE: f64 = 0.5;

/// Open interest of market `index` (sum of long sizes), base units.
pub fn open_interest(engine: &Engine, index: usize) -> f64 {
    engine
        .accounts()
        .iter()
        .flat_map(|a| &a.positions)
        .filter(|p| p.market.0 as usize == index && p.size.is_positive())
        .map(|p| size_f64(p.size))
        .sum()
}

/// Equity minus MM of `account` with market `index` at `factor` x its mark.
fn slack(account: &Account, engine: &Engine, tables: &[FloatTiers], index: usize, factor: f64) -> f64 {
    let markets = engine.markets();
    let assets = engine.assets();
    let mut value = quote_f64(account.settlement);
    for (asset, amount) in &account.collateral {
        let a = &assets[asset.0 as usize];
        let Some(px) = markets[a.index_market.0 as usize].index_price.map(price_f64) else { continue };
        let f = if a.index_market.0 as usize == index { factor } else { 1.0 };
        value += size_f64(*amount) * px * f * a.weight.raw() as f64 / 1e8;
    }
    for p in &account.positions {
        let j = p.market.0 as usize;
        let Some(mark) = markets[j].mark_price.map(price_f64) else { continue };
        let mark = if j == index { mark * factor } else { mark };
        let size = size_f64(p.size);
        value += size * mark - quote_f64(p.cost) - tables[j].maintenance_margin(size.abs(), mark);
    }
    value
}

/// The float liquidation map of market `index` (empty sides when it has no mark).
pub fn float_map(engine: &Engine, index: usize) -> Result<LiquidationMap> {
    let market = &engine.markets()[index];
    let Some(mark) = market.mark_price.map(price_f64) else { return Ok(LiquidationMap::default()) };
    let tables: Vec<FloatTiers> = engine.markets().iter().map(|m| FloatTiers::new(&m.params)).collect();
    let buckets = (BUCKET_RANGE / BUCKET_STEP).round() as usize;
    let mut down = vec![0.0; buckets];
    let mut up = vec![0.0; buckets];
    for account in engine.accounts() {
        let Some(position) = account.positions.iter().find(|p| p.market.0 as usize == index) else { continue };
        if slack(account, engine, &tables, index, 1.0) < 0.0 {
            continue;
        }
        let size = size_f64(position.size).abs();
        let sides: [(&mut Vec<f64>, f64); 2] = [(&mut down, -1.0), (&mut up, 1.0)];
        for (side, sign) in sides {
            let hit = (1..=buckets).find(|k| {
                let factor = 1.0 + sign * *k as f64 * BUCKET_STEP;
                factor > 0.0 && slack(account, engine, &tables, index, factor) < 0.0
            });
            if let Some(k) = hit {
                side[k - 1] += size * mark * (1.0 + sign * k as f64 * BUCKET_STEP);
                break;
            }
        }
    }
    let levels = |side: Vec<f64>, sign: f64| {
        side.into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0.0)
            .map(|(k, notional)| MapLevel { price: mark * (1.0 + sign * (k + 1) as f64 * BUCKET_STEP), notional })
            .collect()
    };
    Ok(LiquidationMap { mark, down: levels(down, -1.0), up: levels(up, 1.0) })
}
