//! One side of one market's trigger structure: entries ordered by key, and a pass that pops every
//! entry whose key is above a threshold, largest first.
//!
//! Two parts:
//! - `base`: a sorted vector popped from its end (O(1) per triggered entry, sequential memory);
//! - `fresh`: a binary max-heap that takes inserts (O(1) expected for random keys).
//!
//! When `fresh` outgrows an eighth of `base` (and at least [`MIN_FRESH`] entries) it is sorted and
//! merged into `base` (sequential moves only): amortized O(log) per insert, and a triggered entry
//! costs a `Vec::pop` in the common case. Stale entries in `base` are dropped when popped, or by
//! a compaction ([`Side::merge`]), which the index runs when stale entries outnumber live ones. Deletion is lazy: an entry carries its account's epoch at
//! insertion and is stale once that epoch has moved on (the caller's `is_live`).

use std::collections::BinaryHeap;

/// One trigger: `key` (a band edge, negated for the high side), the account, its epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub key: i64,
    pub id: u32,
    pub epoch: u32,
}

/// Smallest `fresh` heap that is merged into `base` (small in debug builds, so that tests
/// exercise merges often; the index's answers do not depend on it).
pub(crate) const MIN_FRESH: usize = if cfg!(debug_assertions) { 8 } else { 1024 };

#[derive(Clone, Debug, Default)]
pub(crate) struct Side {
    base: Vec<Entry>,
    fresh: BinaryHeap<Entry>,
    /// Merges so far (statistics).
    merges: u64,
}

impl Side {
    /// Entries stored (live or stale).
    pub fn len(&self) -> usize {
        self.base.len() + self.fresh.len()
    }

    /// Insert `entry`.
    pub fn push(&mut self, entry: Entry) {
        self.fresh.push(entry);
        if self.fresh.len() > MIN_FRESH.max(self.base.len() / 8) {
            self.merge_fresh();
        }
    }

    /// Sort `fresh` into `base`: sequential work, O(|fresh| log |fresh| + |base|) moves. Stale
    /// entries move along (few of them: an entry goes stale only when its account is rechecked
    /// while the entry waits here); they are dropped when popped or by a compaction
    /// ([`Side::merge`]). Not filtering them here spares a random read of every entry's
    /// account record at each merge.
    fn merge_fresh(&mut self) {
        self.merges += 1;
        let mut fresh = std::mem::take(&mut self.fresh).into_vec();
        fresh.sort_unstable();
        merge_sorted_into(&mut self.base, &fresh);
        fresh.clear();
        self.fresh = BinaryHeap::from(fresh); // keeps the allocation
    }

    /// Pop every entry whose key is above `threshold`, largest first, handing each to `visit`.
    /// Returns how many were popped.
    pub fn pop_above(&mut self, threshold: i64, mut visit: impl FnMut(Entry)) -> usize {
        let mut popped = 0;
        loop {
            let from_base = match (self.base.last(), self.fresh.peek()) {
                (None, None) => break,
                (Some(b), None) if b.key > threshold => true,
                (None, Some(f)) if f.key > threshold => false,
                (Some(b), Some(f)) if b.key.max(f.key) > threshold => b >= f,
                _ => break,
            };
            let entry = if from_base { self.base.pop() } else { self.fresh.pop() };
            let Some(entry) = entry else { break };
            debug_assert!(entry.key > threshold, "only triggered entries are popped");
            visit(entry);
            popped += 1;
        }
        popped
    }

    /// Hand every entry whose key is above `threshold` (live or stale, in no particular order)
    /// to `visit`, without removing any: the sorted part's suffix found by binary search, and
    /// the inserted part filtered.
    pub fn for_each_above(&self, threshold: i64, mut visit: impl FnMut(&Entry)) {
        let start = self.base.partition_point(|e| e.key <= threshold);
        self.base[start..].iter().for_each(&mut visit);
        self.fresh.iter().filter(|e| e.key > threshold).for_each(visit);
    }

    /// Sort `fresh` into `base`, dropping stale entries from both (a compaction: it also reads
    /// every entry's account record, which `prefetch` is asked for a few entries ahead: the
    /// records are read in id order scattered over the whole table). Returns how many were
    /// dropped.
    pub fn merge(&mut self, is_live: impl Fn(&Entry) -> bool, prefetch: impl Fn(&Entry)) -> usize {
        self.merges += 1;
        let before = self.len();
        let mut fresh = std::mem::take(&mut self.fresh).into_vec();
        retain_ahead(&mut fresh, &is_live, &prefetch);
        fresh.sort_unstable();
        retain_ahead(&mut self.base, &is_live, &prefetch);
        merge_sorted_into(&mut self.base, &fresh);
        fresh.clear();
        self.fresh = BinaryHeap::from(fresh); // keeps the allocation
        debug_assert!(self.base.windows(2).all(|w| w[0] <= w[1]), "base stays sorted");
        before - self.len()
    }

    /// Entries in no particular order (tests).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.base.iter().chain(self.fresh.iter())
    }

    pub fn merges(&self) -> u64 {
        self.merges
    }

    /// Bytes held by this side's buffers (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        (self.base.capacity() + self.fresh.capacity()) * std::mem::size_of::<Entry>()
    }
}

/// `entries.retain(is_live)`, in order, calling `prefetch` on the entry [`RETAIN_AHEAD`] places
/// ahead of the one being judged, so that the memory `is_live` reads is on its way.
fn retain_ahead(entries: &mut Vec<Entry>, is_live: impl Fn(&Entry) -> bool, prefetch: impl Fn(&Entry)) {
    const RETAIN_AHEAD: usize = 16;
    entries.iter().take(RETAIN_AHEAD).for_each(&prefetch);
    let mut kept = 0;
    for read in 0..entries.len() {
        if let Some(ahead) = entries.get(read + RETAIN_AHEAD) {
            prefetch(ahead);
        }
        let entry = entries[read];
        if is_live(&entry) {
            entries[kept] = entry;
            kept += 1;
        }
    }
    entries.truncate(kept);
}

/// Merge the ascending `extra` into the ascending `base`, in place, from the back.
fn merge_sorted_into(base: &mut Vec<Entry>, extra: &[Entry]) {
    let n = base.len();
    base.extend_from_slice(extra);
    let (mut i, mut j) = (n, extra.len());
    let mut k = base.len();
    while j > 0 {
        k -= 1;
        if i > 0 && base[i - 1] > extra[j - 1] {
            base[k] = base[i - 1];
            i -= 1;
        } else {
            base[k] = extra[j - 1];
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: i64, id: u32) -> Entry {
        Entry { key, id, epoch: 0 }
    }

    #[test]
    fn pops_everything_above_the_threshold_largest_first_across_merges() {
        let mut side = Side::default();
        // Enough inserts to force several merges, in a scrambled order.
        let keys: Vec<i64> = (0..5_000).map(|i| (i * 7_919) % 5_000).collect(); // forces merges
        for (id, key) in keys.iter().enumerate() {
            side.push(entry(*key, id as u32));
        }
        assert_eq!(side.len(), 5_000);
        let mut seen = Vec::new();
        let popped = side.pop_above(4_000, |e| seen.push(e.key));
        assert_eq!(popped, 999);
        assert!(seen.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(seen.first(), Some(&4_999));
        assert_eq!(seen.last(), Some(&4_001));
        assert_eq!(side.pop_above(4_000, |_| {}), 0);
        assert_eq!(side.len(), 4_001);
    }

    #[test]
    fn for_each_above_sees_what_pop_above_pops() {
        let mut side = Side::default();
        let keys: Vec<i64> = (0..3_000).map(|i| (i * 7_919) % 3_000 - 1_500).collect(); // forces merges
        for (id, key) in keys.iter().enumerate() {
            side.push(entry(*key, id as u32));
        }
        for threshold in [i64::MIN, -1_501, -1_500, -3, 0, 1_498, 1_499, i64::MAX] {
            let mut seen = Vec::new();
            side.for_each_above(threshold, |e| seen.push(*e));
            seen.sort_unstable();
            let mut popped = Vec::new();
            side.clone().pop_above(threshold, |e| popped.push(e));
            popped.sort_unstable();
            assert_eq!(seen, popped, "threshold {threshold}");
            assert_eq!(seen.len(), keys.iter().filter(|k| **k > threshold).count());
        }
        assert_eq!(side.len(), 3_000, "nothing is removed");
    }

    #[test]
    fn merge_drops_stale_entries() {
        let mut side = Side::default();
        for id in 0..100 {
            side.push(entry(i64::from(id), id));
        }
        let dropped = side.merge(|e| e.id % 2 == 0, |_| {});
        assert_eq!(dropped, 50);
        assert!(side.iter().all(|e| e.id % 2 == 0));
        let mut seen = Vec::new();
        side.pop_above(89, |e| seen.push(e.key));
        assert_eq!(seen, vec![98, 96, 94, 92, 90]);
    }
}
