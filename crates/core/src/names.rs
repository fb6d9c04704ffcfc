//! Account ids by name, without a second copy of every name.
//!
//! A map from a keyed 64-bit hash of the name (SipHash with a per-process random key) to the id;
//! the account table holds the name, and a lookup compares it. A name whose hash equals another
//! account's (chance ~ n² / 2^65, or an attacker who learned the key) goes to a small side map
//! keyed by the name itself. At a million accounts this takes ~36 bytes per account instead of
//! ~60 plus a separate allocation for the copied name.
//!
//! Lookups only: nothing iterates these maps, so their order (random per process) is never
//! observable, and they are rebuilt from the account table after a snapshot load.

use crate::state::{Account, AccountId};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Passes a `u64` key through: the keys are already keyed hashes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the keys are u64); fold anything else in, for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The index; `S` hashes names (keyed SipHash by default; tests force collisions with another).
#[derive(Clone, Debug, Default)]
pub struct NameIndex<S = RandomState> {
    key: S,
    by_hash: HashMap<u64, AccountId, BuildHasherDefault<PassThrough>>,
    collisions: HashMap<Box<str>, AccountId>,
}

impl NameIndex {
    pub(crate) fn with_capacity(accounts: usize) -> NameIndex {
        NameIndex { by_hash: HashMap::with_capacity_and_hasher(accounts, Default::default()), ..NameIndex::default() }
    }
}

impl<S: BuildHasher> NameIndex<S> {
    fn hash(&self, name: &str) -> u64 {
        self.key.hash_one(name)
    }

    /// The id of `name`, given the account table the ids point into.
    pub(crate) fn get(&self, name: &str, accounts: &[Account]) -> Option<AccountId> {
        match self.by_hash.get(&self.hash(name)) {
            Some(id) if &*accounts[id.0 as usize].name == name => Some(*id),
            Some(_) => self.collisions.get(name).copied(),
            None => None,
        }
    }

    /// Record a new account `id` named `name`. False when the name is already present.
    pub(crate) fn insert(&mut self, name: &str, id: AccountId, accounts: &[Account]) -> bool {
        if self.get(name, accounts).is_some() {
            return false;
        }
        let hash = self.hash(name);
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.insert(name.into(), id);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(id);
            }
        }
        true
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len() + self.collisions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Every name hashes to 0: all but the first go through the side map, and all are found.
    #[test]
    fn survives_hash_collisions() {
        let accounts: Vec<Account> = ["alice", "bob", "carol"].iter().map(|n| Account::new(n)).collect();
        let mut index: NameIndex<BuildHasherDefault<Constant>> = NameIndex::default();
        for (i, account) in accounts.iter().enumerate() {
            assert!(index.insert(&account.name, AccountId(i as u32), &accounts));
        }
        assert_eq!(index.collisions.len(), 2);
        for (i, account) in accounts.iter().enumerate() {
            assert_eq!(index.get(&account.name, &accounts), Some(AccountId(i as u32)));
        }
        assert_eq!(index.get("dave", &accounts), None);
        assert!(!index.insert("carol", AccountId(9), &accounts));
    }
}
