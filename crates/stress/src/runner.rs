//! The stress run: build the books, run every scenario under the static and the
//! dynamic policy (in parallel, one engine per run), derive the scale multiplier,
//! run the scaled static policy, then assemble the report.

use crate::book::{build_book, Book};
use crate::driver::{run_scenario_with, Advisors, RunRequest};
use crate::error::{check, Result, StressError};
use crate::metrics::{RunMetrics, Trace};
use crate::options::{PopulationSource, StressOptions};
use crate::policy::{scaled_tiers, DynamicModel, PolicyKind};
use crate::population::{self, Population};
use crate::predictive::{multiplied, PredictiveModel};
use crate::report::{ChartSet, StressReport};
use crate::scenario::{self, Scenario};
use rayon::prelude::*;
use solvent_core::Config;
use solvent_models::advisor::Tier;
use solvent_models::svjd::SvjdParams;

/// What every job needs.
pub(crate) struct Context<'a> {
    pub options: &'a StressOptions,
    pub fixed: &'a [Scenario],
    pub dynamic: &'a DynamicModel,
    pub predictive: &'a PredictiveModel,
    pub v0_annual_var: f64,
}

/// A finished run without its engine.
#[derive(Debug, Clone)]
pub(crate) struct JobResult {
    pub metrics: RunMetrics,
    pub trace: Option<Trace>,
}

/// All runs of one policy: fixed scenarios in order, then Monte Carlo paths in order.
#[derive(Debug, Clone)]
pub(crate) struct PolicyRuns {
    pub policy: PolicyKind,
    pub fixed: Vec<JobResult>,
    pub monte_carlo: Vec<RunMetrics>,
}

/// The configuration of the run (embedded default unless a file is given). A Monte Carlo step
/// longer than the engine's `max_clock_jump_ms` would have every clock event refused: said here.
pub fn load_config(options: &StressOptions) -> Result<Config> {
    let config = match &options.config {
        None => Config::embedded_default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StressError::Config { path: path.clone(), reason: e.to_string() })?;
            Config::from_toml(&text).map_err(|e| StressError::Config { path: path.clone(), reason: e.to_string() })?
        }
    };
    let step_ms = options.mc_step_s.saturating_mul(1_000);
    let reason = format!(
        "a step longer than the engine's max_clock_jump_ms ({} ms): raise it in --config",
        config.max_clock_jump_ms
    );
    crate::error::check("mc_step_s", (), options.paths == 0 || step_ms <= config.max_clock_jump_ms, &reason)?;
    Ok(config)
}

/// The population the options ask for.
pub fn load_population(options: &StressOptions, config: &Config) -> Result<Population> {
    match &options.population {
        PopulationSource::Synthetic { accounts } => {
            population::synthetic(config, *accounts, options.seed, options.insurance_fund_oi_fraction)
        }
        PopulationSource::StateFile(path) => population::from_state_file(path, config),
    }
}

/// The historical and fixed-shock scenarios the options select, then the user's file.
pub fn fixed_scenarios(options: &StressOptions) -> Result<Vec<Scenario>> {
    fixed_scenarios_for(options, &Config::embedded_default(), "BTC-PERP")
}

/// [`fixed_scenarios`] with the configuration's markets and the book's primary market.
pub fn fixed_scenarios_for(options: &StressOptions, config: &Config, primary: &str) -> Result<Vec<Scenario>> {
    let mut fixed = Vec::new();
    if options.scenarios.historical {
        fixed.push(scenario::historical(options.historical_stride_min)?);
    }
    if options.scenarios.shocks {
        fixed.extend(scenario::fixed_shocks(options.seed));
    }
    if let Some(path) = &options.scenario_file {
        let markets: Vec<String> = config.markets.iter().map(|m| m.name.clone()).collect();
        fixed.push(crate::scenario_file::load(path, &markets, primary)?);
    }
    Ok(fixed)
}

/// Scenario `j` of a pass: a fixed scenario, or Monte Carlo path `j - fixed`.
fn scenario_at<'a>(ctx: &'a Context<'a>, j: usize) -> Result<std::borrow::Cow<'a, Scenario>> {
    if let Some(s) = ctx.fixed.get(j) {
        return Ok(std::borrow::Cow::Borrowed(s));
    }
    let o = ctx.options;
    let path = (j - ctx.fixed.len()) as u64;
    Ok(std::borrow::Cow::Owned(scenario::monte_carlo(o.seed, path, ctx.v0_annual_var, o.mc_steps(), o.mc_step_s)?))
}

fn run_job(ctx: &Context, book: &Book, j: usize, trace: bool) -> Result<JobResult> {
    let scenario = scenario_at(ctx, j)?;
    let models = Advisors {
        dynamic: (book.policy == PolicyKind::Dynamic).then_some(ctx.dynamic),
        predictive: (book.policy == PolicyKind::Predictive).then_some(ctx.predictive),
    };
    let outcome = run_scenario_with(book, &scenario, models, ctx.options, RunRequest { journal: false, trace })?;
    Ok(JobResult { metrics: outcome.metrics, trace: outcome.trace })
}

/// Runs every scenario (fixed, then `mc_paths` paths) under every book, in
/// parallel chunks on the current rayon pool; `on_progress` gets the number of
/// runs finished after each chunk. Results are in scenario order whatever the
/// number of threads.
pub(crate) fn run_pass(
    ctx: &Context,
    books: &[&Book],
    mc_paths: usize,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Vec<PolicyRuns>> {
    let scenarios = ctx.fixed.len() + mc_paths;
    let jobs: Vec<(usize, usize)> = (0..scenarios).flat_map(|j| (0..books.len()).map(move |b| (j, b))).collect();
    let chunk = (rayon::current_num_threads() * 4).max(8);
    let mut runs: Vec<PolicyRuns> =
        books.iter().map(|b| PolicyRuns { policy: b.policy, fixed: Vec::new(), monte_carlo: Vec::new() }).collect();
    for part in jobs.chunks(chunk) {
        let results: Vec<Result<JobResult>> =
            part.par_iter().map(|&(j, b)| run_job(ctx, books[b], j, j < ctx.fixed.len())).collect();
        for (&(j, b), result) in part.iter().zip(results) {
            let result = result?;
            if j < ctx.fixed.len() {
                runs[b].fixed.push(result);
            } else {
                runs[b].monte_carlo.push(result.metrics);
            }
        }
        on_progress(part.len() as u64);
    }
    Ok(runs)
}

/// The dynamic policy's average MM multiplier: the book's MM under the advised
/// tables summed over every step of every run, over the same positions' MM under
/// the static tables. At least 1 (advised rates never fall below the tiers).
pub(crate) fn scale_multiplier(dynamic: &PolicyRuns) -> f64 {
    let metrics = dynamic.fixed.iter().map(|r| &r.metrics).chain(&dynamic.monte_carlo);
    let (mm, mm_static) = metrics.fold((0.0, 0.0), |(a, b), m| (a + m.mm_sum_usdc, b + m.mm_static_sum_usdc));
    if mm_static > 0.0 {
        (mm / mm_static).max(1.0)
    } else {
        1.0
    }
}

/// Runs the whole stress test. `progress(done, total)` is called from this
/// thread after every chunk of runs (total = scenarios x (4 policies + frontier +
/// the congested static and predictive runs)).
pub fn run(options: &StressOptions, progress: &dyn Fn(u64, u64)) -> Result<StressReport> {
    options.validate()?;
    let config = with_floors(load_config(options)?, &options.frontier, options.predictive.calm_k)?;
    let population = load_population(options, &config)?;
    let dynamic = DynamicModel::new(options.advisor, options.impact_y, options.seed)?;
    let predictive = PredictiveModel::new(options.predictive, options.mc_step_s, options.seed)?;
    let primary = population.reference_prices.first().map_or("BTC-PERP".to_string(), |(n, _)| n.clone());
    let fixed = fixed_scenarios_for(options, &config, &primary)?;
    let mc_paths = if options.scenarios.monte_carlo { options.paths } else { 0 };
    let v0_annual_var = options.mc_v0_annual_var.unwrap_or_else(|| SvjdParams::btc_default().long_run_variance());
    let ctx = Context { options, fixed: &fixed, dynamic: &dynamic, predictive: &predictive, v0_annual_var };
    let static_book = build_book(&config, &population, options, PolicyKind::Static, None)?;
    let dynamic_book = Book { policy: PolicyKind::Dynamic, ..static_book.clone() };
    let predictive_book = Book { policy: PolicyKind::Predictive, ..static_book.clone() };
    let frontier_ks: Vec<f64> = options.frontier.iter().copied().filter(|k| (k - 1.0).abs() > 1e-9).collect();
    let congested_books = congested_books(options, &[&static_book, &predictive_book]);
    let total = ((fixed.len() + mc_paths) * (4 + frontier_ks.len() + congested_books.len())) as u64;
    let mut done = 0;
    progress(0, total);
    let mut tick = |n: u64| {
        done += n;
        progress(done, total);
    };
    let mut first: Vec<&Book> = vec![&static_book, &dynamic_book, &predictive_book];
    first.extend(congested_books.iter());
    let mut runs = run_pass(&ctx, &first, mc_paths, &mut tick)?;
    let congested: Vec<PolicyRuns> = runs.drain(3..).collect();
    let multiplier = scale_multiplier(&runs[1]);
    let tiers: Vec<Vec<Tier>> =
        static_book.markets.iter().map(|m| scaled_tiers(&m.static_tiers, multiplier)).collect::<Result<_>>()?;
    let scaled_book = build_book(&config, &population, options, PolicyKind::StaticScaled, Some(&tiers))?;
    let mut frontier_books = Vec::new();
    for &k in &frontier_ks {
        let t: Vec<Vec<Tier>> =
            static_book.markets.iter().map(|m| multiplied(&m.static_tiers, k)).collect::<Result<_>>()?;
        frontier_books.push(build_book(&config, &population, options, PolicyKind::StaticScaled, Some(&t))?);
    }
    let mut second: Vec<&Book> = vec![&scaled_book];
    second.extend(frontier_books.iter());
    let mut more = run_pass(&ctx, &second, mc_paths, &mut tick)?;
    let frontier_runs: Vec<(f64, PolicyRuns)> = frontier_ks.iter().copied().zip(more.drain(1..)).collect();
    runs.insert(2, more.remove(0));
    let books = [&static_book, &dynamic_book, &scaled_book, &predictive_book];
    let charts = charts(&ctx, &books, &runs)?;
    let inputs = crate::assemble::Inputs {
        options,
        population: &population,
        books: &books,
        dynamic: &dynamic,
        predictive: &predictive,
        fixed: &fixed,
        v0_annual_var,
        multiplier,
        scaled_tiers: &tiers,
    };
    let mut report = crate::assemble::assemble(&inputs, &runs, &frontier_runs, charts);
    (report.congestion, report.congestion_charts) = crate::assemble::congestion(&inputs, &runs, &congested);
    if options.predictor.paths > 0 {
        let samples = crate::predictor::collect(options, &options.predictor)?;
        report.predictor = Some(crate::predictor::evaluate(&samples, &options.predictor)?);
    }
    Ok(report)
}

/// The books run again with congested makers (none when the window is off).
fn congested_books(options: &StressOptions, books: &[&Book]) -> Vec<Book> {
    if !options.congestion.enabled() {
        return Vec::new();
    }
    books.iter().map(|b| Book { congested: true, ..(*b).clone() }).collect()
}

/// The configuration with MM floors low enough for the frontier's smallest
/// multiplier and the predictive policy's calm one (a market's own floors, when
/// it sets any, are kept where they are lower).
pub fn with_floors(mut config: Config, frontier: &[f64], calm_k: f64) -> Result<Config> {
    let lowest = frontier.iter().copied().fold(calm_k, f64::min).min(1.0);
    check("frontier", lowest, lowest > 0.0, "multipliers must be positive")?;
    for market in &mut config.markets {
        let params = &mut market.params;
        let floors: Vec<solvent_core::Rate> = params
            .tiers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let scaled = ((t.mm_rate.raw() as f64 * lowest).floor() as i64).max(1);
                let own = params.mm_floors.get(i).map_or(i64::MAX, |f| f.raw());
                solvent_core::Rate::from_raw(scaled.min(own))
            })
            .collect();
        params.mm_floors = floors;
    }
    Ok(config)
}

/// [`run`] on a pool of `threads` worker threads (0 = rayon's default, one per core)
/// instead of the global pool (`progress` is called from a worker of that pool).
/// The report does not depend on the number of threads.
pub fn run_on_threads(
    options: &StressOptions,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<StressReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| StressError::ThreadPool(e.to_string()))?;
    pool.install(|| run(options, progress))
}

/// Chart data: every fixed scenario's traces, and the Monte Carlo path with the
/// static policy's largest fund draw, rerun with traces under every policy.
fn charts(ctx: &Context, books: &[&Book], runs: &[PolicyRuns]) -> Result<Vec<ChartSet>> {
    let mut sets: Vec<ChartSet> = ctx
        .fixed
        .iter()
        .enumerate()
        .map(|(j, s)| ChartSet {
            scenario: s.name.clone(),
            traces: runs.iter().filter_map(|r| Some((r.policy, r.fixed[j].trace.clone()?))).collect(),
        })
        .collect();
    if let Some(path) = charted_path(runs) {
        let j = ctx.fixed.len() + path as usize;
        let traces: Vec<Result<(PolicyKind, Trace)>> =
            books.par_iter().map(|b| Ok((b.policy, run_job(ctx, b, j, true)?.trace.unwrap_or_default()))).collect();
        let name = format!("svjd_path_{path} (largest static fund draw)");
        sets.push(ChartSet { scenario: name, traces: traces.into_iter().collect::<Result<_>>()? });
    }
    Ok(sets)
}

/// The Monte Carlo path with the static policy's largest fund draw (lowest index on ties).
pub(crate) fn charted_path(runs: &[PolicyRuns]) -> Option<u64> {
    let stat = runs.iter().find(|r| r.policy == PolicyKind::Static)?;
    let mut best: Option<(usize, f64)> = None;
    for (i, m) in stat.monte_carlo.iter().enumerate() {
        if best.is_none_or(|(_, d)| m.fund_draw_usdc > d) {
            best = Some((i, m.fund_draw_usdc));
        }
    }
    best.map(|(i, _)| i as u64)
}
