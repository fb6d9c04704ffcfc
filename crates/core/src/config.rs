//! Configuration: collateral assets, markets, tier tables and oracle settings.
//!
//! The TOML form (`config/default.toml`, embedded) is parsed into raw serde structs and then
//! validated into [`Config`]; `params` events later change a market's [`MarketParams`] through
//! the same validation ([`MarketParams::validate`]). `docs/config.md` documents every field.

use crate::error::Error;
use crate::num::{Price, Quote, Rate, Size};
use serde::{Deserialize, Serialize};

/// The embedded default configuration (TOML), printed by `solvent config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/default.toml");

/// Upper bounds on every table (TigerBeetle style: nothing grows without a limit).
pub const MAX_MARKETS: usize = 256;
pub const MAX_ASSETS: usize = 64;
pub const MAX_SOURCES: usize = 32;
pub const MAX_TIERS: usize = 32;
pub const MAX_ID_BYTES: usize = 64;
/// Latest event time accepted at all: 9999-12-31T23:59:59.999Z in Unix milliseconds.
pub const MAX_TS_MS: u64 = 253_402_300_799_999;
/// Default of `max_clock_jump_ms`: one hour.
pub const DEFAULT_MAX_CLOCK_JUMP_MS: u64 = 3_600_000;
/// Most cliff ranges per market.
pub const MAX_CLIFF_RANGES: usize = 16;
/// Longest MM phase-in (30 days).
pub const MAX_PHASE_IN_MS: u64 = 30 * 24 * 3_600_000;

/// Whether tier `from` bounds are base units or quote notional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierBasis {
    Size,
    Notional,
}

/// Marginal brackets (continuous) or the whole position at its bracket's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierMode {
    Marginal,
    Whole,
}

/// One bracket. `from` is raw fixed point in the basis unit: `Size` raw (8 decimals) for
/// `TierBasis::Size`, `Quote` raw (16 decimals) for `TierBasis::Notional`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub from_raw: i128,
    pub mm_rate: Rate,
    pub penalty_rate: Rate,
}

/// A market's risk and oracle parameters: everything a `params` event may change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketParams {
    pub tier_basis: TierBasis,
    pub tier_mode: TierMode,
    pub tiers: Vec<Tier>,
    pub im_factor: Rate,
    pub liquidation_buffer: Rate,
    pub quorum: u32,
    pub max_age_ms: u64,
    pub max_deviation: Rate,
    pub max_jump: Rate,
    /// A tick more than this far ahead of the engine clock is rejected (`future_ts`).
    pub max_future_ms: u64,
    /// A tick whose `conf` / price exceeds this is not usable (too uncertain).
    pub max_conf: Rate,
    /// Time constant of the EMA of the basis (trade price - index) added to the index to form the
    /// mark; 0 = mark is the index.
    pub mark_ema_ms: u64,
    /// Dutch auction of the liquidation inventory: the price starts this fraction better than
    /// mark for the protocol ...
    pub auction_start_premium: Rate,
    /// ... and decays linearly to this fraction worse than mark ...
    pub auction_floor_discount: Rate,
    /// ... over this many milliseconds; an unsold remainder is then re-auctioned.
    pub auction_duration_ms: u64,
    /// Auto-deleveraging after the insurance fund; when off, the loss is socialized instead.
    pub adl_enabled: bool,
    /// Every trade fill, reducing and closing ones included, must be priced within this fraction
    /// of the mark (`price_out_of_band` otherwise): colluding accounts cannot move value between
    /// them at an arbitrary price and leave the loss to the insurance fund or to everyone.
    pub max_trade_deviation: Rate,
    /// Extra initial margin on every position: this rate x notional, on top of MM x im_factor
    /// (new exposure and withdrawals only: it never liquidates anyone).
    #[serde(default)]
    pub im_addon_rate: Rate,
    /// A `params` raise of MM rates moves the effective rates toward the new ones linearly over
    /// this many milliseconds of engine time (0: at once). See `phase_in.rs`.
    #[serde(default)]
    pub mm_phase_in_ms: u64,
    /// Per bracket (aligned with `tiers`), the lowest MM rate a `params` event may set; empty when
    /// the config sets no floor (then `params` events are free within the usual rules).
    #[serde(default)]
    pub mm_floors: Vec<Rate>,
    /// Long open interest above which a trade that raises it is refused (`open_interest_cap`).
    #[serde(default)]
    pub oi_cap: Option<Size>,
    /// Mark-price ranges where liquidations cluster (set by an advisor from the liquidation map).
    #[serde(default)]
    pub cliff_ranges: Vec<CliffRange>,
    /// Extra IM (rate x notional) for a position whose liquidation price lies in a cliff range.
    #[serde(default)]
    pub concentration_addon_rate: Rate,
    /// Rebate (rate x filled notional, from the insurance fund) for auction takes filled at a price
    /// inside a cliff range.
    #[serde(default)]
    pub incentive_rebate_rate: Rate,
    /// Funding and skew fees (`funding.rs`, docs/margin.md); all off by default.
    #[serde(default)]
    pub perp: PerpParams,
    /// How partial liquidation is sized and paced (`liquidation/sizing.rs`, docs/liquidation.md
    /// section 3.1); all off by default, the embedded default sets the venues' figures.
    #[serde(default)]
    pub rules: LiquidationRules,
    /// The market's part in portfolio margin (`portfolio.rs`, docs/margin.md section 6), read
    /// only for accounts that opted in.
    #[serde(default)]
    pub portfolio: PortfolioParams,
}

/// A market's portfolio-margin parameters. The scenario grid moves the market by up to
/// `pm_range` (its volatility over the liquidation horizon) in `pm_buckets` equal steps, plus the
/// extended table; `pm_correlation` is its loading on the one common factor, so that two
/// markets' correlation is the product of their loadings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortfolioParams {
    /// Half-width of the price range, as a fraction of the mark (Deribit: 16%).
    pub pm_range: Rate,
    /// Price points over [-range, +range], odd so that 0 is one of them (Deribit: 9).
    pub pm_buckets: u32,
    /// Loading on the common factor, in [0, 1]: 0 (the default) gives no offset against any
    /// other market.
    pub pm_correlation: Rate,
    /// MM = this x the portfolio loss (the account takes the largest over its markets).
    pub pm_mm_factor: Rate,
    /// IM = MM x this (the largest over the account's markets).
    pub pm_im_factor: Rate,
    /// MM is never below this fraction of the sum of the positions' standalone tier MM (the
    /// largest over the account's markets).
    pub pm_floor: Rate,
}

impl Default for PortfolioParams {
    fn default() -> PortfolioParams {
        PortfolioParams {
            pm_range: Rate::from_raw(16_000_000),
            pm_buckets: 9,
            pm_correlation: Rate::ZERO,
            pm_mm_factor: Rate::from_raw(50_000_000),
            pm_im_factor: Rate::from_raw(200_000_000),
            pm_floor: Rate::from_raw(50_000_000),
        }
    }
}

/// Most price points in a portfolio-margin range.
pub const MAX_PM_BUCKETS: u32 = 33;

impl PortfolioParams {
    /// The bounds (kind `params_out_of_bounds`, naming the field).
    pub fn validate(&self) -> Result<(), Error> {
        let out = |field: &str, reason: &str| {
            Err(Error::ParamsOutOfBounds { field: field.to_string(), reason: reason.to_string() })
        };
        if !self.pm_range.is_positive() || self.pm_range >= Rate::ONE {
            return out("pm_range", "must be in (0, 1)");
        }
        if self.pm_buckets < 3 || self.pm_buckets > MAX_PM_BUCKETS || self.pm_buckets.is_multiple_of(2) {
            return out("pm_buckets", "must be odd, from 3 to 33");
        }
        if self.pm_correlation.is_negative() || !self.pm_correlation.is_fraction() {
            return out("pm_correlation", "must be in [0, 1]");
        }
        let ten = Rate::from_raw(10 * Rate::ONE_RAW);
        if !self.pm_mm_factor.is_positive() || self.pm_mm_factor > ten {
            return out("pm_mm_factor", "must be in (0, 10]");
        }
        if self.pm_im_factor < Rate::ONE || self.pm_im_factor > ten {
            return out("pm_im_factor", "must be in [1, 10]");
        }
        if self.pm_floor.is_negative() || !self.pm_floor.is_fraction() {
            return out("pm_floor", "must be in [0, 1]");
        }
        Ok(())
    }
}

/// The venue rules of partial liquidation. With the defaults (all off) a liquidation closes the
/// smallest slice that restores MM x (1 + buffer); the embedded default sets dYdX's minimum
/// notional, Hyperliquid's chunks, cooldown and backstop threshold, and a dust threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationRules {
    /// A partial close is worth at least this at mark, and never leaves a remainder worth less
    /// (then the whole position closes). dYdX: `min_position_notional_liquidated`; Drift closes in
    /// full under a small shortage. 0: off.
    #[serde(default)]
    pub min_liquidation_notional: Quote,
    /// A position worth more than this at mark is liquidated in chunks (Hyperliquid: 100k USDC).
    /// `None`: no chunks.
    #[serde(default)]
    pub liquidation_chunk_notional: Option<Quote>,
    /// One chunk: this fraction of the largest size the position had at a liquidation of its
    /// current episode (Hyperliquid: 20%), so an episode takes at most 1 / rate liquidations.
    #[serde(default = "default_liquidation_chunk_rate")]
    pub liquidation_chunk_rate: Rate,
    /// After a chunk, the position is not liquidated again for this long (Hyperliquid: 30 s),
    /// unless the account falls under the backstop threshold.
    #[serde(default)]
    pub liquidation_cooldown_ms: u64,
    /// Below equity < MM x this fraction, the position closes in full at once: no chunk, no
    /// cooldown (Hyperliquid's backstop liquidation at 2/3 of MM). 0: off (bankruptcy, at equity
    /// < 0, still closes everything).
    #[serde(default)]
    pub backstop_mm_fraction: Rate,
    /// An account a liquidation leaves with no position, no other collateral and a settlement
    /// balance in (0, this) has that balance swept to the insurance fund. 0: off.
    #[serde(default)]
    pub dust_equity: Quote,
    /// Per event, at most this notional (at mark) is liquidated from one account's position in
    /// the market; the rest waits for later events (dYdX's per-block
    /// `max_notional_liquidated` per subaccount). `None`: no cap.
    #[serde(default)]
    pub max_account_liquidation_notional: Option<Quote>,
    /// Per event, at most this notional (at mark) is liquidated in the market over all accounts
    /// (dYdX's per-block limits, for the whole market). `None`: no cap.
    #[serde(default)]
    pub max_event_liquidation_notional: Option<Quote>,
}

impl Default for LiquidationRules {
    fn default() -> LiquidationRules {
        LiquidationRules {
            min_liquidation_notional: Quote::ZERO,
            liquidation_chunk_notional: None,
            liquidation_chunk_rate: default_liquidation_chunk_rate(),
            liquidation_cooldown_ms: 0,
            backstop_mm_fraction: Rate::ZERO,
            dust_equity: Quote::ZERO,
            max_account_liquidation_notional: None,
            max_event_liquidation_notional: None,
        }
    }
}

/// Longest liquidation cooldown (one hour).
pub const MAX_LIQUIDATION_COOLDOWN_MS: u64 = 3_600_000;

fn default_liquidation_chunk_rate() -> Rate {
    Rate::from_raw(20_000_000) // 20%
}

impl LiquidationRules {
    /// Whether any rule is on (else liquidation behaves as without them, and the state hash
    /// leaves them out).
    pub fn used(&self) -> bool {
        *self != LiquidationRules::default()
    }

    /// The bounds (kind `params_out_of_bounds`, naming the field).
    pub fn validate(&self) -> Result<(), Error> {
        let out = |field: &str, reason: &str| {
            Err(Error::ParamsOutOfBounds { field: field.to_string(), reason: reason.to_string() })
        };
        if self.min_liquidation_notional.is_negative() {
            return out("min_liquidation_notional", "must not be negative");
        }
        if self.liquidation_chunk_notional.is_some_and(|n| !n.is_positive()) {
            return out("liquidation_chunk_notional", "must be positive (0 removes it)");
        }
        if !self.liquidation_chunk_rate.is_positive() || !self.liquidation_chunk_rate.is_fraction() {
            return out("liquidation_chunk_rate", "must be in (0, 1]");
        }
        if self.liquidation_cooldown_ms > MAX_LIQUIDATION_COOLDOWN_MS {
            return out("liquidation_cooldown_ms", "at most one hour (3600000 ms)");
        }
        if !self.backstop_mm_fraction.is_fraction() {
            return out("backstop_mm_fraction", "must be in [0, 1]");
        }
        if self.dust_equity.is_negative() {
            return out("dust_equity", "must not be negative");
        }
        if self.max_account_liquidation_notional.is_some_and(|n| !n.is_positive()) {
            return out("max_account_liquidation_notional", "must be positive (0 removes it)");
        }
        if self.max_event_liquidation_notional.is_some_and(|n| !n.is_positive()) {
            return out("max_event_liquidation_notional", "must be positive (0 removes it)");
        }
        Ok(())
    }
}

/// Funding, skew-fee and exposure-alert parameters of a market. The defaults switch everything
/// off (`funding_enabled = false`, no `skew_scale`, no alert thresholds) and set Hyperliquid's
/// published figures for when funding is switched on: hourly, interest 0.00125% per interval,
/// clamp 0.05%, cap 4% per interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerpParams {
    /// Settle funding at each interval boundary (a `clock` event at or past it).
    #[serde(default)]
    pub funding_enabled: bool,
    /// Length of a funding interval; boundaries are the multiples of it in engine time.
    #[serde(default = "default_funding_interval_ms")]
    pub funding_interval_ms: u64,
    /// Interest rate I per interval in F = P + clamp(I - P, -clamp, +clamp).
    #[serde(default = "default_funding_interest_rate")]
    pub funding_interest_rate: Rate,
    #[serde(default = "default_funding_clamp")]
    pub funding_clamp: Rate,
    /// |F| per interval never exceeds this (skew term included).
    #[serde(default = "default_funding_cap")]
    pub funding_cap: Rate,
    /// Skew (in base units) at which the skew premium reaches 100% and the funding velocity its
    /// maximum; `None`: no skew fee and no skew term.
    #[serde(default)]
    pub skew_scale: Option<Size>,
    /// Funding-rate velocity (per day, per day) when skew = skew_scale; 0: no skew term.
    #[serde(default)]
    pub max_funding_velocity: Rate,
    /// An `alert` when |traders' skew| crosses this size (either way).
    #[serde(default)]
    pub skew_alert: Option<Size>,
    /// An `alert` when |protocol inventory| x mark crosses this notional (either way).
    #[serde(default)]
    pub protocol_delta_alert: Option<Quote>,
}

impl Default for PerpParams {
    fn default() -> PerpParams {
        PerpParams {
            funding_enabled: false,
            funding_interval_ms: default_funding_interval_ms(),
            funding_interest_rate: default_funding_interest_rate(),
            funding_clamp: default_funding_clamp(),
            funding_cap: default_funding_cap(),
            skew_scale: None,
            max_funding_velocity: Rate::ZERO,
            skew_alert: None,
            protocol_delta_alert: None,
        }
    }
}

impl PerpParams {
    /// Whether the market needs funding / skew state at all (else it behaves as before).
    pub fn used(&self) -> bool {
        self.funding_enabled
            || self.skew_scale.is_some()
            || self.skew_alert.is_some()
            || self.protocol_delta_alert.is_some()
    }

    /// The bounds (kind `params_out_of_bounds`, naming the field).
    pub fn validate(&self) -> Result<(), Error> {
        let out = |field: &str, reason: &str| {
            Err(Error::ParamsOutOfBounds { field: field.to_string(), reason: reason.to_string() })
        };
        if !(MIN_FUNDING_INTERVAL_MS..=MAX_FUNDING_INTERVAL_MS).contains(&self.funding_interval_ms) {
            return out("funding_interval_ms", "between 1000 (1 s) and 604800000 (7 days)");
        }
        if !self.funding_cap.is_positive() || !self.funding_cap.is_fraction() {
            return out("funding_cap", "must be in (0, 1]");
        }
        if self.funding_clamp.is_negative() || self.funding_clamp > self.funding_cap {
            return out("funding_clamp", "must be in [0, funding_cap]");
        }
        if self.funding_interest_rate.checked_abs().map_or(true, |r| r > self.funding_cap) {
            return out("funding_interest_rate", "|rate| must not exceed funding_cap");
        }
        if self.skew_scale.is_some_and(|s| !s.is_positive()) {
            return out("skew_scale", "must be positive");
        }
        if self.max_funding_velocity.is_negative() || self.max_funding_velocity > Rate::from_raw(100 * Rate::ONE_RAW) {
            return out("max_funding_velocity", "must be in [0, 100] (per day, per day)");
        }
        if self.skew_alert.is_some_and(|s| !s.is_positive()) {
            return out("skew_alert", "must be positive");
        }
        if self.protocol_delta_alert.is_some_and(|s| !s.is_positive()) {
            return out("protocol_delta_alert", "must be positive");
        }
        Ok(())
    }
}

/// Shortest and longest funding interval.
pub const MIN_FUNDING_INTERVAL_MS: u64 = 1_000;
pub const MAX_FUNDING_INTERVAL_MS: u64 = 7 * 24 * 3_600_000;

fn default_funding_interval_ms() -> u64 {
    3_600_000
}
fn default_funding_interest_rate() -> Rate {
    Rate::from_raw(1_250) // 0.00125% per hour
}
fn default_funding_clamp() -> Rate {
    Rate::from_raw(50_000) // 0.05%
}
fn default_funding_cap() -> Rate {
    Rate::from_raw(4_000_000) // 4%
}

/// A mark-price range `[from, to]` (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliffRange {
    pub from: Price,
    pub to: Price,
}

impl CliffRange {
    pub fn contains(&self, price: Price) -> bool {
        self.from <= price && price <= self.to
    }
}

/// A tier as written in TOML or a `params` event: decimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    pub from: String,
    pub mm_rate: Rate,
    pub penalty_rate: Rate,
}

impl TierSpec {
    /// Convert to a [`Tier`] in the given basis, checking the bound's precision and sign.
    pub fn to_tier(&self, basis: TierBasis) -> Result<Tier, Error> {
        let invalid = |source| Error::InvalidNumber { field: "tiers.from".into(), source };
        let from_raw = match basis {
            TierBasis::Size => i128::from(Size::parse(&self.from).map_err(invalid)?.raw()),
            TierBasis::Notional => Quote::parse(&self.from).map_err(invalid)?.raw(),
        };
        Ok(Tier { from_raw, mm_rate: self.mm_rate, penalty_rate: self.penalty_rate })
    }
}

impl MarketParams {
    /// Check the parameters; every accepted configuration satisfies these.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidParams(m.to_string()));
        if self.tiers.is_empty() || self.tiers.len() > MAX_TIERS {
            return bad("tiers: between 1 and 32 brackets");
        }
        if self.tiers[0].from_raw != 0 {
            return bad("tiers: the first bracket must start at 0");
        }
        for pair in self.tiers.windows(2) {
            if pair[1].from_raw <= pair[0].from_raw {
                return bad("tiers: `from` must strictly increase");
            }
            if pair[1].mm_rate < pair[0].mm_rate {
                return bad("tiers: mm_rate must not decrease with size (requirements stay convex)");
            }
        }
        for tier in &self.tiers {
            if !tier.mm_rate.is_positive() || !tier.mm_rate.is_fraction() {
                return bad("tiers: mm_rate must be in (0, 1]");
            }
            if tier.penalty_rate.is_negative() || tier.penalty_rate >= tier.mm_rate {
                return bad("tiers: penalty_rate must be in [0, mm_rate)");
            }
        }
        if self.im_factor < Rate::ONE {
            return bad("im_factor must be at least 1");
        }
        if self.liquidation_buffer.is_negative() || self.liquidation_buffer > Rate::ONE {
            return bad("liquidation_buffer must be in [0, 1]");
        }
        if self.quorum == 0 || self.quorum as usize > MAX_SOURCES {
            return bad("quorum must be between 1 and 32");
        }
        if self.max_age_ms == 0 {
            return bad("max_age_ms must be positive");
        }
        if !self.max_deviation.is_positive() || !self.max_jump.is_positive() || !self.max_conf.is_positive() {
            return bad("max_deviation, max_jump and max_conf must be positive");
        }
        if self.max_deviation >= Rate::ONE || self.max_conf >= Rate::ONE {
            return bad("max_deviation and max_conf must be below 1");
        }
        if !self.auction_start_premium.is_fraction() || !self.auction_floor_discount.is_fraction() {
            return bad("auction_start_premium and auction_floor_discount must be in [0, 1]");
        }
        if self.auction_floor_discount >= Rate::ONE {
            return bad("auction_floor_discount must be below 1 (prices stay positive)");
        }
        if self.auction_duration_ms == 0 {
            return bad("auction_duration_ms must be positive");
        }
        if !self.max_trade_deviation.is_positive() {
            return bad("max_trade_deviation must be positive");
        }
        self.perp.validate()?;
        self.rules.validate()?;
        self.portfolio.validate()?;
        self.validate_predictive()
    }

    /// The bounds of the predictive-margin fields (kind `params_out_of_bounds`, naming the field).
    fn validate_predictive(&self) -> Result<(), Error> {
        let out = |field: &str, reason: &str| {
            Err(Error::ParamsOutOfBounds { field: field.to_string(), reason: reason.to_string() })
        };
        for (field, rate) in [
            ("im_addon_rate", self.im_addon_rate),
            ("concentration_addon_rate", self.concentration_addon_rate),
            ("incentive_rebate_rate", self.incentive_rebate_rate),
        ] {
            if !rate.is_fraction() {
                return out(field, "must be in [0, 1]");
            }
        }
        if self.mm_phase_in_ms > MAX_PHASE_IN_MS {
            return out("mm_phase_in_ms", "at most 30 days (2592000000 ms)");
        }
        if self.oi_cap.is_some_and(|cap| !cap.is_positive()) {
            return out("oi_cap", "must be positive");
        }
        if self.cliff_ranges.len() > MAX_CLIFF_RANGES {
            return out("cliff_ranges", "at most 16 ranges");
        }
        if self.cliff_ranges.iter().any(|r| !r.from.is_positive() || r.to < r.from) {
            return out("cliff_ranges", "each range needs 0 < from <= to");
        }
        if self.mm_floors.is_empty() {
            return Ok(());
        }
        if self.mm_floors.len() != self.tiers.len() {
            return out("tiers", "the brackets of a market with MM floors are those of its config");
        }
        for (i, (tier, floor)) in self.tiers.iter().zip(&self.mm_floors).enumerate() {
            if !floor.is_positive() || !floor.is_fraction() {
                return out(&format!("tiers[{i}].mm_floor_rate"), "must be in (0, 1]");
            }
            if tier.mm_rate < *floor {
                return out(
                    &format!("tiers[{i}].mm_rate"),
                    &format!("{} is below the bracket's floor {floor}", tier.mm_rate),
                );
            }
        }
        Ok(())
    }
}

/// A non-settlement collateral asset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssetConfig {
    pub name: String,
    pub weight: Rate,
    pub index_market: String,
    /// The chain the asset lives on (`"arbitrum"`), when it is a bridged form of `token`.
    pub chain: Option<String>,
    /// The token it is a form of (`"USDC"`, `"BTC"`): a label grouping the forms of one token.
    pub token: Option<String>,
    /// In [0, 1): the effective weight is `weight` x (1 - bridge_haircut), rounded down.
    pub bridge_haircut: Rate,
    /// Weight (before the bridge haircut) the asset phases to while `bridge_halted`.
    pub halted_weight: Rate,
    /// Weight (before the bridge haircut) the asset phases to while `depegged`.
    pub depeg_weight: Rate,
    /// A status change moves the effective weight to its new target over this long.
    pub weight_phase_ms: u64,
    /// Discount off the index at which the protocol buys this asset from an account whose
    /// settlement balance a liquidation left negative (`liquidation/collateral.rs`); in [0, 1).
    pub collateral_haircut: Rate,
}

/// The default `collateral_haircut` of an asset: 2%.
pub const DEFAULT_COLLATERAL_HAIRCUT: Rate = Rate::from_raw(2_000_000);

pub(crate) fn default_collateral_haircut() -> Rate {
    DEFAULT_COLLATERAL_HAIRCUT
}

/// Default of `weight_phase_ms`: one hour.
pub const DEFAULT_WEIGHT_PHASE_MS: u64 = 3_600_000;

fn default_weight_phase_ms() -> u64 {
    DEFAULT_WEIGHT_PHASE_MS
}

/// Default of `depeg_weight`: half the weight, rounded down.
pub fn default_depeg_weight(weight: Rate) -> Rate {
    Rate::from_raw(weight.raw() / 2)
}

/// A market and its whitelisted oracle sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MarketConfig {
    pub name: String,
    pub sources: Vec<String>,
    /// Per source (same order), an ed25519 public key: then its ticks must be signed.
    pub source_keys: Vec<Option<[u8; 32]>>,
    pub params: MarketParams,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    pub settlement_asset: String,
    pub max_accounts: usize,
    /// Largest step one clock-advancing event may move the engine clock (`clock_jump` beyond it);
    /// the first event that sets the clock (while it is 0) is bounded only by [`MAX_TS_MS`].
    pub max_clock_jump_ms: u64,
    pub assets: Vec<AssetConfig>,
    pub markets: Vec<MarketConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    settlement_asset: String,
    max_accounts: usize,
    #[serde(default = "default_max_clock_jump_ms")]
    max_clock_jump_ms: u64,
    #[serde(default)]
    assets: Vec<RawAsset>,
    markets: Vec<RawMarket>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAsset {
    name: String,
    weight: Rate,
    index_market: String,
    chain: Option<String>,
    token: Option<String>,
    #[serde(default)]
    bridge_haircut: Rate,
    halted_weight: Option<Rate>,
    depeg_weight: Option<Rate>,
    #[serde(default = "default_weight_phase_ms")]
    weight_phase_ms: u64,
    #[serde(default = "default_collateral_haircut")]
    collateral_haircut: Rate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMarket {
    name: String,
    tier_basis: TierBasis,
    tier_mode: TierMode,
    im_factor: Rate,
    liquidation_buffer: Rate,
    sources: Vec<SourceSpec>,
    quorum: u32,
    max_age_ms: u64,
    max_deviation: Rate,
    max_jump: Rate,
    #[serde(default = "default_max_future_ms")]
    max_future_ms: u64,
    #[serde(default = "default_max_conf")]
    max_conf: Rate,
    #[serde(default)]
    mark_ema_ms: u64,
    #[serde(default = "default_auction_start_premium")]
    auction_start_premium: Rate,
    #[serde(default = "default_auction_floor_discount")]
    auction_floor_discount: Rate,
    #[serde(default = "default_auction_duration_ms")]
    auction_duration_ms: u64,
    #[serde(default = "default_true")]
    adl_enabled: bool,
    #[serde(default = "default_max_trade_deviation")]
    max_trade_deviation: Rate,
    tiers: Vec<RawTier>,
    #[serde(default)]
    im_addon_rate: Rate,
    #[serde(default)]
    mm_phase_in_ms: u64,
    oi_cap: Option<Size>,
    #[serde(default)]
    cliff_ranges: Vec<CliffRange>,
    #[serde(default)]
    concentration_addon_rate: Rate,
    #[serde(default)]
    incentive_rebate_rate: Rate,
    #[serde(default)]
    funding_enabled: bool,
    #[serde(default = "default_funding_interval_ms")]
    funding_interval_ms: u64,
    #[serde(default = "default_funding_interest_rate")]
    funding_interest_rate: Rate,
    #[serde(default = "default_funding_clamp")]
    funding_clamp: Rate,
    #[serde(default = "default_funding_cap")]
    funding_cap: Rate,
    skew_scale: Option<Size>,
    #[serde(default)]
    max_funding_velocity: Rate,
    skew_alert: Option<Size>,
    protocol_delta_alert: Option<Quote>,
    #[serde(default)]
    min_liquidation_notional: Quote,
    liquidation_chunk_notional: Option<Quote>,
    #[serde(default = "default_liquidation_chunk_rate")]
    liquidation_chunk_rate: Rate,
    #[serde(default)]
    liquidation_cooldown_ms: u64,
    #[serde(default)]
    backstop_mm_fraction: Rate,
    #[serde(default)]
    dust_equity: Quote,
    max_account_liquidation_notional: Option<Quote>,
    max_event_liquidation_notional: Option<Quote>,
    pm_range: Option<Rate>,
    pm_buckets: Option<u32>,
    pm_correlation: Option<Rate>,
    pm_mm_factor: Option<Rate>,
    pm_im_factor: Option<Rate>,
    pm_floor: Option<Rate>,
}

/// A tier in the config file: a [`TierSpec`] and an optional MM floor (config only).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTier {
    from: String,
    mm_rate: Rate,
    penalty_rate: Rate,
    mm_floor_rate: Option<Rate>,
}

fn default_auction_start_premium() -> Rate {
    Rate::from_raw(1_000_000) // 1% better than mark
}

fn default_auction_floor_discount() -> Rate {
    Rate::from_raw(3_000_000) // 3% worse than mark
}

fn default_auction_duration_ms() -> u64 {
    60_000
}

/// Default of `max_trade_deviation`: 10% either side of the mark.
pub fn default_max_trade_deviation() -> Rate {
    Rate::from_raw(10_000_000)
}

fn default_true() -> bool {
    true
}

/// A source: a bare name, or a table with a name and an optional hex ed25519 public key.
#[derive(Deserialize)]
#[serde(untagged)]
enum SourceSpec {
    Name(String),
    Table(SourceTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceTable {
    name: String,
    public_key: Option<String>,
}

fn default_max_clock_jump_ms() -> u64 {
    DEFAULT_MAX_CLOCK_JUMP_MS
}

fn default_max_future_ms() -> u64 {
    2_000
}

fn default_max_conf() -> Rate {
    Rate::from_raw(2_000_000) // 2%
}

fn parse_key(market: &str, name: &str, hex_key: &str) -> Result<[u8; 32], ConfigError> {
    let invalid = || ConfigError::Invalid(format!("market {market}: source {name}: public_key must be 64 hex digits"));
    let bytes = hex::decode(hex_key).map_err(|_| invalid())?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| ConfigError::Invalid(format!("market {market}: source {name}: not a valid ed25519 key")))?;
    Ok(key)
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config is not valid TOML for solvent: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("config: {0}")]
    Invalid(String),
    /// Every problem found, each with its field's path (`markets[1] (ETH-PERP).quorum: ...`).
    #[error("config has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Problems(Vec<String>),
}

fn check_id(what: &str, id: &str) -> Result<(), ConfigError> {
    crate::event::validate_id(id).map_err(|reason| ConfigError::Invalid(format!("{what} {id:?}: {reason}")))
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded_default() -> Config {
        Config::from_toml(DEFAULT_CONFIG_TOML).expect("the embedded default config is valid (tested)")
    }

    /// Parse and validate a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(error) => {
                let mut problems = crate::config_check::problems(text);
                if problems.is_empty() {
                    return Err(error.into());
                }
                problems.truncate(crate::config_check::MAX_PROBLEMS);
                return Err(ConfigError::Problems(problems));
            }
        };
        check_id("settlement_asset", &raw.settlement_asset)?;
        if raw.max_accounts == 0 || raw.max_accounts > u32::MAX as usize {
            return Err(ConfigError::Invalid("max_accounts must be in 1..=4294967295".into()));
        }
        if raw.max_clock_jump_ms == 0 {
            return Err(ConfigError::Invalid("max_clock_jump_ms must be positive".into()));
        }
        if raw.markets.is_empty() || raw.markets.len() > MAX_MARKETS {
            return Err(ConfigError::Invalid(format!("between 1 and {MAX_MARKETS} markets")));
        }
        if raw.assets.len() > MAX_ASSETS {
            return Err(ConfigError::Invalid(format!("at most {MAX_ASSETS} collateral assets")));
        }
        let mut markets = Vec::with_capacity(raw.markets.len());
        let mut problems = Vec::new();
        for (i, market) in raw.markets.into_iter().enumerate() {
            match validate_market(market) {
                Ok(market) => markets.push(market),
                Err(error) => {
                    problems.push(format!("markets[{i}]: {}", error.to_string().trim_start_matches("config: ")))
                }
            }
        }
        if problems.len() > 1 {
            return Err(ConfigError::Problems(problems));
        }
        if let Some(problem) = problems.pop() {
            return Err(ConfigError::Invalid(problem));
        }
        let mut names: Vec<&str> = markets.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid("duplicate market name".into()));
        }
        let mut assets = Vec::with_capacity(raw.assets.len());
        for asset in raw.assets {
            let asset = validate_asset(asset, &raw.settlement_asset, &markets, &assets)?;
            assets.push(asset);
        }
        Ok(Config {
            settlement_asset: raw.settlement_asset,
            max_accounts: raw.max_accounts,
            max_clock_jump_ms: raw.max_clock_jump_ms,
            assets,
            markets,
        })
    }
}

/// One `[[assets]]` entry, checked against the settlement asset, the markets and the assets
/// before it.
fn validate_asset(
    asset: RawAsset,
    settlement: &str,
    markets: &[MarketConfig],
    before: &[AssetConfig],
) -> Result<AssetConfig, ConfigError> {
    let name = asset.name.clone();
    let bad = |what: &str| Err(ConfigError::Invalid(format!("asset {name:?}: {what}")));
    check_id("asset", &asset.name)?;
    if asset.name == settlement || before.iter().any(|a| a.name == asset.name) {
        return Err(ConfigError::Invalid(format!("asset {:?} declared twice", asset.name)));
    }
    if !asset.weight.is_fraction() {
        return bad("weight must be in [0, 1]");
    }
    if !markets.iter().any(|m| m.name == asset.index_market) {
        return bad(&format!("unknown index_market {:?}", asset.index_market));
    }
    for (key, value) in [("chain", &asset.chain), ("token", &asset.token)] {
        if let Some(value) = value {
            check_id(&format!("asset {name:?}: {key}"), value)?;
        }
    }
    if asset.bridge_haircut.is_negative() || asset.bridge_haircut >= Rate::ONE {
        return bad("bridge_haircut must be in [0, 1)");
    }
    let halted_weight = asset.halted_weight.unwrap_or(Rate::ZERO);
    let depeg_weight = asset.depeg_weight.unwrap_or(default_depeg_weight(asset.weight));
    for (key, value) in [("halted_weight", halted_weight), ("depeg_weight", depeg_weight)] {
        if value.is_negative() || value > asset.weight {
            return bad(&format!("{key} must be in [0, weight]"));
        }
    }
    if asset.weight_phase_ms > MAX_PHASE_IN_MS {
        return bad("weight_phase_ms at most 30 days (2592000000 ms)");
    }
    let haircut = asset.collateral_haircut;
    if haircut.is_negative() || haircut >= Rate::ONE {
        return bad(&format!("collateral_haircut must be in [0, 1) (got {haircut})"));
    }
    let same_form = |a: &&AssetConfig| a.token.is_some() && a.token == asset.token && a.chain == asset.chain;
    if let Some(twin) = before.iter().find(same_form) {
        return bad(&format!("the same token and chain as asset {:?}", twin.name));
    }
    Ok(AssetConfig {
        name: asset.name,
        weight: asset.weight,
        index_market: asset.index_market,
        chain: asset.chain,
        token: asset.token,
        bridge_haircut: asset.bridge_haircut,
        halted_weight,
        depeg_weight,
        weight_phase_ms: asset.weight_phase_ms,
        collateral_haircut: haircut,
    })
}

fn validate_market(raw: RawMarket) -> Result<MarketConfig, ConfigError> {
    check_id("market", &raw.name)?;
    if raw.sources.is_empty() || raw.sources.len() > MAX_SOURCES {
        return Err(ConfigError::Invalid(format!("market {}: between 1 and {MAX_SOURCES} sources", raw.name)));
    }
    let mut sources = Vec::with_capacity(raw.sources.len());
    let mut source_keys = Vec::with_capacity(raw.sources.len());
    for spec in &raw.sources {
        let (name, key) = match spec {
            SourceSpec::Name(name) => (name, None),
            SourceSpec::Table(SourceTable { name, public_key: None }) => (name, None),
            SourceSpec::Table(SourceTable { name, public_key: Some(key) }) => {
                (name, Some(parse_key(&raw.name, name, key)?))
            }
        };
        check_id("source", name)?;
        sources.push(name.clone());
        source_keys.push(key);
    }
    let mut sorted = sources.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(ConfigError::Invalid(format!("market {}: duplicate source", raw.name)));
    }
    let invalid = |e: Error| ConfigError::Invalid(format!("market {}: {e}", raw.name));
    let tiers = raw
        .tiers
        .iter()
        .map(|t| {
            TierSpec { from: t.from.clone(), mm_rate: t.mm_rate, penalty_rate: t.penalty_rate }.to_tier(raw.tier_basis)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    // Floors apply once any bracket sets one; a bracket without one is floored at its own rate.
    let mm_floors = if raw.tiers.iter().any(|t| t.mm_floor_rate.is_some()) {
        raw.tiers.iter().map(|t| t.mm_floor_rate.unwrap_or(t.mm_rate)).collect()
    } else {
        Vec::new()
    };
    let params = MarketParams {
        tier_basis: raw.tier_basis,
        tier_mode: raw.tier_mode,
        tiers,
        im_factor: raw.im_factor,
        liquidation_buffer: raw.liquidation_buffer,
        quorum: raw.quorum,
        max_age_ms: raw.max_age_ms,
        max_deviation: raw.max_deviation,
        max_jump: raw.max_jump,
        max_future_ms: raw.max_future_ms,
        max_conf: raw.max_conf,
        mark_ema_ms: raw.mark_ema_ms,
        auction_start_premium: raw.auction_start_premium,
        auction_floor_discount: raw.auction_floor_discount,
        auction_duration_ms: raw.auction_duration_ms,
        adl_enabled: raw.adl_enabled,
        max_trade_deviation: raw.max_trade_deviation,
        im_addon_rate: raw.im_addon_rate,
        mm_phase_in_ms: raw.mm_phase_in_ms,
        mm_floors,
        oi_cap: raw.oi_cap,
        cliff_ranges: raw.cliff_ranges,
        concentration_addon_rate: raw.concentration_addon_rate,
        incentive_rebate_rate: raw.incentive_rebate_rate,
        perp: PerpParams {
            funding_enabled: raw.funding_enabled,
            funding_interval_ms: raw.funding_interval_ms,
            funding_interest_rate: raw.funding_interest_rate,
            funding_clamp: raw.funding_clamp,
            funding_cap: raw.funding_cap,
            skew_scale: raw.skew_scale,
            max_funding_velocity: raw.max_funding_velocity,
            skew_alert: raw.skew_alert,
            protocol_delta_alert: raw.protocol_delta_alert,
        },
        rules: LiquidationRules {
            min_liquidation_notional: raw.min_liquidation_notional,
            liquidation_chunk_notional: raw.liquidation_chunk_notional,
            liquidation_chunk_rate: raw.liquidation_chunk_rate,
            liquidation_cooldown_ms: raw.liquidation_cooldown_ms,
            backstop_mm_fraction: raw.backstop_mm_fraction,
            dust_equity: raw.dust_equity,
            max_account_liquidation_notional: raw.max_account_liquidation_notional,
            max_event_liquidation_notional: raw.max_event_liquidation_notional,
        },
        portfolio: {
            let d = PortfolioParams::default();
            PortfolioParams {
                pm_range: raw.pm_range.unwrap_or(d.pm_range),
                pm_buckets: raw.pm_buckets.unwrap_or(d.pm_buckets),
                pm_correlation: raw.pm_correlation.unwrap_or(d.pm_correlation),
                pm_mm_factor: raw.pm_mm_factor.unwrap_or(d.pm_mm_factor),
                pm_im_factor: raw.pm_im_factor.unwrap_or(d.pm_im_factor),
                pm_floor: raw.pm_floor.unwrap_or(d.pm_floor),
            }
        },
    };
    params.validate().map_err(invalid)?;
    if params.quorum as usize > sources.len() {
        return Err(ConfigError::Invalid(format!("market {}: quorum exceeds the number of sources", raw.name)));
    }
    Ok(MarketConfig { name: raw.name, sources, source_keys, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_matches_design() {
        let config = Config::embedded_default();
        assert_eq!(config.settlement_asset, "USDC");
        assert_eq!(config.markets.len(), 3);
        let btc = &config.markets[0];
        assert_eq!(btc.name, "BTC-PERP");
        assert_eq!(btc.sources.len(), 5);
        assert_eq!(btc.params.quorum, 3);
        assert_eq!(btc.params.max_age_ms, 5000);
        assert_eq!(btc.params.im_factor, Rate::from_int(2).unwrap());
        let froms: Vec<i128> = btc.params.tiers.iter().map(|t| t.from_raw).collect();
        assert_eq!(
            froms,
            vec![0, 50 * Size::ONE_RAW as i128, 250 * Size::ONE_RAW as i128, 1000 * Size::ONE_RAW as i128]
        );
        assert_eq!(config.assets[0].weight, Rate::parse("0.9").unwrap());
        assert_eq!(config.assets[1].weight, Rate::parse("0.85").unwrap());
        assert_eq!(config.assets[0].collateral_haircut, DEFAULT_COLLATERAL_HAIRCUT, "the default haircut is 2%");
        assert_eq!(DEFAULT_COLLATERAL_HAIRCUT, Rate::parse("0.02").unwrap());
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let cases = [
            ("settlement_asset = 1", "invalid type"),
            (&DEFAULT_CONFIG_TOML.replace("\"0.025\"", "\"0.5\""), "mm_rate must not decrease"),
            (&DEFAULT_CONFIG_TOML.replace("quorum = 3", "quorum = 9"), "quorum"),
            (&DEFAULT_CONFIG_TOML.replace("weight = \"0.9\"", "weight = \"1.5\""), "weight"),
            (&DEFAULT_CONFIG_TOML.replace("index_market = \"BTC-PERP\"", "index_market = \"X\""), "index_market"),
            (&DEFAULT_CONFIG_TOML.replace("im_factor = \"2\"", "im_factor = \"0.5\""), "im_factor"),
            (
                &DEFAULT_CONFIG_TOML.replace("weight = \"0.9\"", "weight = \"0.9\"\ncollateral_haircut = \"1\""),
                "collateral_haircut must be in [0, 1)",
            ),
            (
                &DEFAULT_CONFIG_TOML.replace("weight = \"0.9\"", "weight = \"0.9\"\ncollateral_haircut = \"-0.01\""),
                "collateral_haircut must be in [0, 1)",
            ),
            (&DEFAULT_CONFIG_TOML.replace("max_jump = \"0.10\"", "max_jump = 0.1"), "invalid type"),
        ];
        for (text, needle) in cases {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
