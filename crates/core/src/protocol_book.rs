//! The protocol's own book: what the venue itself holds and owes, and its net position, the
//! headline solvency figure.
//!
//! Liquidation takes positions over into the protocol's inventory at mark (`Market::inventory`,
//! an exact size and cost basis). Until backstop makers buy it, that inventory is the venue's own
//! risk: a fund of +36,500 USDC next to an inventory 717,000 USDC under water is a venue that is
//! insolvent by 680,500. The net position puts the two together:
//!
//! ```text
//! net position = insurance fund + Σ inventory unrealized PnL at mark
//!              + Σ collateral holdings (size × index − cost) − bad debt
//! ```
//!
//! (collateral holdings: what collateral liquidation bought from accounts, `liquidation::collateral`;
//! a holding whose index market has no index yet is valued at zero, in favour of solvency).
//! By conservation (docs/concepts.md) this is also what is left of the settlement asset once
//! every trader is paid their equity at mark and the collected fees are set aside, plus the
//! holdings at index: `deposits − withdrawals − Σ (settlement balance + unrealized PnL) − fees
//! collected + Σ holdings × index`, the identity the tests check after every event. Exact: no rounding anywhere (sums of exact
//! products). Read-only, except for one derived flag that makes the `alert` fire once per
//! crossing (`Engine::solvency_alert`).

use crate::effect::{Effect, EffectKind, EffectSink};
use crate::engine::Engine;
use crate::num::{Overflow, Price, Quote, Size};
use crate::state::{Asset, CollateralHolding, Market};
use serde::Serialize;
use std::collections::BTreeMap;

/// The protocol's book: the fund, the debt and the liquidation inventory per market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtocolBook {
    pub insurance_fund: Quote,
    pub bad_debt: Quote,
    /// Trading fees collected (skew-fee pool included): revenue, set aside, not counted in the
    /// net position.
    pub fees_collected: Quote,
    /// Σ of the inventories' unrealized PnL at mark.
    pub inventory_unrealized_pnl: Quote,
    /// Σ |inventory| × mark.
    pub inventory_notional: Quote,
    /// Σ of the collateral holdings' value at index − cost.
    pub collateral_unrealized_pnl: Quote,
    /// insurance fund + inventory unrealized PnL + collateral unrealized PnL − bad debt:
    /// negative means the venue owes its traders more than it holds.
    pub net_position: Quote,
    /// `net_position ≥ 0`.
    pub solvent: bool,
    /// Per market with inventory (markets holding none are left out).
    pub inventory: BTreeMap<String, InventoryBook>,
    /// Per collateral asset the protocol holds (assets it holds none of are left out).
    pub collateral: BTreeMap<String, CollateralBook>,
}

/// One collateral asset the protocol bought from liquidated accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CollateralBook {
    pub size: Size,
    /// Exact cost of what is held.
    pub cost: Quote,
    pub index_price: Option<Price>,
    /// size × index (zero before the first index).
    pub value: Quote,
    /// value − cost.
    pub unrealized_pnl: Quote,
}

/// One holding at index; `None` when the protocol holds none of the asset.
pub(crate) fn collateral_book(
    asset: &Asset,
    holding: &CollateralHolding,
    markets: &[Market],
) -> Result<Option<CollateralBook>, Overflow> {
    if holding.is_empty() {
        return Ok(None);
    }
    let index_price = markets[asset.index_market.0 as usize].index_price;
    let value = index_price.map_or(Quote::ZERO, |index| holding.size.mul_price(index));
    Ok(Some(CollateralBook {
        size: holding.size,
        cost: holding.cost,
        index_price,
        value,
        unrealized_pnl: value.checked_sub(holding.cost)?,
    }))
}

/// One market's liquidation inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InventoryBook {
    /// The protocol's signed size (long > 0).
    pub size: Size,
    /// Exact signed cost basis: Σ size × price of what was taken over and is still held.
    pub cost_basis: Quote,
    /// cost basis / size, rounded down (display only).
    pub entry_price: Option<Price>,
    pub mark_price: Option<Price>,
    /// size × mark.
    pub notional_at_mark: Quote,
    /// size × mark − cost basis.
    pub unrealized_pnl: Quote,
    /// The live auction offering it, if any.
    pub auction: Option<String>,
}

/// One market's inventory at mark; `None` when it holds none. An inventory always has a mark
/// (it is taken over at mark, and a mark once set is never cleared); without one it is valued
/// at its cost (zero PnL), which the assertion says cannot happen.
fn inventory_book(market: &Market) -> Result<Option<InventoryBook>, Overflow> {
    let inventory = &market.inventory;
    if inventory.size.is_zero() {
        return Ok(None);
    }
    debug_assert!(market.mark_price.is_some(), "inventory without a mark in {}", market.name);
    let (notional, pnl) = match market.mark_price {
        Some(mark) => (inventory.size.mul_price(mark), inventory.unrealized_pnl(mark)?),
        None => (inventory.cost, Quote::ZERO),
    };
    Ok(Some(InventoryBook {
        size: inventory.size,
        cost_basis: inventory.cost,
        entry_price: inventory.entry_price(),
        mark_price: market.mark_price,
        notional_at_mark: notional,
        unrealized_pnl: pnl,
        auction: market.auction.map(|a| a.id.to_string()),
    }))
}

/// Pure: fund + pnl − debt (pnl: the inventory's and the holdings').
pub fn net_position(insurance_fund: Quote, pnl: Quote, bad_debt: Quote) -> Result<Quote, Overflow> {
    insurance_fund.checked_add(pnl)?.checked_sub(bad_debt)
}

impl Engine {
    /// The protocol's book at this state (`Overflow` only for a book beyond any real venue).
    pub fn protocol_book(&self) -> Result<ProtocolBook, Overflow> {
        let mut inventory = BTreeMap::new();
        let (mut pnl, mut notional) = (Quote::ZERO, Quote::ZERO);
        for market in &self.markets {
            if let Some(book) = inventory_book(market)? {
                pnl = pnl.checked_add(book.unrealized_pnl)?;
                notional = notional.checked_add(book.notional_at_mark.checked_abs()?)?;
                inventory.insert(market.name.to_string(), book);
            }
        }
        let (mut collateral, mut collateral_pnl) = (BTreeMap::new(), Quote::ZERO);
        for (asset, holding) in self.assets.iter().zip(&self.collateral_holdings) {
            if let Some(book) = collateral_book(asset, holding, &self.markets)? {
                collateral_pnl = collateral_pnl.checked_add(book.unrealized_pnl)?;
                collateral.insert(asset.name.to_string(), book);
            }
        }
        let net = net_position(self.insurance_fund, pnl.checked_add(collateral_pnl)?, self.bad_debt)?;
        Ok(ProtocolBook {
            insurance_fund: self.insurance_fund,
            bad_debt: self.bad_debt,
            fees_collected: self.fees_collected,
            inventory_unrealized_pnl: pnl,
            inventory_notional: notional,
            collateral_unrealized_pnl: collateral_pnl,
            net_position: net,
            solvent: !net.is_negative(),
            inventory,
            collateral,
        })
    }

    /// The net position alone, without building the per-market table: the hot path's form of
    /// [`Engine::protocol_book`] (one comparison per market holding no inventory).
    pub fn protocol_net_position(&self) -> Result<Quote, Overflow> {
        let mut pnl = Quote::ZERO;
        for market in &self.markets {
            if market.inventory.size.is_zero() {
                continue;
            }
            if let Some(mark) = market.mark_price {
                pnl = pnl.checked_add(market.inventory.unrealized_pnl(mark)?)?;
            }
        }
        for (asset, holding) in self.assets.iter().zip(&self.collateral_holdings) {
            if let Some(book) = collateral_book(asset, holding, &self.markets)? {
                pnl = pnl.checked_add(book.unrealized_pnl)?;
            }
        }
        net_position(self.insurance_fund, pnl, self.bad_debt)
    }

    /// After every accepted event: an `alert` when the protocol's net position turns negative
    /// (`protocol_insolvent`) and when it is back at or above zero (`protocol_solvent`), once per
    /// crossing. The flag it keeps is derived (the sign at the end of the last accepted event),
    /// so it is not hashed and is recomputed when a snapshot is loaded. A net position that
    /// overflows (beyond 10^22 USDC, bounded by conservation) keeps the last verdict.
    pub(crate) fn solvency_alert(&mut self, seq: u64, out: &mut Vec<Effect>) {
        let Ok(net) = self.protocol_net_position() else { return };
        let underwater = net.is_negative();
        if underwater == self.protocol_underwater {
            return;
        }
        self.protocol_underwater = underwater;
        let (alert, verdict) = if underwater {
            ("protocol_insolvent", "below zero")
        } else {
            ("protocol_solvent", "back at or above zero")
        };
        let message = format!(
            "the protocol's net position is {net} ({verdict}): insurance fund {} + inventory and holdings PnL {} - bad debt {}",
            self.insurance_fund,
            net.checked_sub(self.insurance_fund).and_then(|v| v.checked_add(self.bad_debt)).unwrap_or(Quote::ZERO),
            self.bad_debt
        );
        out.emit(seq, self.last_ts, EffectKind::Alert { alert: alert.into(), market: String::new(), message });
    }

    /// The flag behind [`Engine::solvency_alert`] for a loaded state.
    pub(crate) fn protocol_underwater_of(&self) -> bool {
        self.protocol_net_position().is_ok_and(|net| net.is_negative())
    }
}
