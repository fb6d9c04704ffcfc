//! The incremental risk index: after a mark moves, find every account that can have
//! crossed below maintenance without scanning the others.
//!
//! **Boxes.** Every tracked account that is not below maintenance has a certified safe price box
//! ([`band`]): per market it is exposed to (positions, and collateral indexed on that market), a
//! band `[lo, hi]` such that while every such market's mark and index stay inside their bands the
//! account cannot be below maintenance. Each finite edge is an entry in one of two ordered
//! structures per market ([`side`]): by `lo`, triggered when min(mark, index) < lo, and by `hi`,
//! triggered when max(mark, index) > hi.
//!
//! **A pass** ([`RiskIndex::candidates`], run by `settle_risk` before each liquidation round):
//! 1. markets that thawed since the last pass queue all their holders (accounts that were below
//!    maintenance but waiting on a frozen market are among them);
//! 2. per market, every triggered entry is popped and its account queued;
//! 3. the accounts that were candidates at the last pass, and the always-recheck list, are queued;
//! 4. every queued account is checked exactly (`margin::health`, the same decision as the full
//!    scan) and re-classified: a **candidate** (returned, and queued again for the next pass),
//!    **parked** (below maintenance but every position waits on a frozen market: no entries,
//!    rechecked on thaw), **boxed** (new box, new entries), **always** (no box can be certified:
//!    an arithmetic overflow, or no headroom while a basis EMA separates mark from index), or
//!    **untracked** (no position and a non-negative settlement balance: never a candidate).
//!
//! **Exactness.** An account that is not queued is boxed with its prices inside its box, parked,
//! or untracked, and each of these keeps the full scan's verdict until something it depends on
//! changes. Everything it depends on is covered: its own state (every write goes through
//! `Engine::account_mut`, which queues it: trades, withdrawals, fees, liquidations, ADL,
//! socialized loss, bankruptcy cover, auction takes, a new account's first deposit; a deposit to
//! an existing account goes through `Engine::account_mut_deposit`, which does not queue it: a
//! deposit only raises equity at every price and moves no requirement, so every verdict above
//! still holds), marks and indexes (the entries), market
//! parameters (a `params` event queues every holder of the market: one bit per account and market),
//! frozen flags (a thaw queues the holders; a freeze only removes candidates, and a frozen market's
//! prices do not move), collateral weights (a step of an asset's effective weight queues every
//! holder of its index market, `asset_status.rs`).
//!
//! **Lazy deletion.** Re-classifying an account bumps its epoch; its old entries stay in the
//! structures and are dropped when popped or by a compaction. Compaction of
//! every market runs when stored entries exceed twice the live ones (plus a constant).
//!
//! The index is derived state: it is not serialized, not hashed, and `Engine::from_snapshot`
//! rebuilds it (every account queued for the next pass).

pub(crate) mod band;
pub(crate) mod scan;
pub(crate) mod side;

use crate::state::{Account, Asset, Market};
use crate::state::{AccountId, MarketId};
use side::{Entry, Side};

/// What a pass reads: the engine's tables (borrowed beside the index, which is another field).
#[derive(Clone, Copy)]
pub(crate) struct Tables<'a> {
    pub accounts: &'a [Account],
    pub assets: &'a [Asset],
    pub markets: &'a [Market],
}

/// Record flag: the account is in the queue.
const QUEUED: u8 = 1;
/// Side indexes.
const LO: usize = 0;
const HI: usize = 1;
/// Compaction slack: stored entries may exceed twice the live ones by this much (small in debug
/// builds, so that tests exercise compaction).
const COMPACTION_SLACK: usize = if cfg!(debug_assertions) { 16 } else { 4_096 };

/// Per account: the epoch its live entries carry, how many there are, flags.
#[derive(Clone, Copy, Debug, Default)]
struct Record {
    epoch: u32,
    entries: u16,
    flags: u8,
}

/// Per market: the two trigger structures, the holder bit set, and the frozen flag seen at the
/// last pass.
#[derive(Clone, Debug, Default)]
struct MarketSlot {
    sides: [Side; 2],
    holders: Vec<u64>,
    was_frozen: bool,
    /// (min, max) of mark and index when the sides were last popped. Every entry stored since
    /// contains those prices (boxes are derived at the current prices), so while they have not
    /// moved there is nothing to pop.
    popped_at: Option<(i64, i64)>,
}

/// Counters for benchmarks and telemetry (not state: never hashed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskIndexStats {
    /// Passes run (calls of the candidate search).
    pub passes: u64,
    /// Exact rechecks (re-classifications) of accounts.
    pub rechecks: u64,
    /// Live entries popped because a price left a band.
    pub triggered: u64,
    /// Candidates returned.
    pub candidates: u64,
    /// Entries currently stored (live and stale), over all markets and sides.
    pub entries_stored: usize,
    /// Entries currently live.
    pub entries_live: usize,
    /// Accounts on the always-recheck list.
    pub always_recheck: usize,
    /// Bytes of the index's own buffers (capacity).
    pub heap_bytes: usize,
    /// Merges of inserted entries into the sorted part of a structure (each O(its size)),
    /// compactions included.
    pub merges: u64,
}

/// The index. `Default` is an empty index that [`RiskIndex::candidates`] resizes (and, if it
/// does not match the engine, rebuilds) on first use.
#[derive(Clone, Default)]
pub struct RiskIndex {
    records: Vec<Record>,
    queue: Vec<u32>,
    /// Candidates of the last pass: queued again at the next.
    pending: Vec<u32>,
    always: Vec<u32>,
    markets: Vec<MarketSlot>,
    live: usize,
    stored: usize,
    stats: RiskIndexStats,
    scratch: band::Scratch,
}

impl std::fmt::Debug for RiskIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskIndex").field("accounts", &self.records.len()).field("stats", &self.stats()).finish()
    }
}

impl RiskIndex {
    /// An index over `markets` markets and `accounts` accounts, every account queued.
    pub(crate) fn new(markets: usize, accounts: usize) -> RiskIndex {
        let mut index = RiskIndex { markets: vec![MarketSlot::default(); markets], ..RiskIndex::default() };
        for slot in &mut index.markets {
            slot.was_frozen = true; // markets start frozen; a thaw queues holders
        }
        for id in 0..accounts {
            index.records.push(Record::default());
            index.queue_id(id as u32);
        }
        index
    }

    /// The account changed: recheck it at the next pass (a new id extends the index).
    pub(crate) fn touch(&mut self, id: AccountId) {
        let i = id.0 as usize;
        while self.records.len() <= i {
            self.records.push(Record::default());
            self.queue_id((self.records.len() - 1) as u32);
        }
        self.queue_id(id.0);
    }

    /// Hint that `id` will be touched soon: asks the cache for its record and for its word of each
    /// market's holder bit set, which its recheck sets (`crate::prefetch`).
    pub(crate) fn prefetch(&self, id: AccountId) {
        if let Some(record) = self.records.get(id.0 as usize) {
            crate::prefetch::read(record);
        }
        for slot in &self.markets {
            if let Some(word) = slot.holders.get(id.0 as usize / 64) {
                crate::prefetch::read(word);
            }
        }
    }

    /// The market's risk parameters changed: recheck every holder at the next pass.
    pub(crate) fn market_params_changed(&mut self, market: MarketId) {
        self.queue_holders(market.0 as usize);
    }

    /// The effective weight of an asset indexed on `market` changed: recheck every holder of the
    /// market at the next pass (an account holding the asset is one: classification sets its bit
    /// for the index market of each asset it holds; one that received the asset by a deposit
    /// since was certified without it, and a weight is never negative, so that box still holds).
    pub(crate) fn asset_weight_changed(&mut self, market: MarketId) {
        self.queue_holders(market.0 as usize);
    }

    pub fn stats(&self) -> RiskIndexStats {
        let sides = self.markets.iter().flat_map(|m| m.sides.iter());
        let heap_bytes = sides.map(Side::heap_bytes).sum::<usize>()
            + self.records.capacity() * std::mem::size_of::<Record>()
            + (self.queue.capacity() + self.pending.capacity() + self.always.capacity()) * 4
            + self.markets.iter().map(|m| m.holders.capacity() * 8).sum::<usize>();
        let merges = self.markets.iter().flat_map(|m| m.sides.iter()).map(Side::merges).sum();
        RiskIndexStats {
            merges,
            entries_stored: self.stored,
            entries_live: self.live,
            always_recheck: self.always.len(),
            heap_bytes,
            ..self.stats
        }
    }

    fn queue_id(&mut self, id: u32) {
        let record = &mut self.records[id as usize];
        if record.flags & QUEUED == 0 {
            record.flags |= QUEUED;
            self.queue.push(id);
        }
    }

    fn queue_holders(&mut self, market: usize) {
        let Some(slot) = self.markets.get_mut(market) else { return };
        let holders = std::mem::take(&mut slot.holders);
        for (w, word) in holders.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let id = (w * 64 + bits.trailing_zeros() as usize) as u32;
                bits &= bits - 1;
                if (id as usize) < self.records.len() {
                    self.queue_id(id);
                }
            }
        }
        let mut holders = holders;
        holders.iter_mut().for_each(|w| *w = 0);
        self.markets[market].holders = holders; // bits are set again by re-classification
    }

    fn set_holder(&mut self, market: MarketId, id: u32) {
        let holders = &mut self.markets[market.0 as usize].holders;
        let word = id as usize / 64;
        if holders.len() <= word {
            holders.resize(word + 1, 0);
        }
        holders[word] |= 1 << (id % 64);
    }

    /// Make the index match the engine's tables (a default or stale index is rebuilt).
    fn fit(&mut self, engine: Tables) {
        if self.markets.len() != engine.markets.len() || self.records.len() > engine.accounts.len() {
            *self = RiskIndex::new(engine.markets.len(), engine.accounts.len());
        }
        while self.records.len() < engine.accounts.len() {
            self.touch(AccountId(self.records.len() as u32));
        }
    }

    /// One pass: every account the full scan would return now, sorted by account name.
    pub(crate) fn candidates(&mut self, engine: Tables) -> Vec<AccountId> {
        self.fit(engine);
        self.stats.passes += 1;
        // Requeue last pass's candidates and the always-recheck list, keeping both buffers.
        let (mut pending, mut always) = (std::mem::take(&mut self.pending), std::mem::take(&mut self.always));
        for &id in pending.iter().chain(&always) {
            self.queue_id(id);
        }
        pending.clear();
        always.clear();
        (self.pending, self.always) = (pending, always);
        self.collect_triggers(engine);
        let mut found = Vec::new();
        while let Some(id) = self.queue.pop() {
            self.records[id as usize].flags &= !QUEUED;
            if self.classify(engine, id) {
                found.push(AccountId(id));
            }
        }
        if self.stored > 2 * self.live + COMPACTION_SLACK {
            self.compact();
        }
        self.stats.candidates += found.len() as u64;
        self.pending.extend(found.iter().map(|id| id.0));
        found.sort_unstable_by(|a, b| engine.accounts[a.0 as usize].name.cmp(&engine.accounts[b.0 as usize].name));
        found
    }

    /// Thaws and triggered entries, per market.
    fn collect_triggers(&mut self, engine: Tables) {
        for (m, market) in engine.markets.iter().enumerate() {
            if self.markets[m].was_frozen && !market.frozen {
                self.queue_holders(m);
            }
            self.markets[m].was_frozen = market.frozen;
            let prices = [market.mark_price, market.index_price];
            let (Some(low), Some(high)) =
                (prices.iter().flatten().map(|p| p.raw()).min(), prices.iter().flatten().map(|p| p.raw()).max())
            else {
                continue;
            };
            if self.markets[m].popped_at == Some((low, high)) {
                continue;
            }
            self.markets[m].popped_at = Some((low, high));
            let RiskIndex { records, queue, markets, stats, stored, .. } = self;
            let mut visit = |entry: Entry| {
                let record = &mut records[entry.id as usize];
                if record.epoch == entry.epoch {
                    stats.triggered += 1;
                    if record.flags & QUEUED == 0 {
                        record.flags |= QUEUED;
                        queue.push(entry.id);
                    }
                }
            };
            let sides = &mut markets[m].sides;
            *stored -= sides[LO].pop_above(low, &mut visit);
            *stored -= sides[HI].pop_above(-high, &mut visit);
        }
    }

    /// Re-check one account exactly and file it; true when it is a candidate now.
    fn classify(&mut self, engine: Tables, id: u32) -> bool {
        self.stats.rechecks += 1;
        let record = &mut self.records[id as usize];
        self.live -= usize::from(record.entries);
        record.entries = 0;
        record.epoch = record.epoch.wrapping_add(1);
        let account = &engine.accounts[id as usize];
        if account.positions.is_empty() && !account.settlement.is_negative() {
            return false; // untracked: equity >= 0 = MM whatever the prices
        }
        for position in &account.positions {
            self.set_holder(position.market, id);
        }
        for (asset, _) in &account.collateral {
            self.set_holder(engine.assets[asset.0 as usize].index_market, id);
        }
        if !account.margin_model.is_tiered() {
            return self.classify_portfolio(engine, id);
        }
        // Linear accounts (the commonest) give their exact margin and their box from one pass.
        let linear = band::LinearAccount::of(account, engine.assets, engine.markets);
        let margin = match &linear {
            Some(linear) => Some(linear.margin_fine),
            None => crate::margin::margin_fine_narrow(account, engine.assets, engine.markets),
        };
        debug_assert!(
            linear.is_none_or(|l| {
                let narrow = crate::margin::margin_fine_narrow(account, engine.assets, engine.markets);
                narrow.is_none_or(|n| n == l.margin_fine)
            }),
            "the linear margin is the exact margin"
        );
        let verdict = margin.and_then(|m| crate::margin::verdict_from_fine_margin(m, account.positions.len()));
        if verdict == Some(true) && !account.positions.is_empty() {
            // Certainly below maintenance (see `margin::below_maintenance_quick`): a candidate
            // when any position is in a live market, else parked. The same decision as
            // `needs_liquidation_given`, without the rounded health.
            return account.positions.iter().any(|p| !engine.markets[p.market.0 as usize].frozen);
        }
        if verdict != Some(false) {
            let health = match crate::margin::health(account, engine.assets, engine.markets) {
                Ok(health) => health,
                Err(_) => {
                    self.always.push(id); // the full scan skips it; so do we, at every pass
                    return false;
                }
            };
            if health.below_maintenance() {
                return self.file_below_maintenance(engine, id, &health);
            }
        }
        let positions = account.positions.len();
        if linear.and_then(|l| band::derive_linear(&l, positions, &mut self.scratch.bands)).is_some() {
            #[cfg(debug_assertions)]
            self.assert_general_derivation_agrees(engine, id);
            self.insert_box(id);
            return false;
        }
        let headroom = margin.map(ethnum::I256::from);
        let (settlement, positions) = (account.settlement, account.positions.len());
        let boxed = band::exposures(account, engine.assets, engine.markets, &mut self.scratch.exposures)
            .and_then(|()| band::derive(settlement, positions, headroom, engine.markets, &mut self.scratch));
        match boxed {
            Ok(()) => self.insert_box(id),
            Err(band::Unbandable) => self.always.push(id),
        }
        false
    }

    /// File account `id`, found below maintenance with `health`: true when it is a candidate.
    /// Otherwise it waits: on a frozen market (parked: its holders are queued on thaw), or, with
    /// no position and an equity not yet negative (possible only where collateral carries a
    /// requirement, as under portfolio margin), for its equity to turn negative: no box holds
    /// for it, so it is rechecked at every pass.
    fn file_below_maintenance(&mut self, engine: Tables, id: u32, health: &crate::margin::Health) -> bool {
        let account = &engine.accounts[id as usize];
        if crate::liquidation::needs_liquidation_given(account, health, engine.assets, engine.markets) {
            return true;
        }
        if account.positions.is_empty() && !health.equity.is_negative() {
            self.always.push(id);
        }
        false
    }

    /// [`RiskIndex::classify`] of a portfolio-margined account: the exact verdict and, when it
    /// is not below maintenance, the model's own certified box (or a point box), from the same
    /// exact figures.
    fn classify_portfolio(&mut self, engine: Tables, id: u32) -> bool {
        let account = &engine.accounts[id as usize];
        let (health, portfolio, equity) =
            match crate::portfolio::health_and_parts(account, engine.assets, engine.markets) {
                Ok(parts) => parts,
                Err(_) => {
                    self.always.push(id); // the full scan skips it; so do we, at every pass
                    return false;
                }
            };
        if health.below_maintenance() {
            return self.file_below_maintenance(engine, id, &health);
        }
        let parts = (&portfolio, equity);
        match crate::portfolio::safe_box(account, engine.assets, engine.markets, parts, &mut self.scratch.bands) {
            Ok(()) => self.insert_box(id),
            Err(band::Unbandable) => self.always.push(id),
        }
        false
    }

    /// Debug builds: the general derivation gives the band the fast path put in `scratch.bands`.
    #[cfg(debug_assertions)]
    fn assert_general_derivation_agrees(&mut self, engine: Tables, id: u32) {
        let account = &engine.accounts[id as usize];
        let fast = self.scratch.bands.clone();
        let mut scratch = band::Scratch::default();
        band::exposures(account, engine.assets, engine.markets, &mut scratch.exposures).expect("priced positions");
        let positions = account.positions.len();
        band::derive(account.settlement, positions, None, engine.markets, &mut scratch).expect("a certified box");
        assert_eq!(scratch.bands, fast, "the fast derivation agrees with the general one");
    }

    /// File the bands in `scratch.bands` for account `id` at its current epoch.
    fn insert_box(&mut self, id: u32) {
        let RiskIndex { records, markets, scratch, live, stored, .. } = self;
        let epoch = records[id as usize].epoch;
        let mut count = 0u16;
        for band in &scratch.bands {
            let sides = &mut markets[band.market.0 as usize].sides;
            for (side, key) in [(LO, band.lo), (HI, band.hi.map(|hi| -hi))] {
                if let Some(key) = key {
                    *stored += 1;
                    sides[side].push(Entry { key, id, epoch });
                    count += 1;
                }
            }
        }
        records[id as usize].entries = count;
        *live += usize::from(count);
    }

    /// For the liquidation map of `market`: set in `visit` (one bit per account id, in words of
    /// 64) every account whose box may be left at some level of the map, and return `true`; or
    /// return `false` when the index cannot tell (then every account must be evaluated).
    ///
    /// The entries of `market` with a key above the threshold are marked (`lo` above
    /// `lo_at_most`; on the high side, whose keys are −hi, `hi` below −`hi_key_at_most`), live
    /// or stale. An account that is not marked is therefore boxed, with every price inside its
    /// box and its band in `market` at least [`lo_at_most`, −`hi_key_at_most`] (or open). The
    /// caller chooses the thresholds so that every level's mark and moved index lie in that
    /// interval: there, with every other market at its current price (inside its band), the box
    /// proves the account not below maintenance at every level, so it is in no bucket. Marked
    /// besides: every queued account (its box may be stale), the last pass's candidates and the
    /// always-recheck list.
    ///
    /// The index can tell only when it has settled on the current state: it covers every
    /// account and market, every market's triggered entries have been popped at its current
    /// prices, and no market is frozen or was frozen at the last pass (so that no account is
    /// parked: a parked account has no entries and is on no list).
    pub(crate) fn map_visits(
        &self,
        engine: Tables,
        market: MarketId,
        lo_at_most: i64,
        hi_key_at_most: i64,
        visit: &mut Vec<u64>,
    ) -> bool {
        if self.markets.len() != engine.markets.len() || self.records.len() != engine.accounts.len() {
            return false;
        }
        for (slot, m) in self.markets.iter().zip(engine.markets) {
            if m.frozen || slot.was_frozen {
                return false;
            }
            let prices = [m.mark_price, m.index_price];
            let low = prices.iter().flatten().map(|p| p.raw()).min();
            let high = prices.iter().flatten().map(|p| p.raw()).max();
            if let (Some(low), Some(high)) = (low, high) {
                if slot.popped_at != Some((low, high)) {
                    return false;
                }
            }
        }
        let Some(slot) = self.markets.get(market.0 as usize) else { return false };
        visit.clear();
        visit.resize(engine.accounts.len().div_ceil(64), 0);
        let mut mark = |id: u32| {
            if let Some(word) = visit.get_mut(id as usize / 64) {
                *word |= 1 << (id % 64);
            }
        };
        slot.sides[LO].for_each_above(lo_at_most, |e| mark(e.id));
        slot.sides[HI].for_each_above(hi_key_at_most, |e| mark(e.id));
        for &id in self.queue.iter().chain(&self.pending).chain(&self.always) {
            mark(id);
        }
        true
    }

    /// Drop every stale entry from every structure.
    fn compact(&mut self) {
        let RiskIndex { records, markets, stored, .. } = self;
        for slot in markets.iter_mut() {
            for side in slot.sides.iter_mut() {
                let prefetch = |e: &Entry| {
                    if let Some(record) = records.get(e.id as usize) {
                        crate::prefetch::read(record);
                    }
                };
                *stored -= side.merge(|e| records[e.id as usize].epoch == e.epoch, prefetch);
            }
        }
    }
}
