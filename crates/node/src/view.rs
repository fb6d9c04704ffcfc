//! The read model: an immutable copy of the engine at one seq, published by the sequencer after
//! a batch (an `Arc` swapped in with `arc-swap`), so reads never take a lock the sequencer needs.
//!
//! A reader loads the current view (a few atomic operations) and keeps it as long as it likes;
//! the sequencer never waits for it. What is costly to derive from a state is derived at most
//! once per view, on the first read that needs it: the state hash (`GET /v1/state`) and the ADL
//! ranking of every holder (`GET /v1/accounts/{id}`).
//!
//! Publishing copies the engine. The sequencer publishes after every batch as long as copying
//! costs at most a tenth of its time (always, for books up to ~10^5 accounts on the benchmark
//! machine); on larger books it publishes as often as that budget allows, and whenever it runs
//! out of work. A view's seq is in every read answer (`seq` or `x-solvent-seq`).

use arc_swap::ArcSwap;
use solvent_core::dump::{AccountDump, AdlQuantiles};
use solvent_core::Engine;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// One published state.
pub struct View {
    engine: Engine,
    state_hash: OnceLock<String>,
    adl: OnceLock<AdlQuantiles>,
}

impl View {
    pub fn new(engine: Engine) -> View {
        View { engine, state_hash: OnceLock::new(), adl: OnceLock::new() }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Seq of the last event applied to this state.
    pub fn seq(&self) -> u64 {
        self.engine.last_seq()
    }

    /// The state hash, computed on first use (O(state)).
    pub fn state_hash(&self) -> &str {
        self.state_hash.get_or_init(|| self.engine.state_hash())
    }

    /// Whether [`View::state_hash`] is already computed (then it is free).
    pub fn has_state_hash(&self) -> bool {
        self.state_hash.get().is_some()
    }

    /// One account as in the state dump; the ADL ranking is computed on first use.
    pub fn account_dump(&self, name: &str) -> Option<AccountDump> {
        let table = self.adl.get_or_init(|| self.engine.adl_quantile_table());
        self.engine.account_dump_ranked(name, table)
    }
}

/// Where the current view lives.
pub struct ViewCell(ArcSwap<View>);

impl ViewCell {
    pub fn new(engine: Engine) -> ViewCell {
        ViewCell(ArcSwap::from_pointee(View::new(engine)))
    }

    /// The current view; hold it as long as needed.
    pub fn load(&self) -> Arc<View> {
        self.0.load_full()
    }

    fn store(&self, view: Arc<View>) {
        self.0.store(view);
    }
}

/// Share of the sequencer's time that copying the engine for views may take.
const PUBLISH_BUDGET_DIVISOR: u32 = 10;

/// The sequencer's side: when to copy the engine, and the copying.
pub struct Publisher {
    last_published_seq: u64,
    last_copy: Duration,
    last_published_at: Instant,
}

impl Publisher {
    pub fn new(seq: u64) -> Publisher {
        Publisher { last_published_seq: seq, last_copy: Duration::ZERO, last_published_at: Instant::now() }
    }

    /// Whether the published view is older than `engine`.
    pub fn behind(&self, engine: &Engine) -> bool {
        self.last_published_seq != engine.last_seq()
    }

    /// After a batch: publish unless copying would exceed its budget of the sequencer's time.
    pub fn after_batch(&mut self, cell: &ViewCell, engine: &Engine) {
        let since = self.last_published_at.elapsed();
        if self.behind(engine) && since >= self.last_copy * (PUBLISH_BUDGET_DIVISOR - 1) {
            self.publish(cell, engine);
        }
    }

    /// With no work waiting: publish if behind, at most half of the time.
    pub fn when_idle(&mut self, cell: &ViewCell, engine: &Engine) {
        if self.behind(engine) && self.last_published_at.elapsed() >= self.last_copy {
            self.publish(cell, engine);
        }
    }

    /// Publish now (snapshots and shutdown need the view at the head); returns the view.
    pub fn publish(&mut self, cell: &ViewCell, engine: &Engine) -> Arc<View> {
        let started = Instant::now();
        let view = Arc::new(View::new(engine.clone()));
        cell.store(view.clone());
        self.last_copy = started.elapsed();
        self.last_published_at = Instant::now();
        self.last_published_seq = engine.last_seq();
        metrics::histogram!(crate::telemetry::VIEW_COPY_DURATION).record(self.last_copy.as_secs_f64());
        view
    }

    /// Publish now if behind; the current view either way.
    pub fn current(&mut self, cell: &ViewCell, engine: &Engine) -> Arc<View> {
        if self.behind(engine) {
            self.publish(cell, engine)
        } else {
            cell.load()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use solvent_core::Config;

    fn engine_with_positions() -> Engine {
        let mut engine = Engine::new(&Config::embedded_default());
        let lines = [
            r#"{"type":"clock","ts":1000}"#,
            r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s1","price":"100"}"#,
            r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s2","price":"100"}"#,
            r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s3","price":"100"}"#,
            r#"{"type":"deposit","ts":1000,"account":"a","asset":"USDC","amount":"1000"}"#,
            r#"{"type":"deposit","ts":1000,"account":"b","asset":"USDC","amount":"1000"}"#,
            r#"{"type":"deposit","ts":1000,"account":"c","asset":"USDC","amount":"1000"}"#,
            r#"{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"a","seller":"b","size":"2","price":"100"}"#,
            r#"{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"c","seller":"b","size":"1","price":"100"}"#,
        ];
        let mut effects = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            engine.apply_line(i as u64 + 1, line.as_bytes(), &mut effects);
        }
        engine
    }

    #[test]
    fn a_view_answers_as_the_engine_does() {
        let engine = engine_with_positions();
        let view = View::new(engine.clone());
        assert!(!view.has_state_hash());
        assert_eq!(view.state_hash(), engine.state_hash());
        assert!(view.has_state_hash());
        for name in ["a", "b", "c", "nobody"] {
            let ours = view.account_dump(name).map(|d| serde_json::to_value(d).unwrap());
            let theirs = engine.account_dump(name).map(|d| serde_json::to_value(d).unwrap());
            assert_eq!(ours, theirs, "account {name}");
        }
        assert!(view.account_dump("a").unwrap().positions["BTC-PERP"].adl_quantile.is_some());
    }

    #[test]
    fn a_held_view_stays_at_its_seq() {
        let mut engine = engine_with_positions();
        let cell = ViewCell::new(engine.clone());
        let mut publisher = Publisher::new(engine.last_seq());
        let held = cell.load();
        let mut effects = Vec::new();
        engine.apply_line(
            10,
            br#"{"type":"deposit","ts":1000,"account":"d","asset":"USDC","amount":"5"}"#,
            &mut effects,
        );
        assert!(publisher.behind(&engine));
        publisher.after_batch(&cell, &engine);
        assert!(!publisher.behind(&engine));
        assert_eq!(held.seq(), 9);
        assert!(held.account_dump("d").is_none());
        assert_eq!(cell.load().seq(), 10);
        assert!(cell.load().account_dump("d").is_some());
    }
}
