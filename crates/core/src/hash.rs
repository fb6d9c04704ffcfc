//! The state hash: BLAKE3 over a canonical binary encoding of the whole state.
//!
//! Canonical means independent of insertion order, config order and hash-map order: markets,
//! assets, sources and accounts are written sorted by name, an account's collateral and positions
//! by asset and market name. Integers are fixed-width little-endian, strings length-prefixed,
//! options tagged. The encoding starts with a version tag; changing it is a contract change.
//! The sequence number is not part of the state (a rejected event must leave the hash unchanged).
//! Version 2 ends with the head of the effect hash chain, so a state hash also commits to every
//! effect the engine emitted on the way there.

use crate::config::{MarketParams, TierBasis, TierMode};
use crate::engine::Engine;
use crate::num::Price;
use crate::state::{Account, Market, Tick};

const VERSION_TAG: &[u8] = b"solvent-state-v2";

/// Where canonical bytes go: a hasher, or a buffer in tests.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.put(&v.to_le_bytes());
    }
    fn i128(&mut self, v: i128) {
        self.put(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.put(s.as_bytes());
    }
    fn opt_price(&mut self, p: Option<Price>) {
        match p {
            None => self.u8(0),
            Some(p) => {
                self.u8(1);
                self.i64(p.raw());
            }
        }
    }
}

impl Sink for blake3::Hasher {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Engine {
    /// Hex BLAKE3 of the canonical encoding.
    pub fn state_hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        self.encode_canonical(&mut hasher);
        hasher.finalize().to_hex().to_string()
    }

    /// Write the canonical encoding of the whole state into `sink`.
    pub fn encode_canonical(&self, sink: &mut impl Sink) {
        sink.put(VERSION_TAG);
        sink.u64(self.last_ts);
        sink.u64(self.next_auction_id);
        sink.i128(self.insurance_fund.raw());
        sink.i128(self.bad_debt.raw());
        sink.i128(self.fees_collected.raw());
        sink.str(&self.settlement_name);
        sink.i128(self.settlement_flows.deposited.raw());
        sink.i128(self.settlement_flows.withdrawn.raw());
        let mut assets: Vec<usize> = (0..self.assets.len()).collect();
        assets.sort_unstable_by_key(|&i| &self.assets[i].name);
        sink.u64(assets.len() as u64);
        for &i in &assets {
            let asset = &self.assets[i];
            sink.str(&asset.name);
            sink.i64(asset.weight.raw());
            sink.str(&self.markets[asset.index_market.0 as usize].name);
            sink.i128(self.asset_flows[i].deposited.raw());
            sink.i128(self.asset_flows[i].withdrawn.raw());
        }
        let mut markets: Vec<&Market> = self.markets.iter().collect();
        markets.sort_unstable_by_key(|m| &m.name);
        sink.u64(markets.len() as u64);
        for market in markets {
            encode_market(market, sink);
        }
        let mut accounts: Vec<&Account> = self.accounts.iter().collect();
        accounts.sort_unstable_by_key(|a| &a.name);
        sink.u64(accounts.len() as u64);
        for account in accounts {
            self.encode_account(account, sink);
        }
        self.encode_predictive(sink);
        self.encode_perp(sink);
        self.encode_liquidation_rules(sink);
        self.encode_portfolio(sink);
        self.encode_collateral_holdings(sink);
        self.encode_asset_status(sink);
        // Last, so the ledger part of the encoding is the bytes before the final 32.
        sink.put(&self.effect_chain);
    }

    /// The predictive-margin state, appended after the accounts only when some of it differs
    /// from its defaults (so a state that uses none of it hashes as before; the encoding above is
    /// self-delimiting, so the appended block cannot be confused with it).
    fn encode_predictive(&self, sink: &mut impl Sink) {
        let used = |m: &Market| m.phase_in.is_some() || predictive_params_used(&m.params) || !m.signals.is_empty();
        if !self.markets.iter().any(used) && self.signals.is_empty() {
            return;
        }
        sink.put(b"predictive-v1");
        let mut markets: Vec<&Market> = self.markets.iter().collect();
        markets.sort_unstable_by_key(|m| &m.name);
        for market in markets {
            encode_predictive_params(&market.params, sink);
            match &market.phase_in {
                None => sink.u8(0),
                Some(phase) => {
                    sink.u8(1);
                    encode_params(&phase.target, sink);
                    encode_predictive_params(&phase.target, sink);
                    encode_tiers(&phase.start, sink);
                    sink.u64(phase.start_ts);
                    sink.u64(phase.end_ts);
                    sink.u64(phase.steps);
                }
            }
            encode_signals(&market.signals, sink);
        }
        encode_signals(&self.signals, sink);
    }

    /// Chains, tokens, bridge haircuts, per-status weights, statuses and weight phases, appended
    /// only when some asset differs from a plain one (so a state that uses none of it hashes as
    /// before); assets by name. The effective weight is in the asset block above.
    fn encode_asset_status(&self, sink: &mut impl Sink) {
        if !self.assets.iter().any(|a| a.risk.used()) {
            return;
        }
        sink.put(b"asset-status-v1");
        let mut assets: Vec<&crate::state::Asset> = self.assets.iter().collect();
        assets.sort_unstable_by_key(|a| &a.name);
        for asset in assets {
            asset.risk.encode(sink);
        }
    }

    /// Funding and skew-fee parameters and state, appended only when some market has perp state
    /// or non-default perp parameters (so a state that uses none of it hashes as before).
    fn encode_perp(&self, sink: &mut impl Sink) {
        let default = crate::config::PerpParams::default();
        let used = |m: &Market| m.perp.is_some() || m.params.perp != default;
        if !self.markets.iter().any(used) {
            return;
        }
        sink.put(b"perp-v1");
        let mut markets: Vec<&Market> = self.markets.iter().collect();
        markets.sort_unstable_by_key(|m| &m.name);
        for market in markets {
            let p = &market.params.perp;
            sink.u8(u8::from(p.funding_enabled));
            sink.u64(p.funding_interval_ms);
            sink.i64(p.funding_interest_rate.raw());
            sink.i64(p.funding_clamp.raw());
            sink.i64(p.funding_cap.raw());
            sink.i64(p.skew_scale.map_or(0, |s| s.raw()));
            sink.i64(p.max_funding_velocity.raw());
            sink.i64(p.skew_alert.map_or(0, |s| s.raw()));
            sink.i128(p.protocol_delta_alert.map_or(0, |q| q.raw()));
            match market.perp.as_deref() {
                None => sink.u8(0),
                Some(state) => {
                    sink.u8(1);
                    sink.u64(state.next_funding_ts);
                    sink.i128(state.premium_sum);
                    sink.u64(state.premium_samples);
                    sink.i128(state.velocity_rate);
                    sink.i128(state.last_rate);
                    sink.i128(state.skew_pool.raw());
                    sink.u8(u8::from(state.skew_alerted));
                    sink.u8(u8::from(state.delta_alerted));
                }
            }
        }
    }

    /// The liquidation rules and the chunked-liquidation records, appended only when some market
    /// uses a rule or holds a record (so a state that uses none of it hashes as before). Records
    /// are written by account name, not id (creation order is not state).
    fn encode_liquidation_rules(&self, sink: &mut impl Sink) {
        let used = |m: &Market| m.params.rules.used() || !m.liquidations.is_empty();
        if !self.markets.iter().any(used) {
            return;
        }
        sink.put(b"liquidation-rules-v1");
        let mut markets: Vec<&Market> = self.markets.iter().collect();
        markets.sort_unstable_by_key(|m| &m.name);
        for market in markets {
            let r = &market.params.rules;
            sink.i128(r.min_liquidation_notional.raw());
            sink.i128(r.liquidation_chunk_notional.map_or(0, |q| q.raw()));
            sink.i64(r.liquidation_chunk_rate.raw());
            sink.u64(r.liquidation_cooldown_ms);
            sink.i64(r.backstop_mm_fraction.raw());
            sink.i128(r.dust_equity.raw());
            let mut records: Vec<_> =
                market.liquidations.iter().map(|rec| (&*self.accounts[rec.account.0 as usize].name, rec)).collect();
            records.sort_unstable_by_key(|(name, _)| *name);
            sink.u64(records.len() as u64);
            for (name, record) in records {
                sink.str(name);
                sink.i64(record.peak.raw());
                sink.u64(record.cooldown_until_ms);
            }
        }
        // The per-event caps, only when some market sets one (states without caps hash as before).
        let capped = |m: &&Market| {
            let r = &m.params.rules;
            r.max_account_liquidation_notional.is_some() || r.max_event_liquidation_notional.is_some()
        };
        if self.markets.iter().any(|m| capped(&m)) {
            sink.put(b"liquidation-caps-v1");
            let mut markets: Vec<&Market> = self.markets.iter().collect();
            markets.sort_unstable_by_key(|m| &m.name);
            for market in markets {
                let r = &market.params.rules;
                sink.i128(r.max_account_liquidation_notional.map_or(0, |q| q.raw()));
                sink.i128(r.max_event_liquidation_notional.map_or(0, |q| q.raw()));
            }
        }
    }

    /// Portfolio-margin parameters and the accounts under portfolio margin (by name), appended
    /// only when some market's parameters differ from the defaults or some account opted in (so
    /// a state that uses none of it hashes as before).
    fn encode_portfolio(&self, sink: &mut impl Sink) {
        let default = crate::config::PortfolioParams::default();
        let accounts = self.portfolio_accounts();
        if accounts.is_empty() && self.markets.iter().all(|m| m.params.portfolio == default) {
            return;
        }
        sink.put(b"portfolio-v1");
        let mut markets: Vec<&Market> = self.markets.iter().collect();
        markets.sort_unstable_by_key(|m| &m.name);
        for market in markets {
            encode_portfolio_params(&market.params.portfolio, sink);
            match &market.phase_in {
                None => sink.u8(0),
                Some(phase) => {
                    sink.u8(1);
                    encode_portfolio_params(&phase.target.portfolio, sink);
                }
            }
        }
        sink.u64(accounts.len() as u64);
        for name in accounts {
            sink.str(name);
        }
    }

    /// The collateral haircuts and the protocol's collateral holdings, by asset name, appended
    /// only when some holding is not empty or some haircut differs from the default (so a state
    /// that uses none of it hashes as before).
    fn encode_collateral_holdings(&self, sink: &mut impl Sink) {
        let default = crate::config::DEFAULT_COLLATERAL_HAIRCUT;
        let used = self.collateral_holdings.iter().any(|h| !h.is_empty())
            || self.assets.iter().any(|a| a.collateral_haircut != default);
        if !used {
            return;
        }
        sink.put(b"collateral-v1");
        let mut assets: Vec<usize> = (0..self.assets.len()).collect();
        assets.sort_unstable_by_key(|&i| &self.assets[i].name);
        for i in assets {
            let holding = &self.collateral_holdings[i];
            sink.i64(self.assets[i].collateral_haircut.raw());
            sink.i64(holding.size.raw());
            sink.i128(holding.cost.raw());
        }
    }

    fn encode_account(&self, account: &Account, sink: &mut impl Sink) {
        sink.str(&account.name);
        sink.i128(account.settlement.raw());
        let mut collateral: Vec<_> =
            account.collateral.iter().map(|(id, b)| (&*self.assets[id.0 as usize].name, *b)).collect();
        collateral.sort_unstable_by_key(|(name, _)| *name);
        sink.u64(collateral.len() as u64);
        for (name, balance) in collateral {
            sink.str(name);
            sink.i64(balance.raw());
        }
        let mut positions: Vec<_> =
            account.positions.iter().map(|p| (&*self.markets[p.market.0 as usize].name, p)).collect();
        positions.sort_unstable_by_key(|(name, _)| *name);
        sink.u64(positions.len() as u64);
        for (name, position) in positions {
            sink.str(name);
            sink.i64(position.size.raw());
            sink.i128(position.cost.raw());
        }
    }
}

fn encode_market(market: &Market, sink: &mut impl Sink) {
    sink.str(&market.name);
    encode_params(&market.params, sink);
    let mut sources: Vec<_> = market.sources.iter().collect();
    sources.sort_unstable_by_key(|s| &s.name);
    sink.u64(sources.len() as u64);
    for source in sources {
        sink.str(&source.name);
        match &source.public_key {
            None => sink.u8(0),
            Some(key) => {
                sink.u8(1);
                sink.put(key);
            }
        }
        encode_tick(source.latest, sink);
        sink.str(source.status.name());
        // Counters are telemetry and deliberately not hashed (see state.rs).
    }
    sink.opt_price(market.index_price);
    sink.opt_price(market.mark_price);
    sink.u8(u8::from(market.frozen));
    sink.u8(u8::from(market.clamped));
    match market.jump_anchor {
        None => sink.u8(0),
        Some((price, ts)) => {
            sink.u8(1);
            sink.i64(price.raw());
            sink.u64(ts);
        }
    }
    sink.i64(market.basis_ema_raw);
    sink.u64(market.basis_ts);
    sink.i64(market.open_interest.raw());
    sink.i64(market.inventory.size.raw());
    sink.i128(market.inventory.cost.raw());
    match market.auction {
        None => sink.u8(0),
        Some(a) => {
            sink.u8(1);
            sink.u64(a.id);
            sink.u64(a.start_ts);
            sink.u8(u8::from(a.selling));
        }
    }
}

fn encode_tick(tick: Option<Tick>, sink: &mut impl Sink) {
    match tick {
        None => sink.u8(0),
        Some(t) => {
            sink.u8(1);
            sink.i64(t.price.raw());
            sink.u64(t.ts);
            sink.opt_price(t.conf);
        }
    }
}

fn encode_params(params: &MarketParams, sink: &mut impl Sink) {
    sink.u8(match params.tier_basis {
        TierBasis::Size => 0,
        TierBasis::Notional => 1,
    });
    sink.u8(match params.tier_mode {
        TierMode::Marginal => 0,
        TierMode::Whole => 1,
    });
    encode_tiers(&params.tiers, sink);
    sink.i64(params.im_factor.raw());
    sink.i64(params.liquidation_buffer.raw());
    sink.u64(u64::from(params.quorum));
    sink.u64(params.max_age_ms);
    sink.i64(params.max_deviation.raw());
    sink.i64(params.max_jump.raw());
    sink.u64(params.max_future_ms);
    sink.i64(params.max_conf.raw());
    sink.u64(params.mark_ema_ms);
    sink.i64(params.auction_start_premium.raw());
    sink.i64(params.auction_floor_discount.raw());
    sink.u64(params.auction_duration_ms);
    sink.u8(u8::from(params.adl_enabled));
    sink.i64(params.max_trade_deviation.raw());
}

fn encode_tiers(tiers: &[crate::config::Tier], sink: &mut impl Sink) {
    sink.u64(tiers.len() as u64);
    for tier in tiers {
        sink.i128(tier.from_raw);
        sink.i64(tier.mm_rate.raw());
        sink.i64(tier.penalty_rate.raw());
    }
}

/// Whether any predictive-margin parameter differs from its default.
fn predictive_params_used(params: &MarketParams) -> bool {
    !params.im_addon_rate.is_zero()
        || params.mm_phase_in_ms != 0
        || !params.mm_floors.is_empty()
        || params.oi_cap.is_some()
        || !params.cliff_ranges.is_empty()
        || !params.concentration_addon_rate.is_zero()
        || !params.incentive_rebate_rate.is_zero()
}

fn encode_predictive_params(params: &MarketParams, sink: &mut impl Sink) {
    sink.i64(params.im_addon_rate.raw());
    sink.u64(params.mm_phase_in_ms);
    sink.u64(params.mm_floors.len() as u64);
    for floor in &params.mm_floors {
        sink.i64(floor.raw());
    }
    match params.oi_cap {
        None => sink.u8(0),
        Some(cap) => {
            sink.u8(1);
            sink.i64(cap.raw());
        }
    }
    sink.u64(params.cliff_ranges.len() as u64);
    for range in &params.cliff_ranges {
        sink.i64(range.from.raw());
        sink.i64(range.to.raw());
    }
    sink.i64(params.concentration_addon_rate.raw());
    sink.i64(params.incentive_rebate_rate.raw());
}

/// Signals are kept sorted by name (`signal.rs`), so they are written as stored.
fn encode_signals(signals: &crate::signal::Signals, sink: &mut impl Sink) {
    debug_assert!(signals.windows(2).all(|w| w[0].0 < w[1].0), "signals are sorted by name");
    sink.u64(signals.len() as u64);
    for (name, signal) in signals {
        sink.str(name);
        sink.i128(signal.value.raw());
        sink.u64(signal.ts);
    }
}

fn encode_portfolio_params(p: &crate::config::PortfolioParams, sink: &mut impl Sink) {
    sink.i64(p.pm_range.raw());
    sink.u64(u64::from(p.pm_buckets));
    sink.i64(p.pm_correlation.raw());
    sink.i64(p.pm_mm_factor.raw());
    sink.i64(p.pm_im_factor.raw());
    sink.i64(p.pm_floor.raw());
}
