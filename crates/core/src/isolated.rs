//! Isolated margin: an account's position in one market held with its own collateral, so that
//! its loss never reaches the account's other positions and theirs never reach it.
//!
//! An isolated wallet is an account of its own, named `account#market`
//! ([`crate::event::isolated_account`]): margin, liquidation, the waterfall, the risk index,
//! snapshots and the dump treat it as they treat any account, so its liquidation price is the
//! engine's liquidation price of an account with one position and one wallet, which is
//! Binance's isolated form (the other positions' MM and unrealized PnL count as 0, the wallet is
//! the isolated wallet). `#` is not allowed in ids, so no deposit, withdrawal or trade names an
//! isolated wallet directly: settlement collateral enters and leaves it only by an
//! `isolated_margin` event from or to the cross account, and a trade fills there only when its
//! `buyer_isolated` / `seller_isolated` flag says so. Only trades in the wallet's own market fill
//! there, so it never holds another market's position.

use crate::engine::Engine;
use crate::error::Error;
use crate::event::{isolated_account, IsolatedMargin};
use crate::num::Quote;
use crate::state::AccountId;
use crate::transfer::MAX_SETTLEMENT_BALANCE;

impl Engine {
    /// Move settlement collateral between `margin.account` and its isolated wallet of
    /// `margin.market`: into the wallet when the amount is positive, back when it is negative.
    /// The side that gives must hold the amount and keep collateral + min(0, unrealized PnL) at
    /// or above its initial margin afterwards (the rule of a withdrawal), and must not depend on a
    /// frozen market; the side that receives is created when new. Nothing is written unless both
    /// sides pass. Deposits and withdrawals are not counted: value only moves between two
    /// accounts of the engine.
    pub(crate) fn isolated_margin(&mut self, margin: &IsolatedMargin) -> Result<(), Error> {
        self.market_id(&margin.market)?;
        let wallet = isolated_account(&margin.account, &margin.market);
        let (from, to) = if margin.amount.is_positive() {
            (margin.account.as_str(), wallet.as_str())
        } else {
            (wallet.as_str(), margin.account.as_str())
        };
        let amount = margin.amount.checked_abs()?;
        let from_id = self.account_id(from)?;
        let to_id = self.account_ids.get(to, &self.accounts);
        if to_id.is_none() && self.accounts.len() >= self.max_accounts {
            return Err(Error::TooManyAccounts { max: self.max_accounts });
        }
        let received = to_id.map_or(Quote::ZERO, |id| self.accounts[id.0 as usize].settlement).checked_add(amount)?;
        if received > MAX_SETTLEMENT_BALANCE {
            return Err(Error::BalanceLimit { account: to.to_string(), limit: MAX_SETTLEMENT_BALANCE.to_string() });
        }
        let left = self.judge_removal(from_id, from, amount, margin.ts)?;
        let to_id = match to_id {
            Some(id) => id,
            None => self.create_account(to),
        };
        self.account_mut(from_id).settlement = left;
        // Receiving only adds collateral: as a deposit, it leaves the risk index's verdict valid.
        self.account_mut_deposit(to_id, false).settlement = received;
        Ok(())
    }

    /// The settlement balance `id` keeps after giving `amount`, if it may give it: the balance
    /// covers it, no frozen market's held price decides its margin, and what is left meets the
    /// initial margin without counting paper profit.
    fn judge_removal(&mut self, id: AccountId, name: &str, amount: Quote, ts: u64) -> Result<Quote, Error> {
        let account = &self.accounts[id.0 as usize];
        if account.settlement < amount {
            return Err(Error::InsufficientBalance {
                account: name.to_string(),
                asset: self.settlement_asset().to_string(),
                balance: account.settlement.to_string(),
                amount: amount.to_string(),
            });
        }
        let left = account.settlement.checked_sub(amount)?;
        // Judged in place and restored before anything else runs (the risk index never sees it).
        let before = std::mem::replace(&mut self.accounts[id.0 as usize].settlement, left);
        let frozen = self.frozen_dependency_at(&self.accounts[id.0 as usize], ts);
        let health = self.health_of(&self.accounts[id.0 as usize]);
        self.accounts[id.0 as usize].settlement = before;
        if let Some(frozen) = frozen {
            let market = self.markets[frozen.0 as usize].name.to_string();
            return Err(Error::MarketFrozen { market, what: "moving isolated margin" });
        }
        let health = health?;
        if health.equity_without_profit < health.initial_margin {
            let now = self.health_of(&self.accounts[id.0 as usize])?;
            let free = now.equity_without_profit.checked_sub(now.initial_margin)?.max(Quote::ZERO);
            return Err(Error::WithdrawalExceedsFree { account: name.to_string(), amount: amount.to_string(), free });
        }
        Ok(left)
    }
}
