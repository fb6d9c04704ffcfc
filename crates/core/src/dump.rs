//! The state dump (`--state-out`, `GET /v1/accounts/{id}`): the state as JSON with amounts as
//! decimal strings, keys sorted. Fields may be added, never renamed.

use crate::engine::Engine;
use crate::margin;
use crate::num::{Price, Quote, Rate, Size};
use crate::state::{Account, AccountId, Market, MarketId, SourceCounters};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct StateDump {
    pub seq: u64,
    pub ts: u64,
    pub state_hash: String,
    pub insurance_fund: Quote,
    pub bad_debt: Quote,
    pub fees_collected: Quote,
    /// The protocol's own book: fund, bad debt, liquidation inventory at mark with its cost
    /// basis, and the net position (`protocol_book.rs`); absent only if it overflows.
    pub protocol: Option<crate::protocol_book::ProtocolBook>,
    pub markets: BTreeMap<String, MarketDump>,
    pub accounts: BTreeMap<String, AccountDump>,
    /// Latest market-less `signal` values by name.
    pub signals: BTreeMap<String, crate::signal::SignalValue>,
    /// What the protocol holds of each collateral asset it bought by collateral conversion, by
    /// asset name; only assets with a holding (absent when there is none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub collateral_holdings: BTreeMap<String, HoldingDump>,
    /// Non-settlement collateral assets by name.
    pub assets: BTreeMap<String, AssetDump>,
}

/// The protocol's holding of one collateral asset.
#[derive(Serialize)]
pub struct HoldingDump {
    pub size: Size,
    /// Exact cost basis: what the protocol paid for what it still holds.
    pub cost: Quote,
    /// The index of the asset's index market (absent before its first price).
    pub index_price: Option<Price>,
    /// size × index, exact.
    pub value: Option<Quote>,
    /// value − cost.
    pub unrealized_pnl: Option<Quote>,
    /// What a `collateral_take` pays per unit now: index × (1 − haircut / 2), rounded up.
    pub take_price: Option<Price>,
    pub collateral_haircut: Rate,
}

/// A collateral asset: its chain and token, its status, the configured weight and the effective
/// one (what equity reads), and the running weight phase's target and end.
#[derive(Serialize)]
pub struct AssetDump {
    pub index_market: String,
    pub chain: Option<String>,
    pub token: Option<String>,
    pub status: &'static str,
    pub configured_weight: Rate,
    pub bridge_haircut: Rate,
    pub halted_weight: Rate,
    pub depeg_weight: Rate,
    pub weight_phase_ms: u64,
    pub effective_weight: Rate,
    /// Where the effective weight is going: the running phase's target, else the effective one.
    pub target_weight: Rate,
    /// When a running weight phase reaches its target.
    pub weight_phase_end_ts: Option<u64>,
}

fn asset_dump(asset: &crate::state::Asset, markets: &[Market]) -> AssetDump {
    let risk = &asset.risk;
    AssetDump {
        index_market: markets[asset.index_market.0 as usize].name.to_string(),
        chain: risk.chain.as_deref().map(str::to_string),
        token: risk.token.as_deref().map(str::to_string),
        status: risk.status.name(),
        configured_weight: risk.configured_weight,
        bridge_haircut: risk.bridge_haircut,
        halted_weight: risk.halted_weight,
        depeg_weight: risk.depeg_weight,
        weight_phase_ms: risk.weight_phase_ms,
        effective_weight: asset.weight,
        target_weight: risk.phase.map_or(asset.weight, |p| p.target),
        weight_phase_end_ts: risk.phase.map(|p| p.end_ts),
    }
}

#[derive(Serialize)]
pub struct MarketDump {
    pub index_price: Option<Price>,
    pub mark_price: Option<Price>,
    pub frozen: bool,
    /// The last index move was held back by the jump clamp.
    pub jump_clamped: bool,
    pub open_interest: Size,
    pub liquidation_inventory: Size,
    /// Traders' open interest (the protocol's inventory excluded): long, short, and the skew
    /// long - short (= minus the inventory, by zero-sum).
    pub traders_long_oi: Size,
    pub traders_short_oi: Size,
    pub skew: Size,
    /// The protocol's own net exposure: its inventory's size and notional at mark.
    pub protocol_delta: Size,
    pub protocol_delta_notional: Option<Quote>,
    /// The inventory's exact cost basis and its unrealized PnL at mark (`protocol_book.rs`).
    pub inventory_cost_basis: Quote,
    pub inventory_unrealized_pnl: Option<Quote>,
    /// Funding and skew-fee parameters and state; absent while the market uses none of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funding: Option<FundingDump>,
    pub unknown_source_ticks: u64,
    /// The live Dutch auction of the inventory: (id, start ts, "sell" or "buy").
    pub auction: Option<AuctionDump>,
    pub sources: BTreeMap<String, SourceDump>,
    /// Effective tier rates: what maintenance margin reads.
    pub tiers: Vec<TierDump>,
    /// Target tier rates (what initial margin reads): the effective ones unless a phase-in runs.
    pub target_tiers: Vec<TierDump>,
    /// When a running MM phase-in reaches its target rates.
    pub mm_phase_in_end_ts: Option<u64>,
    pub mm_phase_in_ms: u64,
    /// Per bracket, the lowest MM rate a `params` event may set (empty: no floors).
    pub mm_floor_rates: Vec<Rate>,
    pub im_addon_rate: Rate,
    pub oi_cap: Option<Size>,
    pub cliff_ranges: Vec<crate::config::CliffRange>,
    pub concentration_addon_rate: Rate,
    pub incentive_rebate_rate: Rate,
    /// Latest `signal` values for this market by name.
    pub signals: BTreeMap<String, crate::signal::SignalValue>,
    /// The partial-liquidation rules (docs/liquidation.md section 3.1).
    pub liquidation_rules: crate::config::LiquidationRules,
    /// Positions in a chunked liquidation episode, by account name.
    pub liquidation_episodes: BTreeMap<String, EpisodeDump>,
    /// The liquidation map at the default step and range (`liquidation_map.rs`): in the whole
    /// state dump only (it costs a pass over the accounts), absent before the first mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liquidation_map: Option<crate::liquidation_map::LiquidationMap>,
}

/// A position being liquidated in chunks.
#[derive(Serialize)]
pub struct EpisodeDump {
    /// The largest |size| at one of the episode's liquidations: a chunk is a fraction of it.
    pub peak_size: Size,
    /// No further chunk before this engine ts (unless the backstop threshold is hit).
    pub cooldown_until_ms: u64,
}

#[derive(Serialize)]
pub struct FundingDump {
    pub enabled: bool,
    pub interval_ms: u64,
    pub interest_rate: Rate,
    pub clamp: Rate,
    pub cap: Rate,
    pub skew_scale: Option<Size>,
    pub max_funding_velocity: Rate,
    pub skew_alert: Option<Size>,
    pub protocol_delta_alert: Option<Quote>,
    /// Engine time of the next settlement (0: starts at the next `clock` event).
    pub next_funding_ts: u64,
    pub premium_samples: u64,
    /// Average premium of the running interval (rounded down).
    pub average_premium: Rate,
    /// Rate of the last settlement and the velocity-driven rate per day, 16 decimals.
    pub last_rate: Quote,
    pub velocity_rate_per_day: Quote,
    /// What skew fees hold for rebates (part of `fees_collected`).
    pub skew_pool: Quote,
}

fn funding_dump(market: &Market) -> Option<FundingDump> {
    let state = market.perp.as_deref()?;
    let p = &market.params.perp;
    Some(FundingDump {
        enabled: p.funding_enabled,
        interval_ms: p.funding_interval_ms,
        interest_rate: p.funding_interest_rate,
        clamp: p.funding_clamp,
        cap: p.funding_cap,
        skew_scale: p.skew_scale,
        max_funding_velocity: p.max_funding_velocity,
        skew_alert: p.skew_alert,
        protocol_delta_alert: p.protocol_delta_alert,
        next_funding_ts: state.next_funding_ts,
        premium_samples: state.premium_samples,
        average_premium: crate::funding::average_premium(state.premium_sum, state.premium_samples),
        last_rate: Quote::from_raw(state.last_rate),
        velocity_rate_per_day: Quote::from_raw(state.velocity_rate),
        skew_pool: state.skew_pool,
    })
}

fn signals_dump(signals: &crate::signal::Signals) -> BTreeMap<String, crate::signal::SignalValue> {
    signals.iter().map(|(name, value)| (name.to_string(), *value)).collect()
}

#[derive(Serialize)]
pub struct TierDump {
    /// Bracket start in the tier basis: base units (size) or quote (notional).
    pub from: String,
    pub mm_rate: Rate,
    pub penalty_rate: Rate,
}

fn tiers_dump(params: &crate::config::MarketParams) -> Vec<TierDump> {
    let from = |raw: i128| match params.tier_basis {
        crate::config::TierBasis::Size => Size::from_raw(raw as i64).to_string(),
        crate::config::TierBasis::Notional => Quote::from_raw(raw).to_string(),
    };
    params
        .tiers
        .iter()
        .map(|t| TierDump { from: from(t.from_raw), mm_rate: t.mm_rate, penalty_rate: t.penalty_rate })
        .collect()
}

#[derive(Serialize)]
pub struct AuctionDump {
    pub id: String,
    pub start_ts: u64,
    pub side: &'static str,
}

#[derive(Serialize)]
pub struct SourceDump {
    pub price: Option<Price>,
    pub conf: Option<Price>,
    pub last_seen_ts: Option<u64>,
    /// usable, stale, outlier, wide_conf or missing, as last judged.
    pub status: &'static str,
    pub signed: bool,
    pub counters: SourceCounters,
}

#[derive(Serialize)]
pub struct AccountDump {
    pub collateral: BTreeMap<String, String>,
    pub equity: Quote,
    pub unrealized_pnl: Quote,
    pub maintenance_margin: Quote,
    pub initial_margin: Quote,
    /// What a withdrawal of the settlement asset may take now.
    pub free_collateral: Quote,
    pub positions: BTreeMap<String, PositionDump>,
    /// Portfolio-margined accounts only: the parts of the requirement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioDump>,
}

/// The parts of a portfolio-margined account's requirement (`portfolio.rs`), each rounded up to
/// the settlement asset's unit (the requirement itself is rounded once, from the exact parts).
#[derive(Serialize)]
pub struct PortfolioDump {
    pub margin_model: &'static str,
    /// Σ per market of its worst scenario loss (S).
    pub standalone_loss: Quote,
    /// The worst scenario loss with every market moved together (J).
    pub joint_loss: Quote,
    /// ρ: the smallest pair correlation of the account's markets.
    pub correlation: Rate,
    /// Σ standalone tier MM of the positions (T).
    pub tier_maintenance_margin: Quote,
    /// Which term sets MM: `scenarios`, `tiers_less_offset` or `floor`.
    pub binding: &'static str,
}

#[derive(Serialize)]
pub struct PositionDump {
    pub size: Size,
    pub entry_price: Option<Price>,
    pub mark_price: Option<Price>,
    pub unrealized_pnl: Option<Quote>,
    pub maintenance_margin: Option<Quote>,
    pub initial_margin: Option<Quote>,
    pub liquidation_price: Option<Price>,
    /// ADL queue position among same-side holders, 1 (last) to 5 (top 20%: first to be
    /// auto-deleveraged), as venues show it with five lights.
    pub adl_quantile: Option<u8>,
}

/// ADL quantiles of every holder of every market at one state ([`Engine::adl_quantile_table`]).
#[derive(Clone, Debug, Default)]
pub struct AdlQuantiles(BTreeMap<(MarketId, AccountId), u8>);

impl Engine {
    /// The whole state as a dump.
    pub fn dump(&self) -> StateDump {
        let quantiles = self.all_adl_quantiles();
        StateDump {
            seq: self.last_seq,
            ts: self.last_ts,
            state_hash: self.state_hash(),
            insurance_fund: self.insurance_fund,
            bad_debt: self.bad_debt,
            fees_collected: self.fees_collected,
            protocol: self.protocol_book().ok(),
            markets: self
                .markets
                .iter()
                .map(|m| {
                    let mut dump = self.market_dump_of(m);
                    dump.liquidation_map = self
                        .liquidation_map(
                            &m.name,
                            crate::liquidation_map::DEFAULT_MAP_STEP,
                            crate::liquidation_map::DEFAULT_MAP_RANGE,
                        )
                        .ok();
                    (m.name.to_string(), dump)
                })
                .collect(),
            accounts: self
                .accounts
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    (a.name.to_string(), self.account_dump_of(a, |m| quantiles.get(&(m, AccountId(i as u32))).copied()))
                })
                .collect(),
            signals: signals_dump(&self.signals),
            collateral_holdings: self.holdings_dump(),
            assets: self.assets.iter().map(|a| (a.name.to_string(), asset_dump(a, &self.markets))).collect(),
        }
    }

    /// The non-empty collateral holdings, by asset name, valued at index.
    pub fn holdings_dump(&self) -> BTreeMap<String, HoldingDump> {
        let mut dump = BTreeMap::new();
        for (asset, holding) in self.assets.iter().zip(&self.collateral_holdings) {
            // The protocol's book values the holding (zero before an index); the dump says null.
            let Ok(Some(book)) = crate::protocol_book::collateral_book(asset, holding, &self.markets) else { continue };
            let priced = book.index_price.is_some();
            let entry = HoldingDump {
                size: book.size,
                cost: book.cost,
                index_price: book.index_price,
                value: priced.then_some(book.value),
                unrealized_pnl: priced.then_some(book.unrealized_pnl),
                take_price: book
                    .index_price
                    .and_then(|i| crate::liquidation::collateral::take_price(i, asset.collateral_haircut).ok()),
                collateral_haircut: asset.collateral_haircut,
            };
            dump.insert(asset.name.to_string(), entry);
        }
        dump
    }

    /// One account as in the dump; `None` for an unknown name.
    pub fn account_dump(&self, name: &str) -> Option<AccountDump> {
        let id = self.account_id(name).ok()?;
        let account = &self.accounts[id.0 as usize];
        let quantile = |market: MarketId| {
            let side = account.size(market).signum();
            self.adl_quantiles(market, side).into_iter().find(|(a, _)| *a == id).map(|(_, q)| q)
        };
        Some(self.account_dump_of(account, quantile))
    }

    /// One market as in the dump; `None` for an unknown name.
    pub fn market_dump(&self, name: &str) -> Option<MarketDump> {
        self.markets.iter().find(|m| &*m.name == name).map(|m| self.market_dump_of(m))
    }

    /// [`market_dump`] with the liquidation episodes named by account.
    fn market_dump_of(&self, market: &Market) -> MarketDump {
        let mut dump = market_dump(market);
        dump.liquidation_episodes = market
            .liquidations
            .iter()
            .map(|r| {
                let episode = EpisodeDump { peak_size: r.peak, cooldown_until_ms: r.cooldown_until_ms };
                (self.accounts[r.account.0 as usize].name.to_string(), episode)
            })
            .collect();
        dump
    }

    /// ADL quantiles (1..=5) of the holders of `side` (a signum) in a market.
    pub fn adl_quantiles(&self, market: MarketId, side: i32) -> Vec<(AccountId, u8)> {
        let Ok(ranked) = self.adl_ranking(market, -side, None) else { return Vec::new() };
        let n = ranked.len();
        ranked.into_iter().enumerate().map(|(rank, (id, _))| (id, 5 - (5 * rank / n) as u8)).collect()
    }

    /// Every holder's ADL quantile in every market, ranked once: a read model computes it once
    /// per state and answers many [`Engine::account_dump_ranked`] from it.
    pub fn adl_quantile_table(&self) -> AdlQuantiles {
        AdlQuantiles(self.all_adl_quantiles())
    }

    /// [`Engine::account_dump`] with the quantiles of [`Engine::adl_quantile_table`] (of this
    /// same state): no ranking per call.
    pub fn account_dump_ranked(&self, name: &str, table: &AdlQuantiles) -> Option<AccountDump> {
        let id = self.account_id(name).ok()?;
        let account = &self.accounts[id.0 as usize];
        Some(self.account_dump_of(account, |m| table.0.get(&(m, id)).copied()))
    }

    fn all_adl_quantiles(&self) -> BTreeMap<(MarketId, AccountId), u8> {
        let mut all = BTreeMap::new();
        for i in 0..self.markets.len() {
            let market = MarketId(i as u16);
            for side in [1, -1] {
                for (id, quantile) in self.adl_quantiles(market, side) {
                    all.insert((market, id), quantile);
                }
            }
        }
        all
    }

    fn account_dump_of(&self, account: &Account, adl_quantile: impl Fn(MarketId) -> Option<u8>) -> AccountDump {
        let health = self.health_of(account).unwrap_or_default();
        // Per-position MM and IM are the tiered model's; another model has account figures only.
        let tiered = account.margin_model.is_tiered();
        let mut collateral = BTreeMap::new();
        collateral.insert(self.settlement_name.to_string(), account.settlement.to_string());
        for (asset, balance) in &account.collateral {
            collateral.insert(self.assets[asset.0 as usize].name.to_string(), balance.to_string());
        }
        let positions = account
            .positions
            .iter()
            .map(|p| {
                let market = &self.markets[p.market.0 as usize];
                let mark = market.mark_price;
                let dump = PositionDump {
                    size: p.size,
                    entry_price: p.entry_price(),
                    mark_price: mark,
                    unrealized_pnl: mark.and_then(|m| p.unrealized_pnl(m).ok()),
                    maintenance_margin: mark
                        .filter(|_| tiered)
                        .and_then(|m| margin::position_mm(&market.params, p.size, m).ok()),
                    initial_margin: mark.filter(|_| tiered).and_then(|m| {
                        let addon = margin::im_addon_rate(account, p, &self.assets, &self.markets);
                        margin::position_im_in(market, p.size, m, addon).ok()
                    }),
                    liquidation_price: margin::liquidation_price(account, p.market, &self.assets, &self.markets),
                    adl_quantile: adl_quantile(p.market),
                };
                (market.name.to_string(), dump)
            })
            .collect();
        let free = health.equity_without_profit.checked_sub(health.initial_margin).unwrap_or(Quote::ZERO);
        let free = free.max(Quote::ZERO).min(account.settlement.max(Quote::ZERO));
        AccountDump {
            collateral,
            equity: health.equity,
            unrealized_pnl: health.unrealized_pnl,
            maintenance_margin: health.maintenance_margin,
            initial_margin: health.initial_margin,
            free_collateral: free,
            positions,
            portfolio: (!tiered).then(|| self.portfolio_dump(account)).flatten(),
        }
    }

    fn portfolio_dump(&self, account: &Account) -> Option<PortfolioDump> {
        let p = crate::portfolio::Portfolio::of(account, &self.assets, &self.markets).ok()?;
        let up = |v, digits| crate::portfolio::ceil_quote(v, digits).ok();
        let (scenario, offset, floor) = p.terms()?;
        let binding = if scenario >= offset && scenario >= floor {
            "scenarios"
        } else if offset >= floor {
            "tiers_less_offset"
        } else {
            "floor"
        };
        Some(PortfolioDump {
            margin_model: account.margin_model.name(),
            standalone_loss: up(p.standalone_loss, 24)?,
            joint_loss: up(p.joint_loss, 24)?,
            correlation: p.correlation(),
            tier_maintenance_margin: up(p.tier_mm, 8)?,
            binding,
        })
    }
}

fn market_dump(market: &Market) -> MarketDump {
    let target = market.target_params();
    MarketDump {
        index_price: market.index_price,
        mark_price: market.mark_price,
        frozen: market.frozen,
        jump_clamped: market.clamped,
        open_interest: market.open_interest,
        liquidation_inventory: market.inventory.size,
        traders_long_oi: crate::funding::traders_open_interest(market).0,
        traders_short_oi: crate::funding::traders_open_interest(market).1,
        skew: crate::funding::traders_skew(market),
        protocol_delta: market.inventory.size,
        protocol_delta_notional: market.mark_price.map(|mark| market.inventory.size.mul_price(mark)),
        inventory_cost_basis: market.inventory.cost,
        inventory_unrealized_pnl: market.mark_price.and_then(|mark| market.inventory.unrealized_pnl(mark).ok()),
        funding: funding_dump(market),
        unknown_source_ticks: market.unknown_source_ticks,
        auction: market.auction.map(|a| AuctionDump {
            id: a.id.to_string(),
            start_ts: a.start_ts,
            side: if a.selling { "sell" } else { "buy" },
        }),
        sources: market
            .sources
            .iter()
            .map(|s| {
                let dump = SourceDump {
                    price: s.latest.map(|t| t.price),
                    conf: s.latest.and_then(|t| t.conf),
                    last_seen_ts: s.latest.map(|t| t.ts),
                    status: s.status.name(),
                    signed: s.public_key.is_some(),
                    counters: s.counters,
                };
                (s.name.to_string(), dump)
            })
            .collect(),
        tiers: tiers_dump(&market.params),
        target_tiers: tiers_dump(market.target_params()),
        mm_phase_in_end_ts: market.phase_in.as_ref().map(|p| p.end_ts),
        mm_phase_in_ms: target.mm_phase_in_ms,
        mm_floor_rates: target.mm_floors.clone(),
        im_addon_rate: target.im_addon_rate,
        oi_cap: target.oi_cap,
        cliff_ranges: target.cliff_ranges.clone(),
        concentration_addon_rate: target.concentration_addon_rate,
        incentive_rebate_rate: target.incentive_rebate_rate,
        signals: signals_dump(&market.signals),
        liquidation_rules: target.rules.clone(),
        liquidation_episodes: BTreeMap::new(),
        liquidation_map: None,
    }
}
