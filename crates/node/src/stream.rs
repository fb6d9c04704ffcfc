//! The effect stream behind `/v1/stream`: a bounded in-memory ring of recent effects, a live
//! broadcast, and regeneration of older effects by re-applying the journal from a snapshot.
//!
//! No gaps, no duplicates: the sequencer publishes a batch (ring push + broadcast) under the hub's
//! lock, and a subscriber takes its copy of the ring and its broadcast receiver under the same
//! lock, so every seq is either in its copy or arrives live, never both. Seqs older than the ring
//! are regenerated from the journal, which holds every seq the ring ever evicted.

use crate::error::NodeError;
use crate::journal;
use crate::snapshot;
use solvent_core::{Config, Effect, Engine};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// The effects of one journaled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqEffects {
    pub seq: u64,
    pub effects: Vec<Effect>,
}

struct HubInner {
    ring: VecDeque<Arc<SeqEffects>>,
    ring_effects: usize,
    /// Every effect of every seq >= this is in the ring (up to `head_seq`).
    complete_from_seq: u64,
    head_seq: u64,
    live: broadcast::Sender<Arc<SeqEffects>>,
}

/// Recent effects and the live feed.
pub struct EffectHub {
    inner: Mutex<HubInner>,
    capacity_effects: usize,
}

/// What a new subscriber must send, in this order: `regenerate` (from the journal), `history`
/// (from the ring), then everything from `live` with `seq >= from_seq`.
pub struct Subscription {
    pub from_seq: u64,
    pub head_seq: u64,
    /// Seqs `[start, end)` to regenerate from the journal.
    pub regenerate: Option<(u64, u64)>,
    pub history: Vec<Arc<SeqEffects>>,
    pub live: broadcast::Receiver<Arc<SeqEffects>>,
}

/// Messages a live subscriber may lag behind before it is told to resume.
pub const LIVE_CHANNEL_MESSAGES: usize = 8_192;

impl EffectHub {
    pub fn new(head_seq: u64, capacity_effects: usize) -> EffectHub {
        let (live, _) = broadcast::channel(LIVE_CHANNEL_MESSAGES);
        let inner =
            HubInner { ring: VecDeque::new(), ring_effects: 0, complete_from_seq: head_seq + 1, head_seq, live };
        EffectHub { inner: Mutex::new(inner), capacity_effects: capacity_effects.max(1) }
    }

    fn lock(&self) -> MutexGuard<'_, HubInner> {
        // A panic while holding this lock cannot leave the ring inconsistent (each step is a
        // push or pop), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record a committed batch: `head_seq` is its last seq, `items` its non-empty effect sets.
    pub fn publish(&self, head_seq: u64, items: &[Arc<SeqEffects>]) {
        let mut inner = self.lock();
        for item in items {
            inner.ring_effects += item.effects.len();
            inner.ring.push_back(item.clone());
            let _ = inner.live.send(item.clone());
        }
        while inner.ring_effects > self.capacity_effects && inner.ring.len() > 1 {
            if let Some(evicted) = inner.ring.pop_front() {
                inner.ring_effects -= evicted.effects.len();
                inner.complete_from_seq = evicted.seq + 1;
            }
        }
        inner.head_seq = head_seq;
    }

    pub fn head_seq(&self) -> u64 {
        self.lock().head_seq
    }

    /// Subscribe from `from_seq` (`None`: live only, from the next seq).
    pub fn subscribe(&self, from_seq: Option<u64>) -> Subscription {
        let inner = self.lock();
        let from_seq = from_seq.unwrap_or(inner.head_seq + 1).max(1);
        let regenerate = (from_seq < inner.complete_from_seq).then_some((from_seq, inner.complete_from_seq));
        let history = inner.ring.iter().filter(|item| item.seq >= from_seq).cloned().collect();
        Subscription { from_seq, head_seq: inner.head_seq, regenerate, history, live: inner.live.subscribe() }
    }
}

/// Re-apply the journal to produce the effects of seqs `[from_seq, until_seq)`, handing each
/// non-empty set to `sink` in order. Starts from the newest snapshot before `from_seq` (or the
/// empty state); the effects equal the originals because the engine is deterministic.
pub fn regenerate(
    data_dir: &Path,
    config: &Config,
    from_seq: u64,
    until_seq: u64,
    sink: &mut dyn FnMut(SeqEffects) -> ControlFlow<()>,
) -> Result<(), NodeError> {
    if until_seq <= from_seq {
        return Ok(());
    }
    let dirs = crate::datadir::Layout::new(data_dir);
    let base = snapshot::load_newest_valid(&dirs.snapshots, from_seq - 1)?;
    let (base_seq, mut engine) = match base {
        Some(loaded) => (loaded.seq, loaded.engine),
        None => (0, Engine::new(config)),
    };
    let mut effects = Vec::new();
    let mut stopped = false;
    let last_seen = journal::read_range(&dirs.journal, base_seq + 1, until_seq - 1, &mut |seq, payload| {
        effects.clear();
        engine.apply_line(seq, payload, &mut effects);
        if seq >= from_seq && !effects.is_empty() && sink(SeqEffects { seq, effects: effects.clone() }).is_break() {
            stopped = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if !stopped && last_seen + 1 < until_seq {
        return Err(NodeError::Recovery(format!(
            "stream regeneration: the journal ends at seq {last_seen}, before seq {}",
            until_seq - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64, n: usize) -> Arc<SeqEffects> {
        let error = solvent_core::Error::UnknownAccount("x".into());
        Arc::new(SeqEffects { seq, effects: (0..n).map(|_| Effect::rejected(seq, 0, &error)).collect() })
    }

    #[test]
    fn ring_eviction_moves_the_complete_mark_and_subscriptions_split_cleanly() {
        let hub = EffectHub::new(10, 3);
        hub.publish(12, &[item(11, 1), item(12, 2)]);
        let sub = hub.subscribe(Some(11));
        assert_eq!(sub.regenerate, None);
        assert_eq!(sub.history.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![11, 12]);
        hub.publish(14, &[item(14, 2)]);
        let sub = hub.subscribe(Some(5));
        assert_eq!(sub.regenerate, Some((5, 13)));
        assert_eq!(sub.history.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![14]);
        let mut live = hub.subscribe(None);
        assert_eq!(live.from_seq, 15);
        hub.publish(15, &[item(15, 1)]);
        assert_eq!(live.live.try_recv().unwrap().seq, 15);
    }
}
