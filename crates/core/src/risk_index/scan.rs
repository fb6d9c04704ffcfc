//! The full scan's fast path: the quick below-maintenance test of
//! [`crate::margin::below_maintenance_quick`] with per-market data hoisted out of the loop.
//!
//! Per scan, each market's mark and the rate and extent of its first bracket are read once. Per
//! account the test is then a handful of i128 operations: a position inside its market's first
//! bracket (nearly all of them) has MM = |size × mark| × first rate in both bases and both modes,
//! which reuses the notional already computed for its unrealized PnL. Anything else (larger
//! positions, possible overflow) goes to the general narrow path or, when undecided, to the exact
//! health computation of the caller. Same contract: `Some` only when certain.

use crate::config::{TierBasis, TierMode};
use crate::margin::{mul_i128, position_mm_fine_narrow, FINE_PER_QUOTE};
use crate::num::Price;
use crate::state::{Account, Asset, Market};

/// A market as the scan sees it.
#[derive(Clone, Copy, Debug)]
struct MarketView {
    mark: Option<i64>,
    /// The largest exposure (size raw in size basis, notional raw in notional basis) that lies
    /// entirely in the first bracket, and that bracket's MM rate raw.
    first_bracket_max: i128,
    first_rate: i128,
    notional_basis: bool,
}

pub(crate) struct ScanContext {
    markets: Vec<MarketView>,
    /// Per collateral asset: index raw × weight raw (Fine per raw unit of the asset), or `None`
    /// while its index market has no index (the asset counts zero).
    assets: Vec<Option<i128>>,
}

impl ScanContext {
    pub fn new(assets: &[Asset], markets: &[Market]) -> ScanContext {
        let assets = assets
            .iter()
            .map(|a| {
                let index = markets[a.index_market.0 as usize].index_price;
                index.map(|i| i128::from(i.raw()) * i128::from(a.weight.raw()))
            })
            .collect();
        let markets = markets
            .iter()
            .map(|m| {
                let params = &m.params;
                let next = params.tiers.get(1).map_or(i128::MAX, |t| t.from_raw);
                // Marginal: exposure x <= next is all in bracket 0; whole: x < next.
                let first_bracket_max = match params.tier_mode {
                    TierMode::Marginal => next,
                    TierMode::Whole => next.saturating_sub(1),
                };
                MarketView {
                    mark: m.mark_price.map(Price::raw),
                    first_bracket_max,
                    first_rate: i128::from(params.tiers[0].mm_rate.raw()),
                    notional_basis: params.tier_basis == TierBasis::Notional,
                }
            })
            .collect();
        ScanContext { markets, assets }
    }

    /// Exact margin (equity − Σ MM) at 10^-24, in i128; `None` where it might not fit.
    fn margin(&self, account: &Account, markets: &[Market]) -> Option<i128> {
        let mut margin = mul_i128(account.settlement.raw(), FINE_PER_QUOTE)?;
        for (asset, amount) in &account.collateral {
            if let Some(per_unit) = self.assets[asset.0 as usize] {
                margin = margin.checked_add(mul_i128(i128::from(amount.raw()), per_unit)?)?;
            }
        }
        for position in &account.positions {
            let view = &self.markets[position.market.0 as usize];
            let mark = view.mark?;
            let notional = i128::from(position.size.raw()) * i128::from(mark);
            let value = mul_i128(notional.checked_sub(position.cost.raw())?, FINE_PER_QUOTE)?;
            let exposure = if view.notional_basis { notional.abs() } else { i128::from(position.size.raw()).abs() };
            let mm = if exposure <= view.first_bracket_max {
                mul_i128(notional.abs(), view.first_rate)?
            } else {
                let params = &markets[position.market.0 as usize].params;
                position_mm_fine_narrow(params, position.size, Price::from_raw(mark))?
            };
            margin = margin.checked_add(value)?.checked_sub(mm)?;
        }
        Some(margin)
    }

    /// The margin of the most common account, one position inside its market's first bracket
    /// and no other collateral, in straight-line code: F × (settlement + size × mark − cost) −
    /// |size × mark| × first rate. `None` for any other account, or where a bound is not met.
    #[inline]
    fn margin_single(&self, account: &Account) -> Option<i128> {
        const LARGE: u128 = 1 << 99; // times a factor below 2^27 stays below 2^126
        let [position] = account.positions.as_slice() else { return None };
        if !account.collateral.is_empty() {
            return None;
        }
        let view = self.markets.get(position.market.0 as usize)?;
        let notional = i128::from(position.size.raw()) * i128::from(view.mark?);
        let exposure = if view.notional_basis { notional.abs() } else { i128::from(position.size.raw()).abs() };
        let value = account.settlement.raw().checked_add(notional.checked_sub(position.cost.raw())?)?;
        if exposure > view.first_bracket_max || value.unsigned_abs() >= LARGE || notional.unsigned_abs() >= LARGE {
            return None;
        }
        Some(value * FINE_PER_QUOTE - notional.abs() * view.first_rate)
    }

    /// As [`crate::margin::below_maintenance_quick`]: `Some` only when certain.
    #[inline]
    pub fn below_maintenance(&self, account: &Account, markets: &[Market]) -> Option<bool> {
        let margin = match self.margin_single(account) {
            Some(margin) => margin,
            None => self.margin(account, markets)?,
        };
        crate::margin::verdict_from_fine_margin(margin, account.positions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::num::{Quote, Size};
    use crate::state::{AssetId, MarketId, Position};

    /// Wherever the scan's test answers, it agrees with the exact health, across bases, modes,
    /// bracket edges and magnitudes up to the ends of the ranges.
    #[test]
    fn agrees_with_exact_health() {
        let engine = crate::Engine::new(&Config::embedded_default());
        let assets = engine.assets().to_vec();
        let mut markets = engine.markets().to_vec();
        markets[1].params.tier_basis = TierBasis::Notional;
        for (tier, from) in markets[1].params.tiers.iter_mut().zip([0i128, 5, 25, 100]) {
            tier.from_raw = from * 100_000 * Quote::ONE_RAW;
        }
        markets[2].params.tier_mode = TierMode::Whole;
        let mut next = crate::num::xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut decided, mut rounds) = (0, 0);
        for bits in [12u32, 30, 40, 50, 62] {
            for _ in 0..2_000 {
                rounds += 1;
                let magnitude = |n: u64| ((n >> (64 - bits)) as i64).max(1);
                for m in markets.iter_mut() {
                    m.mark_price = Some(Price::from_raw(magnitude(next())));
                    m.index_price = m.mark_price;
                }
                let mut account = Account::new("a");
                account.settlement = Quote::from_raw(i128::from(magnitude(next())) * (next() % 3) as i128 - 1_000);
                if next().is_multiple_of(4) {
                    account.collateral.push((AssetId(0), Size::from_raw(magnitude(next()))));
                }
                for market in 0..3u16 {
                    if next().is_multiple_of(2) {
                        let size = Size::from_raw(magnitude(next()) * if next().is_multiple_of(2) { 1 } else { -1 });
                        let cost = size.mul_price(Price::from_raw(magnitude(next())));
                        account.positions.push(Position { market: MarketId(market), size, cost });
                    }
                }
                let context = ScanContext::new(&assets, &markets);
                let quick = context.below_maintenance(&account, &markets);
                if let (Some(quick), Ok(health)) = (quick, crate::margin::health(&account, &assets, &markets)) {
                    decided += 1;
                    assert_eq!(quick, health.below_maintenance(), "{account:?}");
                }
            }
        }
        assert!(decided * 2 > rounds, "the fast path decides most cases ({decided} of {rounds})");
    }
}
