//! Deposits and withdrawals.
//!
//! A withdrawal must leave (a) the asset's balance non-negative and (b) the account's
//! collateral value plus min(0, unrealized PnL) at or above its initial margin: unrealized profit
//! counts toward margin for trading but can never be withdrawn (the Mango Markets 2022 and
//! Hyperliquid 2025 losses came from withdrawing paper profit on a pumped price).

use crate::engine::{AssetRef, Engine};
use crate::error::Error;
use crate::event::Transfer;
use crate::num::{NumError, Quote, Size};
use crate::state::{Account, AccountId};

impl Engine {
    pub(crate) fn deposit(&mut self, transfer: &Transfer) -> Result<(), Error> {
        let asset = self.asset_ref(&transfer.asset)?;
        let existing = self.account_ids.get(transfer.account.as_str()).copied();
        if existing.is_none() && self.accounts.len() >= self.max_accounts {
            return Err(Error::TooManyAccounts { max: self.max_accounts });
        }
        let mut account = match existing {
            Some(id) => self.accounts[id.0 as usize].clone(),
            None => Account::new(&transfer.account),
        };
        match asset {
            AssetRef::Settlement => {
                account.settlement = account.settlement.checked_add(transfer.amount)?;
                let flows = self.settlement_flows.deposited.checked_add(transfer.amount)?;
                self.settlement_flows.deposited = flows;
            }
            AssetRef::Other(id) => {
                let amount = narrow_to_size(transfer.amount)?;
                let balance = account.collateral_balance(id).checked_add(amount)?;
                let flows = self.asset_flows[id.0 as usize].deposited.checked_add(amount)?;
                account.set_collateral(id, balance);
                self.asset_flows[id.0 as usize].deposited = flows;
            }
        }
        self.store_account(existing, account);
        Ok(())
    }

    pub(crate) fn withdraw(&mut self, transfer: &Transfer) -> Result<(), Error> {
        let asset = self.asset_ref(&transfer.asset)?;
        let id = self.account_id(&transfer.account)?;
        let mut account = self.accounts[id.0 as usize].clone();
        let insufficient = |balance: String| Error::InsufficientBalance {
            account: transfer.account.clone(),
            asset: transfer.asset.clone(),
            balance,
            amount: transfer.amount.to_string(),
        };
        let new_flows = match asset {
            AssetRef::Settlement => {
                if account.settlement < transfer.amount {
                    return Err(insufficient(account.settlement.to_string()));
                }
                account.settlement = account.settlement.checked_sub(transfer.amount)?;
                FlowUpdate::Settlement(self.settlement_flows.withdrawn.checked_add(transfer.amount)?)
            }
            AssetRef::Other(asset_id) => {
                let amount = narrow_to_size(transfer.amount)?;
                let balance = account.collateral_balance(asset_id);
                if balance < amount {
                    return Err(insufficient(balance.to_string()));
                }
                account.set_collateral(asset_id, balance.checked_sub(amount)?);
                let flows = self.asset_flows[asset_id.0 as usize].withdrawn.checked_add(amount)?;
                FlowUpdate::Asset(asset_id, flows)
            }
        };
        if let Some(frozen) = self.frozen_dependency_at(&account, transfer.ts) {
            let market = self.markets[frozen.0 as usize].name.to_string();
            return Err(Error::MarketFrozen { market, what: "a withdrawal" });
        }
        let health = self.health_of(&account)?;
        if health.equity_without_profit < health.initial_margin {
            let before = self.health_of(&self.accounts[id.0 as usize])?;
            let free = before.equity_without_profit.checked_sub(before.initial_margin)?.max(Quote::ZERO);
            return Err(Error::WithdrawalExceedsFree {
                account: transfer.account.clone(),
                amount: transfer.amount.to_string(),
                free,
            });
        }
        match new_flows {
            FlowUpdate::Settlement(withdrawn) => self.settlement_flows.withdrawn = withdrawn,
            FlowUpdate::Asset(asset_id, withdrawn) => self.asset_flows[asset_id.0 as usize].withdrawn = withdrawn,
        }
        self.accounts[id.0 as usize] = account;
        Ok(())
    }

    /// Treasury capital into the insurance fund; it repays protocol bad debt first.
    pub(crate) fn fund_deposit(&mut self, amount: Quote) -> Result<(), Error> {
        let deposited = self.settlement_flows.deposited.checked_add(amount)?;
        let (fund, bad_debt) = crate::liquidation::bankruptcy::fund_after(self.insurance_fund, self.bad_debt, amount)?;
        self.settlement_flows.deposited = deposited;
        self.insurance_fund = fund;
        self.bad_debt = bad_debt;
        Ok(())
    }

    /// A frozen market whose held price this account's margin depends on: one it holds a position
    /// in, or, when it has positions or a negative settlement balance, one that indexes its
    /// collateral. An account with neither depends on no price.
    pub(crate) fn frozen_dependency(&self, account: &Account) -> Option<crate::state::MarketId> {
        self.frozen_dependency_at(account, self.last_ts)
    }

    /// As [`Engine::frozen_dependency`], judged at engine time `now_ms` (an event's own ts).
    pub(crate) fn frozen_dependency_at(&self, account: &Account, now_ms: u64) -> Option<crate::state::MarketId> {
        if let Some(p) = account.positions.iter().find(|p| !self.market_live_at(p.market, now_ms)) {
            return Some(p.market);
        }
        if account.positions.is_empty() && !account.settlement.is_negative() {
            return None;
        }
        account
            .collateral
            .iter()
            .map(|(asset, _)| self.assets[asset.0 as usize].index_market)
            .find(|m| !self.market_live_at(*m, now_ms))
    }

    /// Write back an account, creating its id if it is new.
    pub(crate) fn store_account(&mut self, existing: Option<AccountId>, account: Account) {
        match existing {
            Some(id) => self.accounts[id.0 as usize] = account,
            None => {
                let id = AccountId(self.accounts.len() as u32);
                self.account_ids.insert(account.name.clone(), id);
                self.accounts.push(account);
            }
        }
    }
}

/// The new `withdrawn` counter of the asset a withdrawal touches.
enum FlowUpdate {
    Settlement(Quote),
    Asset(crate::state::AssetId, Size),
}

/// A non-settlement amount has at most `Size::DECIMALS` decimals and must fit a `Size`.
fn narrow_to_size(amount: Quote) -> Result<Size, Error> {
    let factor = Quote::ONE_RAW / Size::ONE_RAW as i128;
    let invalid = |source| Error::InvalidNumber { field: "amount".into(), source };
    if amount.raw() % factor != 0 {
        return Err(invalid(NumError::TooManyDecimals { max: Size::DECIMALS }));
    }
    i64::try_from(amount.raw() / factor).map(Size::from_raw).map_err(|_| invalid(NumError::Overflow))
}
