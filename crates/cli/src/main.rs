//! `solvent`: a thin binary over the solvent crates.

mod bench;
mod lines;
mod pipeline;
mod progress;
mod proofs;
mod replay;
mod report;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Counts allocations for `solvent bench`'s memory figures (thread-local counters: no atomics).
#[global_allocator]
static ALLOCATOR: bench::CountingAllocator = bench::CountingAllocator;

#[derive(Parser)]
#[command(name = "solvent", version, about = "Streaming solvency engine for crypto derivatives")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply a JSON Lines event file; effects to stdout (or --out), a summary with the state hash to stderr.
    Replay {
        /// TOML configuration; the embedded default when omitted (see `solvent config`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Events, one JSON object per line ("-" for stdin).
        #[arg(long)]
        events: PathBuf,
        /// Write effects here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the final state as JSON here ("-" for stdout, after the effects).
        #[arg(long)]
        state_out: Option<PathBuf>,
        /// Exit with status 1 when any event was rejected.
        #[arg(long)]
        strict: bool,
        /// Print a table of markets and accounts (equity, margin, free collateral) to stderr.
        #[arg(long)]
        report: bool,
    },
    /// Run solvent as a service: durable journal, snapshots, HTTP + WebSocket API (docs/serve.md).
    Serve(solvent_node::cli::ServeCommand),
    /// Print the BLAKE3 hash of a token (read from stdin) for the server config, or generate a token.
    Token(solvent_node::cli::TokenArgs),
    /// Write a server's journal as JSON Lines (line N = seq N), for `solvent replay`.
    ExportJournal(solvent_node::cli::ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, or write one page per command into a directory.
    Man {
        /// Write solvent.1 and solvent-COMMAND.1 here instead.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Stress margin policies (static tiers, dynamic advisor, scaled static) on a population of
    /// accounts through Black Thursday, fixed shocks and Monte Carlo SVJD paths (docs/stress.md).
    Stress(Box<StressArgs>),
    /// Measure the engine on a synthetic book: full scan vs risk index, ticks/s, tick-to-liquidation
    /// latency, replay throughput, memory per account (docs/performance.md).
    Bench {
        /// Accounts in the synthetic book.
        #[arg(long, default_value_t = 1_000_000)]
        accounts: usize,
        /// Seed of the book and of the event streams.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also write the figures (name, value, unit, target) as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Run only these phases (comma-separated; default: all). The book is built whenever a
        /// phase other than `memory` runs; `ticks` reports the scan ratio only with `scan`.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<bench::Phase>,
        /// Percent of the book's pairs built as hedged portfolio-margined pairs (two or three
        /// markets each); 0 builds the same book as without the option.
        #[arg(long, default_value_t = 0)]
        portfolio_percent: u32,
    },
    /// Write a new engine key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub (docs/proofs.md).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Replay events and write every effect with its chain link, signing the liquidation orders
    /// (liquidation, adl, socialized_loss, auction_fill) with the engine key.
    Sign {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        events: PathBuf,
        /// The engine's secret key file; without it, the SOLVENT_ENGINE_KEY environment variable.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Also sign each order as EIP-712 typed data with the engine's secp256k1 key (derived
        /// from the same secret; `solvent keygen` prints its address).
        #[arg(long)]
        eip712: bool,
    },
    /// Make a proof: `solvent prove liabilities --state S --out DIR` (docs/proofs.md).
    Prove {
        #[command(subcommand)]
        what: proofs::ProveWhat,
    },
    /// Check a signed effects file against its events (replay, encodings, chain, signatures), or
    /// a proof (`solvent verify inclusion ...`); names the first line that fails and why.
    #[command(args_conflicts_with_subcommands = true)]
    Verify {
        #[command(subcommand)]
        what: Option<proofs::VerifyWhat>,
        #[command(flatten)]
        effects: proofs::VerifyEffectsArgs,
    },
    /// Deterministic simulation of the journal, snapshots and recovery over a simulated disk and
    /// clock with injected faults; any failure names the seed that reproduces it (docs/security.md).
    Sim {
        /// How many seeds to run.
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        /// The first seed (seeds S, S+1, ... run).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Steps (batches, snapshots, crashes) per seed.
        #[arg(long, default_value_t = 120)]
        steps: usize,
    },
    /// Print the embedded default configuration (TOML), or check a configuration file.
    Config {
        /// Validate this file instead of printing the default.
        #[arg(long)]
        check: Option<PathBuf>,
    },
}

/// The arguments of `solvent stress`.
#[derive(clap::Args, Debug)]
struct StressArgs {
    /// TOML configuration; the embedded default when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Synthetic accounts, seeded (ignored with --state).
    #[arg(long, default_value_t = 2_000)]
    accounts: usize,
    /// Rebuild the population from a `replay --state-out` dump instead.
    #[arg(long, conflicts_with = "accounts")]
    state: Option<PathBuf>,
    /// Monte Carlo SVJD paths.
    #[arg(long, default_value_t = 10_000)]
    paths: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scenario sets to run (default: all three; with --scenario and no --scenarios, only the file).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Option<Vec<StressSet>>,
    /// Also run this price path: CSV `ts_ms,market,price` or JSON Lines (docs/stress.md).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Multipliers k of the static frontier (static table x k), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.6,0.8,1.2,1.4,1.6")]
    frontier: Vec<f64>,
    /// Predictive policy: table multiplier in calm regimes (the floor).
    #[arg(long, default_value_t = solvent_stress::predictive::PredictiveSettings::default().calm_k)]
    calm_k: f64,
    /// Predictive policy: table multiplier at full stress score.
    #[arg(long, default_value_t = solvent_stress::predictive::PredictiveSettings::default().storm_k)]
    storm_k: f64,
    /// Also train and evaluate the cascade predictor on this many extra Monte Carlo paths (0: not).
    #[arg(long, default_value_t = 0)]
    predictor_paths: usize,
    /// The predictor's cascade: a fall of at least this fraction within --predictor-horizon-steps.
    #[arg(long, default_value_t = 0.02)]
    cascade_fall: f64,
    #[arg(long, default_value_t = 30)]
    predictor_horizon_steps: usize,
    /// Predictive policy: no MM raise while the mark is this far below its 1-hour high.
    #[arg(long, default_value_t = solvent_stress::predictive::PredictiveSettings::default().no_raise_drawdown)]
    no_raise_drawdown: f64,
    /// Assumed behaviour: extra backstop capacity (fraction) makers bring to auctions in cliff ranges
    /// when offered the rebate (0: makers ignore incentives).
    #[arg(long, default_value_t = 0.0)]
    maker_response: f64,
    /// Congested makers: inside the window, auction takes arrive this much later than usual
    /// (a take that would land after the auction's end is missed).
    #[arg(long, default_value_t = solvent_stress::CongestionSettings::default().delay_ms)]
    congestion_delay_ms: u64,
    /// When the makers are congested: `crash` (each scenario's largest fall, from its peak to
    /// 30 minutes after its trough), START+LENGTH in seconds from the run's start, or `off`.
    #[arg(long, default_value = "crash", value_parser = parse_congestion_window)]
    congestion_window: solvent_stress::CongestionWindow,
    /// Congested makers: the share of the auctions starting in the window nobody bids on
    /// (drawn from the seed; 36% of Maker's Black Thursday auctions were won with zero bids).
    #[arg(long, default_value_t = solvent_stress::CongestionSettings::default().no_bid_fraction)]
    no_bid_fraction: f64,
    /// Length of each Monte Carlo path, seconds.
    #[arg(long, default_value_t = 21_600)]
    horizon_s: u64,
    /// Time between Monte Carlo steps, seconds.
    #[arg(long, default_value_t = 60)]
    step_s: u64,
    /// Starting annual variance of the paths (default: the model's long-run mean).
    #[arg(long)]
    v0: Option<f64>,
    /// Replay every n-th minute of the Black Thursday path.
    #[arg(long, default_value_t = 1)]
    historical_stride_min: usize,
    /// Book depth per day as a multiple of the initial open interest (V of the impact law).
    #[arg(long, default_value_t = 10.0)]
    depth_oi_multiple: f64,
    /// Y of the square-root impact law (0 turns liquidation impact off).
    #[arg(long, default_value_t = 1.0)]
    impact_y: f64,
    /// Backstop capacity per auction minute, fraction of the initial open interest.
    #[arg(long, default_value_t = 0.02)]
    backstop_oi_fraction: f64,
    /// Initial insurance fund of a synthetic population, fraction of long notional.
    #[arg(long, default_value_t = 0.01)]
    fund_oi_fraction: f64,
    /// Oracle sources fed per market (quorum: a majority).
    #[arg(long, default_value_t = 1)]
    oracle_sources: usize,
    /// Worker threads (default: one per core). The report does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the self-contained HTML report (inline SVG charts) here.
    #[arg(long)]
    html: Option<PathBuf>,
}

impl StressArgs {
    /// Run the stress lab with these arguments and print or write its report.
    fn run(self) -> ExitCode {
        let population = match self.state {
            Some(path) => solvent_stress::PopulationSource::StateFile(path),
            None => solvent_stress::PopulationSource::Synthetic { accounts: self.accounts },
        };
        let sets = match (&self.scenarios, &self.scenario) {
            (Some(sets), _) => sets.clone(),
            (None, Some(_)) => Vec::new(),
            (None, None) => vec![StressSet::Historical, StressSet::Shocks, StressSet::MonteCarlo],
        };
        let predictive = solvent_stress::predictive::PredictiveSettings {
            calm_k: self.calm_k,
            storm_k: self.storm_k,
            maker_response: self.maker_response,
            no_raise_drawdown: self.no_raise_drawdown,
            ..Default::default()
        };
        let options = solvent_stress::StressOptions {
            seed: self.seed,
            population,
            config: self.config,
            scenarios: solvent_stress::ScenarioSelection {
                historical: sets.contains(&StressSet::Historical),
                shocks: sets.contains(&StressSet::Shocks),
                monte_carlo: sets.contains(&StressSet::MonteCarlo),
            },
            scenario_file: self.scenario,
            predictor: solvent_stress::predictor::PredictorOptions {
                paths: self.predictor_paths,
                fall: self.cascade_fall,
                horizon_steps: self.predictor_horizon_steps,
                ..Default::default()
            },
            frontier: self.frontier,
            predictive,
            paths: self.paths,
            mc_horizon_s: self.horizon_s,
            mc_step_s: self.step_s,
            mc_v0_annual_var: self.v0,
            historical_stride_min: self.historical_stride_min,
            depth_oi_multiple_per_day: self.depth_oi_multiple,
            impact_y: self.impact_y,
            backstop_oi_fraction_per_min: self.backstop_oi_fraction,
            insurance_fund_oi_fraction: self.fund_oi_fraction,
            oracle_sources: self.oracle_sources,
            congestion: solvent_stress::CongestionSettings {
                delay_ms: self.congestion_delay_ms,
                window: self.congestion_window,
                no_bid_fraction: self.no_bid_fraction,
            },
            ..solvent_stress::StressOptions::default()
        };
        stress(&options, self.threads, self.json, self.html)
    }
}

/// `--congestion-window`: the stress lab's own parser, its typed error as clap's message.
fn parse_congestion_window(text: &str) -> Result<solvent_stress::CongestionWindow, String> {
    solvent_stress::CongestionWindow::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    bench::enable_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Replay { config, events, out, state_out, strict, report } => {
            let options = replay::ReplayOptions { config, events, out, state_out, report };
            match replay::run(&options) {
                Ok((summary, _)) if strict && summary.rejected > 0 => {
                    eprintln!("--strict: {} events were rejected", summary.rejected);
                    ExitCode::from(1)
                }
                Ok(_) => ExitCode::SUCCESS,
                Err(message) => fail(&message),
            }
        }
        Command::Serve(command) => done(solvent_node::cli::run_serve_command(command)),
        Command::Token(args) => done(solvent_node::cli::token(&args)),
        Command::ExportJournal(args) => done(solvent_node::cli::export_journal(&args)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "solvent", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out_dir } => done(man(out_dir.as_deref())),
        Command::Stress(args) => args.run(),
        Command::Bench { accounts, seed, json, only, portfolio_percent } => {
            match bench::run(&bench::BenchOptions { accounts, seed, json, only, portfolio_percent }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => fail(&message),
            }
        }
        Command::Keygen { out } => result(proofs::keygen(&out)),
        Command::Sign { config, events, key, out, eip712 } => {
            result(proofs::sign(config.as_deref(), &events, key.as_deref(), &out, eip712))
        }
        Command::Prove { what } => result(proofs::prove(&what)),
        Command::Verify { what: None, effects } => result(proofs::verify_effects(&effects)),
        Command::Verify { what: Some(what), .. } => result(proofs::verify_proof(&what)),
        Command::Sim { seeds, seed, steps } => run_sim(seeds, seed, steps),
        Command::Config { check: None } => {
            print!("{}", solvent_core::DEFAULT_CONFIG_TOML);
            ExitCode::SUCCESS
        }
        Command::Config { check: Some(path) } => match replay::load_config(Some(&path)) {
            Ok(config) => {
                println!(
                    "{}: valid ({} markets, {} collateral assets)",
                    path.display(),
                    config.markets.len(),
                    config.assets.len() + 1
                );
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        },
    }
}

fn result(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// The scenario sets of `solvent stress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StressSet {
    Historical,
    Shocks,
    MonteCarlo,
}

fn stress(
    options: &solvent_stress::StressOptions,
    threads: Option<usize>,
    json: Option<PathBuf>,
    html: Option<PathBuf>,
) -> ExitCode {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} runs (eta {eta})")
    {
        bar.set_style(style);
    }
    bar.set_message("stress");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let result = match threads {
        Some(n) => solvent_stress::run_on_threads(options, n, &progress),
        None => solvent_stress::run(options, &progress),
    };
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(error) => return fail(&error.to_string()),
    };
    print!("{}", report.terminal_table());
    if let Some(path) = json {
        if let Err(error) = report.write_json(&path) {
            return fail(&error.to_string());
        }
    }
    if let Some(path) = html {
        if let Err(error) = report.write_html(&path) {
            return fail(&error.to_string());
        }
    }
    ExitCode::SUCCESS
}

/// The manual from the same definitions as the parser: one page, or a page per command.
fn man(out_dir: Option<&std::path::Path>) -> Result<(), String> {
    let command = Cli::command();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(command, dir).map_err(|e| format!("writing pages into {}: {e}", dir.display()))
        }
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout()).map_err(|e| e.to_string()),
    }
}

fn done(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("solvent: error: {message}");
    ExitCode::from(2)
}

/// `solvent sim`: run the seeds, print a summary; exit 2 naming the seed of the first failure.
fn run_sim(seeds: u64, seed: u64, steps: usize) -> ExitCode {
    let root = solvent_node::sim::default_scratch_root();
    let started = std::time::Instant::now();
    let mut totals = (0usize, 0u64, 0u64, 0usize);
    for current in seed..seed.saturating_add(seeds) {
        match solvent_node::sim::run_seed(current, steps, &root) {
            Ok(outcome) => {
                totals.0 += outcome.acknowledged;
                totals.1 += outcome.crashes;
                totals.2 += outcome.faults;
                totals.3 += usize::from(outcome.detected_corruption);
            }
            Err(failure) => return fail(&failure.to_string()),
        }
    }
    eprintln!(
        "sim: {seeds} seeds from {seed}, {steps} steps each: {} acknowledged events, {} crashes, {} injected I/O faults, \
         {} runs stopped on detected corruption of durable records; every invariant held ({:.1} s)",
        totals.0,
        totals.1,
        totals.2,
        totals.3,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
