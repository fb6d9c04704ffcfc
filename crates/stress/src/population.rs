//! The accounts a stress run drives: synthetic and seeded, or rebuilt from a
//! `solvent replay --state-out` dump.
//!
//! A population is a list of deposits and positions at reference prices; the
//! harness ([`crate::book`]) turns it into engine events (deposits, then trades
//! against a liquidity-provider account that takes the other side of the book).

use crate::error::{Result, StressError};
use crate::rng::{stream_rng, STREAM_POPULATION};
use rand::Rng;
use serde::Deserialize;
use solvent_core::config::{MarketConfig, TierBasis};
use solvent_core::margin;
use solvent_core::{Config, Price, Quote, Round, Size};
use std::collections::BTreeMap;
use std::path::Path;

/// Reference price of a synthetic population (BTC on 11 March 2020, the day
/// before Black Thursday); every scenario moves prices relative to it.
pub const SYNTHETIC_REFERENCE_PRICE: f64 = 7_900.0;
/// Share of synthetic accounts that are long.
pub const LONG_SHARE: f64 = 0.6;
/// Share of synthetic accounts whose collateral is the market's base asset (BTC).
pub const BASE_COLLATERAL_SHARE: f64 = 0.2;
/// Leverage drawn log-uniformly in this range.
pub const LEVERAGE_RANGE: (f64, f64) = (2.0, 20.0);
/// Collateral is at least this multiple of the initial margin (so the opening trade passes).
pub const IM_CUSHION: f64 = 1.02;

/// One position to open: signed size at `price` (the trade price, hence the cost basis).
#[derive(Debug, Clone, PartialEq)]
pub struct PositionSpec {
    pub market: String,
    pub size: Size,
    pub price: Price,
}

/// One account: deposits (asset, amount) then positions.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    pub name: String,
    pub deposits: Vec<(String, Quote)>,
    pub positions: Vec<PositionSpec>,
}

/// The accounts, the prices they are opened at and the fund.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    /// "synthetic" or "state_file".
    pub kind: &'static str,
    pub accounts: Vec<AccountSpec>,
    /// Markets fed with prices (config order) and their reference (mark) price.
    pub reference_prices: Vec<(String, Price)>,
    pub insurance_fund: Quote,
    /// Rebuild with `im_factor` 1 during setup: dump accounts may sit between MM and IM.
    pub relaxed_setup: bool,
    /// Accounts of a state file that cannot be rebuilt (reason per account).
    pub skipped: Vec<(String, String)>,
}

pub(crate) fn quote_f64(q: Quote) -> f64 {
    q.raw() as f64 / Quote::ONE_RAW as f64
}

pub(crate) fn size_f64(s: Size) -> f64 {
    s.raw() as f64 / Size::ONE_RAW as f64
}

/// A price as a float (display and float models only).
pub fn price_f64(p: Price) -> f64 {
    p.raw() as f64 / Price::ONE_RAW as f64
}

/// A positive float as a `Quote` rounded up at `decimals` places.
pub(crate) fn quote_ceil(x: f64, decimals: u32) -> Quote {
    let scale = 10f64.powi(decimals as i32);
    let units = (x.max(0.0) * scale).ceil();
    Quote::from_raw(units as i128 * 10i128.pow(Quote::DECIMALS - decimals))
}

/// A float price as `Price` at 4 decimals (at least one raw unit).
pub(crate) fn price_from_f64(x: f64) -> Price {
    let units = (x * 10_000.0).round().max(1.0);
    Price::from_raw((units as i64).saturating_mul(10_000))
}

/// Bracket edges of a market's tier table in base units at `price`.
fn bracket_edges_base(market: &MarketConfig, price: f64) -> Vec<f64> {
    market
        .params
        .tiers
        .iter()
        .map(|t| match market.params.tier_basis {
            TierBasis::Size => t.from_raw as f64 / Size::ONE_RAW as f64,
            TierBasis::Notional => t.from_raw as f64 / Quote::ONE_RAW as f64 / price,
        })
        .collect()
}

/// Size ranges spanning the brackets: [edge_1/1000, edge_1), [edge_i, edge_i+1), ...,
/// [edge_last, 2 edge_last); bracket i drawn with weight 4^-i.
fn size_ranges(edges: &[f64]) -> Vec<(f64, f64, f64)> {
    if edges.len() < 2 {
        return vec![(0.01, 100.0, 1.0)];
    }
    let last = edges.len() - 1;
    (0..edges.len())
        .map(|i| {
            let lo = if i == 0 { edges[1] / 1_000.0 } else { edges[i] };
            let hi = if i < last { edges[i + 1] } else { 2.0 * edges[last] };
            (lo, hi, 0.25f64.powi(i as i32))
        })
        .collect()
}

fn log_uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp()
}

fn draw_size(rng: &mut impl Rng, ranges: &[(f64, f64, f64)]) -> f64 {
    let total: f64 = ranges.iter().map(|r| r.2).sum();
    let mut u = rng.gen::<f64>() * total;
    let mut pick = ranges[ranges.len() - 1];
    for r in ranges {
        if u < r.2 {
            pick = *r;
            break;
        }
        u -= r.2;
    }
    (log_uniform(rng, pick.0, pick.1) * 10_000.0).round().max(1.0) / 10_000.0
}

/// `accounts` synthetic accounts in the config's first market: 60% long, sizes
/// spanning every tier bracket, leverage 2x-20x log-uniform, 20% collateralized in
/// the market's base asset when the config accepts it; collateral at least 1.02 x
/// the initial margin. Insurance fund: `fund_fraction` x long open-interest notional.
pub fn synthetic(config: &Config, accounts: usize, seed: u64, fund_fraction: f64) -> Result<Population> {
    let market = config.markets.first().ok_or_else(|| StressError::Population("config has no market".into()))?;
    let price = price_from_f64(SYNTHETIC_REFERENCE_PRICE);
    let p = SYNTHETIC_REFERENCE_PRICE;
    let base_asset = config.assets.iter().find(|a| a.index_market == market.name);
    let ranges = size_ranges(&bracket_edges_base(market, p));
    let mut rng = stream_rng(seed, STREAM_POPULATION);
    let mut specs = Vec::with_capacity(accounts);
    let mut long_notional = 0.0;
    for i in 0..accounts {
        let long = rng.gen::<f64>() < LONG_SHARE;
        let size_base = draw_size(&mut rng, &ranges);
        let leverage = log_uniform(&mut rng, LEVERAGE_RANGE.0, LEVERAGE_RANGE.1);
        let in_base = rng.gen::<f64>() < BASE_COLLATERAL_SHARE;
        let size = Size::from_raw((size_base * 1e8).round() as i64);
        let im = margin::position_im(&market.params, size, price).map_err(|_| overflow())?;
        let value = (size_base * p / leverage).max(IM_CUSHION * quote_f64(im));
        let deposit = match base_asset.filter(|_| in_base) {
            Some(asset) => {
                let weight = asset.weight.raw() as f64 / 1e8;
                (asset.name.clone(), quote_ceil(value / (weight * p), 8))
            }
            None => (config.settlement_asset.clone(), quote_ceil(value, 2)),
        };
        if long {
            long_notional += size_base * p;
        }
        let signed = if long { size } else { Size::from_raw(-size.raw()) };
        specs.push(AccountSpec {
            name: format!("u{i:06}"),
            deposits: vec![deposit],
            positions: vec![PositionSpec { market: market.name.clone(), size: signed, price }],
        });
    }
    Ok(Population {
        kind: "synthetic",
        accounts: specs,
        reference_prices: vec![(market.name.clone(), price)],
        insurance_fund: quote_ceil(fund_fraction * long_notional, 2),
        relaxed_setup: false,
        skipped: Vec::new(),
    })
}

fn overflow() -> StressError {
    StressError::Population("arithmetic overflow sizing an account".into())
}

#[derive(Deserialize)]
struct DumpFile {
    #[serde(default)]
    insurance_fund: Option<String>,
    markets: BTreeMap<String, DumpMarket>,
    accounts: BTreeMap<String, DumpAccount>,
}

#[derive(Deserialize)]
struct DumpMarket {
    #[serde(default)]
    mark_price: Option<String>,
}

#[derive(Deserialize)]
struct DumpAccount {
    #[serde(default)]
    collateral: BTreeMap<String, String>,
    #[serde(default)]
    positions: BTreeMap<String, DumpPosition>,
}

#[derive(Deserialize)]
struct DumpPosition {
    size: String,
    #[serde(default)]
    entry_price: Option<String>,
}

/// Loads a state dump and rebuilds its accounts (see [`rebuild_dump`]).
pub fn from_state_file(path: &Path, config: &Config) -> Result<Population> {
    let text = std::fs::read_to_string(path).map_err(|source| StressError::StateIo { path: path.into(), source })?;
    let dump: DumpFile =
        serde_json::from_str(&text).map_err(|source| StressError::StateJson { path: path.into(), source })?;
    rebuild_dump(&dump, config).map_err(|reason| StressError::StateInvalid { path: path.into(), reason })
}

fn parse<T>(
    what: &str,
    text: &str,
    f: fn(&str) -> std::result::Result<T, solvent_core::num::NumError>,
) -> std::result::Result<T, String> {
    f(text).map_err(|e| format!("{what}: {text:?}: {e}"))
}

/// Marks of the dump's markets, in config order; unknown markets are refused.
fn dump_prices(dump: &DumpFile, config: &Config) -> std::result::Result<Vec<(String, Price)>, String> {
    for name in dump.markets.keys() {
        if !config.markets.iter().any(|m| &m.name == name) {
            return Err(format!("market {name} is not in the configuration"));
        }
    }
    let mut prices = Vec::new();
    for market in &config.markets {
        let Some(mark) = dump.markets.get(&market.name).and_then(|m| m.mark_price.as_deref()) else { continue };
        let price = parse(&format!("markets.{}.mark_price", market.name), mark, Price::parse)?;
        if !price.is_positive() {
            return Err(format!("markets.{}.mark_price must be positive", market.name));
        }
        prices.push((market.name.clone(), price));
    }
    Ok(prices)
}

/// Rebuilds a dump's accounts: each deposits its collateral and opens its
/// positions at their entry price, so that its equity at the dump's marks is the
/// dump's. A negative settlement balance is folded into the largest position's
/// trade price. Accounts that cannot be rebuilt are listed in `skipped`.
fn rebuild_dump(dump: &DumpFile, config: &Config) -> std::result::Result<Population, String> {
    let prices = dump_prices(dump, config)?;
    let mut accounts = Vec::new();
    let mut skipped = Vec::new();
    for (name, account) in &dump.accounts {
        if name.starts_with(crate::book::HARNESS_PREFIX) {
            skipped.push((name.clone(), "a stress harness account (the harness brings its own)".to_string()));
            continue;
        }
        solvent_core::event::validate_id(name).map_err(|reason| format!("account {name:?}: {reason}"))?;
        match rebuild_account(name, account, config, &prices)? {
            Ok(spec) => accounts.push(spec),
            Err(reason) => skipped.push((name.clone(), reason)),
        }
    }
    let fund = match dump.insurance_fund.as_deref() {
        Some(text) => parse("insurance_fund", text, Quote::parse)?.max(Quote::ZERO),
        None => Quote::ZERO,
    };
    Ok(Population {
        kind: "state_file",
        accounts,
        reference_prices: prices,
        insurance_fund: fund,
        relaxed_setup: true,
        skipped,
    })
}

type Rebuilt = std::result::Result<AccountSpec, String>;

fn rebuild_account(
    name: &str,
    account: &DumpAccount,
    config: &Config,
    prices: &[(String, Price)],
) -> std::result::Result<Rebuilt, String> {
    let mut positions = Vec::new();
    for (market, p) in &account.positions {
        let size = parse(&format!("{name}.{market}.size"), &p.size, Size::parse)?;
        let Some((_, mark)) = prices.iter().find(|(m, _)| m == market) else {
            return Ok(Err(format!("position in {market}, which has no mark price in the dump")));
        };
        let price = match p.entry_price.as_deref() {
            Some(text) => parse(&format!("{name}.{market}.entry_price"), text, Price::parse)?,
            None => *mark,
        };
        if !size.is_zero() {
            positions.push(PositionSpec { market: market.clone(), size, price });
        }
    }
    let mut deposits = Vec::new();
    for (asset, amount) in &account.collateral {
        let is_settlement = *asset == config.settlement_asset;
        if !is_settlement && !config.assets.iter().any(|a| &a.name == asset) {
            return Err(format!("account {name}: unknown collateral asset {asset}"));
        }
        let amount = parse(&format!("{name}.collateral.{asset}"), amount, Quote::parse)?;
        if amount.is_negative() && !is_settlement {
            return Err(format!(
                "account {name}: negative {asset} balance (only the settlement asset can be negative)"
            ));
        }
        if amount.is_negative() {
            match fold_negative_balance(amount, &mut positions) {
                Ok(()) => continue,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        if amount.is_positive() {
            deposits.push((asset.clone(), amount));
        }
    }
    Ok(Ok(AccountSpec { name: name.to_string(), deposits, positions }))
}

/// Moves a negative settlement balance into the cost basis of the largest position
/// (a higher entry for a long, a lower one for a short), so equity is unchanged.
fn fold_negative_balance(balance: Quote, positions: &mut [PositionSpec]) -> std::result::Result<(), String> {
    let largest = positions.iter_mut().max_by_key(|p| p.size.raw().unsigned_abs());
    let Some(p) = largest else { return Err("negative settlement balance and no position".into()) };
    let magnitude = p.size.checked_abs().map_err(|_| "size overflow".to_string())?;
    let shift = balance.div_size(magnitude, Round::Up).map_err(|_| "price overflow".to_string())?;
    // balance < 0: a long pays more (entry + |b|/|s|), a short receives less (entry - |b|/|s|).
    let raw = if p.size.is_positive() { p.price.raw() - shift.raw() } else { p.price.raw() + shift.raw() };
    if raw <= 0 {
        return Err("negative settlement balance larger than the position's cost".into());
    }
    p.price = Price::from_raw(raw);
    Ok(())
}
