//! Typed errors. Every rejection carries a stable snake_case kind (`Error::kind`) that appears in
//! `rejected` effects and HTTP error bodies, and a human message (`Display`). Kinds are a contract:
//! they may be added, never renamed.

use crate::num::{NumError, Overflow, Quote};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ---- the line itself ----
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    #[error("line longer than {max_bytes} bytes")]
    LineTooLong { max_bytes: usize },
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("an event must be a JSON object")]
    NotAnObject,
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("unknown field `{field}` for event type {event_type}")]
    UnknownField { field: String, event_type: String },
    #[error("field `{0}` appears twice")]
    DuplicateField(String),
    #[error("field `{field}` must be {expected}")]
    InvalidFieldType { field: String, expected: &'static str },
    #[error("field `{field}`: {source}")]
    InvalidNumber { field: String, source: NumError },
    #[error("field `{field}` must be greater than zero")]
    NonPositive { field: String },
    #[error("field `{field}` must not be negative")]
    Negative { field: String },
    #[error("field `{field}`: invalid id ({reason})")]
    InvalidId { field: String, reason: &'static str },

    // ---- references ----
    #[error("unknown market {0:?}")]
    UnknownMarket(String),
    #[error("unknown asset {0:?}")]
    UnknownAsset(String),
    #[error("source {source_name:?} is not whitelisted for market {market}")]
    UnknownSource { market: String, source_name: String },
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error("unknown auction {0:?}")]
    UnknownAuction(String),
    #[error("unknown asset status {0:?} (normal, bridge_halted or depegged)")]
    UnknownAssetStatus(String),

    // ---- oracle ticks refused on arrival (reported as `oracle_rejected` effects) ----
    #[error("market {market}, source {source_name}: bad signature ({detail})")]
    BadSignature { market: String, source_name: String, detail: &'static str },
    #[error("market {market}, source {source_name}: tick ts {ts} is more than {max_future_ms} ms ahead of the engine clock {now}")]
    FutureTs { market: String, source_name: String, ts: u64, now: u64, max_future_ms: u64 },
    #[error("market {market}, source {source_name}: tick ts {ts} is not after the source's last tick at {last_ts} (replayed or out of order)")]
    ReplayedTick { market: String, source_name: String, ts: u64, last_ts: u64 },

    // ---- sequencing ----
    #[error("time went backwards: ts {ts} is before the last accepted ts {last_ts}")]
    TimeBackwards { ts: u64, last_ts: u64 },
    #[error("clock jump refused: ts {ts} is more than {max_jump_ms} ms after the engine clock {last_ts} (or beyond year 9999)")]
    ClockJump { ts: u64, last_ts: u64, max_jump_ms: u64 },

    // ---- business rules ----
    #[error("market {market}: trade price {price} is more than {max_deviation} away from the mark {mark}")]
    PriceOutOfBand { market: String, price: String, mark: String, max_deviation: String },
    #[error("self-trade: buyer and seller are both {0:?}")]
    SelfTrade(String),
    #[error("market {0} has no mark price yet")]
    NoMarkPrice(String),
    #[error("account {account}: equity {equity} would be below initial margin {required}")]
    InsufficientMargin { account: String, equity: Quote, required: Quote },
    #[error("account {account}: withdrawal of {amount} exceeds the free collateral {free} (unrealized profit cannot be withdrawn)")]
    WithdrawalExceedsFree { account: String, amount: String, free: Quote },
    #[error("account {account}: under {model} margin its initial margin would be {initial_margin}, above its equity without profit {equity_without_profit}")]
    MarginModelRefused { account: String, model: &'static str, equity_without_profit: Quote, initial_margin: Quote },
    #[error("account {account}: balance of {asset} is {balance}, below the {amount} asked")]
    InsufficientBalance { account: String, asset: String, balance: String, amount: String },
    #[error("market {market} is frozen (oracle quorum lost): {what} depends on its held price")]
    MarketFrozen { market: String, what: &'static str },
    #[error("auction {auction}: size {size} exceeds the {remaining} left")]
    AuctionSizeExceeded { auction: String, size: String, remaining: String },
    #[error("asset {asset}: size {size} exceeds the protocol's holdings of {holdings}")]
    CollateralHoldingsExceeded { asset: String, size: String, holdings: String },
    #[error("asset {0:?} is the settlement asset: the protocol holds no collateral of it to sell")]
    NotCollateralAsset(String),
    #[error("account {account}: a deposit may not take its balance above {limit}")]
    BalanceLimit { account: String, limit: String },
    #[error("account limit of {max} reached")]
    TooManyAccounts { max: usize },
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("params field `{field}` out of bounds: {reason}")]
    ParamsOutOfBounds { field: String, reason: String },
    #[error("signal {name:?}: at most {max} signal names per market (and {max} without one)")]
    TooManySignals { max: usize, name: String },
    #[error("market {market}: open interest {open_interest} would exceed the cap {cap}")]
    OpenInterestCap { market: String, open_interest: String, cap: String },
    #[error("arithmetic overflow while applying the event")]
    Overflow,
}

impl From<Overflow> for Error {
    fn from(_: Overflow) -> Self {
        Error::Overflow
    }
}

impl Error {
    /// For a price tick refused on arrival: (market, source).
    pub fn oracle_subject(&self) -> Option<(&str, &str)> {
        match self {
            Error::UnknownSource { market, source_name }
            | Error::BadSignature { market, source_name, .. }
            | Error::FutureTs { market, source_name, .. }
            | Error::ReplayedTick { market, source_name, .. } => Some((market, source_name)),
            _ => None,
        }
    }

    /// Stable snake_case kind of this error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidUtf8 => "invalid_utf8",
            Error::LineTooLong { .. } => "line_too_long",
            Error::InvalidJson(_) => "invalid_json",
            Error::NotAnObject => "not_an_object",
            Error::UnknownType(_) => "unknown_type",
            Error::MissingField(_) => "missing_field",
            Error::UnknownField { .. } => "unknown_field",
            Error::DuplicateField(_) => "duplicate_field",
            Error::InvalidFieldType { .. } => "invalid_field_type",
            Error::InvalidNumber { source, .. } => source.kind(),
            Error::NonPositive { .. } => "non_positive",
            Error::Negative { .. } => "negative",
            Error::InvalidId { .. } => "invalid_id",
            Error::UnknownMarket(_) => "unknown_market",
            Error::UnknownAsset(_) => "unknown_asset",
            Error::UnknownSource { .. } => "unknown_source",
            Error::UnknownAccount(_) => "unknown_account",
            Error::UnknownAuction(_) => "unknown_auction",
            Error::UnknownAssetStatus(_) => "unknown_asset_status",
            Error::BadSignature { .. } => "bad_signature",
            Error::FutureTs { .. } => "future_ts",
            Error::ReplayedTick { .. } => "replayed",
            Error::TimeBackwards { .. } => "time_backwards",
            Error::ClockJump { .. } => "clock_jump",
            Error::PriceOutOfBand { .. } => "price_out_of_band",
            Error::SelfTrade(_) => "self_trade",
            Error::NoMarkPrice(_) => "no_mark_price",
            Error::InsufficientMargin { .. } => "insufficient_margin",
            Error::WithdrawalExceedsFree { .. } => "withdrawal_exceeds_free_collateral",
            Error::MarginModelRefused { .. } => "margin_model_refused",
            Error::InsufficientBalance { .. } => "insufficient_balance",
            Error::MarketFrozen { .. } => "market_frozen",
            Error::AuctionSizeExceeded { .. } => "auction_size_exceeded",
            Error::CollateralHoldingsExceeded { .. } => "collateral_holdings_exceeded",
            Error::NotCollateralAsset(_) => "not_collateral_asset",
            Error::TooManyAccounts { .. } => "too_many_accounts",
            Error::BalanceLimit { .. } => "balance_limit",
            Error::InvalidParams(_) => "invalid_params",
            Error::ParamsOutOfBounds { .. } => "params_out_of_bounds",
            Error::OpenInterestCap { .. } => "open_interest_cap",
            Error::TooManySignals { .. } => "too_many_signals",
            Error::Overflow => "overflow",
        }
    }
}
