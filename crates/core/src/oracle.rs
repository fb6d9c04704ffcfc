//! Oracle aggregation: each whitelisted source's latest tick is stored as it arrives; the index is
//! the median of the latest ticks, and the mark equals the index.
//!
//! Judging happens when the index is computed (not when a tick arrives), so honest sources moving
//! together are never blocked by the order of their ticks. The defences of DESIGN section 6
//! (staleness, outliers, quorum freeze, jump clamp, signatures) extend `compute_index`.

use crate::engine::Engine;
use crate::effect::Effect;
use crate::error::Error;
use crate::event::PriceTick;
use crate::num::{Price, Round};
use crate::state::{Market, MarketId, Tick};

/// Median of `prices` (sorted in place). For an even count, the mean of the two middle values
/// rounded down. `None` for an empty slice.
pub fn median(prices: &mut [Price]) -> Option<Price> {
    if prices.is_empty() {
        return None;
    }
    prices.sort_unstable();
    let mid = prices.len() / 2;
    if prices.len() % 2 == 1 {
        return Some(prices[mid]);
    }
    let sum = i128::from(prices[mid - 1].raw()) + i128::from(prices[mid].raw());
    let mean = crate::num::div_round(sum, 2, Round::Down).ok()?;
    i64::try_from(mean).ok().map(Price::from_raw)
}

/// The index of a market from its sources' latest ticks.
pub fn compute_index(market: &Market) -> Option<Price> {
    let mut prices = [Price::ZERO; crate::config::MAX_SOURCES];
    let mut count = 0;
    for source in &market.sources {
        if let Some(tick) = source.latest {
            prices[count] = tick.price;
            count += 1;
        }
    }
    median(&mut prices[..count])
}

impl Engine {
    pub(crate) fn price(&mut self, _seq: u64, tick: &PriceTick, _out: &mut Vec<Effect>) -> Result<(), Error> {
        let market_id = self.market_id(&tick.market)?;
        let market = &mut self.markets[market_id.0 as usize];
        let source = market.sources.iter().position(|s| *s.name == *tick.source).ok_or_else(|| Error::UnknownSource {
            market: tick.market.clone(),
            source_name: tick.source.clone(),
        })?;
        let state = &mut market.sources[source];
        state.latest = Some(Tick { price: tick.price, ts: tick.ts, conf: tick.conf });
        state.counters.accepted += 1;
        self.refresh_mark(market_id);
        Ok(())
    }

    pub(crate) fn clock(&mut self, _seq: u64, _ts: u64, _out: &mut Vec<Effect>) -> Result<(), Error> {
        Ok(())
    }

    fn refresh_mark(&mut self, market_id: MarketId) {
        let market = &mut self.markets[market_id.0 as usize];
        if let Some(index) = compute_index(market) {
            market.index_price = Some(index);
            market.mark_price = Some(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(values: &[i64]) -> Vec<Price> {
        values.iter().map(|v| Price::from_int(*v).unwrap()).collect()
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&mut prices(&[3, 1, 2])), Some(Price::from_int(2).unwrap()));
        assert_eq!(median(&mut prices(&[4, 1, 3, 2])), Some(Price::parse("2.5").unwrap()));
        assert_eq!(median(&mut []), None);
        let mut odd_cents = vec![Price::from_raw(1), Price::from_raw(2)];
        assert_eq!(median(&mut odd_cents), Some(Price::from_raw(1)));
    }
}
