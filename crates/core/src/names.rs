//! Account ids by name, without a second copy of every name.
//!
//! An open-addressing table (linear probing, at most 3/4 full) of 8-byte slots: the upper 32 bits
//! of a keyed 64-bit hash of the name (foldhash, quality variant, with a per-process random seed:
//! a few nanoseconds for a short name where SipHash took ~20, and still seeded so that colliding
//! names cannot be prepared in advance) as a tag, and the id. The slot a lookup starts at is also given by the tag (its top bits), so the table grows
//! without rehashing a name. The account table holds the name, and a lookup compares it on a tag
//! match; names whose tags are equal simply occupy further slots of the probe sequence. At a
//! million accounts this takes 16 bytes per account (2^21 slots).
//!
//! Because a slot's address is computed from the hash alone, [`NameIndex::prefetch_slot`] can ask
//! the cache for it before the lookup happens: the engine's [`crate::Engine::prefetch`] hints use
//! this to overlap the cache misses of events that are still a few lines ahead.
//!
//! Lookups only: nothing iterates this table, so its order (random per process) is never
//! observable, and it is rebuilt from the account table after a snapshot load.

use crate::state::{Account, AccountId};
use foldhash::quality::RandomState;
use std::hash::BuildHasher;

/// The index; `S` hashes names (seeded foldhash by default; tests force collisions with another).
#[derive(Clone, Debug, Default)]
pub struct NameIndex<S = RandomState> {
    key: S,
    /// `0` is empty; otherwise `tag << 32 | (id + 1)` (ids are below `u32::MAX`: `max_accounts`
    /// is at most `u32::MAX`). The length is 0 or a power of two.
    slots: Vec<u64>,
    len: usize,
}

/// Fewest slots of a non-empty table.
const MIN_SLOTS: usize = 16;

/// The tag of a name's hash: its upper half.
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl NameIndex {
    pub(crate) fn with_capacity(accounts: usize) -> NameIndex {
        NameIndex { slots: vec![0; slots_for(accounts)], ..NameIndex::default() }
    }
}

/// Slots for `len` names at most 3/4 full.
fn slots_for(len: usize) -> usize {
    (len.saturating_mul(4) / 3 + 1).next_power_of_two().max(MIN_SLOTS)
}

impl<S: BuildHasher> NameIndex<S> {
    /// The tag of `name` (the keyed hash's upper half).
    pub(crate) fn tag(&self, name: &str) -> u32 {
        tag_of(self.key.hash_one(name))
    }

    /// The slot where the probe for `tag` starts (the table is not empty).
    fn home(&self, tag: u32) -> usize {
        let bits = self.slots.len().trailing_zeros(); // 1..=63: the table is not empty
        ((u64::from(tag) << 32) >> (64 - bits)) as usize
    }

    /// The id of `name`, given the account table the ids point into.
    pub(crate) fn get(&self, name: &str, accounts: &[Account]) -> Option<AccountId> {
        self.get_tagged(self.tag(name), name, accounts)
    }

    fn get_tagged(&self, tag: u32, name: &str, accounts: &[Account]) -> Option<AccountId> {
        self.probe(tag, |id| accounts.get(id.0 as usize).is_some_and(|a| *a.name == *name))
    }

    /// Walk `tag`'s probe sequence: the first id whose slot carries `tag` and that `accept`
    /// takes. The table is never full, so every probe ends at an empty slot, within one lap.
    fn probe(&self, tag: u32, mut accept: impl FnMut(AccountId) -> bool) -> Option<AccountId> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = self.home(tag);
        for _ in 0..self.slots.len() {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if tag_of(slot) == tag {
                let id = AccountId((slot as u32) - 1);
                if accept(id) {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
        unreachable!("the name table is at most 3/4 full, so a probe meets an empty slot")
    }

    /// Record a new account `id` named `name`. False when the name is already present.
    pub(crate) fn insert(&mut self, name: &str, id: AccountId, accounts: &[Account]) -> bool {
        let tag = self.tag(name);
        if self.get_tagged(tag, name, accounts).is_some() {
            return false;
        }
        debug_assert!(id.0 < u32::MAX, "max_accounts keeps ids below u32::MAX");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place((u64::from(tag) << 32) | (u64::from(id.0) + 1));
        self.len += 1;
        true
    }

    /// Put an occupied slot value at the first empty slot of its probe sequence.
    fn place(&mut self, value: u64) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(tag_of(value));
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = value;
    }

    /// Double the table (or create it); slots move by their tag alone.
    fn grow(&mut self) {
        let slots = slots_for(self.len + 1).max(self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        for value in old.into_iter().filter(|&v| v != 0) {
            self.place(value);
        }
    }

    /// Hint: ask the cache for the slot a lookup of `tag` starts at. No observable effect.
    pub(crate) fn prefetch_slot(&self, tag: u32) {
        if !self.slots.is_empty() {
            crate::prefetch::read(&self.slots[self.home(tag)]);
        }
    }

    /// The id in the first slot of `tag`'s probe sequence whose tag matches, without comparing
    /// names (a hint for prefetching: it may name another account, or none).
    pub(crate) fn likely_id(&self, tag: u32) -> Option<AccountId> {
        self.probe(tag, |_| true)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasherDefault, Hasher};

    #[test]
    fn finds_names() {
        let accounts: Vec<Account> = ["alice", "bob", "carol"].iter().map(|n| Account::new(n)).collect();
        let mut index: NameIndex = NameIndex::default();
        for (i, account) in accounts.iter().enumerate() {
            assert!(index.insert(&account.name, AccountId(i as u32), &accounts));
        }
        assert!(!index.insert("bob", AccountId(7), &accounts), "a name is recorded once");
        assert_eq!(index.get("carol", &accounts), Some(AccountId(2)));
        assert_eq!(index.get("dave", &accounts), None);
        assert_eq!(index.len(), 3);
    }

    /// Hashes everything to 0.
    #[derive(Default)]
    struct Constant;

    impl Hasher for Constant {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, _: &[u8]) {}
    }

    /// Every name hashes to 0: all share one tag and one probe sequence, and all are found.
    #[test]
    fn survives_hash_collisions() {
        let accounts: Vec<Account> = ["alice", "bob", "carol"].iter().map(|n| Account::new(n)).collect();
        let mut index: NameIndex<BuildHasherDefault<Constant>> = NameIndex::default();
        for (i, account) in accounts.iter().enumerate() {
            assert!(index.insert(&account.name, AccountId(i as u32), &accounts));
        }
        assert_eq!(index.len(), 3);
        assert_eq!(index.likely_id(0), Some(AccountId(0)), "the hint may name another account");
        for (i, account) in accounts.iter().enumerate() {
            assert_eq!(index.get(&account.name, &accounts), Some(AccountId(i as u32)));
        }
        assert_eq!(index.get("dave", &accounts), None);
        assert!(!index.insert("carol", AccountId(9), &accounts));
    }

    /// Growing from empty through many doublings keeps every name findable, refuses duplicates,
    /// and keeps the table at most 3/4 full; the prefetch hint names the right account.
    #[test]
    fn grows_and_finds_every_name() {
        let accounts: Vec<Account> = (0..5_000).map(|i| Account::new(&format!("u{i:07}"))).collect();
        let mut index: NameIndex = NameIndex::default();
        for (i, account) in accounts.iter().enumerate() {
            assert!(index.insert(&account.name, AccountId(i as u32), &accounts));
            assert!(index.len() * 4 <= index.slots.len() * 3);
        }
        let mut hinted = 0;
        for (i, account) in accounts.iter().enumerate() {
            assert_eq!(index.get(&account.name, &accounts), Some(AccountId(i as u32)));
            assert!(!index.insert(&account.name, AccountId(0), &accounts));
            let tag = index.tag(&account.name);
            index.prefetch_slot(tag);
            hinted += usize::from(index.likely_id(tag) == Some(AccountId(i as u32)));
        }
        // Two of 5,000 names share a 32-bit tag with probability ~0.3%: the hint may then differ.
        assert!(hinted + 2 >= accounts.len(), "{hinted} hints right of {}", accounts.len());
        assert_eq!(index.get("u9999999", &accounts), None);
        let rebuilt = NameIndex::with_capacity(accounts.len());
        assert_eq!(rebuilt.slots.len(), 8_192, "5,000 names fit in 2^13 slots");
    }
}
