//! The book: an engine after the population's setup events, one per policy,
//! cloned for every run. The setup is journaled as event lines, so any run can be
//! replayed from a fresh engine.
//!
//! Setup, all at [`T_SETUP_MS`]: per fed market a `params` event (oracle quorum
//! and age; the scaled policy's tiers; `im_factor` 1 while rebuilding a dump),
//! price ticks at the reference price, the insurance fund, the harness accounts'
//! deposits (a liquidity provider that takes the other side of every opening
//! trade, and two backstop makers), the population's deposits and its opening
//! trades against the liquidity provider.

use crate::driver::Feed;
use crate::error::{check, Result, StressError};
use crate::options::StressOptions;
use crate::policy::{static_tiers, PolicyKind};
use crate::population::{price_f64, quote_ceil, quote_f64, size_f64, Population};
use serde_json::{json, Map, Value};
use solvent_core::config::{MarketParams, TierBasis};
use solvent_core::event::ParamsUpdate;
use solvent_core::{margin, Config, Engine, Price, Quote, Rate, Size};
use solvent_models::advisor::Tier;

/// Accounts the harness creates before the population (their engine ids are 0..3).
pub const HARNESS_ACCOUNTS: usize = 3;
/// Prefix of the harness's own accounts.
pub const HARNESS_PREFIX: &str = "stress:";
/// Takes the other side of every opening trade (the rest of the market).
pub const LIQUIDITY_PROVIDER: &str = "stress:lp";
/// Backstop maker buying the inventory of sell auctions (longs liquidated).
pub const MAKER_BUYER: &str = "stress:bk1";
/// Backstop maker selling into buy auctions (shorts liquidated).
pub const MAKER_SELLER: &str = "stress:bk2";
/// Engine time of the setup (2020-09-13T12:26:40Z); runs start one second later.
pub const T_SETUP_MS: u64 = 1_600_000_000_000;
/// Oracle age limit during setup; each run sets its own (2.5 x its step).
pub const SETUP_MAX_AGE_MS: u64 = 600_000;
/// The liquidity provider holds this multiple of its largest one-sided notional.
pub const LP_COLLATERAL_MULTIPLE: f64 = 2.5;
/// Each backstop maker holds this fraction of the initial long open-interest notional.
pub const MAKER_COLLATERAL_OI_FRACTION: f64 = 0.5;

/// A market the population trades.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketSetup {
    pub name: String,
    /// Index in the engine's market table.
    pub index: usize,
    /// The mark the population is opened at, and the same as a float.
    pub reference_mark: Price,
    pub reference_price: f64,
    pub tier_basis: TierBasis,
    /// Sum of the population's long sizes at setup.
    pub initial_oi_base: f64,
    /// V of the square-root law, base units per day.
    pub depth_base_per_day: f64,
    /// Largest size the backstop makers take from one auction.
    pub backstop_capacity_base: f64,
    /// The configuration's static table (the advisor's floor).
    pub static_tiers: Vec<Tier>,
}

/// An engine after setup, its journal and what the runs need to know about it.
#[derive(Debug, Clone)]
pub struct Book {
    pub policy: PolicyKind,
    pub engine: Engine,
    pub journal: Vec<String>,
    pub seq: u64,
    pub markets: Vec<MarketSetup>,
    /// Static parameters of every engine market.
    pub static_params: Vec<MarketParams>,
    /// The same tables in floats (the static-table margin of a book, sampled each step).
    pub static_tiers_f64: Vec<crate::driver::FloatTiers>,
    /// Index of the first population account (harness accounts come first).
    pub population_start: usize,
    /// Oracle sources fed per market.
    pub sources: Vec<String>,
    /// Accounts whose setup the engine refused (state files only), with the reason.
    pub not_rebuilt: Vec<(String, String)>,
    /// Extra collateral the population posted for this policy's initial margin.
    pub top_up_usdc: f64,
    /// The backstop makers are congested in each scenario's window
    /// (`StressOptions::congestion`); false: the window is only measured.
    pub congested: bool,
}

fn market_setups(config: &Config, population: &Population, options: &StressOptions) -> Result<Vec<MarketSetup>> {
    let mut setups = Vec::new();
    for (name, price) in &population.reference_prices {
        let Some(index) = config.markets.iter().position(|m| &m.name == name) else { continue };
        let market = &config.markets[index];
        let duration = market.params.auction_duration_ms;
        check(
            "backstop_take_delay_ms",
            (),
            options.backstop_take_delay_ms < duration,
            "must be below the auction duration",
        )?;
        let oi: f64 = population
            .accounts
            .iter()
            .flat_map(|a| &a.positions)
            .filter(|p| &p.market == name && p.size.is_positive())
            .map(|p| size_f64(p.size))
            .sum();
        setups.push(MarketSetup {
            name: name.clone(),
            index,
            reference_mark: *price,
            reference_price: price_f64(*price),
            tier_basis: market.params.tier_basis,
            initial_oi_base: oi,
            depth_base_per_day: (options.depth_oi_multiple_per_day * oi).max(1e-8),
            backstop_capacity_base: options.backstop_oi_fraction_per_min * oi * duration as f64 / 60_000.0,
            static_tiers: static_tiers(market),
        });
    }
    if setups.iter().all(|m| m.initial_oi_base <= 0.0) {
        return Err(StressError::Population("no account holds a long position: nothing to stress".into()));
    }
    Ok(setups)
}

/// `{"type":"params","ts":..,"market":..}` plus `fields`.
pub(crate) fn params_line(ts: u64, market: &str, fields: Map<String, Value>) -> String {
    let mut object = Map::new();
    object.insert("type".into(), json!("params"));
    object.insert("ts".into(), json!(ts));
    object.insert("market".into(), json!(market));
    object.extend(fields);
    Value::Object(object).to_string()
}

pub(crate) fn tick_line(ts: u64, market: &str, source: &str, price: Price) -> String {
    format!(r#"{{"type":"price","ts":{ts},"market":"{market}","source":"{source}","price":"{price}"}}"#)
}

fn deposit_line(account: &str, asset: &str, amount: Quote) -> String {
    format!(r#"{{"type":"deposit","ts":{T_SETUP_MS},"account":"{account}","asset":"{asset}","amount":"{amount}"}}"#)
}

fn trade_line(market: &str, buyer: &str, seller: &str, size: Size, price: Price) -> String {
    format!(
        r#"{{"type":"trade","ts":{T_SETUP_MS},"market":"{market}","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price}"}}"#
    )
}

/// Builds the book of `policy`; `tiers` are the policy's initial tables per market
/// (`None` keeps the configuration's).
pub fn build_book(
    config: &Config,
    population: &Population,
    options: &StressOptions,
    policy: PolicyKind,
    tiers: Option<&[Vec<Tier>]>,
) -> Result<Book> {
    let markets = market_setups(config, population, options)?;
    let sources = oracle_sources(config, &markets, options.oracle_sources)?;
    let mut feed = Feed::new(Engine::new(config), 0, true);
    open_markets(&mut feed, &markets, &sources, tiers, population.relaxed_setup)?;
    if population.insurance_fund.is_positive() {
        let fund = population.insurance_fund;
        feed.push_checked(format!(r#"{{"type":"fund_deposit","ts":{T_SETUP_MS},"amount":"{fund}"}}"#))?;
    }
    fund_harness(&mut feed, config, population, &markets)?;
    let static_params: Vec<MarketParams> = config.markets.iter().map(|m| m.params.clone()).collect();
    let policy_params = policy_params(&static_params, &markets, tiers)?;
    let (not_rebuilt, top_up_usdc) = open_population(&mut feed, population, &static_params, &policy_params)?;
    if population.relaxed_setup {
        for m in &markets {
            let mut fields = Map::new();
            fields.insert("im_factor".into(), json!(static_params[m.index].im_factor.to_string()));
            feed.push_checked(params_line(T_SETUP_MS, &m.name, fields))?;
        }
    }
    let seq = feed.seq;
    let journal = feed.journal.take().unwrap_or_default();
    Ok(Book {
        policy,
        engine: feed.engine,
        journal,
        seq,
        markets,
        static_tiers_f64: static_params.iter().map(crate::driver::FloatTiers::new).collect(),
        static_params,
        population_start: HARNESS_ACCOUNTS,
        sources,
        not_rebuilt,
        top_up_usdc,
        congested: false,
    })
}

/// Per market: oracle quorum (a majority of the fed sources) and age, the policy's
/// tables, `im_factor` 1 while rebuilding a dump; then a tick from every source.
fn open_markets(
    feed: &mut Feed,
    markets: &[MarketSetup],
    sources: &[String],
    tiers: Option<&[Vec<Tier>]>,
    relaxed: bool,
) -> Result<()> {
    for (i, m) in markets.iter().enumerate() {
        let mut fields = Map::new();
        fields.insert("quorum".into(), json!(sources.len() / 2 + 1));
        fields.insert("max_age_ms".into(), json!(SETUP_MAX_AGE_MS));
        if let Some(t) = tiers {
            fields.insert("tiers".into(), serde_json::to_value(&t[i]).unwrap_or(Value::Null));
        }
        if relaxed {
            fields.insert("im_factor".into(), json!("1"));
        }
        feed.push_checked(params_line(T_SETUP_MS, &m.name, fields))?;
        for source in sources {
            feed.push_checked(tick_line(T_SETUP_MS, &m.name, source, m.reference_mark))?;
        }
    }
    Ok(())
}

fn oracle_sources(config: &Config, markets: &[MarketSetup], wanted: usize) -> Result<Vec<String>> {
    let available = markets.iter().map(|m| config.markets[m.index].sources.len()).min().unwrap_or(0);
    check("oracle_sources", (), wanted <= available, &format!("the configuration has {available} sources per market"))?;
    Ok(config.markets[markets[0].index].sources[..wanted].to_vec())
}

/// Deposits of the liquidity provider and the two backstop makers.
fn fund_harness(feed: &mut Feed, config: &Config, population: &Population, markets: &[MarketSetup]) -> Result<()> {
    let (mut long_notional, mut short_notional, mut pnl_at_setup) = (0.0, 0.0, 0.0);
    for p in population.accounts.iter().flat_map(|a| &a.positions) {
        let Some(m) = markets.iter().find(|m| m.name == p.market) else { continue };
        let notional = size_f64(p.size).abs() * m.reference_price;
        if p.size.is_positive() {
            long_notional += notional;
        } else {
            short_notional += notional;
        }
        pnl_at_setup += (size_f64(p.size) * (m.reference_price - price_f64(p.price))).abs();
    }
    let lp = LP_COLLATERAL_MULTIPLE * long_notional.max(short_notional) + pnl_at_setup + 1_000_000.0;
    let maker = (MAKER_COLLATERAL_OI_FRACTION * long_notional).max(1_000_000.0);
    let settlement = &config.settlement_asset;
    feed.push_checked(deposit_line(LIQUIDITY_PROVIDER, settlement, quote_ceil(lp, 2)))?;
    feed.push_checked(deposit_line(MAKER_BUYER, settlement, quote_ceil(maker, 2)))?;
    feed.push_checked(deposit_line(MAKER_SELLER, settlement, quote_ceil(maker, 2)))?;
    Ok(())
}

/// The static parameters with the policy's tables (by engine market index).
fn policy_params(
    static_params: &[MarketParams],
    markets: &[MarketSetup],
    tiers: Option<&[Vec<Tier>]>,
) -> Result<Vec<MarketParams>> {
    let mut params = static_params.to_vec();
    let Some(tiers) = tiers else { return Ok(params) };
    for (m, t) in markets.iter().zip(tiers) {
        let update = tiers_update(T_SETUP_MS, &m.name, t);
        params[m.index] = solvent_core::params::patched(&static_params[m.index], &update)
            .map_err(|e| StressError::EngineRejected { line: format!("tiers of {}", m.name), error: e.to_string() })?;
    }
    Ok(params)
}

/// Deposits and opening trades of every account; returns the accounts the engine
/// refused (state files) and the total top-up posted for the policy's tables.
fn open_population(
    feed: &mut Feed,
    population: &Population,
    static_params: &[MarketParams],
    policy_params: &[MarketParams],
) -> Result<(Vec<(String, String)>, f64)> {
    let mut refused = Vec::new();
    let mut top_up_total = 0.0;
    let settlement = feed.engine.settlement_asset().to_string();
    // Positions are opened at their recorded entry prices, which may lie far from today's mark:
    // the trade price band is opened wide for the setup and put back after it.
    let bands: Vec<(String, Rate)> =
        feed.engine.markets().iter().map(|m| (m.name.to_string(), m.params.max_trade_deviation)).collect();
    for (market, _) in &bands {
        feed.push_checked(band_line(market, SETUP_BAND))?;
    }
    for account in &population.accounts {
        for (asset, amount) in &account.deposits {
            feed.push_checked(deposit_line(&account.name, asset, *amount))?;
        }
        let extra = initial_margin_increase(feed.engine.markets(), static_params, policy_params, account)?;
        if extra.is_positive() {
            top_up_total += quote_f64(extra);
            feed.push_checked(deposit_line(&account.name, &settlement, extra))?;
        }
        for p in &account.positions {
            let (buyer, seller) = if p.size.is_positive() {
                (account.name.as_str(), LIQUIDITY_PROVIDER)
            } else {
                (LIQUIDITY_PROVIDER, account.name.as_str())
            };
            let magnitude = Size::from_raw(p.size.raw().saturating_abs());
            let line = trade_line(&p.market, buyer, seller, magnitude, p.price);
            let refusal = feed.push(line.clone()).iter().find_map(|e| e.rejection_kind().map(str::to_string));
            match refusal {
                Some(kind) if population.relaxed_setup => refused.push((account.name.clone(), kind)),
                Some(kind) => return Err(StressError::EngineRejected { line, error: kind }),
                None => {}
            }
        }
    }
    for (market, band) in &bands {
        feed.push_checked(band_line(market, &band.to_string()))?;
    }
    Ok((refused, top_up_total))
}

/// The trade price band during the setup: a million times the mark either side.
const SETUP_BAND: &str = "1000000";

fn band_line(market: &str, band: &str) -> String {
    format!(r#"{{"type":"params","ts":{T_SETUP_MS},"market":"{market}","max_trade_deviation":"{band}"}}"#)
}

/// What the account's positions need in initial margin under the policy's tables
/// beyond what the static tables need, at mark: the scaled policy's population posts
/// it, so every account keeps the free collateral it has under the static tables.
fn initial_margin_increase(
    markets: &[solvent_core::state::Market],
    static_params: &[MarketParams],
    policy_params: &[MarketParams],
    account: &crate::population::AccountSpec,
) -> Result<Quote> {
    let overflow = || StressError::Population(format!("account {}: margin overflow", account.name));
    let mut extra = Quote::ZERO;
    for p in &account.positions {
        let Some(i) = markets.iter().position(|m| *m.name == *p.market) else { continue };
        if policy_params[i] == static_params[i] {
            continue;
        }
        let mark = markets[i].mark_price.unwrap_or(p.price);
        let policy = margin::position_im(&policy_params[i], p.size, mark).map_err(|_| overflow())?;
        let base = margin::position_im(&static_params[i], p.size, mark).map_err(|_| overflow())?;
        extra = extra
            .checked_add(policy.checked_sub(base).map_err(|_| overflow())?.max(Quote::ZERO))
            .map_err(|_| overflow())?;
    }
    Ok(extra)
}

/// A `params` update with only `tiers` set.
pub(crate) fn tiers_update(ts: u64, market: &str, tiers: &[Tier]) -> ParamsUpdate {
    let specs = tiers
        .iter()
        .filter_map(|t| {
            Some(solvent_core::config::TierSpec {
                from: t.from.clone(),
                mm_rate: t.mm_rate.parse().ok()?,
                penalty_rate: t.penalty_rate.parse().ok()?,
            })
        })
        .collect();
    ParamsUpdate { ts, market: market.to_string(), tiers: Some(specs), ..Default::default() }
}
