//! Scratch state of one waterfall run: the ADL books and the losses waiting to be socialized.
//!
//! Without it every bankruptcy ranked all holders of a market again (a health evaluation per
//! account and a sort) and every socialized loss rescanned all accounts, so N bankruptcies in one
//! event cost O(N²). Now a market side's ranking is built once per event, on first use
//! (O(N log N)), and kept current: every account write goes through `Engine::account_mut`, which
//! marks the account dirty here, and before the next lookup each dirty account is rescored and
//! moved in the books (O(log N) each). Marks do not move inside the waterfall, so a score changes
//! only when its own account is written: the order is exactly a fresh ranking's. Socialized losses
//! of one pass are shared in one go at the end of the pass ([`Engine::socialize_pending`]).
//!
//! Not serialized, not hashed; empty outside [`Engine::settle_risk`].

use super::bankruptcy::Score;
use crate::effect::Effect;
use crate::engine::Engine;
use crate::num::{Overflow, Quote, Size};
use crate::state::{Account, AccountId, MarketId, Position};
use ethnum::I256;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One market side's holders, highest score first, ties by name.
#[derive(Clone, Debug, Default)]
struct Book {
    ranked: BTreeSet<(Reverse<Score>, compact_str::CompactString, AccountId)>,
    /// The score each account is filed under (lookups only, never iterated).
    filed: HashMap<AccountId, Score>,
}

/// A bankrupt account's loss left after the fund and ADL, to be socialized at the end of the pass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingLoss {
    pub id: AccountId,
    pub loss: Quote,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct WaterfallScratch {
    /// True while a waterfall runs: account writes are then recorded as dirty.
    pub active: bool,
    /// Books by (market, holders' side as a signum).
    books: BTreeMap<(MarketId, i32), Book>,
    dirty: Vec<AccountId>,
    pub pending: Vec<PendingLoss>,
    /// Accounts evaluated to rank or socialize (telemetry and the complexity test).
    pub work: u64,
    /// The undo log of the account step being applied: what it is allowed to write, as it was.
    pub undo: Option<StepUndo>,
    /// Chunk records the account step being applied will write once it commits.
    pub records: Vec<(MarketId, crate::state::LiquidationRecord)>,
    /// Notional liquidated in the current event, for the per-event caps (kept after the event
    /// until the next one starts, so that it can be read).
    pub usage: CapUsage,
}

/// Notional liquidated in one event in markets with a per-event cap (`LiquidationRules`), per
/// market and per (account, market). Only markets with a cap are counted.
#[derive(Clone, Debug, Default)]
pub(crate) struct CapUsage {
    pub market: BTreeMap<MarketId, Quote>,
    pub account: BTreeMap<(AccountId, MarketId), Quote>,
    /// What the account step being applied liquidated: counted once it commits.
    pub step: Vec<(AccountId, MarketId, Quote)>,
}

impl CapUsage {
    pub fn clear(&mut self) {
        self.market.clear();
        self.account.clear();
        self.step.clear();
    }

    /// (account's, market's) notional liquidated so far in this event, the running step's
    /// included.
    pub fn used(&self, id: AccountId, market: MarketId) -> (Quote, Quote) {
        let mut account = self.account.get(&(id, market)).copied().unwrap_or(Quote::ZERO);
        let mut total = self.market.get(&market).copied().unwrap_or(Quote::ZERO);
        for (a, m, notional) in &self.step {
            if *m == market {
                total = Quote::from_raw(total.raw().saturating_add(notional.raw()));
                if *a == id {
                    account = Quote::from_raw(account.raw().saturating_add(notional.raw()));
                }
            }
        }
        (account, total)
    }

    /// The step committed: its usage counts.
    pub fn commit(&mut self) {
        for (id, market, notional) in self.step.drain(..) {
            let a = self.account.entry((id, market)).or_insert(Quote::ZERO);
            *a = Quote::from_raw(a.raw().saturating_add(notional.raw()));
            let m = self.market.entry(market).or_insert(Quote::ZERO);
            *m = Quote::from_raw(m.raw().saturating_add(notional.raw()));
        }
    }
}

/// Everything one account's waterfall step may write, as it was before the step: accounts are
/// saved on their first write ([`Engine::account_mut`]); the rest when the step begins. A step
/// that fails is rolled back from it (no half-written step); one that succeeds is checked
/// against it (the value it moved sums to zero).
#[derive(Clone, Debug, Default)]
pub(crate) struct StepUndo {
    accounts: Vec<(AccountId, Account)>,
    saved: HashSet<AccountId>,
    /// Per market: inventory and open interest.
    books: Vec<(Position, Size)>,
    /// Per asset: the protocol's collateral holding.
    holdings: Vec<crate::state::CollateralHolding>,
    fund: Quote,
    bad_debt: Quote,
    effects_len: usize,
    pending_len: usize,
}

impl StepUndo {
    pub fn save(&mut self, id: AccountId, account: &Account) {
        if self.saved.insert(id) {
            self.accounts.push((id, account.clone()));
        }
    }
}

impl WaterfallScratch {
    pub fn start(&mut self) {
        debug_assert!(self.books.is_empty() && self.dirty.is_empty() && self.pending.is_empty());
        self.active = true;
    }

    pub fn finish(&mut self) {
        assert!(self.pending.is_empty(), "every pending loss is socialized before the waterfall ends");
        self.active = false;
        self.books.clear();
        self.dirty.clear();
    }

    pub fn touch(&mut self, id: AccountId) {
        if self.active && !self.books.is_empty() {
            self.dirty.push(id);
        }
    }
}

impl Engine {
    /// The best-ranked holder of `side` in `market_id` other than `exclude`, with its score.
    pub(crate) fn adl_best(
        &mut self,
        market_id: MarketId,
        side: i32,
        exclude: AccountId,
    ) -> Result<Option<(AccountId, Score)>, Overflow> {
        if !self.waterfall.books.contains_key(&(market_id, side)) {
            self.adl_refresh()?; // a new book is built from the current state
            let book = self.adl_build(market_id, side)?;
            self.waterfall.books.insert((market_id, side), book);
        }
        self.adl_refresh()?;
        let book = &self.waterfall.books[&(market_id, side)];
        Ok(book.ranked.iter().find(|(_, _, id)| *id != exclude).map(|(score, _, id)| (*id, score.0)))
    }

    fn adl_build(&mut self, market_id: MarketId, side: i32) -> Result<Book, Overflow> {
        let mut book = Book::default();
        for i in 0..self.accounts.len() {
            let id = AccountId(i as u32);
            if let Some(score) = self.adl_score(id, market_id, side)? {
                book.ranked.insert((Reverse(score), self.accounts[i].name.clone(), id));
                book.filed.insert(id, score);
            }
        }
        self.waterfall.work += self.accounts.len() as u64;
        Ok(book)
    }

    /// The account's ADL score in `market_id` when it holds `side` there.
    fn adl_score(&self, id: AccountId, market_id: MarketId, side: i32) -> Result<Option<Score>, Overflow> {
        let account = &self.accounts[id.0 as usize];
        let Some(p) = account.position(market_id) else { return Ok(None) };
        if p.size.signum() != side {
            return Ok(None);
        }
        let mark = self.markets[market_id.0 as usize].mark_price.ok_or(Overflow)?;
        let health = self.health_of(account)?;
        let notional = p.size.checked_abs()?.mul_price(mark);
        Ok(Some(Score::bitmex(p.unrealized_pnl(mark)?, p.cost, notional, health.equity)))
    }

    /// Rescore every account written since the last lookup, in every book.
    fn adl_refresh(&mut self) -> Result<(), Overflow> {
        let mut dirty = std::mem::take(&mut self.waterfall.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let keys: Vec<(MarketId, i32)> = self.waterfall.books.keys().copied().collect();
        for &id in &dirty {
            self.waterfall.work += 1;
            for &(market_id, side) in &keys {
                let score = self.adl_score(id, market_id, side)?;
                let name = self.accounts[id.0 as usize].name.clone();
                let book = self.waterfall.books.get_mut(&(market_id, side)).ok_or(Overflow)?;
                if let Some(old) = book.filed.remove(&id) {
                    let removed = book.ranked.remove(&(Reverse(old), name.clone(), id));
                    assert!(removed, "a filed account is in the ranking");
                }
                if let Some(score) = score {
                    book.ranked.insert((Reverse(score), name, id));
                    book.filed.insert(id, score);
                }
                debug_assert_eq!(book.ranked.len(), book.filed.len());
            }
        }
        Ok(())
    }
}

/// Value held by one account for conservation: settlement balance minus the cost of its
/// positions (their uPnL at one mark per market, up to the size x mark terms that sum to zero),
/// and its size per market.
fn held_value(account: &Account) -> I256 {
    let cost: I256 = account.positions.iter().map(|p| I256::from(p.cost.raw())).sum();
    I256::from(account.settlement.raw()) - cost
}

impl Engine {
    /// Start an account's waterfall step: from here every write can be undone.
    pub(crate) fn begin_step(&mut self, effects_len: usize) {
        assert!(self.waterfall.undo.is_none(), "steps do not nest");
        self.waterfall.undo = Some(StepUndo {
            books: self.markets.iter().map(|m| (m.inventory, m.open_interest)).collect(),
            holdings: self.collateral_holdings.clone(),
            fund: self.insurance_fund,
            bad_debt: self.bad_debt,
            effects_len,
            pending_len: self.waterfall.pending.len(),
            ..StepUndo::default()
        });
    }

    /// The step succeeded: check (in release builds too) that it moved value and size without
    /// creating or destroying any: settlement minus cost over the accounts it wrote, the
    /// inventories and the collateral holdings, plus the fund, minus bad debt, is what it was;
    /// every market's sizes still sum to what they did; and so does every collateral asset.
    pub(crate) fn commit_step(&mut self) {
        let undo = self.waterfall.undo.take().expect("a step was begun");
        let mut before = I256::from(undo.fund.raw()) - I256::from(undo.bad_debt.raw());
        let mut after = I256::from(self.insurance_fund.raw()) - I256::from(self.bad_debt.raw());
        let mut size_change = vec![0i128; self.markets.len()];
        for (id, saved) in &undo.accounts {
            let now = &self.accounts[id.0 as usize];
            before += held_value(saved);
            after += held_value(now);
            saved.positions.iter().for_each(|p| size_change[p.market.0 as usize] -= i128::from(p.size.raw()));
            now.positions.iter().for_each(|p| size_change[p.market.0 as usize] += i128::from(p.size.raw()));
        }
        for (i, (inventory, _)) in undo.books.iter().enumerate() {
            before -= I256::from(inventory.cost.raw());
            after -= I256::from(self.markets[i].inventory.cost.raw());
            size_change[i] += i128::from(self.markets[i].inventory.size.raw()) - i128::from(inventory.size.raw());
        }
        let mut asset_change = vec![0i128; self.assets.len()];
        for (i, (saved, now)) in undo.holdings.iter().zip(&self.collateral_holdings).enumerate() {
            before -= I256::from(saved.cost.raw());
            after -= I256::from(now.cost.raw());
            asset_change[i] += i128::from(now.size.raw()) - i128::from(saved.size.raw());
        }
        for (id, saved) in &undo.accounts {
            saved.collateral.iter().for_each(|(a, b)| asset_change[a.0 as usize] -= i128::from(b.raw()));
            self.accounts[id.0 as usize]
                .collateral
                .iter()
                .for_each(|(a, b)| asset_change[a.0 as usize] += i128::from(b.raw()));
        }
        assert_eq!(before, after, "a waterfall step moved value that does not sum to zero");
        assert!(asset_change.iter().all(|&d| d == 0), "a waterfall step changed an asset's total");
        assert!(size_change.iter().all(|&d| d == 0), "a waterfall step changed a market's net size");
        self.waterfall.usage.commit();
    }

    /// The step failed: put back everything it wrote and drop what it emitted.
    pub(crate) fn abort_step(&mut self, out: &mut Vec<Effect>) {
        let undo = self.waterfall.undo.take().expect("a step was begun");
        for (id, saved) in undo.accounts {
            self.risk.touch(id);
            self.waterfall.touch(id);
            self.accounts[id.0 as usize] = saved;
        }
        for (i, (inventory, open_interest)) in undo.books.into_iter().enumerate() {
            self.markets[i].inventory = inventory;
            self.markets[i].open_interest = open_interest;
        }
        self.collateral_holdings = undo.holdings;
        self.insurance_fund = undo.fund;
        self.bad_debt = undo.bad_debt;
        out.truncate(undo.effects_len);
        self.waterfall.pending.truncate(undo.pending_len);
        self.waterfall.usage.step.clear();
    }
}
