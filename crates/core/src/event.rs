//! Input events: typed values and the JSON Lines parser.
//!
//! The parser reads one line into borrowed fields ([`crate::json`]), then checks, per event type,
//! that required fields are present, no unknown field is given, decimals are strings that parse
//! exactly, and ids are well formed. Every refusal is a typed [`Error`]; nothing panics. Checks that
//! need the state (unknown market, time going backwards, margin) happen in the engine.

use crate::config::{CliffRange, TierBasis, TierMode, TierSpec, MAX_CLIFF_RANGES, MAX_ID_BYTES, MAX_TIERS};
use crate::error::Error;
use crate::json::{self, Fields};
use crate::num::{Price, Quote, Rate, Size};

/// Longest input line accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Deposit(Transfer),
    Withdraw(Transfer),
    Price(PriceTick),
    Trade(Trade),
    AuctionTake(AuctionTake),
    /// A backstop maker buys part of the protocol's collateral holdings (`liquidation/collateral.rs`).
    CollateralTake(CollateralTake),
    Clock {
        ts: u64,
    },
    /// Boxed: the update is large and rare, and `Event` is copied per line in the pipeline.
    Params(Box<ParamsUpdate>),
    /// Capital paid into the insurance fund (settlement asset) by the venue's treasury.
    FundDeposit {
        ts: u64,
        amount: Quote,
    },
    /// An external input an advisor may read (`signal.rs`); it never changes margin by itself.
    Signal(Signal),
    /// Settlement collateral moved between an account's cross wallet and its isolated wallet in
    /// one market (`isolated.rs`).
    IsolatedMargin(IsolatedMargin),
    /// An account's choice of margin model (`portfolio.rs`).
    MarginModel(MarginModelChoice),
    /// A collateral asset's bridge or peg status (`asset_status.rs`).
    AssetStatus(AssetStatusUpdate),
}

/// `{"type":"asset_status","ts":T,"asset":"USDC.arb","status":"bridge_halted"}` (or `"normal"`,
/// `"depegged"`): the asset's effective weight moves to that status's target over its
/// `weight_phase_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetStatusUpdate {
    pub ts: u64,
    pub asset: String,
    pub status: crate::asset_status::AssetStatus,
}

/// `{"type":"margin_model","ts":T,"account":"alice","model":"portfolio"}` (or `"tiered"`): the
/// account's requirement from now on is defined by that model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarginModelChoice {
    pub ts: u64,
    pub account: String,
    pub model: crate::state::MarginModel,
}

/// The character that joins an account and a market into the name of the account's isolated
/// wallet in that market (`alice#BTC-PERP`). It is not allowed in ids, so no account named in an
/// event can be an isolated wallet, and isolated wallets are reached only through
/// `isolated_margin` events and the `*_isolated` flags of trades.
pub const ISOLATED_SEPARATOR: char = '#';

/// The name of `account`'s isolated wallet in `market`.
pub fn isolated_account(account: &str, market: &str) -> String {
    format!("{account}{ISOLATED_SEPARATOR}{market}")
}

/// `{"type":"isolated_margin","ts":T,"account":"alice","market":"BTC-PERP","amount":"100"}`:
/// a positive amount moves settlement collateral from the cross wallet into the isolated wallet of
/// that market, a negative one back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolatedMargin {
    pub ts: u64,
    pub account: String,
    pub market: String,
    /// Signed, non-zero, at `Quote` precision.
    pub amount: Quote,
}

/// `{"type":"signal","ts":T,"name":"funding_rate","value":"0.0001","market":"BTC-PERP"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    pub ts: u64,
    /// An id (at most 64 bytes).
    pub name: String,
    /// Signed decimal at `Quote` precision (16 decimals).
    pub value: Quote,
    /// The market it is about; `None` for a market-less signal.
    pub market: Option<String>,
}

/// A deposit or withdrawal. `amount` is parsed at `Quote` precision (16 decimals) and narrowed
/// by the engine to the asset's own type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub ts: u64,
    pub account: String,
    pub asset: String,
    pub amount: Quote,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceTick {
    pub ts: u64,
    pub market: String,
    pub source: String,
    pub price: Price,
    /// Confidence interval half-width reported by the source, if any.
    pub conf: Option<Price>,
    /// Hex ed25519 signature over (market, source, price, ts), if any.
    pub sig: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trade {
    pub ts: u64,
    pub market: String,
    pub buyer: String,
    pub seller: String,
    pub size: Size,
    pub price: Price,
    pub buyer_fee: Quote,
    pub seller_fee: Quote,
    /// The buyer's side fills in its isolated wallet of this market (not its cross account).
    pub buyer_isolated: bool,
    /// The seller's side fills in its isolated wallet of this market.
    pub seller_isolated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuctionTake {
    pub ts: u64,
    pub auction: String,
    pub bidder: String,
    pub size: Size,
}

/// `{"type":"collateral_take","ts":T,"asset":"BTC","bidder":"mm1","size":"0.5"}`: the bidder
/// buys `size` of what the protocol holds of `asset` at the take price, paying from its
/// settlement balance; the asset lands in its collateral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollateralTake {
    pub ts: u64,
    pub asset: String,
    pub bidder: String,
    pub size: Size,
}

/// A partial update of one market's parameters: `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamsUpdate {
    pub ts: u64,
    pub market: String,
    pub tier_basis: Option<TierBasis>,
    pub tier_mode: Option<TierMode>,
    pub tiers: Option<Vec<TierSpec>>,
    pub im_factor: Option<Rate>,
    pub liquidation_buffer: Option<Rate>,
    pub quorum: Option<u32>,
    pub max_age_ms: Option<u64>,
    pub max_deviation: Option<Rate>,
    pub max_jump: Option<Rate>,
    pub max_future_ms: Option<u64>,
    pub max_conf: Option<Rate>,
    pub mark_ema_ms: Option<u64>,
    pub auction_start_premium: Option<Rate>,
    pub auction_floor_discount: Option<Rate>,
    pub auction_duration_ms: Option<u64>,
    pub adl_enabled: Option<bool>,
    pub max_trade_deviation: Option<Rate>,
    pub im_addon_rate: Option<Rate>,
    pub mm_phase_in_ms: Option<u64>,
    /// `Some(None)` removes the cap (`"oi_cap":"0"` in a line).
    pub oi_cap: Option<Option<Size>>,
    pub cliff_ranges: Option<Vec<CliffRange>>,
    pub concentration_addon_rate: Option<Rate>,
    pub incentive_rebate_rate: Option<Rate>,
    /// Funding and skew fields (`funding.rs`).
    pub perp: PerpUpdate,
    /// Liquidation rules (`liquidation/sizing.rs`).
    pub rules: RulesUpdate,
    /// Portfolio-margin parameters (`portfolio.rs`).
    pub portfolio: PortfolioUpdate,
}

/// The portfolio-margin fields of a `params` event: `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortfolioUpdate {
    pub pm_range: Option<Rate>,
    pub pm_buckets: Option<u32>,
    pub pm_correlation: Option<Rate>,
    pub pm_mm_factor: Option<Rate>,
    pub pm_im_factor: Option<Rate>,
    pub pm_floor: Option<Rate>,
}

/// The liquidation-rule fields of a `params` event: `None` keeps the current value; for
/// `liquidation_chunk_notional` and the two caps, `Some(None)` removes it (`"0"` in a line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesUpdate {
    pub min_liquidation_notional: Option<Quote>,
    pub liquidation_chunk_notional: Option<Option<Quote>>,
    pub liquidation_chunk_rate: Option<Rate>,
    pub liquidation_cooldown_ms: Option<u64>,
    pub backstop_mm_fraction: Option<Rate>,
    pub dust_equity: Option<Quote>,
    pub max_account_liquidation_notional: Option<Option<Quote>>,
    pub max_event_liquidation_notional: Option<Option<Quote>>,
}

/// The funding and skew fields of a `params` event: `None` keeps the current value; for the
/// optional thresholds and the skew scale, `Some(None)` removes them (`"0"` in a line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerpUpdate {
    pub funding_enabled: Option<bool>,
    pub funding_interval_ms: Option<u64>,
    pub funding_interest_rate: Option<Rate>,
    pub funding_clamp: Option<Rate>,
    pub funding_cap: Option<Rate>,
    pub skew_scale: Option<Option<Size>>,
    pub max_funding_velocity: Option<Rate>,
    pub skew_alert: Option<Option<Size>>,
    pub protocol_delta_alert: Option<Option<Quote>>,
}

impl Event {
    pub fn ts(&self) -> u64 {
        match self {
            Event::Deposit(t) | Event::Withdraw(t) => t.ts,
            Event::Price(p) => p.ts,
            Event::Trade(t) => t.ts,
            Event::AuctionTake(a) => a.ts,
            Event::CollateralTake(t) => t.ts,
            Event::Clock { ts } => *ts,
            Event::Params(p) => p.ts,
            Event::FundDeposit { ts, .. } => *ts,
            Event::Signal(s) => s.ts,
            Event::IsolatedMargin(m) => m.ts,
            Event::MarginModel(m) => m.ts,
            Event::AssetStatus(a) => a.ts,
        }
    }

    /// Whether the event's `ts` is trusted time that advances the engine clock. Price ticks carry
    /// their source's timestamp and never move the clock: a source, honest or not, cannot make
    /// time run (the clock comes from the sequencer's events, `clock` among them).
    pub fn advances_clock(&self) -> bool {
        !matches!(self, Event::Price(_))
    }

    /// The value checks the parser makes, for events built in code (the server, tests): ids well
    /// formed, amounts, prices and sizes positive, fees and confidence not negative.
    /// `Engine::apply` runs it, so a typed event cannot slip past what a JSON line cannot.
    pub fn validate(&self) -> Result<(), Error> {
        let id = |field: &str, value: &str| {
            validate_id(value).map_err(|reason| Error::InvalidId { field: field.to_string(), reason })
        };
        let positive =
            |field: &str, ok: bool| if ok { Ok(()) } else { Err(Error::NonPositive { field: field.to_string() }) };
        let non_negative =
            |field: &str, ok: bool| if ok { Ok(()) } else { Err(Error::Negative { field: field.to_string() }) };
        match self {
            Event::Deposit(t) | Event::Withdraw(t) => {
                id("account", &t.account)?;
                id("asset", &t.asset)?;
                positive("amount", t.amount.is_positive())
            }
            Event::Price(p) => {
                id("market", &p.market)?;
                id("source", &p.source)?;
                positive("price", p.price.is_positive())?;
                non_negative("conf", p.conf.is_none_or(|c| !c.is_negative()))
            }
            Event::Trade(t) => {
                id("market", &t.market)?;
                id("buyer", &t.buyer)?;
                id("seller", &t.seller)?;
                positive("size", t.size.is_positive())?;
                positive("price", t.price.is_positive())?;
                non_negative("buyer_fee", !t.buyer_fee.is_negative())?;
                non_negative("seller_fee", !t.seller_fee.is_negative())
            }
            Event::AuctionTake(a) => {
                id("auction", &a.auction)?;
                id("bidder", &a.bidder)?;
                positive("size", a.size.is_positive())
            }
            Event::CollateralTake(t) => {
                id("asset", &t.asset)?;
                id("bidder", &t.bidder)?;
                positive("size", t.size.is_positive())
            }
            Event::Clock { .. } => Ok(()),
            Event::IsolatedMargin(m) => {
                id("account", &m.account)?;
                id("market", &m.market)?;
                if m.amount.is_zero() {
                    return Err(Error::NonPositive { field: "amount".into() });
                }
                Ok(())
            }
            Event::MarginModel(m) => id("account", &m.account),
            Event::AssetStatus(a) => id("asset", &a.asset),
            Event::Params(p) => id("market", &p.market),
            Event::FundDeposit { amount, .. } => positive("amount", amount.is_positive()),
            Event::Signal(s) => {
                id("name", &s.name)?;
                s.market.as_deref().map_or(Ok(()), |m| id("market", m))
            }
        }
    }

    /// Parse one line (without its newline) of the JSON Lines input.
    pub fn parse_line(bytes: &[u8]) -> Result<Event, Error> {
        Event::parse_line_pooled(bytes, &mut StringPool::default())
    }

    /// [`Event::parse_line`], taking the event's strings from `pool` where it has some.
    pub fn parse_line_pooled(bytes: &[u8], pool: &mut StringPool) -> Result<Event, Error> {
        if bytes.len() > MAX_LINE_BYTES {
            return Err(Error::LineTooLong { max_bytes: MAX_LINE_BYTES });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8)?;
        Event::parse_str_pooled(text, pool)
    }

    /// Parse one JSON object.
    pub fn parse_str(text: &str) -> Result<Event, Error> {
        Event::parse_str_pooled(text, &mut StringPool::default())
    }

    fn parse_str_pooled(text: &str, pool: &mut StringPool) -> Result<Event, Error> {
        // The common valid lines skip the field table; everything else, errors included, below.
        if let Some(event) = crate::fastparse::event(text, pool) {
            return Ok(event);
        }
        let mut fields = json::parse_object(text)?;
        let kind = fields.take_string("type")?.ok_or(Error::MissingField("type"))?;
        let event = match kind.as_ref() {
            "deposit" => Event::Deposit(parse_transfer(&mut fields)?),
            "withdraw" => Event::Withdraw(parse_transfer(&mut fields)?),
            "price" => Event::Price(parse_price(&mut fields)?),
            "trade" => Event::Trade(parse_trade(&mut fields)?),
            "auction_take" => Event::AuctionTake(parse_auction_take(&mut fields)?),
            "collateral_take" => Event::CollateralTake(parse_collateral_take(&mut fields)?),
            "clock" => Event::Clock { ts: required_ts(&mut fields)? },
            "params" => Event::Params(Box::new(parse_params(&mut fields)?)),
            "fund_deposit" => Event::FundDeposit {
                ts: required_ts(&mut fields)?,
                amount: required_positive(&mut fields, "amount", Quote::parse)?,
            },
            "signal" => Event::Signal(parse_signal(&mut fields)?),
            "isolated_margin" => Event::IsolatedMargin(parse_isolated_margin(&mut fields)?),
            "margin_model" => Event::MarginModel(parse_margin_model(&mut fields)?),
            "asset_status" => Event::AssetStatus(parse_asset_status(&mut fields)?),
            other => return Err(Error::UnknownType(truncate(other))),
        };
        fields.finish(&kind)?;
        Ok(event)
    }
}

/// One input line, parsed: blank, an event that passed every check [`Event::validate`] makes, or
/// the typed refusal. Parsing is pure (it reads no engine state), so a reader thread may parse
/// lines ahead of the thread that applies them ([`crate::Engine::apply_parsed`]); the effects are
/// those of [`crate::Engine::apply_line`] on the same bytes. Only [`ParsedLine::parse`] builds one,
/// which is what lets `apply_parsed` skip a second validation of what the parser checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLine(pub(crate) Parsed);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Blank,
    Event(Event),
    Refused(Error),
}

/// Strings of parsed events, kept for the next lines: a reader that parses many lines hands
/// each applied line back ([`ParsedLine::recycle`]) and parses the next with
/// [`ParsedLine::parse_pooled`], so that ids are copied into buffers it already owns instead of
/// a new allocation (and a free) per id. Bounded: at most [`StringPool::MAX_STRINGS`] are kept.
#[derive(Debug, Default)]
pub struct StringPool {
    free: Vec<String>,
}

impl StringPool {
    /// Most strings kept (a batch of lines holds two to three each).
    pub const MAX_STRINGS: usize = 4_096;

    /// `text` in a pooled buffer when there is one, else in a new `String`.
    pub(crate) fn take(&mut self, text: &str) -> String {
        match self.free.pop() {
            Some(mut buffer) => {
                buffer.clear();
                buffer.push_str(text);
                buffer
            }
            None => text.to_owned(),
        }
    }

    fn give(&mut self, buffer: String) {
        // Ids are at most 64 bytes: a larger buffer (a refused line's long text) is not kept.
        if self.free.len() < Self::MAX_STRINGS && buffer.capacity() <= MAX_ID_BYTES {
            self.free.push(buffer);
        }
    }

    /// Strings kept now.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }
}

impl Event {
    /// Hand this event's strings to `pool`.
    fn give_strings(self, pool: &mut StringPool) {
        match self {
            Event::Deposit(t) | Event::Withdraw(t) => [t.account, t.asset].into_iter().for_each(|s| pool.give(s)),
            Event::Price(p) => [p.market, p.source].into_iter().chain(p.sig).for_each(|s| pool.give(s)),
            Event::Trade(t) => [t.market, t.buyer, t.seller].into_iter().for_each(|s| pool.give(s)),
            Event::AuctionTake(a) => [a.auction, a.bidder].into_iter().for_each(|s| pool.give(s)),
            Event::CollateralTake(t) => [t.asset, t.bidder].into_iter().for_each(|s| pool.give(s)),
            Event::Params(p) => pool.give(p.market),
            Event::Signal(s) => [s.name].into_iter().chain(s.market).for_each(|s| pool.give(s)),
            Event::IsolatedMargin(m) => [m.account, m.market].into_iter().for_each(|s| pool.give(s)),
            Event::MarginModel(m) => pool.give(m.account),
            Event::AssetStatus(a) => pool.give(a.asset),
            Event::Clock { .. } | Event::FundDeposit { .. } => {}
        }
    }
}

impl ParsedLine {
    /// Parse one line (without its newline). A line of only whitespace is blank (skipped).
    pub fn parse(line: &[u8]) -> ParsedLine {
        ParsedLine::parse_pooled(line, &mut StringPool::default())
    }

    /// [`ParsedLine::parse`], taking the event's strings from `pool` where it has some: the same
    /// line, whatever the pool holds.
    pub fn parse_pooled(line: &[u8], pool: &mut StringPool) -> ParsedLine {
        if line.iter().all(u8::is_ascii_whitespace) {
            return ParsedLine(Parsed::Blank);
        }
        ParsedLine(match Event::parse_line_pooled(line, pool) {
            Ok(event) => Parsed::Event(event),
            Err(error) => Parsed::Refused(error),
        })
    }

    /// Give this line's strings to `pool` for the lines parsed next (the line is used up).
    pub fn recycle(self, pool: &mut StringPool) {
        if let Parsed::Event(event) = self.0 {
            event.give_strings(pool);
        }
    }

    /// Whether the line was blank (it is skipped: no effect, no sequence number used).
    pub fn is_blank(&self) -> bool {
        matches!(self.0, Parsed::Blank)
    }

    /// The event, when the line parsed.
    pub fn event(&self) -> Option<&Event> {
        match &self.0 {
            Parsed::Event(event) => Some(event),
            _ => None,
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_ID_BYTES).collect()
}

/// Ids are 1 to 64 bytes of ASCII letters, digits and `_ - . : @ /`.
pub fn validate_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty");
    }
    if id.len() > MAX_ID_BYTES {
        return Err("longer than 64 bytes");
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@' | b'/');
    if !id.bytes().all(ok) {
        return Err("only ASCII letters, digits and _ - . : @ / are allowed");
    }
    Ok(())
}

fn required_id(fields: &mut Fields, name: &'static str) -> Result<String, Error> {
    let value = fields.take_string(name)?.ok_or(Error::MissingField(name))?;
    validate_id(&value).map_err(|reason| Error::InvalidId { field: name.to_string(), reason })?;
    Ok(value.into_owned())
}

fn required_ts(fields: &mut Fields) -> Result<u64, Error> {
    fields.take_u64("ts")?.ok_or(Error::MissingField("ts"))
}

fn number<T>(name: &str, text: &str, parse: fn(&str) -> Result<T, crate::num::NumError>) -> Result<T, Error> {
    parse(text).map_err(|source| Error::InvalidNumber { field: name.to_string(), source })
}

fn optional_decimal<T: Copy>(
    fields: &mut Fields,
    name: &'static str,
    parse: fn(&str) -> Result<T, crate::num::NumError>,
) -> Result<Option<T>, Error> {
    match fields.take_string(name)? {
        Some(text) => number(name, &text, parse).map(Some),
        None => Ok(None),
    }
}

fn required_positive<T: Copy + Ord + Default>(
    fields: &mut Fields,
    name: &'static str,
    parse: fn(&str) -> Result<T, crate::num::NumError>,
) -> Result<T, Error> {
    let value = optional_decimal(fields, name, parse)?.ok_or(Error::MissingField(name))?;
    if value <= T::default() {
        return Err(Error::NonPositive { field: name.to_string() });
    }
    Ok(value)
}

fn optional_non_negative<T: Copy + Ord + Default>(
    fields: &mut Fields,
    name: &'static str,
    parse: fn(&str) -> Result<T, crate::num::NumError>,
) -> Result<Option<T>, Error> {
    let value = optional_decimal(fields, name, parse)?;
    if value.is_some_and(|v| v < T::default()) {
        return Err(Error::Negative { field: name.to_string() });
    }
    Ok(value)
}

fn parse_transfer(fields: &mut Fields) -> Result<Transfer, Error> {
    Ok(Transfer {
        ts: required_ts(fields)?,
        account: required_id(fields, "account")?,
        asset: required_id(fields, "asset")?,
        amount: required_positive(fields, "amount", Quote::parse)?,
    })
}

fn parse_price(fields: &mut Fields) -> Result<PriceTick, Error> {
    let tick = PriceTick {
        ts: required_ts(fields)?,
        market: required_id(fields, "market")?,
        source: required_id(fields, "source")?,
        price: required_positive(fields, "price", Price::parse)?,
        conf: optional_non_negative(fields, "conf", Price::parse)?,
        sig: fields.take_string("sig")?.map(|s| s.into_owned()),
    };
    if let Some(sig) = &tick.sig {
        if sig.len() != 128 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidFieldType { field: "sig".into(), expected: "128 hex digits" });
        }
    }
    Ok(tick)
}

fn parse_trade(fields: &mut Fields) -> Result<Trade, Error> {
    Ok(Trade {
        ts: required_ts(fields)?,
        market: required_id(fields, "market")?,
        buyer: required_id(fields, "buyer")?,
        seller: required_id(fields, "seller")?,
        size: required_positive(fields, "size", Size::parse)?,
        price: required_positive(fields, "price", Price::parse)?,
        buyer_fee: optional_non_negative(fields, "buyer_fee", Quote::parse)?.unwrap_or_default(),
        seller_fee: optional_non_negative(fields, "seller_fee", Quote::parse)?.unwrap_or_default(),
        buyer_isolated: fields.take_bool("buyer_isolated")?.unwrap_or(false),
        seller_isolated: fields.take_bool("seller_isolated")?.unwrap_or(false),
    })
}

fn parse_isolated_margin(fields: &mut Fields) -> Result<IsolatedMargin, Error> {
    let margin = IsolatedMargin {
        ts: required_ts(fields)?,
        account: required_id(fields, "account")?,
        market: required_id(fields, "market")?,
        amount: optional_decimal(fields, "amount", Quote::parse)?.ok_or(Error::MissingField("amount"))?,
    };
    if margin.amount.is_zero() {
        return Err(Error::NonPositive { field: "amount".into() });
    }
    Ok(margin)
}

fn parse_margin_model(fields: &mut Fields) -> Result<MarginModelChoice, Error> {
    let ts = required_ts(fields)?;
    let account = required_id(fields, "account")?;
    let name = fields.take_string("model")?.ok_or(Error::MissingField("model"))?;
    let model = crate::state::MarginModel::from_name(&name)
        .ok_or(Error::InvalidFieldType { field: "model".into(), expected: "\"tiered\" or \"portfolio\"" })?;
    Ok(MarginModelChoice { ts, account, model })
}

fn parse_asset_status(fields: &mut Fields) -> Result<AssetStatusUpdate, Error> {
    let ts = required_ts(fields)?;
    let asset = required_id(fields, "asset")?;
    let name = fields.take_string("status")?.ok_or(Error::MissingField("status"))?;
    let status =
        crate::asset_status::AssetStatus::from_name(&name).ok_or_else(|| Error::UnknownAssetStatus(truncate(&name)))?;
    Ok(AssetStatusUpdate { ts, asset, status })
}

fn parse_auction_take(fields: &mut Fields) -> Result<AuctionTake, Error> {
    Ok(AuctionTake {
        ts: required_ts(fields)?,
        auction: required_id(fields, "auction")?,
        bidder: required_id(fields, "bidder")?,
        size: required_positive(fields, "size", Size::parse)?,
    })
}

fn parse_collateral_take(fields: &mut Fields) -> Result<CollateralTake, Error> {
    Ok(CollateralTake {
        ts: required_ts(fields)?,
        asset: required_id(fields, "asset")?,
        bidder: required_id(fields, "bidder")?,
        size: required_positive(fields, "size", Size::parse)?,
    })
}

fn parse_params(fields: &mut Fields) -> Result<ParamsUpdate, Error> {
    let enum_field = |fields: &mut Fields, name: &'static str| -> Result<Option<String>, Error> {
        Ok(fields.take_string(name)?.map(|s| s.into_owned()))
    };
    let tier_basis = match enum_field(fields, "tier_basis")?.as_deref() {
        None => None,
        Some("size") => Some(TierBasis::Size),
        Some("notional") => Some(TierBasis::Notional),
        Some(_) => {
            return Err(Error::InvalidFieldType { field: "tier_basis".into(), expected: "\"size\" or \"notional\"" })
        }
    };
    let tier_mode = match enum_field(fields, "tier_mode")?.as_deref() {
        None => None,
        Some("marginal") => Some(TierMode::Marginal),
        Some("whole") => Some(TierMode::Whole),
        Some(_) => {
            return Err(Error::InvalidFieldType { field: "tier_mode".into(), expected: "\"marginal\" or \"whole\"" })
        }
    };
    let tiers = match fields.take_json("tiers")? {
        None => None,
        Some(value) => Some(parse_tiers(value)?),
    };
    let cliff_ranges = match fields.take_json("cliff_ranges")? {
        None => None,
        Some(value) => Some(parse_cliff_ranges(value)?),
    };
    let oi_cap = match optional_decimal(fields, "oi_cap", Size::parse)? {
        None => None,
        Some(cap) if cap.is_zero() => Some(None),
        Some(cap) if cap.is_negative() => {
            return Err(Error::ParamsOutOfBounds {
                field: "oi_cap".into(),
                reason: "must be positive (0 removes the cap)".into(),
            })
        }
        Some(cap) => Some(Some(cap)),
    };
    let quorum = match fields.take_u64("quorum")? {
        Some(q) => Some(u32::try_from(q).map_err(|_| Error::InvalidParams("quorum too large".into()))?),
        None => None,
    };
    Ok(ParamsUpdate {
        ts: required_ts(fields)?,
        market: required_id(fields, "market")?,
        tier_basis,
        tier_mode,
        tiers,
        im_factor: optional_decimal(fields, "im_factor", Rate::parse)?,
        liquidation_buffer: optional_decimal(fields, "liquidation_buffer", Rate::parse)?,
        quorum,
        max_age_ms: fields.take_u64("max_age_ms")?,
        max_deviation: optional_decimal(fields, "max_deviation", Rate::parse)?,
        max_jump: optional_decimal(fields, "max_jump", Rate::parse)?,
        max_future_ms: fields.take_u64("max_future_ms")?,
        max_conf: optional_decimal(fields, "max_conf", Rate::parse)?,
        mark_ema_ms: fields.take_u64("mark_ema_ms")?,
        auction_start_premium: optional_decimal(fields, "auction_start_premium", Rate::parse)?,
        auction_floor_discount: optional_decimal(fields, "auction_floor_discount", Rate::parse)?,
        auction_duration_ms: fields.take_u64("auction_duration_ms")?,
        adl_enabled: fields.take_bool("adl_enabled")?,
        max_trade_deviation: optional_decimal(fields, "max_trade_deviation", Rate::parse)?,
        im_addon_rate: optional_decimal(fields, "im_addon_rate", Rate::parse)?,
        mm_phase_in_ms: fields.take_u64("mm_phase_in_ms")?,
        oi_cap,
        cliff_ranges,
        concentration_addon_rate: optional_decimal(fields, "concentration_addon_rate", Rate::parse)?,
        incentive_rebate_rate: optional_decimal(fields, "incentive_rebate_rate", Rate::parse)?,
        perp: parse_perp_update(fields)?,
        rules: parse_rules_update(fields)?,
        portfolio: parse_portfolio_update(fields)?,
    })
}

fn parse_portfolio_update(fields: &mut Fields) -> Result<PortfolioUpdate, Error> {
    let buckets = match fields.take_u64("pm_buckets")? {
        None => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| Error::ParamsOutOfBounds {
            field: "pm_buckets".into(),
            reason: "must be odd, from 3 to 33".into(),
        })?),
    };
    Ok(PortfolioUpdate {
        pm_range: optional_decimal(fields, "pm_range", Rate::parse)?,
        pm_buckets: buckets,
        pm_correlation: optional_decimal(fields, "pm_correlation", Rate::parse)?,
        pm_mm_factor: optional_decimal(fields, "pm_mm_factor", Rate::parse)?,
        pm_im_factor: optional_decimal(fields, "pm_im_factor", Rate::parse)?,
        pm_floor: optional_decimal(fields, "pm_floor", Rate::parse)?,
    })
}

fn parse_rules_update(fields: &mut Fields) -> Result<RulesUpdate, Error> {
    Ok(RulesUpdate {
        min_liquidation_notional: optional_decimal(fields, "min_liquidation_notional", Quote::parse)?,
        liquidation_chunk_notional: removable(fields, "liquidation_chunk_notional", Quote::parse)?,
        liquidation_chunk_rate: optional_decimal(fields, "liquidation_chunk_rate", Rate::parse)?,
        liquidation_cooldown_ms: fields.take_u64("liquidation_cooldown_ms")?,
        backstop_mm_fraction: optional_decimal(fields, "backstop_mm_fraction", Rate::parse)?,
        dust_equity: optional_decimal(fields, "dust_equity", Quote::parse)?,
        max_account_liquidation_notional: removable(fields, "max_account_liquidation_notional", Quote::parse)?,
        max_event_liquidation_notional: removable(fields, "max_event_liquidation_notional", Quote::parse)?,
    })
}

/// An optional positive decimal where "0" means "remove" (`Some(None)`).
fn removable<T: Copy + Default + PartialOrd>(
    fields: &mut Fields,
    name: &'static str,
    parse: fn(&str) -> Result<T, crate::num::NumError>,
) -> Result<Option<Option<T>>, Error> {
    match optional_decimal(fields, name, parse)? {
        None => Ok(None),
        Some(v) if v == T::default() => Ok(Some(None)),
        Some(v) if v < T::default() => {
            Err(Error::ParamsOutOfBounds { field: name.into(), reason: "must be positive (0 removes it)".into() })
        }
        Some(v) => Ok(Some(Some(v))),
    }
}

fn parse_perp_update(fields: &mut Fields) -> Result<PerpUpdate, Error> {
    Ok(PerpUpdate {
        funding_enabled: fields.take_bool("funding_enabled")?,
        funding_interval_ms: fields.take_u64("funding_interval_ms")?,
        funding_interest_rate: optional_decimal(fields, "funding_interest_rate", Rate::parse)?,
        funding_clamp: optional_decimal(fields, "funding_clamp", Rate::parse)?,
        funding_cap: optional_decimal(fields, "funding_cap", Rate::parse)?,
        skew_scale: removable(fields, "skew_scale", Size::parse)?,
        max_funding_velocity: optional_decimal(fields, "max_funding_velocity", Rate::parse)?,
        skew_alert: removable(fields, "skew_alert", Size::parse)?,
        protocol_delta_alert: removable(fields, "protocol_delta_alert", Quote::parse)?,
    })
}

fn parse_signal(fields: &mut Fields) -> Result<Signal, Error> {
    let market = match fields.take_string("market")? {
        Some(name) => {
            validate_id(&name).map_err(|reason| Error::InvalidId { field: "market".into(), reason })?;
            Some(name.into_owned())
        }
        None => None,
    };
    Ok(Signal {
        ts: required_ts(fields)?,
        name: required_id(fields, "name")?,
        value: optional_decimal(fields, "value", Quote::parse)?.ok_or(Error::MissingField("value"))?,
        market,
    })
}

fn parse_cliff_ranges(value: serde_json::Value) -> Result<Vec<CliffRange>, Error> {
    let expected = "an array of {from, to} objects with decimal price strings";
    let invalid = || Error::InvalidFieldType { field: "cliff_ranges".into(), expected };
    let array = value.as_array().ok_or_else(invalid)?;
    if array.len() > MAX_CLIFF_RANGES {
        return Err(Error::ParamsOutOfBounds { field: "cliff_ranges".into(), reason: "at most 16 ranges".into() });
    }
    array.iter().map(|range| serde_json::from_value::<CliffRange>(range.clone()).map_err(|_| invalid())).collect()
}

fn parse_tiers(value: serde_json::Value) -> Result<Vec<TierSpec>, Error> {
    let expected = "an array of {from, mm_rate, penalty_rate} objects with decimal strings";
    let invalid = || Error::InvalidFieldType { field: "tiers".into(), expected };
    let array = value.as_array().ok_or_else(invalid)?;
    if array.is_empty() || array.len() > MAX_TIERS {
        return Err(Error::InvalidParams(format!("tiers: between 1 and {MAX_TIERS} brackets")));
    }
    array
        .iter()
        .map(|tier| {
            serde_json::from_value::<TierSpec>(tier.clone()).map_err(|e| Error::InvalidParams(format!("tiers: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_design_example() {
        let lines = [
            r#"{"type":"deposit","ts":0,"account":"alice","asset":"USDC","amount":"10000"}"#,
            r#"{"type":"withdraw","ts":0,"account":"alice","asset":"USDC","amount":"100"}"#,
            r#"{"type":"price","ts":0,"market":"BTC-PERP","source":"s1","price":"7900.5"}"#,
            r#"{"type":"trade","ts":0,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1.5","price":"7900"}"#,
            r#"{"type":"auction_take","ts":0,"auction":"7","bidder":"mm1","size":"2"}"#,
            r#"{"type":"collateral_take","ts":0,"asset":"BTC","bidder":"mm1","size":"0.5"}"#,
            r#"{"type":"clock","ts":0}"#,
            r#"{"type":"params","ts":0,"market":"BTC-PERP","tier_basis":"notional","im_factor":"1.5","liquidation_buffer":"0","tiers":[{"from":"0","mm_rate":"0.004","penalty_rate":"0.002"},{"from":"50000","mm_rate":"0.005","penalty_rate":"0.0025"}]}"#,
        ];
        for line in lines {
            Event::parse_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        let trade = Event::parse_str(lines[3]).unwrap();
        let Event::Trade(trade) = trade else { panic!("not a trade") };
        assert_eq!(trade.size, Size::parse("1.5").unwrap());
        assert_eq!(trade.buyer_fee, Quote::ZERO);
    }

    /// Lines parsed with a pool of recycled strings are the lines parsed without one, whatever
    /// the pool held (strings of other kinds of events, longer or shorter ids, a refused line's).
    #[test]
    fn pooled_parsing_equals_plain_parsing() {
        let lines = [
            r#"{"type":"price","ts":5,"market":"BTC-PERP","source":"s1","price":"7900.5"}"#.to_string(),
            r#"{"type":"trade","ts":6,"market":"ETH-PERP","buyer":"a-very-long-account-name-0001","seller":"b","size":"1","price":"3"}"#.into(),
            r#"{"type":"deposit","ts":7,"account":"x","asset":"USDC","amount":"5"}"#.into(),
            r#"{"type":"withdraw","ts":8,"account":"yy","asset":"BTC","amount":"0.5"}"#.into(),
            r#"{"type":"auction_take","ts":9,"auction":"a1","bidder":"maker","size":"1"}"#.into(),
            r#"{"type":"collateral_take","ts":9,"asset":"ETH","bidder":"maker-2","size":"0.25"}"#.into(),
            r#"{"type":"params","ts":9,"market":"SOL-PERP","im_factor":"2"}"#.into(),
            r#"{"type":"clock","ts":10}"#.into(),
            r#"{"type":"deposit","ts":7,"account":"bad name","asset":"USDC","amount":"5"}"#.into(),
            "   ".into(),
            format!(r#"{{"type":"price","ts":5,"market":"BTC-PERP","source":"{}","price":"1"}}"#, "s".repeat(70)),
        ];
        let mut pool = StringPool::default();
        for round in 0..40 {
            let mut batch = Vec::new();
            for i in 0..lines.len() {
                let line = &lines[(i * 7 + round) % lines.len()];
                let pooled = ParsedLine::parse_pooled(line.as_bytes(), &mut pool);
                assert_eq!(pooled, ParsedLine::parse(line.as_bytes()), "{line}");
                batch.push(pooled);
            }
            batch.into_iter().for_each(|line| line.recycle(&mut pool));
            assert!(pool.len() <= StringPool::MAX_STRINGS);
        }
        assert!(!pool.is_empty(), "strings were kept for reuse");
    }

    #[test]
    fn field_order_does_not_matter() {
        let a = Event::parse_str(r#"{"ts":5,"amount":"1","asset":"USDC","account":"a","type":"deposit"}"#).unwrap();
        let b = Event::parse_str(r#"{"type":"deposit","ts":5,"account":"a","asset":"USDC","amount":"1"}"#).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn refusals_are_typed() {
        let cases = [
            (r#"{"type":"deposit","ts":0,"account":"a","asset":"USDC"}"#, "missing_field"),
            (r#"{"type":"deposit","ts":0,"account":"a","asset":"USDC","amount":"1","x":1}"#, "unknown_field"),
            (r#"{"type":"deposit","ts":0,"account":"a","asset":"USDC","amount":1}"#, "invalid_field_type"),
            (r#"{"type":"deposit","ts":0,"account":"a","asset":"USDC","amount":"0"}"#, "non_positive"),
            (r#"{"type":"deposit","ts":0,"account":"a","asset":"USDC","amount":"-1"}"#, "non_positive"),
            (r#"{"type":"deposit","ts":-1,"account":"a","asset":"USDC","amount":"1"}"#, "invalid_field_type"),
            (r#"{"type":"nope","ts":0}"#, "unknown_type"),
            (r#"{"type":"clock","ts":0,"ts":1}"#, "duplicate_field"),
            (r#"[1,2]"#, "not_an_object"),
            (r#"{"type":"clock","ts":0"#, "invalid_json"),
            (r#"{"type":"price","ts":0,"market":"BTC-PERP","source":"s1","price":"1e3"}"#, "exponent_notation"),
        ];
        for (line, kind) in cases {
            let err = Event::parse_str(line).unwrap_err();
            assert_eq!(err.kind(), kind, "{line}: {err}");
        }
    }
}
