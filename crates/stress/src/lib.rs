//! # solvent-stress
//!
//! The stress lab behind `solvent stress`: a population of accounts (synthetic
//! and seeded, or rebuilt from a state dump) is driven through scenario sets
//! (the Black Thursday minute path, fixed shocks with a frozen-oracle gap, and
//! Monte Carlo SVJD paths) by the real engine, under three margin policies side
//! by side: the static tiers, the dynamic advisor (its output enters the engine
//! only as `params` event lines), and the static tiers scaled up to the dynamic
//! policy's average margin. Liquidated size moves the next price through the
//! square-root impact law, so cascades can happen; backstop makers take the
//! liquidation auctions up to a capacity. `docs/stress.md` has the method and
//! the figures of a full run.
//!
//! ```no_run
//! let options = solvent_stress::StressOptions::default();
//! let report = solvent_stress::run(&options, &|done, total| eprintln!("{done}/{total}"))?;
//! print!("{}", report.terminal_table());
//! # Ok::<(), solvent_stress::StressError>(())
//! ```
//!
//! Determinism: every run has its own engine and its own random streams of the
//! seed; results are gathered in scenario order, so the report (and its JSON, byte
//! for byte) does not depend on the number of threads.

mod assemble;
pub mod book;
pub mod congestion;
pub mod driver;
pub mod error;
pub mod frontier;
pub mod html;
pub mod liqmap;
pub mod metrics;
pub mod options;
pub mod policy;
pub mod population;
pub mod predictive;
pub mod predictor;
pub mod report;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod scenario_file;
pub mod svg;
pub mod table;

pub use congestion::{CongestionSettings, CongestionWindow};
pub use error::{Result, StressError};
pub use options::{AdvisorSettings, PopulationSource, ScenarioSelection, StressOptions};
pub use policy::PolicyKind;
pub use report::StressReport;
pub use runner::{run, run_on_threads};

impl StressReport {
    /// The terminal table (policies side by side).
    pub fn terminal_table(&self) -> String {
        table::render(self)
    }

    /// The self-contained HTML report.
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}
