//! Output effects. Each is one JSON line with `type`, `seq` (the 1-based line number of the input
//! event that caused it) and `ts`, then the fields of its kind. `docs/events.md` is the reference.

use crate::error::Error;
use crate::hash::Sink;
use crate::num::{Price, Quote, Size};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    pub seq: u64,
    pub ts: u64,
    pub kind: EffectKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EffectKind {
    /// The event was refused; the state did not change.
    Rejected {
        error: String,
        message: String,
    },
    /// A price tick was refused on arrival (bad_signature, unknown_source, future_ts, replayed; the
    /// state did not change), or a source stopped counting toward the index (stale, outlier,
    /// wide_conf).
    /// `event_refused` tells the two apart.
    OracleRejected {
        market: String,
        source: String,
        reason: String,
        event_refused: bool,
        message: String,
    },
    /// Fewer than `quorum` usable sources: the mark is held and liquidations in the market pause.
    OracleFrozen {
        market: String,
        usable: u32,
        quorum: u32,
        mark_price: Option<Price>,
    },
    /// Quorum is back; the index is live again.
    OracleThawed {
        market: String,
        usable: u32,
        quorum: u32,
        index_price: Price,
    },
    /// Something an operator should see; `alert` names it (`jump_clamped`, ...).
    Alert {
        alert: String,
        market: String,
        message: String,
    },
    /// A step of a collateral asset's effective weight (`asset_status.rs`): `weight` is what
    /// equity reads from now on, `target_weight` where the running phase ends, for `status`.
    AssetWeight {
        asset: String,
        status: String,
        weight: crate::num::Rate,
        target_weight: crate::num::Rate,
    },
    /// Part or all of a position moved to the protocol's inventory at mark.
    Liquidation {
        account: String,
        market: String,
        /// Signed size removed from the account (the sign of its position).
        closed_size: Size,
        price: Price,
        penalty: Quote,
        full: bool,
        equity_before: Quote,
        maintenance_margin_before: Quote,
        equity_after: Quote,
        maintenance_margin_after: Quote,
    },
    /// The insurance fund moved: `amount` > 0 in, < 0 out; `balance` after.
    Insurance {
        reason: String,
        amount: Quote,
        balance: Quote,
        account: Option<String>,
    },
    /// An account was left with negative equity after liquidation.
    Bankruptcy {
        account: String,
        deficit: Quote,
        covered_by_fund: Quote,
    },
    /// Auto-deleveraging: `account`'s position closed against the bankrupt `counterparty` at the
    /// bankruptcy price.
    Adl {
        account: String,
        counterparty: String,
        market: String,
        size: Size,
        price: Price,
        rank_score: String,
    },
    /// A loss nobody else could absorb, shared pro rata by accounts with positions and positive equity.
    SocializedLoss {
        amount: Quote,
        accounts: u64,
        bankrupt: String,
    },
    AuctionStarted {
        auction: String,
        market: String,
        side: String,
        size: Size,
        start_price: Price,
        floor_price: Price,
        duration_ms: u64,
    },
    AuctionFill {
        auction: String,
        market: String,
        bidder: String,
        size: Size,
        price: Price,
        remaining: Size,
        inventory_pnl: Quote,
        /// Backstop rebate paid from the insurance fund for a fill inside a cliff range (absent
        /// when none).
        #[serde(skip_serializing_if = "Option::is_none")]
        rebate: Option<Quote>,
    },
    /// A `params` event set cliff ranges and a rebate: backstop makers are offered
    /// `rebate_rate` × filled notional for auction takes filled at a price in [from, to].
    LiquidityIncentive {
        market: String,
        from: Price,
        to: Price,
        rebate_rate: crate::num::Rate,
    },
    AuctionEnded {
        auction: String,
        market: String,
        reason: String,
        remaining: Size,
    },
    /// Collateral conversion: the protocol bought `size` of `account`'s `asset` at `price` (index
    /// × (1 − haircut), rounded down), crediting `proceeds` = size × price to its settlement
    /// balance; `holdings` is what the protocol holds of the asset after. `reason`: `liquidation`
    /// (after a close step left the balance negative), `flat` (no position left) or `bankruptcy`
    /// (all of a bankrupt account's collateral, before the deficit is measured).
    CollateralConversion {
        account: String,
        asset: String,
        reason: String,
        size: Size,
        price: Price,
        proceeds: Quote,
        holdings: Size,
    },
    /// A `collateral_take`: `bidder` bought `size` of the protocol's `asset` at `price` (index ×
    /// (1 − haircut / 2), rounded up), paying size × price; `cost` is the cost basis of what it
    /// took, `realized_pnl` = paid − cost (the insurance fund's), `remaining` what is left.
    CollateralFill {
        asset: String,
        bidder: String,
        size: Size,
        price: Price,
        cost: Quote,
        realized_pnl: Quote,
        remaining: Size,
    },
    /// A funding settlement for one holder: `account` (null for the protocol's inventory) held
    /// `size` at mark `price`; `rate` (16 decimals) covers every interval this settlement closed;
    /// `amount` is the balance change (negative: paid), rounded down.
    Funding {
        account: Option<String>,
        market: String,
        size: Size,
        price: Price,
        rate: Quote,
        amount: Quote,
    },
}

/// The one way effects leave the core: every handler emits through a sink, so that each effect is
/// built in one place (`Effect::new`) and the engine can give every effect of an accepted event its
/// canonical encoding and chain link in one place too (`Engine::apply`).
pub trait EffectSink {
    /// Append the effect `kind` of input event `seq`, stamped with engine time `ts`.
    fn emit(&mut self, seq: u64, ts: u64, kind: EffectKind);
}

impl EffectSink for Vec<Effect> {
    #[inline]
    fn emit(&mut self, seq: u64, ts: u64, kind: EffectKind) {
        self.push(Effect::new(seq, ts, kind));
    }
}

impl Effect {
    /// The builder of every effect.
    #[inline]
    pub fn new(seq: u64, ts: u64, kind: EffectKind) -> Effect {
        Effect { seq, ts, kind }
    }

    /// The effect of a refused event: `oracle_rejected` for a price tick refused on arrival,
    /// `rejected` for everything else. Both carry the stable error kind.
    pub fn rejected(seq: u64, ts: u64, error: &Error) -> Effect {
        let kind = match error.oracle_subject() {
            Some((market, source)) => EffectKind::OracleRejected {
                market: market.to_string(),
                source: source.to_string(),
                reason: error.kind().to_string(),
                event_refused: true,
                message: error.to_string(),
            },
            None => EffectKind::Rejected { error: error.kind().to_string(), message: error.to_string() },
        };
        Effect::new(seq, ts, kind)
    }

    /// The stable error kind when this effect reports a refused event.
    pub fn rejection_kind(&self) -> Option<&str> {
        match &self.kind {
            EffectKind::Rejected { error, .. } => Some(error),
            EffectKind::OracleRejected { reason, event_refused: true, .. } => Some(reason),
            _ => None,
        }
    }

    /// The effect's `type` name.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EffectKind::Rejected { .. } => "rejected",
            EffectKind::OracleRejected { .. } => "oracle_rejected",
            EffectKind::OracleFrozen { .. } => "oracle_frozen",
            EffectKind::OracleThawed { .. } => "oracle_thawed",
            EffectKind::Alert { .. } => "alert",
            EffectKind::AssetWeight { .. } => "asset_weight",
            EffectKind::Liquidation { .. } => "liquidation",
            EffectKind::Insurance { .. } => "insurance",
            EffectKind::Bankruptcy { .. } => "bankruptcy",
            EffectKind::Adl { .. } => "adl",
            EffectKind::SocializedLoss { .. } => "socialized_loss",
            EffectKind::AuctionStarted { .. } => "auction_started",
            EffectKind::AuctionFill { .. } => "auction_fill",
            EffectKind::AuctionEnded { .. } => "auction_ended",
            EffectKind::LiquidityIncentive { .. } => "liquidity_incentive",
            EffectKind::Funding { .. } => "funding",
            EffectKind::CollateralConversion { .. } => "collateral_conversion",
            EffectKind::CollateralFill { .. } => "collateral_fill",
        }
    }

    /// One JSON line (without newline): `{"type":..,"seq":..,"ts":..,<fields>}`.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("effects serialize: all fields are strings and integers")
    }
}

impl Serialize for Effect {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let body = serde_json::to_value(&self.kind).map_err(serde::ser::Error::custom)?;
        let serde_json::Value::Object(fields) = body else {
            return Err(serde::ser::Error::custom("effect kinds serialize to objects"));
        };
        let mut map = serializer.serialize_map(Some(fields.len() + 2))?;
        map.serialize_entry("type", self.type_name())?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("ts", &self.ts)?;
        for (key, value) in fields.iter().filter(|(k, _)| k.as_str() != "type") {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Version byte that starts every effect's canonical encoding; a change to the layout below is a
/// contract change and bumps it.
pub const EFFECT_ENCODING_VERSION: u8 = 1;

/// Domain tag of a chain link: `link = BLAKE3(CHAIN_DOMAIN || previous head || encoding)`.
pub const CHAIN_DOMAIN: &[u8] = b"solvent-chain-v1";

/// The chain head before the first effect.
pub const CHAIN_GENESIS: [u8; 32] = [0; 32];

/// The chain head after `effect`, given the head before it.
///
/// The encoding is gathered in a stack buffer and handed to BLAKE3 in a few large updates (one
/// for a typical effect): an update per field costs more than the hashing itself.
pub fn chain_link(previous: &[u8; 32], effect: &Effect) -> [u8; 32] {
    let mut sink = BufferedHasher::new();
    sink.put(CHAIN_DOMAIN);
    sink.put(previous);
    effect.encode(&mut sink);
    sink.finalize()
}

/// Bytes of the stack buffer in front of the hasher (a liquidation order's encoding is ~150).
const CHAIN_BUFFER_BYTES: usize = 512;

/// A BLAKE3 hasher behind a fixed stack buffer: the same digest as hashing the bytes directly.
struct BufferedHasher {
    hasher: blake3::Hasher,
    buffer: [u8; CHAIN_BUFFER_BYTES],
    len: usize,
}

impl BufferedHasher {
    fn new() -> Self {
        BufferedHasher { hasher: blake3::Hasher::new(), buffer: [0; CHAIN_BUFFER_BYTES], len: 0 }
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buffer[..self.len]);
        self.len = 0;
    }

    fn finalize(mut self) -> [u8; 32] {
        self.flush();
        *self.hasher.finalize().as_bytes()
    }
}

impl Sink for BufferedHasher {
    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > CHAIN_BUFFER_BYTES {
            self.flush();
        }
        if bytes.len() > CHAIN_BUFFER_BYTES {
            self.hasher.update(bytes);
            return;
        }
        self.buffer[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        debug_assert!(self.len <= CHAIN_BUFFER_BYTES);
    }
}

impl Effect {
    /// The canonical bytes of this effect (see [`Effect::encode`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(128);
        self.encode(&mut bytes);
        bytes
    }

    /// The canonical encoding: the version byte, the `type` name, `seq`, `ts`, then the fields
    /// of the kind in the order `docs/events.md` lists them. Strings are a u64 byte length and
    /// UTF-8; `Size` and `Price` their raw i64 (8 decimals), `Quote` its raw i128 (16 decimals),
    /// other integers u64, booleans one byte 0/1, all little-endian; an option is a byte 0 (none)
    /// or 1 followed by the value.
    pub fn encode(&self, sink: &mut impl Sink) {
        sink.u8(EFFECT_ENCODING_VERSION);
        sink.str(self.type_name());
        sink.u64(self.seq);
        sink.u64(self.ts);
        match &self.kind {
            EffectKind::Rejected { error, message } => {
                sink.str(error);
                sink.str(message);
            }
            EffectKind::OracleRejected { market, source, reason, event_refused, message } => {
                sink.str(market);
                sink.str(source);
                sink.str(reason);
                sink.u8(u8::from(*event_refused));
                sink.str(message);
            }
            EffectKind::OracleFrozen { market, usable, quorum, mark_price } => {
                sink.str(market);
                sink.u64(u64::from(*usable));
                sink.u64(u64::from(*quorum));
                sink.opt_price(*mark_price);
            }
            EffectKind::OracleThawed { market, usable, quorum, index_price } => {
                sink.str(market);
                sink.u64(u64::from(*usable));
                sink.u64(u64::from(*quorum));
                sink.i64(index_price.raw());
            }
            EffectKind::Alert { alert, market, message } => {
                sink.str(alert);
                sink.str(market);
                sink.str(message);
            }
            EffectKind::AssetWeight { asset, status, weight, target_weight } => {
                sink.str(asset);
                sink.str(status);
                sink.i64(weight.raw());
                sink.i64(target_weight.raw());
            }
            EffectKind::LiquidityIncentive { market, from, to, rebate_rate } => {
                sink.str(market);
                sink.i64(from.raw());
                sink.i64(to.raw());
                sink.i64(rebate_rate.raw());
            }
            EffectKind::Liquidation { .. } => self.encode_liquidation(sink),
            EffectKind::Insurance { reason, amount, balance, account } => {
                sink.str(reason);
                sink.i128(amount.raw());
                sink.i128(balance.raw());
                match account {
                    None => sink.u8(0),
                    Some(account) => {
                        sink.u8(1);
                        sink.str(account);
                    }
                }
            }
            EffectKind::Bankruptcy { account, deficit, covered_by_fund } => {
                sink.str(account);
                sink.i128(deficit.raw());
                sink.i128(covered_by_fund.raw());
            }
            EffectKind::Adl { account, counterparty, market, size, price, rank_score } => {
                sink.str(account);
                sink.str(counterparty);
                sink.str(market);
                sink.i64(size.raw());
                sink.i64(price.raw());
                sink.str(rank_score);
            }
            EffectKind::SocializedLoss { amount, accounts, bankrupt } => {
                sink.i128(amount.raw());
                sink.u64(*accounts);
                sink.str(bankrupt);
            }
            EffectKind::AuctionStarted { .. } | EffectKind::AuctionFill { .. } | EffectKind::AuctionEnded { .. } => {
                self.encode_auction(sink)
            }
            EffectKind::CollateralConversion { .. } | EffectKind::CollateralFill { .. } => self.encode_collateral(sink),
            EffectKind::Funding { account, market, size, price, rate, amount } => {
                match account {
                    None => sink.u8(0),
                    Some(account) => {
                        sink.u8(1);
                        sink.str(account);
                    }
                }
                sink.str(market);
                sink.i64(size.raw());
                sink.i64(price.raw());
                sink.i128(rate.raw());
                sink.i128(amount.raw());
            }
        }
    }

    fn encode_liquidation(&self, sink: &mut impl Sink) {
        let EffectKind::Liquidation {
            account,
            market,
            closed_size,
            price,
            penalty,
            full,
            equity_before,
            maintenance_margin_before,
            equity_after,
            maintenance_margin_after,
        } = &self.kind
        else {
            unreachable!("called for liquidations only")
        };
        sink.str(account);
        sink.str(market);
        sink.i64(closed_size.raw());
        sink.i64(price.raw());
        sink.i128(penalty.raw());
        sink.u8(u8::from(*full));
        for quote in [equity_before, maintenance_margin_before, equity_after, maintenance_margin_after] {
            sink.i128(quote.raw());
        }
    }

    fn encode_collateral(&self, sink: &mut impl Sink) {
        match &self.kind {
            EffectKind::CollateralConversion { account, asset, reason, size, price, proceeds, holdings } => {
                sink.str(account);
                sink.str(asset);
                sink.str(reason);
                sink.i64(size.raw());
                sink.i64(price.raw());
                sink.i128(proceeds.raw());
                sink.i64(holdings.raw());
            }
            EffectKind::CollateralFill { asset, bidder, size, price, cost, realized_pnl, remaining } => {
                sink.str(asset);
                sink.str(bidder);
                sink.i64(size.raw());
                sink.i64(price.raw());
                sink.i128(cost.raw());
                sink.i128(realized_pnl.raw());
                sink.i64(remaining.raw());
            }
            _ => unreachable!("called for collateral effects only"),
        }
    }

    fn encode_auction(&self, sink: &mut impl Sink) {
        match &self.kind {
            EffectKind::AuctionStarted { auction, market, side, size, start_price, floor_price, duration_ms } => {
                sink.str(auction);
                sink.str(market);
                sink.str(side);
                sink.i64(size.raw());
                sink.i64(start_price.raw());
                sink.i64(floor_price.raw());
                sink.u64(*duration_ms);
            }
            EffectKind::AuctionFill { auction, market, bidder, size, price, remaining, inventory_pnl, rebate } => {
                sink.str(auction);
                sink.str(market);
                sink.str(bidder);
                sink.i64(size.raw());
                sink.i64(price.raw());
                sink.i64(remaining.raw());
                sink.i128(inventory_pnl.raw());
                match rebate {
                    None => sink.u8(0),
                    Some(rebate) => {
                        sink.u8(1);
                        sink.i128(rebate.raw());
                    }
                }
            }
            EffectKind::AuctionEnded { auction, market, reason, remaining } => {
                sink.str(auction);
                sink.str(market);
                sink.str(reason);
                sink.i64(remaining.raw());
            }
            _ => unreachable!("called for auction effects only"),
        }
    }
}
