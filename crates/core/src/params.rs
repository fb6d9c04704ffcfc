//! `params` events: a partial update of one market's risk and oracle parameters, validated by the
//! same rules as the configuration file before anything changes.

use crate::config::MarketParams;
use crate::effect::{Effect, EffectKind, EffectSink};
use crate::engine::Engine;
use crate::error::Error;
use crate::event::ParamsUpdate;

impl Engine {
    pub(crate) fn params(&mut self, seq: u64, update: &ParamsUpdate, out: &mut Vec<Effect>) -> Result<(), Error> {
        let market_id = self.market_id(&update.market)?;
        let market = &self.markets[market_id.0 as usize];
        let next = patched(market.target_params(), update)?;
        if next.quorum as usize > market.sources.len() {
            return Err(Error::InvalidParams(format!(
                "quorum {} exceeds the {} sources of {}",
                next.quorum,
                market.sources.len(),
                update.market
            )));
        }
        // Backstop incentives: one offer per cliff range while a rebate is set.
        if next.incentive_rebate_rate.is_positive() {
            for range in &next.cliff_ranges {
                let kind = EffectKind::LiquidityIncentive {
                    market: update.market.clone(),
                    from: range.from,
                    to: range.to,
                    rebate_rate: next.incentive_rebate_rate,
                };
                out.emit(seq, update.ts, kind);
            }
        }
        let perp_before = self.markets[market_id.0 as usize].params.perp.clone();
        self.set_target_params(market_id, next, update.ts);
        self.sync_perp_state(market_id, &perp_before, update.ts);
        Ok(())
    }
}

/// Pure leaf: the parameters after `update`, validated.
pub fn patched(current: &MarketParams, update: &ParamsUpdate) -> Result<MarketParams, Error> {
    let mut next = current.clone();
    if let Some(basis) = update.tier_basis {
        if basis != current.tier_basis && update.tiers.is_none() {
            return Err(Error::InvalidParams("changing tier_basis needs a new `tiers` table in the same event".into()));
        }
        next.tier_basis = basis;
    }
    if let Some(mode) = update.tier_mode {
        next.tier_mode = mode;
    }
    if let Some(tiers) = &update.tiers {
        next.tiers = tiers.iter().map(|t| t.to_tier(next.tier_basis)).collect::<Result<_, _>>()?;
    }
    let keeps_brackets = next.tier_basis == current.tier_basis
        && next.tiers.len() == current.tiers.len()
        && next.tiers.iter().zip(&current.tiers).all(|(a, b)| a.from_raw == b.from_raw);
    if !current.mm_floors.is_empty() && !keeps_brackets {
        return Err(Error::ParamsOutOfBounds {
            field: "tiers".into(),
            reason: "a market with MM floors keeps its configured brackets (basis and `from` values)".into(),
        });
    }
    next.im_factor = update.im_factor.unwrap_or(next.im_factor);
    next.liquidation_buffer = update.liquidation_buffer.unwrap_or(next.liquidation_buffer);
    next.quorum = update.quorum.unwrap_or(next.quorum);
    next.max_age_ms = update.max_age_ms.unwrap_or(next.max_age_ms);
    next.max_deviation = update.max_deviation.unwrap_or(next.max_deviation);
    next.max_jump = update.max_jump.unwrap_or(next.max_jump);
    next.max_future_ms = update.max_future_ms.unwrap_or(next.max_future_ms);
    next.max_conf = update.max_conf.unwrap_or(next.max_conf);
    next.mark_ema_ms = update.mark_ema_ms.unwrap_or(next.mark_ema_ms);
    next.auction_start_premium = update.auction_start_premium.unwrap_or(next.auction_start_premium);
    next.auction_floor_discount = update.auction_floor_discount.unwrap_or(next.auction_floor_discount);
    next.auction_duration_ms = update.auction_duration_ms.unwrap_or(next.auction_duration_ms);
    next.adl_enabled = update.adl_enabled.unwrap_or(next.adl_enabled);
    next.max_trade_deviation = update.max_trade_deviation.unwrap_or(next.max_trade_deviation);
    next.im_addon_rate = update.im_addon_rate.unwrap_or(next.im_addon_rate);
    next.mm_phase_in_ms = update.mm_phase_in_ms.unwrap_or(next.mm_phase_in_ms);
    next.oi_cap = update.oi_cap.unwrap_or(next.oi_cap);
    if let Some(ranges) = &update.cliff_ranges {
        next.cliff_ranges.clone_from(ranges);
    }
    next.concentration_addon_rate = update.concentration_addon_rate.unwrap_or(next.concentration_addon_rate);
    next.incentive_rebate_rate = update.incentive_rebate_rate.unwrap_or(next.incentive_rebate_rate);
    patch_perp(&mut next.perp, &update.perp);
    patch_rules(&mut next.rules, &update.rules);
    patch_portfolio(&mut next.portfolio, &update.portfolio);
    next.validate()?;
    Ok(next)
}

/// The funding and skew fields of a `params` event.
fn patch_perp(next: &mut crate::config::PerpParams, update: &crate::event::PerpUpdate) {
    next.funding_enabled = update.funding_enabled.unwrap_or(next.funding_enabled);
    next.funding_interval_ms = update.funding_interval_ms.unwrap_or(next.funding_interval_ms);
    next.funding_interest_rate = update.funding_interest_rate.unwrap_or(next.funding_interest_rate);
    next.funding_clamp = update.funding_clamp.unwrap_or(next.funding_clamp);
    next.funding_cap = update.funding_cap.unwrap_or(next.funding_cap);
    next.skew_scale = update.skew_scale.unwrap_or(next.skew_scale);
    next.max_funding_velocity = update.max_funding_velocity.unwrap_or(next.max_funding_velocity);
    next.skew_alert = update.skew_alert.unwrap_or(next.skew_alert);
    next.protocol_delta_alert = update.protocol_delta_alert.unwrap_or(next.protocol_delta_alert);
}

/// The liquidation-rule fields of a `params` event.
fn patch_rules(next: &mut crate::config::LiquidationRules, update: &crate::event::RulesUpdate) {
    next.min_liquidation_notional = update.min_liquidation_notional.unwrap_or(next.min_liquidation_notional);
    next.liquidation_chunk_notional = update.liquidation_chunk_notional.unwrap_or(next.liquidation_chunk_notional);
    next.liquidation_chunk_rate = update.liquidation_chunk_rate.unwrap_or(next.liquidation_chunk_rate);
    next.liquidation_cooldown_ms = update.liquidation_cooldown_ms.unwrap_or(next.liquidation_cooldown_ms);
    next.backstop_mm_fraction = update.backstop_mm_fraction.unwrap_or(next.backstop_mm_fraction);
    next.dust_equity = update.dust_equity.unwrap_or(next.dust_equity);
    next.max_account_liquidation_notional =
        update.max_account_liquidation_notional.unwrap_or(next.max_account_liquidation_notional);
    next.max_event_liquidation_notional =
        update.max_event_liquidation_notional.unwrap_or(next.max_event_liquidation_notional);
}

/// The portfolio-margin fields of a `params` event.
fn patch_portfolio(next: &mut crate::config::PortfolioParams, update: &crate::event::PortfolioUpdate) {
    next.pm_range = update.pm_range.unwrap_or(next.pm_range);
    next.pm_buckets = update.pm_buckets.unwrap_or(next.pm_buckets);
    next.pm_correlation = update.pm_correlation.unwrap_or(next.pm_correlation);
    next.pm_mm_factor = update.pm_mm_factor.unwrap_or(next.pm_mm_factor);
    next.pm_im_factor = update.pm_im_factor.unwrap_or(next.pm_im_factor);
    next.pm_floor = update.pm_floor.unwrap_or(next.pm_floor);
}
