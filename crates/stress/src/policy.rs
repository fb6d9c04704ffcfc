//! Margin policies compared by the lab.
//!
//! - `static`: the configuration's tier tables (the seed's static tiers).
//! - `dynamic`: the same tables raised by `solvent_models::advisor` as the path
//!   unfolds; its output enters the engine only as `params` event lines.
//! - `static_scaled`: the static tables with every MM rate multiplied by the
//!   dynamic policy's average MM multiplier over the run (see [`crate::run`]).

use crate::book::{Book, MarketSetup};
use crate::error::Result;
use crate::options::AdvisorSettings;
use serde::Serialize;
use solvent_core::config::{MarketConfig, TierBasis};
use solvent_core::{Quote, Size};
use solvent_models::advisor::{
    format_rate_units, parse_rate_units, AdvisorConfig, MarginAdvisor, PriceDrivenAdvisor, PriceDrivenConfig, Tier,
};
use solvent_models::gap::{simulate_gap, GapConfig};
use solvent_models::svjd::SvjdParams;
use solvent_models::SECONDS_PER_YEAR;

/// Which policy a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Static,
    Dynamic,
    StaticScaled,
    Predictive,
}

impl PolicyKind {
    /// All four, in report order.
    pub const ALL: [PolicyKind; 4] =
        [PolicyKind::Static, PolicyKind::Dynamic, PolicyKind::StaticScaled, PolicyKind::Predictive];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Static => "static",
            PolicyKind::Dynamic => "dynamic",
            PolicyKind::StaticScaled => "static_scaled",
            PolicyKind::Predictive => "predictive",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            PolicyKind::Static => "the configuration's static tier tables (the seed's tiers)",
            PolicyKind::Dynamic => {
                "static tables raised by the advisor: max(tier, z sigma_h + gap ES + impact), rate-limited"
            }
            PolicyKind::StaticScaled => "static tables with every MM rate x the dynamic policy's average MM multiplier",
            PolicyKind::Predictive => {
                "static tables x k, k from the regime forecast and the cascade amplification: floors in calm, raised ahead of moves (phased in), add-ons in cliff ranges"
            }
        }
    }
}

/// A market's static tier table as the advisor's decimal strings.
pub fn static_tiers(market: &MarketConfig) -> Vec<Tier> {
    market
        .params
        .tiers
        .iter()
        .map(|t| Tier {
            from: match market.params.tier_basis {
                TierBasis::Size => Size::from_raw(t.from_raw as i64).to_string(),
                TierBasis::Notional => Quote::from_raw(t.from_raw).to_string(),
            },
            mm_rate: t.mm_rate.to_string(),
            penalty_rate: t.penalty_rate.to_string(),
        })
        .collect()
}

/// `tiers` with every MM rate x `multiplier` (rounded up to 8 decimals, capped at 1);
/// `from` and penalty rates unchanged. A multiplier below 1 is taken as 1.
pub fn scaled_tiers(tiers: &[Tier], multiplier: f64) -> Result<Vec<Tier>> {
    let k = if multiplier.is_finite() { multiplier.max(1.0) } else { 1.0 };
    tiers
        .iter()
        .map(|t| {
            let units = parse_rate_units(&t.mm_rate)?;
            let scaled = ((units as f64 * k).ceil() as u64).clamp(units, 100_000_000);
            Ok(Tier { mm_rate: format_rate_units(scaled), ..t.clone() })
        })
        .collect()
}

/// The dynamic policy's model inputs, computed once per stress run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynamicModel {
    /// Jump-only expected shortfall over the horizon (worse side), fraction of notional.
    pub gap_es: f64,
    /// Long-run total annual variance of the SVJD model (seeds the EWMA).
    pub long_run_total_var: f64,
    pub settings: AdvisorSettings,
    pub impact_y: f64,
}

impl DynamicModel {
    /// Gap ES by stratified Monte Carlo under the BTC default SVJD parameters.
    pub fn new(settings: AdvisorSettings, impact_y: f64, seed: u64) -> Result<Self> {
        let params = SvjdParams::btc_default();
        let gap_config =
            GapConfig { seed, paths_per_stratum: settings.gap_paths_per_stratum, ..GapConfig::new(settings.horizon_s) };
        let gap = simulate_gap(&params, params.long_run_variance(), &gap_config)?;
        Ok(DynamicModel {
            gap_es: gap.worst_es(),
            long_run_total_var: params.long_run_total_variance(),
            settings,
            impact_y,
        })
    }

    /// One fresh advisor per market of the book, sampling every `sample_ms`.
    pub fn advisors(&self, book: &Book, sample_ms: u64) -> Result<Vec<PriceDrivenAdvisor>> {
        book.markets.iter().map(|m| self.advisor(m, sample_ms)).collect()
    }

    /// A fresh advisor for one market, sampling every `sample_ms`.
    pub fn advisor(&self, market: &MarketSetup, sample_ms: u64) -> Result<PriceDrivenAdvisor> {
        let sample_s = sample_ms as f64 / 1_000.0;
        let lambda = 0.5f64.powf(sample_s / self.settings.ewma_half_life_s);
        let depth_tier_units = match market.tier_basis {
            TierBasis::Size => market.depth_base_per_day,
            TierBasis::Notional => market.depth_base_per_day * market.reference_price,
        };
        let config = PriceDrivenConfig {
            sample_interval_ms: sample_ms,
            update_interval_ms: sample_ms,
            horizon_s: self.settings.horizon_s,
            ewma_lambda: lambda,
            impact_y_and_volume: (self.impact_y > 0.0).then_some((self.impact_y, depth_tier_units)),
        };
        let advisor = MarginAdvisor::new(AdvisorConfig::new(&market.name), market.static_tiers.clone())?;
        let initial_variance = self.long_run_total_var * sample_s / SECONDS_PER_YEAR;
        Ok(PriceDrivenAdvisor::new(advisor, config, self.gap_es, initial_variance)?)
    }
}
