//! Collateral liquidation: the protocol buys the non-settlement collateral (BTC, ETH) of an
//! account that liquidation leaves owing settlement asset, and sells it on to backstop makers.
//!
//! **Conversion** (`collateral_conversion` effects) sells an account's collateral to the protocol
//! at index × (1 − `collateral_haircut`), the price rounded down; the size sold rounds up, so
//! both roundings go against the account. It runs inside the waterfall, in three places:
//!
//! - **after every close step** (partial or full, `reason` `liquidation`, or `flat` once no
//!   position is left) that leaves the settlement balance negative: as much as brings the balance
//!   back to >= 0, asset by asset in asset-name order, or all of it. A liquidated account then
//!   never keeps a debt backed by collateral whose fall would bankrupt it again later;
//! - **before a bankruptcy** is measured (`reason` `bankruptcy`): all of the account's collateral.
//!   The fund, ADL and socialized loss then see only the deficit that is left (none at all when
//!   the sale covers it: the account is not bankrupt, and the waterfall carries on with it);
//! - nowhere else: an account that trades itself into a negative settlement balance backed by
//!   collateral keeps it until it is liquidated (the collateral counts at its weight meanwhile).
//!
//! An asset whose index market is frozen or has no index yet is not converted (no price to sell
//! at); the waterfall never declares such an account bankrupt either (`frozen_dependency`).
//!
//! **Holdings**: what the protocol bought is held per asset with its exact cost basis
//! (`Engine::collateral_holdings`), the paid proceeds. Per asset, deposits − withdrawals = Σ
//! account balances + holdings; the settlement identity counts the holdings' cost as a protocol
//! outflow.
//!
//! **Disposal** (`collateral_take` events, `collateral_fill` effects): a backstop maker buys part
//! or all of a holding at index × (1 − haircut / 2), rounded up (the taker pays the rounding),
//! paying from its settlement balance. The cost share of what it takes is cost × size / holding,
//! rounded up (all of the cost for the whole holding); the realized PnL, paid − cost share, is the
//! insurance fund's (a loss beyond the fund becomes bad debt).

use crate::effect::{Effect, EffectKind, EffectSink};
use crate::engine::{AssetRef, Engine};
use crate::error::Error;
use crate::event::CollateralTake;
use crate::liquidation::bankruptcy::fund_after;
use crate::num::{Overflow, Price, Quote, Rate, Round, Size};
use crate::state::{AccountId, AssetId, CollateralHolding};

/// Pure: the price at which the protocol buys collateral: index × (1 − haircut), rounded down.
pub fn conversion_price(index: Price, haircut: Rate) -> Result<Price, Overflow> {
    debug_assert!(!haircut.is_negative() && haircut < Rate::ONE, "haircuts are in [0, 1)");
    index.scale(Rate::ONE.checked_sub(haircut)?, Round::Down)
}

/// Pure: the price at which a backstop maker buys the protocol's collateral: index × (1 −
/// haircut / 2), rounded up (the haircut halved rounds down, so the price errs upward too).
pub fn take_price(index: Price, haircut: Rate) -> Result<Price, Overflow> {
    let half = Rate::from_raw(haircut.raw() / 2);
    index.scale(Rate::ONE.checked_sub(half)?, Round::Up)
}

/// Pure: the cost basis of `size` out of `holding`: all of it for the whole holding, else
/// cost × size / holding rounded up (what stays never exceeds what is left's fair share).
pub fn cost_share(holding: CollateralHolding, size: Size) -> Result<Quote, Overflow> {
    if size >= holding.size {
        return Ok(holding.cost);
    }
    holding.cost.mul_ratio(size, holding.size, Round::Up)
}

/// How much of an account's collateral a conversion sells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// As much as brings the settlement balance to >= 0 (or all of it).
    Cover,
    /// All of it (a bankruptcy).
    All,
}

/// One planned sale: asset, size sold, price.
type Sale = (AssetId, Size, Price);

impl Engine {
    /// The sales a conversion of `id`'s collateral makes, computed before anything is written:
    /// assets in name order, those without a live index skipped.
    fn conversion_plan(&self, id: AccountId, scope: Scope) -> Result<Vec<Sale>, Overflow> {
        let account = &self.accounts[id.0 as usize];
        let mut holdings: Vec<(AssetId, Size)> = account.collateral.clone();
        holdings.sort_unstable_by(|a, b| self.assets[a.0 .0 as usize].name.cmp(&self.assets[b.0 .0 as usize].name));
        let mut settlement = account.settlement;
        let mut plan = Vec::new();
        for (asset_id, balance) in holdings {
            if scope == Scope::Cover && !settlement.is_negative() {
                break;
            }
            let asset = &self.assets[asset_id.0 as usize];
            let market = &self.markets[asset.index_market.0 as usize];
            let Some(index) = market.index_price.filter(|_| !market.frozen) else { continue };
            let price = conversion_price(index, asset.collateral_haircut)?;
            if !price.is_positive() {
                continue;
            }
            let size = match scope {
                Scope::All => balance,
                // The size rounds up; a debt beyond what any size can express takes it all.
                Scope::Cover => {
                    settlement.checked_neg()?.div_price(price, Round::Up).map_or(balance, |s| s.min(balance))
                }
            };
            debug_assert!(size.is_positive() && size <= balance, "a sale is of a positive size the account holds");
            settlement = settlement.checked_add(size.mul_price(price))?;
            plan.push((asset_id, size, price));
        }
        Ok(plan)
    }

    /// Convert `id`'s collateral (see the module docs); returns whether anything was sold. Runs
    /// inside a waterfall step only: an overflow part-way is rolled back with the step.
    pub(crate) fn convert_collateral(
        &mut self,
        id: AccountId,
        scope: Scope,
        reason: &str,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<bool, Overflow> {
        debug_assert!(self.waterfall.undo.is_some(), "conversions happen inside a waterfall step");
        let plan = self.conversion_plan(id, scope)?;
        for &(asset_id, size, price) in &plan {
            let proceeds = size.mul_price(price);
            let holding = self.collateral_holdings[asset_id.0 as usize];
            let bought =
                CollateralHolding { size: holding.size.checked_add(size)?, cost: holding.cost.checked_add(proceeds)? };
            let account = &self.accounts[id.0 as usize];
            let balance = account.collateral_balance(asset_id).checked_sub(size)?;
            let settlement = account.settlement.checked_add(proceeds)?;
            let account = self.account_mut(id);
            account.settlement = settlement;
            account.set_collateral(asset_id, balance);
            self.write_holding(asset_id, bought);
            let kind = EffectKind::CollateralConversion {
                account: String::from(&*self.accounts[id.0 as usize].name),
                asset: String::from(&*self.assets[asset_id.0 as usize].name),
                reason: reason.into(),
                size,
                price,
                proceeds,
                holdings: bought.size,
            };
            out.emit(seq, self.last_ts, kind);
        }
        Ok(!plan.is_empty())
    }

    /// After a close step: an account left with a negative settlement balance and collateral
    /// has enough of it sold to bring the balance to >= 0. Returns whether anything was sold.
    pub(crate) fn convert_after_close(
        &mut self,
        id: AccountId,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> Result<bool, Overflow> {
        let account = &self.accounts[id.0 as usize];
        if !account.settlement.is_negative() || account.collateral.is_empty() {
            return Ok(false);
        }
        let reason = if account.positions.is_empty() { "flat" } else { "liquidation" };
        let sold = self.convert_collateral(id, Scope::Cover, reason, seq, out)?;
        let account = &self.accounts[id.0 as usize];
        debug_assert!(
            !account.settlement.is_negative()
                || !sold
                || self.conversion_plan(id, Scope::Cover).is_ok_and(|p| p.is_empty()),
            "a cover conversion leaves the balance >= 0 or nothing more to sell"
        );
        Ok(sold)
    }

    /// The one write of a collateral holding: never negative, and an empty one has no cost.
    pub(crate) fn write_holding(&mut self, asset: AssetId, holding: CollateralHolding) {
        assert!(!holding.size.is_negative(), "collateral holding written negative: {}", holding.size);
        assert!(!holding.cost.is_negative(), "collateral holding cost written negative: {}", holding.cost);
        assert!(!holding.size.is_zero() || holding.cost.is_zero(), "an empty holding has no cost");
        self.collateral_holdings[asset.0 as usize] = holding;
    }

    /// A `collateral_take` event: the bidder buys `size` of the protocol's holding at the take
    /// price. Everything is checked before anything is written.
    pub(crate) fn collateral_take(
        &mut self,
        seq: u64,
        take: &CollateralTake,
        out: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        let now = take.ts.max(self.last_ts);
        let asset_id = match self.asset_ref(&take.asset)? {
            AssetRef::Settlement => return Err(Error::NotCollateralAsset(take.asset.clone())),
            AssetRef::Other(id) => id,
        };
        let holding = self.collateral_holdings[asset_id.0 as usize];
        if take.size > holding.size {
            return Err(Error::CollateralHoldingsExceeded {
                asset: take.asset.clone(),
                size: take.size.to_string(),
                holdings: holding.size.to_string(),
            });
        }
        let asset = &self.assets[asset_id.0 as usize];
        let market = &self.markets[asset.index_market.0 as usize];
        if !self.market_live_at(asset.index_market, now) {
            return Err(Error::MarketFrozen { market: market.name.to_string(), what: "a collateral take" });
        }
        let index = market.index_price.ok_or_else(|| Error::NoMarkPrice(market.name.to_string()))?;
        let price = take_price(index, asset.collateral_haircut)?;
        let bidder_id = self.account_id(&take.bidder)?;
        let paid = take.size.mul_price(price);
        let bidder = self.taker_after(bidder_id, asset_id, take, paid, now)?;
        let cost = cost_share(holding, take.size)?;
        let left =
            CollateralHolding { size: holding.size.checked_sub(take.size)?, cost: holding.cost.checked_sub(cost)? };
        let realized_pnl = paid.checked_sub(cost)?;
        let (fund, bad_debt) = fund_after(self.insurance_fund, self.bad_debt, realized_pnl)?;
        // Everything is checked: commit (the take's ts is trusted time, as `apply` will record).
        self.last_ts = now;
        *self.account_mut(bidder_id) = bidder;
        self.write_holding(asset_id, left);
        self.write_fund(fund, bad_debt);
        let kind = EffectKind::CollateralFill {
            asset: take.asset.clone(),
            bidder: take.bidder.clone(),
            size: take.size,
            price,
            cost,
            realized_pnl,
            remaining: left.size,
        };
        out.emit(seq, now, kind);
        if !realized_pnl.is_zero() {
            self.push_insurance(seq, out, "collateral_pnl", realized_pnl, None);
        }
        Ok(())
    }

    /// The bidder of a take after paying `paid` and receiving the asset: it must hold the
    /// settlement balance, depend on no frozen market, and keep collateral + min(0, unrealized
    /// PnL) at or above its initial margin (the withdrawal rule: a take spends settlement asset).
    fn taker_after(
        &self,
        bidder_id: AccountId,
        asset_id: AssetId,
        take: &CollateralTake,
        paid: Quote,
        now_ms: u64,
    ) -> Result<crate::state::Account, Error> {
        let bidder = &self.accounts[bidder_id.0 as usize];
        if bidder.settlement < paid {
            return Err(Error::InsufficientBalance {
                account: take.bidder.clone(),
                asset: self.settlement_name.to_string(),
                balance: bidder.settlement.to_string(),
                amount: paid.to_string(),
            });
        }
        let mut after = bidder.clone();
        after.settlement = bidder.settlement.checked_sub(paid)?;
        after.set_collateral(asset_id, bidder.collateral_balance(asset_id).checked_add(take.size)?);
        if let Some(frozen) = self.frozen_dependency_at(&after, now_ms) {
            let market = self.markets[frozen.0 as usize].name.to_string();
            return Err(Error::MarketFrozen { market, what: "a collateral take" });
        }
        let health = self.health_of(&after)?;
        if health.equity_without_profit < health.initial_margin {
            return Err(Error::InsufficientMargin {
                account: take.bidder.clone(),
                equity: health.equity_without_profit,
                required: health.initial_margin,
            });
        }
        Ok(after)
    }

    /// What the protocol holds of every collateral asset, by asset id (for the dump and tests).
    pub fn collateral_holdings(&self) -> &[CollateralHolding] {
        &self.collateral_holdings
    }
}
