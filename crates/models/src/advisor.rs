//! Dynamic margin advisor: turns a volatility forecast and a gap premium
//! into per-bracket maintenance-margin rates and emits them as a `params`
//! event, the only way model output enters the core.
//!
//! For bracket i with static rate `tier_i`:
//!
//! ```text
//! addon      = z(confidence) * sigma_horizon          (z = standard normal quantile)
//! dynamic_i  = addon + gap_es + 1.5 * Y * sigma_daily * sqrt(Q_i / V)
//! target_i   = max(tier_i, min(dynamic_i, rate_cap))
//! rate_i     = clamp(target_i, prev_i - max_step_down, prev_i + max_step_up)
//! rate_i     = max(rate_i, rate_{i-1})                 (non-decreasing with size)
//! ```
//!
//! `Q_i` is the bracket's upper edge (the next bracket's `from`); the last
//! bracket uses `last_bracket_size_factor * from`. The 1.5 is the marginal
//! form of the square-root impact cost: with marginal brackets a position of
//! size P pays the integral of the rates up to P, and
//! d(P * impact(P)) / dP = 1.5 impact(P), so rates set this way cover
//! `P * (addon + gap_es) + P * impact(P)` for every P up to the last
//! bracket's Q. Rates are rounded UP to 8 decimals (the core's Rate) and
//! written as plain decimal strings; `from` and `penalty_rate` are passed
//! through exactly as given.

use crate::error::{non_negative, open_interval, ModelError, Result};
use crate::gap::ImpactModel;
use crate::stats::normal_quantile;
use crate::vol::{Ewma, VolForecast};
use serde::{Deserialize, Serialize};

/// Decimals of the core's Rate.
pub const RATE_DECIMALS: u32 = 8;
const RATE_SCALE: u64 = 100_000_000;
/// Documented default cap on any advised MM rate (0.5 = 50% of notional,
/// i.e. with im_factor 2 no leverage above 1x).
pub const DEFAULT_RATE_CAP: f64 = 0.5;

/// One bracket of a tier table, decimals as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub from: String,
    pub mm_rate: String,
    pub penalty_rate: String,
}

fn decimal_error(value: &str, reason: &str) -> ModelError {
    ModelError::Decimal { value: value.to_string(), reason: reason.to_string() }
}

/// Splits a plain non-negative decimal ("12", "0.025") into its digit runs.
fn split_decimal(s: &str) -> Result<(&str, &str)> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(decimal_error(s, "expected a plain non-negative decimal like 0.025"));
    }
    Ok((int, frac))
}

/// Parses a rate into units of 1e-8. More than 8 decimals is an error.
pub fn parse_rate_units(s: &str) -> Result<u64> {
    let (int, frac) = split_decimal(s)?;
    if frac.len() > RATE_DECIMALS as usize {
        return Err(decimal_error(s, "more than 8 decimals"));
    }
    let padded = format!("{frac:0<8}");
    let i: u64 = int.parse().map_err(|_| decimal_error(s, "integer part too large"))?;
    let f: u64 = padded.parse().map_err(|_| decimal_error(s, "bad fraction"))?;
    i.checked_mul(RATE_SCALE).and_then(|v| v.checked_add(f)).ok_or_else(|| decimal_error(s, "overflow"))
}

/// Parses a plain non-negative decimal (any number of decimals) as f64.
pub fn parse_decimal_f64(s: &str) -> Result<f64> {
    split_decimal(s)?;
    s.parse::<f64>().map_err(|_| decimal_error(s, "not a number"))
}

/// Formats units of 1e-8 as a plain decimal string without trailing zeros
/// or exponent ("0.025", "1", "0.00000001").
pub fn format_rate_units(units: u64) -> String {
    let (int, frac) = (units / RATE_SCALE, units % RATE_SCALE);
    if frac == 0 {
        return int.to_string();
    }
    let f = format!("{frac:08}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// Rounds a rate up to units of 1e-8. Float noise within 1e-6 of a unit
/// (e.g. 0.025 * 1e8 = 2500000.0000000005) snaps to that unit.
pub fn rate_units_ceil(rate: f64) -> Result<u64> {
    if !rate.is_finite() || !(0.0..=1_000.0).contains(&rate) {
        return Err(ModelError::InvalidParameter { name: "rate", reason: format!("must be in [0, 1000], got {rate}") });
    }
    let x = rate * RATE_SCALE as f64;
    let nearest = x.round();
    Ok(if (x - nearest).abs() < 1e-6 { nearest } else { x.ceil() } as u64)
}

#[derive(Serialize)]
struct ParamsEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ts: u64,
    market: &'a str,
    tiers: &'a [Tier],
}

/// `{"type":"params","ts":..,"market":..,"tiers":[..]}` as one JSON line
/// (no trailing newline).
pub fn params_event_line(ts_ms: u64, market: &str, tiers: &[Tier]) -> String {
    let event = ParamsEvent { kind: "params", ts: ts_ms, market, tiers };
    // Serializing plain strings and integers cannot fail.
    serde_json::to_string(&event).unwrap_or_default()
}

/// Advisor settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisorConfig {
    pub market: String,
    /// Confidence of the vol add-on, default 0.99.
    pub confidence: f64,
    /// Largest rise of a bracket's rate per update (absolute), default 0.01.
    pub max_step_up: f64,
    /// Largest fall per update (absolute), default 0.0025.
    pub max_step_down: f64,
    /// Cap on advised rates, default [`DEFAULT_RATE_CAP`].
    pub rate_cap: f64,
    /// Q of the last (unbounded) bracket = this factor x its `from`, default 2.
    pub last_bracket_size_factor: f64,
}

impl AdvisorConfig {
    pub fn new(market: &str) -> Self {
        Self {
            market: market.to_string(),
            confidence: 0.99,
            max_step_up: 0.01,
            max_step_down: 0.0025,
            rate_cap: DEFAULT_RATE_CAP,
            last_bracket_size_factor: 2.0,
        }
    }
}

/// Risk numbers of one update (all fractions of notional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskInputs {
    /// Forecast volatility of the price move over the liquidation horizon.
    pub sigma_horizon: f64,
    /// Gap premium before impact (ES from `gap`).
    pub gap_es: f64,
    /// Market impact of liquidating a bracket's size; `None` = no impact term.
    pub impact: Option<ImpactModel>,
}

/// Result of one update.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisorUpdate {
    pub ts_ms: u64,
    pub tiers: Vec<Tier>,
    /// Any bracket rate differs from the previous update's.
    pub changed: bool,
    /// The `params` event line.
    pub line: String,
}

/// Stateful advisor for one market.
#[derive(Debug, Clone, PartialEq)]
pub struct MarginAdvisor {
    config: AdvisorConfig,
    tiers: Vec<Tier>,
    tier_units: Vec<u64>,
    bracket_sizes: Vec<f64>,
    current_units: Vec<u64>,
    last_ts_ms: Option<u64>,
    z: f64,
}

fn validate_tiers(tiers: &[Tier]) -> Result<(Vec<u64>, Vec<f64>)> {
    if tiers.is_empty() {
        return Err(ModelError::TierTable("no tiers".into()));
    }
    let units = tiers.iter().map(|t| parse_rate_units(&t.mm_rate)).collect::<Result<Vec<_>>>()?;
    let froms = tiers.iter().map(|t| parse_decimal_f64(&t.from)).collect::<Result<Vec<_>>>()?;
    for t in tiers {
        parse_rate_units(&t.penalty_rate)?;
    }
    if froms[0] != 0.0 {
        return Err(ModelError::TierTable("the first bracket must start at 0".into()));
    }
    if froms.windows(2).any(|w| w[1] <= w[0]) {
        return Err(ModelError::TierTable("`from` must increase strictly".into()));
    }
    if units.windows(2).any(|w| w[1] < w[0]) {
        return Err(ModelError::TierTable("mm_rate must not decrease with size".into()));
    }
    Ok((units, froms))
}

impl MarginAdvisor {
    /// Validates the config and the static table; the static rates are the
    /// starting point of the rate limits.
    pub fn new(config: AdvisorConfig, tiers: Vec<Tier>) -> Result<Self> {
        let z = normal_quantile(open_interval("confidence", config.confidence, 0.5, 1.0)?)?;
        non_negative("max_step_up", config.max_step_up)?;
        non_negative("max_step_down", config.max_step_down)?;
        non_negative("last_bracket_size_factor", config.last_bracket_size_factor)?;
        let cap = rate_units_ceil(config.rate_cap)?;
        let (tier_units, froms) = validate_tiers(&tiers)?;
        if tier_units.iter().any(|u| *u > cap) || cap > RATE_SCALE {
            return Err(ModelError::TierTable("rate_cap must be <= 1 and >= every tier rate".into()));
        }
        let last = froms.len() - 1;
        let bracket_sizes = (0..=last)
            .map(|i| if i < last { froms[i + 1] } else { froms[last] * config.last_bracket_size_factor })
            .collect();
        Ok(Self { current_units: tier_units.clone(), config, tiers, tier_units, bracket_sizes, last_ts_ms: None, z })
    }

    /// z(confidence) x sigma_horizon.
    pub fn vol_addon(&self, sigma_horizon: f64) -> f64 {
        self.z * sigma_horizon
    }

    /// Liquidated size Q assumed for each bracket.
    pub fn bracket_sizes(&self) -> &[f64] {
        &self.bracket_sizes
    }

    /// Unrounded, unlimited dynamic rate of each bracket (before the max
    /// with the tier rate and the cap).
    pub fn dynamic_rates(&self, inputs: &RiskInputs) -> Result<Vec<f64>> {
        let base = self.vol_addon(non_negative("sigma_horizon", inputs.sigma_horizon)?)
            + non_negative("gap_es", inputs.gap_es)?;
        Ok(self
            .bracket_sizes
            .iter()
            .map(|q| base + inputs.impact.map_or(0.0, |m| m.marginal_impact_fraction(*q)))
            .collect())
    }

    /// Applies one update at `ts_ms` (must not go backwards).
    pub fn update(&mut self, ts_ms: u64, inputs: &RiskInputs) -> Result<AdvisorUpdate> {
        if let Some(previous_ms) = self.last_ts_ms.filter(|p| ts_ms < *p) {
            return Err(ModelError::TimeWentBackwards { ts_ms, previous_ms });
        }
        let cap = rate_units_ceil(self.config.rate_cap)?;
        let up = (self.config.max_step_up * RATE_SCALE as f64).floor() as u64;
        let down = (self.config.max_step_down * RATE_SCALE as f64).floor() as u64;
        let dynamic = self.dynamic_rates(inputs)?;
        let mut next = Vec::with_capacity(dynamic.len());
        for (i, d) in dynamic.iter().enumerate() {
            let dyn_units = rate_units_ceil(d.min(self.config.rate_cap))?.min(cap);
            let target = dyn_units.max(self.tier_units[i]);
            let prev = self.current_units[i];
            let mut rate = target.clamp(prev.saturating_sub(down), prev.saturating_add(up));
            rate = rate.max(self.tier_units[i]);
            if let Some(&below) = next.last() {
                rate = rate.max(below);
            }
            next.push(rate);
        }
        let changed = next != self.current_units;
        self.current_units = next;
        self.last_ts_ms = Some(ts_ms);
        let tiers = self.current_tiers();
        let line = params_event_line(ts_ms, &self.config.market, &tiers);
        Ok(AdvisorUpdate { ts_ms, tiers, changed, line })
    }

    /// The table as currently advised (static `from` and penalties).
    pub fn current_tiers(&self) -> Vec<Tier> {
        self.tiers
            .iter()
            .zip(&self.current_units)
            .map(|(t, u)| Tier { mm_rate: format_rate_units(*u), ..t.clone() })
            .collect()
    }

    pub fn config(&self) -> &AdvisorConfig {
        &self.config
    }
}

/// Settings of [`PriceDrivenAdvisor`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceDrivenConfig {
    /// Prices are sampled into returns on this grid.
    pub sample_interval_ms: u64,
    /// An update (params event) at most this often.
    pub update_interval_ms: u64,
    /// Liquidation horizon of the vol add-on.
    pub horizon_s: f64,
    /// EWMA decay per sample.
    pub ewma_lambda: f64,
    /// Square-root law Y and daily volume/depth V; `None` = no impact term.
    pub impact_y_and_volume: Option<(f64, f64)>,
}

/// Feeds on prices (from the engine's state or effects), keeps an EWMA of
/// sampled returns and calls the [`MarginAdvisor`] with a fixed gap ES (the
/// jump-only ES of `gap`, which does not depend on the current variance).
#[derive(Debug, Clone, PartialEq)]
pub struct PriceDrivenAdvisor {
    advisor: MarginAdvisor,
    cfg: PriceDrivenConfig,
    gap_es: f64,
    ewma: Ewma,
    last_sample: Option<(u64, f64)>,
    last_update_ms: Option<u64>,
}

impl PriceDrivenAdvisor {
    /// `initial_variance_per_sample` seeds the EWMA (e.g. from a GARCH fit).
    pub fn new(
        advisor: MarginAdvisor,
        cfg: PriceDrivenConfig,
        gap_es: f64,
        initial_variance_per_sample: f64,
    ) -> Result<Self> {
        if cfg.sample_interval_ms == 0 {
            return Err(ModelError::InvalidParameter { name: "sample_interval_ms", reason: "must be > 0".into() });
        }
        let ewma = Ewma::new(cfg.ewma_lambda, initial_variance_per_sample)?;
        Ok(Self {
            advisor,
            cfg,
            gap_es: non_negative("gap_es", gap_es)?,
            ewma,
            last_sample: None,
            last_update_ms: None,
        })
    }

    /// Takes one price. A return is recorded once a sample interval has
    /// passed (a return spanning k intervals counts as k returns of r/sqrt(k)
    /// each); an update is returned once an update interval has passed.
    pub fn on_price(&mut self, ts_ms: u64, price: f64) -> Result<Option<AdvisorUpdate>> {
        crate::error::positive("price", price)?;
        let Some((t0, p0)) = self.last_sample else {
            self.last_sample = Some((ts_ms, price));
            return Ok(None);
        };
        let elapsed = ts_ms.saturating_sub(t0);
        if elapsed >= self.cfg.sample_interval_ms {
            let k = elapsed / self.cfg.sample_interval_ms;
            let r = (price / p0).ln() / (k as f64).sqrt();
            for _ in 0..k.min(10_000) {
                self.ewma.update(r)?;
            }
            self.last_sample = Some((ts_ms, price));
        }
        if self.last_update_ms.is_some_and(|u| ts_ms < u.saturating_add(self.cfg.update_interval_ms)) {
            return Ok(None);
        }
        self.last_update_ms = Some(ts_ms);
        let sample_s = self.cfg.sample_interval_ms as f64 / 1_000.0;
        let sigma_daily = self.ewma.horizon_vol(86_400.0 / sample_s);
        let impact = match self.cfg.impact_y_and_volume {
            Some((y, v)) => Some(ImpactModel::new(y, sigma_daily, v)?),
            None => None,
        };
        let inputs = RiskInputs {
            sigma_horizon: self.ewma.horizon_vol(self.cfg.horizon_s / sample_s),
            gap_es: self.gap_es,
            impact,
        };
        self.advisor.update(ts_ms, &inputs).map(Some)
    }

    pub fn advisor(&self) -> &MarginAdvisor {
        &self.advisor
    }

    pub fn ewma(&self) -> &Ewma {
        &self.ewma
    }
}

#[cfg(test)]
mod tests;
