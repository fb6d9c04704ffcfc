//! The engine's state: accounts, positions, markets, collateral assets and protocol balances.
//!
//! Tables are dense vectors indexed by small ids, in creation order (which is deterministic: it
//! follows the events). Hash maps exist only to find an id by name and are never iterated in
//! anything observable; the state hash and the dump sort by name.

use crate::config::{MarketParams, TierBasis};
use crate::num::{Price, Quote, Rate, Size};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MarketId(pub u16);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AssetId(pub u16);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(pub u32);

/// A position: signed size and exact signed cost basis (sum of size x price of what is open).
/// Invariant: `size != 0` while stored in an account; `cost` has the sign of `size`
/// unless the position was opened at a price of zero (impossible: prices are positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub market: MarketId,
    pub size: Size,
    pub cost: Quote,
}

impl Position {
    /// Exact unrealized PnL at `mark`: size x mark - cost.
    pub fn unrealized_pnl(&self, mark: Price) -> Result<Quote, crate::num::Overflow> {
        self.size.mul_price(mark).checked_sub(self.cost)
    }

    /// Average entry price, rounded down (display only; the exact basis is `cost`).
    pub fn entry_price(&self) -> Option<Price> {
        if self.size.is_zero() {
            return None;
        }
        self.cost.div_size(self.size, crate::num::Round::Down).ok()
    }
}

/// One account. `settlement` is the balance of the settlement asset, where realized PnL and fees
/// are booked; it may go negative (a loss beyond the settlement balance, backed by other
/// collateral). `collateral` holds the other assets (strictly positive balances, sorted by id).
///
/// The name is stored inline in the record when it has at most 24 bytes (`CompactString`): a
/// lookup by name compares it in the record it has already fetched, with no second cache miss on
/// a separate heap block, and a short name needs no allocation of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: compact_str::CompactString,
    pub settlement: Quote,
    pub collateral: Vec<(AssetId, Size)>,
    pub positions: Vec<Position>,
    /// How the account's requirement is defined (`margin::health` dispatches on it).
    pub margin_model: MarginModel,
}

/// The definition of an account's maintenance and initial margin. `margin::health` is the one
/// exact definition for every model; each fast path (the quick verdicts, the full scan's bounds,
/// the risk index's boxes, liquidation sizing) is written for the models it understands and
/// falls back to the exact definition for the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MarginModel {
    /// Per position, the market's tier table (docs/margin.md section 1); the account's MM is the
    /// sum of its positions'.
    #[default]
    Tiered,
    /// The worst loss over a grid of joint scenarios, offsets between correlated markets
    /// included, with floors (`portfolio.rs`, docs/margin.md section 6). Opt-in per account.
    Portfolio,
}

impl MarginModel {
    /// Whether the requirement is the tiered sum of per-position figures, which every fast path
    /// of the core is written for.
    #[inline(always)]
    pub fn is_tiered(self) -> bool {
        self == MarginModel::Tiered
    }

    /// The model's name in events, the dump and the API.
    pub fn name(self) -> &'static str {
        match self {
            MarginModel::Tiered => "tiered",
            MarginModel::Portfolio => "portfolio",
        }
    }

    pub fn from_name(name: &str) -> Option<MarginModel> {
        match name {
            "tiered" => Some(MarginModel::Tiered),
            "portfolio" => Some(MarginModel::Portfolio),
            _ => None,
        }
    }
}

impl Account {
    pub fn new(name: &str) -> Account {
        Account {
            name: name.into(),
            settlement: Quote::ZERO,
            collateral: Vec::new(),
            positions: Vec::new(),
            margin_model: MarginModel::Tiered,
        }
    }

    pub fn position(&self, market: MarketId) -> Option<&Position> {
        self.positions.iter().find(|p| p.market == market)
    }

    /// Size of the position in `market` (zero when there is none).
    pub fn size(&self, market: MarketId) -> Size {
        self.position(market).map_or(Size::ZERO, |p| p.size)
    }

    pub fn collateral_balance(&self, asset: AssetId) -> Size {
        self.collateral.iter().find(|(a, _)| *a == asset).map_or(Size::ZERO, |(_, b)| *b)
    }

    /// Set the balance of a non-settlement asset, keeping the list sorted and free of zeros.
    pub fn set_collateral(&mut self, asset: AssetId, balance: Size) {
        debug_assert!(!balance.is_negative(), "collateral balances are never negative");
        match self.collateral.binary_search_by_key(&asset, |(a, _)| *a) {
            Ok(i) if balance.is_zero() => {
                self.collateral.remove(i);
            }
            Ok(i) => self.collateral[i].1 = balance,
            Err(_) if balance.is_zero() => {}
            Err(i) => {
                self.collateral.reserve_exact(1); // exact growth: lists are short, accounts many
                self.collateral.insert(i, (asset, balance));
            }
        }
    }

    /// Replace the position in `market`, keeping the list sorted and free of zero sizes.
    pub fn set_position(&mut self, position: Position) {
        debug_assert!(!position.size.is_zero() || position.cost.is_zero(), "a closed position has no cost");
        match self.positions.binary_search_by_key(&position.market, |p| p.market) {
            Ok(i) if position.size.is_zero() => {
                self.positions.remove(i);
            }
            Ok(i) => self.positions[i] = position,
            Err(_) if position.size.is_zero() => {}
            Err(i) => {
                // Exact growth: a first push would reserve room for four positions (128 bytes).
                self.positions.reserve_exact(1);
                self.positions.insert(i, position);
            }
        }
    }
}

/// The latest tick of one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    pub price: Price,
    pub ts: u64,
    pub conf: Option<Price>,
}

/// Per-source counters, shown in the state dump. They are telemetry: kept in snapshots but not
/// in the state hash, because a rejected tick (which must not change the state) still counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounters {
    pub accepted: u64,
    pub stale: u64,
    pub outlier: u64,
    pub wide_conf: u64,
    pub bad_signature: u64,
    pub future_ts: u64,
    pub replayed: u64,
}

/// How the last index computation judged a source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceStatus {
    /// No tick yet.
    #[default]
    Missing,
    Usable,
    /// Older than `max_age_ms` at the engine clock.
    Stale,
    /// Farther than `max_deviation` from the first median.
    Outlier,
    /// Reported `conf` / price above `max_conf`.
    WideConf,
}

impl SourceStatus {
    pub fn name(self) -> &'static str {
        match self {
            SourceStatus::Missing => "missing",
            SourceStatus::Usable => "usable",
            SourceStatus::Stale => "stale",
            SourceStatus::Outlier => "outlier",
            SourceStatus::WideConf => "wide_conf",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: Box<str>,
    /// When set, ticks must carry a valid ed25519 signature by this key.
    pub public_key: Option<[u8; 32]>,
    pub latest: Option<Tick>,
    pub status: SourceStatus,
    pub counters: SourceCounters,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Market {
    pub name: Box<str>,
    pub params: MarketParams,
    pub sources: Vec<Source>,
    /// Ticks from names not on the whitelist (telemetry, not hashed).
    pub unknown_source_ticks: u64,
    pub index_price: Option<Price>,
    pub mark_price: Option<Price>,
    /// Fewer than `quorum` usable sources: mark held, liquidations paused.
    pub frozen: bool,
    /// The last index computation was held back by the jump clamp.
    pub clamped: bool,
    /// Start of the current one-second clamp window: (index then, engine ts).
    pub jump_anchor: Option<(Price, u64)>,
    /// EMA of (trade price - index), raw price units (signed); used when `mark_ema_ms` > 0.
    pub basis_ema_raw: i64,
    /// Engine ts of the last basis sample.
    pub basis_ts: u64,
    /// Sum of long sizes (= sum of short sizes by zero-sum).
    pub open_interest: Size,
    /// The protocol's own signed position from liquidation takeovers.
    pub inventory: Position,
    /// The live Dutch auction of the inventory, if any.
    pub auction: Option<Auction>,
    /// A running MM phase-in (`phase_in.rs`): `params` then holds the effective tier rates.
    #[serde(default)]
    pub phase_in: Option<Box<crate::phase_in::PhaseIn>>,
    /// Latest `signal` values for this market, by name (`signal.rs`).
    #[serde(default)]
    pub signals: crate::signal::Signals,
    /// Funding and skew-fee state (`funding.rs`); `None` while the market's parameters use none.
    #[serde(default)]
    pub perp: Option<Box<crate::funding::PerpState>>,
    /// Positions in a chunked liquidation episode (`liquidation/sizing.rs`), sorted by account
    /// id; a record is dropped once the account holds no position here.
    #[serde(default)]
    pub liquidations: Vec<LiquidationRecord>,
}

/// A position being liquidated in chunks: the largest size it had at one of the episode's
/// liquidations (a chunk is a fraction of it) and the end of its cooldown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationRecord {
    pub account: AccountId,
    /// The position's side when the record was written: a flip ends the episode.
    pub long: bool,
    /// |size| at the episode's largest liquidated point (positive).
    pub peak: Size,
    /// Engine ts before which no further chunk is taken (unless the backstop threshold is hit).
    pub cooldown_until_ms: u64,
}

/// A Dutch auction of a market's liquidation inventory. What is for sale is always the whole
/// current inventory; the price is relative to the live mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    pub id: u64,
    pub start_ts: u64,
    /// True when the protocol sells (inventory long); false when it buys back (inventory short).
    pub selling: bool,
}

impl Market {
    pub fn tier_basis(&self) -> TierBasis {
        self.params.tier_basis
    }

    /// The parameters the last `params` event (or the config) set: target MM rates, which
    /// initial margin reads. Equal to `params` unless an MM phase-in is running.
    pub fn target_params(&self) -> &MarketParams {
        self.phase_in.as_ref().map_or(&self.params, |p| &p.target)
    }

    /// The chunked-liquidation record of `account` here, if any.
    pub fn liquidation_record(&self, account: AccountId) -> Option<&LiquidationRecord> {
        self.liquidations.binary_search_by_key(&account, |r| r.account).ok().map(|i| &self.liquidations[i])
    }
}

/// A non-settlement collateral asset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub name: Box<str>,
    /// The effective weight: what equity, the risk index and liquidation read. The configured
    /// weight x (1 - bridge haircut), rounded down, moved toward its status's target in bounded
    /// steps (`asset_status.rs`); the configured weight itself is `risk.configured_weight`.
    pub weight: Rate,
    pub index_market: MarketId,
    /// Discount off the index at which the protocol buys the asset in a collateral conversion
    /// (`liquidation/collateral.rs`); in [0, 1).
    #[serde(default = "crate::config::default_collateral_haircut")]
    pub collateral_haircut: Rate,
    /// Chain, token, bridge haircut, status and the running weight phase (`asset_status.rs`).
    pub risk: crate::asset_status::AssetRisk,
}

/// What the protocol holds of one collateral asset, bought from liquidated accounts by collateral
/// conversion (`liquidation/collateral.rs`), with its exact cost basis in the settlement asset
/// (what it paid, less the cost share of what backstop makers took). Invariant: `size` >= 0, and
/// an empty holding carries no cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollateralHolding {
    pub size: Size,
    pub cost: Quote,
}

impl CollateralHolding {
    pub fn is_empty(&self) -> bool {
        self.size.is_zero() && self.cost.is_zero()
    }
}

/// Ledger counters per asset: what came in and went out through deposits and withdrawals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flows<T> {
    pub deposited: T,
    pub withdrawn: T,
}
