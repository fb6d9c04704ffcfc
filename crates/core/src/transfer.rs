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

/// Largest settlement balance a deposit may leave on one account: 2^94 raw (about 1.98 x 10^12
/// units). The engine-wide counters are i128 over at most 2^32 accounts, so it is always the one
/// account that reaches its limit (`balance_limit`), never a counter shared by everyone.
/// (A collateral balance is at most i64::MAX raw by its type; its counter is at `Quote` precision.)
pub const MAX_SETTLEMENT_BALANCE: Quote = Quote::from_raw(1 << 94);

impl Engine {
    pub(crate) fn deposit(&mut self, transfer: &Transfer) -> Result<(), Error> {
        let asset = self.asset_ref(&transfer.asset)?;
        let existing = self.account_ids.get(&transfer.account, &self.accounts);
        if existing.is_none() && self.accounts.len() >= self.max_accounts {
            return Err(Error::TooManyAccounts { max: self.max_accounts });
        }
        let current = existing.map(|id| &self.accounts[id.0 as usize]);
        // Everything is computed and checked first; then written in place (no copy of the account).
        let balance = match asset {
            AssetRef::Settlement => {
                let balance = current.map_or(Quote::ZERO, |a| a.settlement).checked_add(transfer.amount)?;
                if balance > MAX_SETTLEMENT_BALANCE {
                    return Err(Error::BalanceLimit {
                        account: transfer.account.clone(),
                        limit: MAX_SETTLEMENT_BALANCE.to_string(),
                    });
                }
                let flows = self.settlement_flows.deposited.checked_add(transfer.amount)?;
                self.settlement_flows.deposited = flows;
                Balance::Settlement(balance)
            }
            AssetRef::Other(id) => {
                let amount = narrow_to_size(transfer.amount)?;
                let balance = current.map_or(Size::ZERO, |a| a.collateral_balance(id)).checked_add(amount)?;
                let flows = self.asset_flows[id.0 as usize].deposited.checked_add(transfer.amount)?;
                self.asset_flows[id.0 as usize].deposited = flows;
                Balance::Asset(id, balance)
            }
        };
        let account = match existing {
            Some(id) => self.account_mut_deposit(id, matches!(balance, Balance::Asset(..))),
            None => {
                let id = self.create_account(&transfer.account);
                self.account_mut(id)
            }
        };
        balance.write(account);
        Ok(())
    }

    pub(crate) fn withdraw(&mut self, transfer: &Transfer) -> Result<(), Error> {
        let asset = self.asset_ref(&transfer.asset)?;
        let id = self.account_id(&transfer.account)?;
        let account = &self.accounts[id.0 as usize];
        let insufficient = |balance: String| Error::InsufficientBalance {
            account: transfer.account.clone(),
            asset: transfer.asset.clone(),
            balance,
            amount: transfer.amount.to_string(),
        };
        let (after, new_flows) = match asset {
            AssetRef::Settlement => {
                if account.settlement < transfer.amount {
                    return Err(insufficient(account.settlement.to_string()));
                }
                let balance = account.settlement.checked_sub(transfer.amount)?;
                let flows = self.settlement_flows.withdrawn.checked_add(transfer.amount)?;
                (Balance::Settlement(balance), FlowUpdate::Settlement(flows))
            }
            AssetRef::Other(asset_id) => {
                let amount = narrow_to_size(transfer.amount)?;
                let balance = account.collateral_balance(asset_id);
                if balance < amount {
                    return Err(insufficient(balance.to_string()));
                }
                let flows = self.asset_flows[asset_id.0 as usize].withdrawn.checked_add(transfer.amount)?;
                (Balance::Asset(asset_id, balance.checked_sub(amount)?), FlowUpdate::Asset(asset_id, flows))
            }
        };
        // Judge the account as it would be after the withdrawal: written in place, judged, and
        // restored before anything else runs (the risk index never sees it).
        let previous = self.swap_balance(id, after);
        let frozen = self.frozen_dependency_at(&self.accounts[id.0 as usize], transfer.ts);
        let health = self.health_of(&self.accounts[id.0 as usize]);
        self.swap_balance(id, previous);
        if let Some(frozen) = frozen {
            let market = self.markets[frozen.0 as usize].name.to_string();
            return Err(Error::MarketFrozen { market, what: "a withdrawal" });
        }
        let health = health?;
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
        after.write(self.account_mut(id));
        Ok(())
    }

    /// Set one balance of account `id` without telling the risk index, returning the previous
    /// one: only for judging a change that is restored at once.
    fn swap_balance(&mut self, id: AccountId, balance: Balance) -> Balance {
        let account = &mut self.accounts[id.0 as usize];
        let previous = match balance {
            Balance::Settlement(_) => Balance::Settlement(account.settlement),
            Balance::Asset(asset, _) => Balance::Asset(asset, account.collateral_balance(asset)),
        };
        balance.write(account);
        previous
    }

    /// Treasury capital into the insurance fund; it repays protocol bad debt first.
    pub(crate) fn fund_deposit(&mut self, amount: Quote) -> Result<(), Error> {
        let deposited = self.settlement_flows.deposited.checked_add(amount)?;
        let (fund, bad_debt) = crate::liquidation::bankruptcy::fund_after(self.insurance_fund, self.bad_debt, amount)?;
        self.settlement_flows.deposited = deposited;
        self.write_fund(fund, bad_debt);
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

    /// A new, empty account named `name` (the caller has checked the name is new).
    pub(crate) fn create_account(&mut self, name: &str) -> AccountId {
        let id = AccountId(self.accounts.len() as u32);
        self.accounts.push(Account::new(name));
        let added = self.account_ids.insert(name, id, &self.accounts);
        debug_assert!(added, "a new account's name is not yet known");
        self.risk.touch(id);
        id
    }
}

/// One balance of an account: the settlement asset, or another collateral asset.
#[derive(Clone, Copy, Debug)]
enum Balance {
    Settlement(Quote),
    Asset(crate::state::AssetId, Size),
}

impl Balance {
    fn write(self, account: &mut Account) {
        match self {
            Balance::Settlement(value) => account.settlement = value,
            Balance::Asset(asset, value) => account.set_collateral(asset, value),
        }
    }
}

/// The new `withdrawn` counter of the asset a withdrawal touches.
enum FlowUpdate {
    Settlement(Quote),
    Asset(crate::state::AssetId, Quote),
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
