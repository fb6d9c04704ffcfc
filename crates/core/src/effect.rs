//! Output effects. Each is one JSON line with `type`, `seq` (the 1-based line number of the input
//! event that caused it) and `ts`, then the fields of its kind. `docs/events.md` is the reference.

use crate::error::Error;
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
}

impl Effect {
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
        Effect { seq, ts, kind }
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
            EffectKind::Liquidation { .. } => "liquidation",
            EffectKind::Insurance { .. } => "insurance",
            EffectKind::Bankruptcy { .. } => "bankruptcy",
            EffectKind::Adl { .. } => "adl",
            EffectKind::SocializedLoss { .. } => "socialized_loss",
            EffectKind::AuctionStarted { .. } => "auction_started",
            EffectKind::AuctionFill { .. } => "auction_fill",
            EffectKind::AuctionEnded { .. } => "auction_ended",
            EffectKind::LiquidityIncentive { .. } => "liquidity_incentive",
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
