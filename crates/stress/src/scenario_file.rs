//! A user's price path (`solvent stress --scenario FILE`).
//!
//! Two layouts, told apart by the first non-blank character of the file:
//! - CSV: `ts_ms,market,price` per line, a header line `ts_ms,market,price`
//!   optional; `#` starts a comment line;
//! - JSON Lines (first character `{`): `{"ts_ms": 1584000000000, "market":
//!   "BTC-PERP", "price": "7900.5"}` (price a string or a number).
//!
//! Every market must be one of the configuration's; time must strictly increase
//! per market. The path of the book's primary market (the population's first
//! market) becomes the scenario: step `k` at `ts_k - ts_0` with the price factor
//! `price_k / price_0`, applied to every fed market as the built-in scenarios are.
//! The regular step (the advisor's grid; `max_age` is 2.5 x it) is the median gap
//! between rows, so a gap much longer than usual freezes the oracle as a real
//! outage would. Impact uses the model's long-run daily volatility.
//! Every bad row is a [`StressError::ScenarioFile`] naming its 1-based line.

use crate::error::{Result, StressError};
use crate::scenario::{finish_user, long_run_sigma_daily, Scenario, Step};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest file the lab reads (rows), so a mistaken path cannot exhaust memory.
pub const MAX_ROWS: usize = 10_000_000;

/// What is wrong with a scenario row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioFault {
    #[error("malformed row: {0}")]
    Malformed(String),
    #[error("unknown market `{0}` (not in the configuration)")]
    UnknownMarket(String),
    #[error("time goes backwards in {market}: {ts_ms} after {previous_ms}")]
    TimeWentBackwards { market: String, ts_ms: u64, previous_ms: u64 },
    #[error("price must be a positive finite decimal, got `{0}`")]
    BadPrice(String),
    #[error("no row for the book's market {0}")]
    NoRows(String),
    #[error("more than {MAX_ROWS} rows")]
    TooLong,
}

impl ScenarioFault {
    /// Stable snake_case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ScenarioFault::Malformed(_) => "malformed_row",
            ScenarioFault::UnknownMarket(_) => "unknown_market",
            ScenarioFault::TimeWentBackwards { .. } => "time_went_backwards",
            ScenarioFault::BadPrice(_) => "bad_price",
            ScenarioFault::NoRows(_) => "no_rows",
            ScenarioFault::TooLong => "too_long",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    ts_ms: u64,
    market: String,
    price: serde_json::Value,
}

fn parse_price(text: &str) -> std::result::Result<f64, ScenarioFault> {
    let t = text.trim();
    let plain = !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') && t.matches('.').count() <= 1;
    match t.parse::<f64>() {
        Ok(p) if plain && p.is_finite() && p > 0.0 => Ok(p),
        _ => Err(ScenarioFault::BadPrice(t.to_string())),
    }
}

fn parse_row(line: &str, json: bool) -> std::result::Result<(u64, String, f64), ScenarioFault> {
    if json {
        let row: JsonRow = serde_json::from_str(line).map_err(|e| ScenarioFault::Malformed(e.to_string()))?;
        let price = match &row.price {
            serde_json::Value::String(s) => parse_price(s)?,
            serde_json::Value::Number(n) => parse_price(&n.to_string())?,
            other => return Err(ScenarioFault::BadPrice(other.to_string())),
        };
        return Ok((row.ts_ms, row.market, price));
    }
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [ts, market, price] = fields[..] else {
        return Err(ScenarioFault::Malformed(format!("expected 3 fields ts_ms,market,price, got {}", fields.len())));
    };
    let ts = ts.parse::<u64>().map_err(|_| ScenarioFault::Malformed(format!("ts_ms `{ts}` is not a whole number")))?;
    if market.is_empty() {
        return Err(ScenarioFault::Malformed("empty market".into()));
    }
    Ok((ts, market.to_string(), parse_price(price)?))
}

/// Parses `text` (the file's content): per market, its `(ts_ms, price)` rows in order.
pub fn parse(path: &Path, text: &str, markets: &[String]) -> Result<BTreeMap<String, Vec<(u64, f64)>>> {
    let fault = |line: usize, fault: ScenarioFault| StressError::ScenarioFile { path: path.to_path_buf(), line, fault };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let json = text.trim_start().starts_with('{');
    let mut rows: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    let mut count = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let number = i + 1;
        if line.is_empty() || line.starts_with('#') || (!json && line.eq_ignore_ascii_case("ts_ms,market,price")) {
            continue;
        }
        count += 1;
        if count > MAX_ROWS {
            return Err(fault(number, ScenarioFault::TooLong));
        }
        let (ts, market, price) = parse_row(line, json).map_err(|f| fault(number, f))?;
        if !markets.contains(&market) {
            return Err(fault(number, ScenarioFault::UnknownMarket(market)));
        }
        let series = rows.entry(market.clone()).or_default();
        if let Some(&(previous_ms, _)) = series.last() {
            if ts <= previous_ms {
                return Err(fault(number, ScenarioFault::TimeWentBackwards { market, ts_ms: ts, previous_ms }));
            }
        }
        series.push((ts, price));
    }
    Ok(rows)
}

/// Reads `path` and builds the scenario of `primary`'s path (see the module doc).
pub fn load(path: &Path, markets: &[String], primary: &str) -> Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StressError::ScenarioIo { path: path.to_path_buf(), reason: e.to_string() })?;
    let rows = parse(path, &text, markets)?;
    let Some(series) = rows.get(primary).filter(|s| !s.is_empty()) else {
        let line = text.lines().count().max(1);
        return Err(StressError::ScenarioFile {
            path: path.to_path_buf(),
            line,
            fault: ScenarioFault::NoRows(primary.to_string()),
        });
    };
    let (t0, p0) = series[0];
    let mut gaps: Vec<u64> = series.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let base_step_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(60_000).max(1);
    let sigma = long_run_sigma_daily();
    let steps = series
        .iter()
        .map(|&(ts, p)| Step { offset_ms: ts - t0, price_factor: p / p0, sigma_daily: sigma, oracle_live: true })
        .collect();
    let name = path.file_name().map_or("scenario_file".to_string(), |n| n.to_string_lossy().into_owned());
    Ok(finish_user(name, base_step_ms, steps))
}
