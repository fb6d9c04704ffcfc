//! The margin advisor of a running server (`[server.advisor]`): static (nothing
//! to do), dynamic (`solvent_models::advisor::PriceDrivenAdvisor`) or predictive
//! (`solvent_stress::predictive`: regime filter, liquidation map and cascade
//! model). It runs as a task that reads the engine every `interval_ms` and
//! submits its `params` lines, and `signal` lines with what it saw (regime
//! probability, cascade amplification), through the sequencer like any client:
//! they are journaled, so a replay of the journal reproduces the state hash.
//! At most `max_lines_per_minute` lines a minute (a token bucket); an update that
//! does not fit waits for the next interval. Metrics: the regime probability and
//! the amplification per market (gauges).

use crate::sequencer::{SequencerHandle, Shared};
use serde::Deserialize;
use solvent_core::{Config, Engine};
use solvent_stress::book::MarketSetup;
use solvent_stress::policy::{static_tiers, DynamicModel};
use solvent_stress::population::price_f64;
use solvent_stress::predictive::{PredictiveMarket, PredictiveModel, PredictiveSettings};
use std::sync::Arc;
use std::time::Duration;

/// Which policy the server's advisor runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AdvisorPolicy {
    /// The configuration's tiers: no advisor task.
    #[default]
    Static,
    Dynamic,
    Predictive,
}

/// The `[server.advisor]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdvisorSection {
    pub policy: AdvisorPolicy,
    /// The advisor samples the marks this often (its return step).
    pub interval_ms: u64,
    /// Most `params` + `signal` lines it submits in a minute.
    pub max_lines_per_minute: u32,
    /// V of the square-root impact law, as a multiple of the market's open interest per day.
    pub depth_oi_multiple_per_day: f64,
    /// Journal the regime probability and amplification as `signal` lines every this many intervals
    /// (and with every `params` line).
    pub signal_every_intervals: u32,
}

impl Default for AdvisorSection {
    fn default() -> Self {
        AdvisorSection {
            policy: AdvisorPolicy::Static,
            interval_ms: 60_000,
            max_lines_per_minute: 12,
            depth_oi_multiple_per_day: 10.0,
            signal_every_intervals: 5,
        }
    }
}

/// Per-market state of the running advisor.
enum MarketAdvisor {
    Dynamic(Box<solvent_models::advisor::PriceDrivenAdvisor>),
    Predictive(Box<PredictiveMarket>),
}

const GAUGE_REGIME: &str = "solvent_advisor_regime_probability";
const GAUGE_AMPLIFICATION: &str = "solvent_advisor_cascade_amplification";

/// The market as the stress lab's policies see it, at the engine's current mark.
fn setup(engine: &Engine, config: &Config, index: usize, depth_multiple: f64) -> Option<MarketSetup> {
    let market = &engine.markets()[index];
    let mark = market.mark_price?;
    let oi = solvent_stress::liqmap::open_interest(engine, index).max(1e-8);
    let cfg = &config.markets[index];
    Some(MarketSetup {
        name: cfg.name.clone(),
        index,
        reference_mark: mark,
        reference_price: price_f64(mark),
        tier_basis: cfg.params.tier_basis,
        initial_oi_base: oi,
        depth_base_per_day: depth_multiple * oi,
        backstop_capacity_base: 0.0,
        static_tiers: static_tiers(cfg),
    })
}

/// Token bucket of lines per minute.
struct Budget {
    tokens: f64,
    per_ms: f64,
    cap: f64,
    last_ms: u64,
}

impl Budget {
    fn take(&mut self, now_ms: u64, n: usize) -> bool {
        self.tokens = (self.tokens + now_ms.saturating_sub(self.last_ms) as f64 * self.per_ms).min(self.cap);
        self.last_ms = now_ms;
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

fn signal_line(ts: u64, market: &str, name: &str, value: f64) -> String {
    format!(r#"{{"type":"signal","ts":{ts},"market":"{market}","name":"{name}","value":"{value:.8}"}}"#)
}

/// What one interval wants to submit for one market.
fn step(
    slot: &mut Option<MarketAdvisor>,
    engine: &Engine,
    ctx: &Context,
    index: usize,
    tick: u64,
) -> Result<Vec<String>, String> {
    let market = &engine.markets()[index];
    let Some(mark) = market.mark_price.filter(|_| !market.frozen) else { return Ok(Vec::new()) };
    let ts = engine.last_ts();
    if slot.is_none() {
        let Some(setup) = setup(engine, &ctx.config, index, ctx.section.depth_oi_multiple_per_day) else {
            return Ok(Vec::new());
        };
        *slot = Some(match &ctx.models {
            Models::Dynamic(d) => {
                MarketAdvisor::Dynamic(Box::new(d.advisor(&setup, ctx.section.interval_ms).map_err(|e| e.to_string())?))
            }
            Models::Predictive(p) => {
                MarketAdvisor::Predictive(Box::new(PredictiveMarket::new(p, &setup).map_err(|e| e.to_string())?))
            }
        });
    }
    let name = ctx.config.markets[index].name.as_str();
    let mut lines = Vec::new();
    match slot.as_mut() {
        Some(MarketAdvisor::Dynamic(a)) => {
            if let Some(update) = a.on_price(ts, price_f64(mark)).map_err(|e| e.to_string())? {
                if update.changed {
                    lines.push(update.line);
                }
            }
        }
        Some(MarketAdvisor::Predictive(p)) => {
            if p.wants_map(ts) {
                let map = solvent_stress::liqmap::float_map(engine, index).map_err(|e| e.to_string())?;
                p.on_map(ts, &map).map_err(|e| e.to_string())?;
            }
            let oi = solvent_stress::liqmap::open_interest(engine, index);
            let update = p.on_price(ts, price_f64(mark), oi).map_err(|e| e.to_string())?;
            let v = p.view;
            metrics::gauge!(GAUGE_REGIME, "market" => name.to_string()).set(v.prob_high);
            let amplification = v.amplification_down.max(v.amplification_up);
            metrics::gauge!(GAUGE_AMPLIFICATION, "market" => name.to_string()).set(amplification);
            let every = u64::from(ctx.section.signal_every_intervals.max(1));
            if update.is_some() || tick.is_multiple_of(every) {
                lines.push(signal_line(ts, name, "regime_probability", v.prob_high));
                lines.push(signal_line(ts, name, "cascade_amplification", amplification));
            }
            lines.extend(update.map(|u| u.line));
        }
        None => {}
    }
    Ok(lines)
}

enum Models {
    Dynamic(DynamicModel),
    Predictive(PredictiveModel),
}

struct Context {
    section: AdvisorSection,
    config: Arc<Config>,
    models: Models,
}

/// The advisor task: runs until the server stops (aborted with the other background tasks).
pub async fn run(section: AdvisorSection, handle: SequencerHandle, shared: Arc<Shared>, config: Arc<Config>) {
    let step_s = (section.interval_ms / 1_000).max(1);
    let models = match section.policy {
        AdvisorPolicy::Static => return,
        AdvisorPolicy::Dynamic => {
            let settings = solvent_stress::StressOptions::default().advisor;
            match DynamicModel::new(settings, solvent_models::gap::DEFAULT_IMPACT_Y, 1) {
                Ok(m) => Models::Dynamic(m),
                Err(e) => return tracing::error!(error = %e, "advisor: cannot build the dynamic model"),
            }
        }
        AdvisorPolicy::Predictive => match PredictiveModel::new(PredictiveSettings::default(), step_s, 1) {
            Ok(m) => Models::Predictive(m),
            Err(e) => return tracing::error!(error = %e, "advisor: cannot build the predictive model"),
        },
    };
    let cap = f64::from(section.max_lines_per_minute.max(1));
    let mut budget = Budget { tokens: cap, per_ms: cap / 60_000.0, cap, last_ms: 0 };
    let ctx = Context { section, config, models };
    let markets = ctx.config.markets.len();
    let mut slots: Vec<Option<MarketAdvisor>> = (0..markets).map(|_| None).collect();
    let mut interval = tokio::time::interval(Duration::from_millis(ctx.section.interval_ms.max(10)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for tick in 0u64.. {
        interval.tick().await;
        let mut submit = Vec::new();
        {
            // The published view of the last batch: the advisor never holds up the sequencer.
            let view = shared.view.load();
            let engine = view.engine();
            let now_ms = engine.last_ts();
            for (index, slot) in slots.iter_mut().enumerate() {
                if !budget.take(now_ms, 0) {
                    break;
                }
                match step(slot, engine, &ctx, index, tick) {
                    Ok(lines) if budget.take(now_ms, lines.len()) => submit.extend(lines),
                    Ok(_) => tracing::warn!(market = index, "advisor: line budget spent, update dropped"),
                    Err(e) => tracing::error!(error = %e, market = index, "advisor: model error"),
                }
            }
        }
        if !submit.is_empty() {
            let _ = handle.submit(submit.into_iter().map(String::into_bytes).collect()).await;
        }
    }
}
