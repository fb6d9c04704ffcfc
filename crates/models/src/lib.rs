//! # solvent-models
//!
//! The float side of solvent: risk models whose results enter the
//! float-free core only as `params` events (JSON Lines with decimal
//! strings), so a replay of the journal reproduces the state hash anywhere.
//!
//! - [`vol`]: EWMA (RiskMetrics) and GARCH(1,1) by Gaussian QML; variance
//!   and volatility forecasts over a horizon.
//! - [`svjd`]: Bates / SVCJ simulator (seeded, per-path ChaCha8 streams) and
//!   the exact first two moments of the log return.
//! - [`calibrate`]: SVJD parameters from a price series (threshold jump
//!   detection, realized-variance moments).
//! - [`gap`]: expected shortfall of the adverse move over the liquidation
//!   horizon (both tails, stratified Monte Carlo) and square-root impact.
//! - [`advisor`]: per-bracket MM rates `max(tier, z sigma_h + gap)` with
//!   rate limits and a cap, emitted as a `params` event line.
//! - [`cascade`]: fixed point of shock -> liquidations -> impact over a
//!   liquidation map and a depth curve; amplification and cliff levels.
//! - [`regime`]: two-state Markov-switching volatility (Hamilton filter, EM
//!   fit), probability of the high-volatility regime over a horizon.
//! - [`candles`]: CSV loader (Binance klines, plain OHLCV), log returns.
//! - [`scenario`]: the Black Thursday (March 2020) minute path, synthetic
//!   from published facts.
//!
//! Units: time in seconds (`*_s`) or milliseconds (`*_ms`) at interfaces,
//! years inside the SVJD model (365-day year); variances annual unless the
//! name says `per_step`. See docs/models.md.

pub mod advisor;
pub mod calibrate;
pub mod candles;
pub mod cascade;
pub mod error;
pub mod gap;
pub mod optim;
pub mod regime;
pub mod scenario;
pub mod stats;
pub mod svjd;
pub mod vol;

pub use error::{ModelError, Result};

/// Seconds in the 365-day year used for annualization (crypto trades daily).
pub const SECONDS_PER_YEAR: f64 = 365.0 * 86_400.0;
