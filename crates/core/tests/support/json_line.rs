//! The JSON line of an event, in the format of docs/events.md (decimals as strings): how the
//! generators send an event through `Engine::apply_line` and how a reproduction shows it.

use serde_json::Value;
use solvent_core::config::{TierBasis, TierMode};
use solvent_core::Event;

fn obj(fields: Vec<(&str, Value)>) -> String {
    let body: Vec<String> = fields.into_iter().map(|(k, v)| format!("{}:{}", Value::from(k), v)).collect();
    format!("{{{}}}", body.join(","))
}

fn dec(x: impl std::fmt::Display) -> Value {
    Value::String(x.to_string())
}

/// The JSON line of an event, in the format of docs/concepts.md (decimals as strings).
pub fn to_json_line(event: &Event) -> String {
    match event {
        Event::Deposit(t) | Event::Withdraw(t) => {
            let kind = if matches!(event, Event::Deposit(_)) { "deposit" } else { "withdraw" };
            obj(vec![
                ("type", kind.into()),
                ("ts", t.ts.into()),
                ("account", t.account.as_str().into()),
                ("asset", t.asset.as_str().into()),
                ("amount", dec(t.amount)),
            ])
        }
        Event::Price(p) => {
            let mut fields = vec![
                ("type", "price".into()),
                ("ts", p.ts.into()),
                ("market", p.market.as_str().into()),
                ("source", p.source.as_str().into()),
                ("price", dec(p.price)),
            ];
            if let Some(conf) = p.conf {
                fields.push(("conf", dec(conf)));
            }
            if let Some(sig) = &p.sig {
                fields.push(("sig", sig.as_str().into()));
            }
            obj(fields)
        }
        Event::Trade(t) => {
            let mut fields = vec![
                ("type", "trade".into()),
                ("ts", t.ts.into()),
                ("market", t.market.as_str().into()),
                ("buyer", t.buyer.as_str().into()),
                ("seller", t.seller.as_str().into()),
                ("size", dec(t.size)),
                ("price", dec(t.price)),
            ];
            if !t.buyer_fee.is_zero() {
                fields.push(("buyer_fee", dec(t.buyer_fee)));
            }
            if !t.seller_fee.is_zero() {
                fields.push(("seller_fee", dec(t.seller_fee)));
            }
            if t.buyer_isolated {
                fields.push(("buyer_isolated", true.into()));
            }
            if t.seller_isolated {
                fields.push(("seller_isolated", true.into()));
            }
            obj(fields)
        }
        Event::AuctionTake(a) => obj(vec![
            ("type", "auction_take".into()),
            ("ts", a.ts.into()),
            ("auction", a.auction.as_str().into()),
            ("bidder", a.bidder.as_str().into()),
            ("size", dec(a.size)),
        ]),
        Event::CollateralTake(t) => obj(vec![
            ("type", "collateral_take".into()),
            ("ts", t.ts.into()),
            ("asset", t.asset.as_str().into()),
            ("bidder", t.bidder.as_str().into()),
            ("size", dec(t.size)),
        ]),
        Event::Clock { ts } => obj(vec![("type", "clock".into()), ("ts", (*ts).into())]),
        Event::IsolatedMargin(m) => obj(vec![
            ("type", "isolated_margin".into()),
            ("ts", m.ts.into()),
            ("account", m.account.as_str().into()),
            ("market", m.market.as_str().into()),
            ("amount", dec(m.amount)),
        ]),
        Event::FundDeposit { ts, amount } => {
            obj(vec![("type", "fund_deposit".into()), ("ts", (*ts).into()), ("amount", dec(amount))])
        }
        Event::AssetStatus(a) => obj(vec![
            ("type", "asset_status".into()),
            ("ts", a.ts.into()),
            ("asset", a.asset.as_str().into()),
            ("status", a.status.name().into()),
        ]),
        Event::MarginModel(m) => obj(vec![
            ("type", "margin_model".into()),
            ("ts", m.ts.into()),
            ("account", m.account.as_str().into()),
            ("model", m.model.name().into()),
        ]),
        Event::Signal(signal) => {
            let mut fields = vec![
                ("type", "signal".into()),
                ("ts", signal.ts.into()),
                ("name", signal.name.as_str().into()),
                ("value", dec(signal.value)),
            ];
            if let Some(market) = &signal.market {
                fields.push(("market", market.as_str().into()));
            }
            obj(fields)
        }
        Event::Params(p) => {
            let mut fields = vec![("type", "params".into()), ("ts", p.ts.into()), ("market", p.market.as_str().into())];
            if let Some(basis) = p.tier_basis {
                fields.push(("tier_basis", if basis == TierBasis::Size { "size" } else { "notional" }.into()));
            }
            if let Some(mode) = p.tier_mode {
                fields.push(("tier_mode", if mode == TierMode::Marginal { "marginal" } else { "whole" }.into()));
            }
            if let Some(tiers) = &p.tiers {
                let list: Vec<Value> = tiers
                    .iter()
                    .map(|t| {
                        serde_json::json!({"from": t.from, "mm_rate": t.mm_rate.to_string(),
                                           "penalty_rate": t.penalty_rate.to_string()})
                    })
                    .collect();
                fields.push(("tiers", Value::Array(list)));
            }
            let rates = [
                ("im_factor", p.im_factor),
                ("liquidation_buffer", p.liquidation_buffer),
                ("max_deviation", p.max_deviation),
                ("max_jump", p.max_jump),
                ("max_conf", p.max_conf),
                ("auction_start_premium", p.auction_start_premium),
                ("auction_floor_discount", p.auction_floor_discount),
                ("im_addon_rate", p.im_addon_rate),
                ("concentration_addon_rate", p.concentration_addon_rate),
                ("incentive_rebate_rate", p.incentive_rebate_rate),
            ];
            for (name, value) in rates {
                if let Some(v) = value {
                    fields.push((name, dec(v)));
                }
            }
            let integers = [
                ("quorum", p.quorum.map(u64::from)),
                ("max_age_ms", p.max_age_ms),
                ("max_future_ms", p.max_future_ms),
                ("mark_ema_ms", p.mark_ema_ms),
                ("auction_duration_ms", p.auction_duration_ms),
                ("mm_phase_in_ms", p.mm_phase_in_ms),
            ];
            for (name, value) in integers {
                if let Some(v) = value {
                    fields.push((name, v.into()));
                }
            }
            match p.oi_cap {
                None => {}
                Some(None) => fields.push(("oi_cap", "0".into())),
                Some(Some(cap)) => fields.push(("oi_cap", dec(cap))),
            }
            if let Some(ranges) = &p.cliff_ranges {
                let list = ranges
                    .iter()
                    .map(|r| serde_json::json!({"from": r.from.to_string(), "to": r.to.to_string()}))
                    .collect();
                fields.push(("cliff_ranges", Value::Array(list)));
            }
            if let Some(enabled) = p.adl_enabled {
                fields.push(("adl_enabled", enabled.into()));
            }
            perp_fields(&p.perp, &mut fields);
            rules_fields(&p.rules, &mut fields);
            portfolio_fields(&p.portfolio, &mut fields);
            obj(fields)
        }
    }
}

/// The liquidation-rule fields of a `params` line (a removed chunk threshold is written "0").
fn rules_fields(r: &solvent_core::event::RulesUpdate, fields: &mut Vec<(&'static str, Value)>) {
    if let Some(v) = r.min_liquidation_notional {
        fields.push(("min_liquidation_notional", dec(v)));
    }
    match r.liquidation_chunk_notional {
        None => {}
        Some(None) => fields.push(("liquidation_chunk_notional", "0".into())),
        Some(Some(v)) => fields.push(("liquidation_chunk_notional", dec(v))),
    }
    if let Some(v) = r.liquidation_chunk_rate {
        fields.push(("liquidation_chunk_rate", dec(v)));
    }
    if let Some(v) = r.liquidation_cooldown_ms {
        fields.push(("liquidation_cooldown_ms", v.into()));
    }
    if let Some(v) = r.backstop_mm_fraction {
        fields.push(("backstop_mm_fraction", dec(v)));
    }
    if let Some(v) = r.dust_equity {
        fields.push(("dust_equity", dec(v)));
    }
    for (name, cap) in [
        ("max_account_liquidation_notional", r.max_account_liquidation_notional),
        ("max_event_liquidation_notional", r.max_event_liquidation_notional),
    ] {
        match cap {
            None => {}
            Some(None) => fields.push((name, "0".into())),
            Some(Some(v)) => fields.push((name, dec(v))),
        }
    }
}

/// The portfolio-margin fields of a `params` line.
fn portfolio_fields(p: &solvent_core::event::PortfolioUpdate, fields: &mut Vec<(&'static str, Value)>) {
    let rates = [
        ("pm_range", p.pm_range),
        ("pm_correlation", p.pm_correlation),
        ("pm_mm_factor", p.pm_mm_factor),
        ("pm_im_factor", p.pm_im_factor),
        ("pm_floor", p.pm_floor),
    ];
    for (name, value) in rates {
        if let Some(v) = value {
            fields.push((name, dec(v)));
        }
    }
    if let Some(n) = p.pm_buckets {
        fields.push(("pm_buckets", n.into()));
    }
}

/// The funding and skew fields of a `params` line (a removed option is written "0").
fn perp_fields(p: &solvent_core::event::PerpUpdate, fields: &mut Vec<(&'static str, Value)>) {
    if let Some(enabled) = p.funding_enabled {
        fields.push(("funding_enabled", enabled.into()));
    }
    if let Some(ms) = p.funding_interval_ms {
        fields.push(("funding_interval_ms", ms.into()));
    }
    let rates = [
        ("funding_interest_rate", p.funding_interest_rate),
        ("funding_clamp", p.funding_clamp),
        ("funding_cap", p.funding_cap),
        ("max_funding_velocity", p.max_funding_velocity),
    ];
    for (name, value) in rates {
        if let Some(v) = value {
            fields.push((name, dec(v)));
        }
    }
    for (name, value) in [("skew_scale", p.skew_scale), ("skew_alert", p.skew_alert)] {
        if let Some(v) = value {
            fields.push((name, v.map_or_else(|| "0".into(), dec)));
        }
    }
    if let Some(v) = p.protocol_delta_alert {
        fields.push(("protocol_delta_alert", v.map_or_else(|| "0".into(), dec)));
    }
}
