//! Options of a stress run, their defaults and their checks.

use crate::error::{check, Result};
use std::path::PathBuf;

/// Where the accounts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum PopulationSource {
    /// `accounts` synthetic accounts drawn from the run's seed.
    Synthetic { accounts: usize },
    /// A `solvent replay --state-out` dump, rebuilt as deposits and trades.
    StateFile(PathBuf),
}

/// Which scenario sets to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioSelection {
    /// The Black Thursday minute path of `solvent_models::scenario`.
    pub historical: bool,
    /// -10%, -30%, -50% within a minute, and a frozen-oracle gap with thaw.
    pub shocks: bool,
    /// SVJD Monte Carlo paths.
    pub monte_carlo: bool,
}

impl ScenarioSelection {
    /// All three sets.
    pub const ALL: ScenarioSelection = ScenarioSelection { historical: true, shocks: true, monte_carlo: true };
}

/// Settings of the dynamic-margin advisor (the rest are `AdvisorConfig::new` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvisorSettings {
    /// Liquidation horizon of the vol add-on and of the gap premium, seconds.
    pub horizon_s: f64,
    /// Half-life of the EWMA of sampled returns, seconds.
    pub ewma_half_life_s: f64,
    /// Monte Carlo paths per jump-count stratum of the gap premium (at least 1,000).
    pub gap_paths_per_stratum: usize,
}

/// Everything a stress run depends on. Same options and seed, same report.
#[derive(Debug, Clone, PartialEq)]
pub struct StressOptions {
    pub seed: u64,
    pub population: PopulationSource,
    /// TOML configuration; the embedded default when `None`.
    pub config: Option<PathBuf>,
    pub scenarios: ScenarioSelection,
    /// Monte Carlo paths (`--paths`).
    pub paths: usize,
    /// Length of each Monte Carlo path, seconds.
    pub mc_horizon_s: u64,
    /// Time between Monte Carlo steps (one price update per step), seconds.
    pub mc_step_s: u64,
    /// Starting annual variance of the SVJD paths; `None` = the model's long-run mean.
    pub mc_v0_annual_var: Option<f64>,
    /// Replay every n-th minute of the historical path (1 = every minute).
    pub historical_stride_min: usize,
    /// Book depth per day of each market, as a multiple of its initial open interest
    /// (V of the square-root law, in base units per day).
    pub depth_oi_multiple_per_day: f64,
    /// Y of the square-root law (`solvent_models::gap::ImpactModel`).
    pub impact_y: f64,
    /// What backstop makers absorb per auction minute, as a fraction of the market's
    /// initial open interest; the rest stays in inventory and is re-auctioned.
    pub backstop_oi_fraction_per_min: f64,
    /// Makers answer an auction this long after it starts (the price has decayed).
    pub backstop_take_delay_ms: u64,
    /// Initial insurance fund of a synthetic population, as a fraction of the initial
    /// long open-interest notional (a state file brings its own fund).
    pub insurance_fund_oi_fraction: f64,
    /// Oracle sources fed per market (1..=sources in the config); quorum is a majority.
    pub oracle_sources: usize,
    pub advisor: AdvisorSettings,
    /// Settings of the predictive policy.
    pub predictive: crate::predictive::PredictiveSettings,
    /// Multipliers k of the static frontier: the static table x k, each run as its
    /// own policy (1 is the static policy itself and is not repeated).
    pub frontier: Vec<f64>,
    /// A user's price path (`--scenario FILE`): run instead of the built-in sets
    /// when `scenarios` selects none of them, else beside them.
    pub scenario_file: Option<PathBuf>,
    /// The cascade predictor's evaluation (`paths` 0 = not run).
    pub predictor: crate::predictor::PredictorOptions,
    /// Settlement delay and congestion of the backstop makers: the static and the
    /// predictive policy also run congested, beside their runs without congestion.
    pub congestion: crate::congestion::CongestionSettings,
}

impl Default for StressOptions {
    fn default() -> Self {
        StressOptions {
            seed: 1,
            population: PopulationSource::Synthetic { accounts: 2_000 },
            config: None,
            scenarios: ScenarioSelection::ALL,
            paths: 10_000,
            mc_horizon_s: 6 * 3_600,
            mc_step_s: 60,
            mc_v0_annual_var: None,
            historical_stride_min: 1,
            depth_oi_multiple_per_day: 10.0,
            impact_y: solvent_models::gap::DEFAULT_IMPACT_Y,
            backstop_oi_fraction_per_min: 0.02,
            backstop_take_delay_ms: 20_000,
            insurance_fund_oi_fraction: 0.01,
            oracle_sources: 1,
            advisor: AdvisorSettings { horizon_s: 900.0, ewma_half_life_s: 3_600.0, gap_paths_per_stratum: 10_000 },
            predictive: crate::predictive::PredictiveSettings::default(),
            frontier: vec![0.6, 0.8, 1.2, 1.4, 1.6],
            scenario_file: None,
            predictor: crate::predictor::PredictorOptions::default(),
            congestion: crate::congestion::CongestionSettings::default(),
        }
    }
}

fn finite_positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl StressOptions {
    /// Checks every option's domain.
    pub fn validate(&self) -> Result<()> {
        if let PopulationSource::Synthetic { accounts } = self.population {
            check("accounts", accounts, (1..=1_000_000).contains(&accounts), "must be in 1..=1,000,000")?;
        }
        let s = self.scenarios;
        let any = s.historical || s.shocks || s.monte_carlo || self.scenario_file.is_some();
        check("scenarios", (), any, "select at least one scenario set or a scenario file")?;
        if s.monte_carlo {
            check("paths", self.paths, self.paths >= 1, "must be at least 1")?;
            check("mc_step_s", self.mc_step_s, self.mc_step_s >= 1, "must be at least 1 second")?;
            let steps = self.mc_horizon_s / self.mc_step_s.max(1);
            check("mc_horizon_s", steps, (1..=100_000).contains(&steps), "must hold 1..=100,000 steps")?;
        }
        if let Some(v0) = self.mc_v0_annual_var {
            check("mc_v0_annual_var", v0, v0.is_finite() && v0 >= 0.0, "must be finite and >= 0")?;
        }
        let stride = self.historical_stride_min;
        check("historical_stride_min", stride, (1..=1_440).contains(&stride), "must be in 1..=1440")?;
        let depth = self.depth_oi_multiple_per_day;
        check("depth_oi_multiple_per_day", depth, finite_positive(depth), "must be finite and > 0")?;
        check("impact_y", self.impact_y, self.impact_y.is_finite() && self.impact_y >= 0.0, "must be >= 0")?;
        let backstop = self.backstop_oi_fraction_per_min;
        check("backstop_oi_fraction_per_min", backstop, backstop.is_finite() && backstop >= 0.0, "must be >= 0")?;
        let fund = self.insurance_fund_oi_fraction;
        check("insurance_fund_oi_fraction", fund, fund.is_finite() && fund >= 0.0, "must be >= 0")?;
        check("oracle_sources", self.oracle_sources, (1..=32).contains(&self.oracle_sources), "must be in 1..=32")?;
        let a = self.advisor;
        check("advisor.horizon_s", a.horizon_s, finite_positive(a.horizon_s), "must be > 0")?;
        check("advisor.ewma_half_life_s", a.ewma_half_life_s, finite_positive(a.ewma_half_life_s), "must be > 0")?;
        let gap_paths = a.gap_paths_per_stratum;
        check(
            "advisor.gap_paths_per_stratum",
            gap_paths,
            (1_000..=10_000_000).contains(&gap_paths),
            "must be in 1,000..=10,000,000",
        )?;
        check("frontier", self.frontier.len(), self.frontier.len() <= 32, "at most 32 multipliers")?;
        for &k in &self.frontier {
            check("frontier", k, k.is_finite() && (0.1..=10.0).contains(&k), "each multiplier must be in 0.1..=10")?;
        }
        self.predictive.validate()?;
        self.congestion.validate()?;
        let p = self.predictor;
        check("predictor.paths", p.paths, p.paths == 0 || (4..=1_000_000).contains(&p.paths), "0, or 4..=1,000,000")?;
        check("predictor.fall", p.fall, p.fall > 0.0 && p.fall < 1.0, "must be in (0, 1)")?;
        check("predictor.horizon_steps", p.horizon_steps, (1..=10_000).contains(&p.horizon_steps), "1..=10,000")?;
        check("predictor.sample_every", p.sample_every, (1..=10_000).contains(&p.sample_every), "1..=10,000")?;
        Ok(())
    }

    /// Monte Carlo steps per path.
    pub fn mc_steps(&self) -> usize {
        (self.mc_horizon_s / self.mc_step_s.max(1)) as usize
    }
}
