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
use crate::engine::Engine;
use crate::num::{Overflow, Quote};
use crate::state::{AccountId, MarketId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
