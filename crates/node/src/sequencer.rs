//! The sequencer: one thread owns the journal and applies events to the engine.
//!
//! Group commit: it takes every pending submission (up to `max_batch_events`), appends their
//! events to the journal with one write and one `fdatasync`, then applies them in order,
//! publishes their effects, and answers each submission with its seqs and effects. Nothing is
//! answered before its events are durable; a journal failure answers the whole batch with an
//! error and stops further writes (see docs/serve.md, "Failures").
//!
//! The engine belongs to this thread alone: readers get immutable copies published after the
//! batches (`view.rs`), never a lock on it. If the thread panics, the server stops (the
//! half-applied state is not served or reused); recovery rebuilds it from the journal.

use crate::journal::JournalWriter;
use crate::settings::ServerSection;
use crate::stream::{EffectHub, SeqEffects};
use crate::telemetry as t;
use crate::view::{Publisher, ViewCell};
use crate::worker::{self, Job, Worker};
use solvent_core::{Effect, EffectKind, Engine};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Why a submission was not acknowledged. None of its events is acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the sequencer queue is full; retry later")]
    Overloaded,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("journal unavailable: {0}")]
    Journal(String),
}

impl SubmitError {
    pub fn kind(&self) -> &'static str {
        match self {
            SubmitError::Overloaded => "overloaded",
            SubmitError::ShuttingDown => "shutting_down",
            SubmitError::Journal(_) => "journal_unavailable",
        }
    }
}

/// The answer to a submission: one entry per line, in order.
pub type SubmitResult = Result<Vec<Arc<SeqEffects>>, SubmitError>;

pub struct Submission {
    pub lines: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<SubmitResult>,
}

pub enum Command {
    Submit(Submission),
    ClockTick,
    Shutdown(oneshot::Sender<()>),
}

/// State shared with the HTTP handlers (reads) and the worker.
pub struct Shared {
    /// The read model: the engine as of the last published batch.
    pub view: ViewCell,
    pub hub: EffectHub,
    pub head_seq: AtomicU64,
    pub snapshot_seq: Arc<AtomicU64>,
    pub journal_failure: Mutex<Option<String>>,
    /// Woken once when the sequencer thread dies by a panic: the server then stops.
    pub sequencer_died: tokio::sync::Notify,
}

impl Shared {
    pub fn journal_failure(&self) -> Option<String> {
        self.journal_failure.lock().map(|f| f.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// The handlers' side: submit lines, wait for the durable answer.
#[derive(Clone)]
pub struct SequencerHandle {
    sender: mpsc::Sender<Command>,
}

impl SequencerHandle {
    pub async fn submit(&self, lines: Vec<Vec<u8>>) -> SubmitResult {
        let (reply, answer) = oneshot::channel();
        self.sender.try_send(Command::Submit(Submission { lines, reply })).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
        })?;
        answer.await.map_err(|_| SubmitError::ShuttingDown)?
    }

    /// Ask for a `clock` event in the next batch (dropped when the queue is full).
    pub fn clock_tick(&self) {
        let _ = self.sender.try_send(Command::ClockTick);
    }

    /// Stop after the pending submissions; resolves once the sequencer has stopped.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Command::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

pub fn channel(queue_requests: usize) -> (SequencerHandle, mpsc::Receiver<Command>) {
    let (sender, receiver) = mpsc::channel(queue_requests);
    (SequencerHandle { sender }, receiver)
}

#[derive(Default)]
struct Batch {
    clock: bool,
    submissions: Vec<Submission>,
    events: usize,
}

pub struct Sequencer {
    receiver: mpsc::Receiver<Command>,
    engine: Engine,
    publisher: Publisher,
    shared: Arc<Shared>,
    journal: JournalWriter,
    settings: ServerSection,
    snapshot_dir: std::path::PathBuf,
    worker: Worker,
    last_snapshot_seq: u64,
    last_snapshot_at: Instant,
    /// `None` until the first scan (due right away).
    last_risk_scan_at: Option<Instant>,
    rate_window_start: Instant,
    rate_window_events: u64,
    effects: Vec<Effect>,
}

/// Most catch-up `clock` lines one batch journals (a year of one-hour steps at the default bound);
/// a longer outage catches up over the following batches.
const MAX_CATCH_UP_LINES: u64 = 8_784;

fn clock_line(ts: u64) -> Vec<u8> {
    format!(r#"{{"type":"clock","ts":{ts}}}"#).into_bytes()
}

/// Pure leaf: the catch-up clock times from `last_ts` toward `wall_ts`, each at most
/// `max_jump_ms` after the one before, ending at `wall_ts` when it is reachable within
/// [`MAX_CATCH_UP_LINES`]. Empty when no step is needed: the engine clock is unset (0: the first
/// time is free) or within one jump of the wall clock.
fn catch_up_clock(last_ts: u64, wall_ts: u64, max_jump_ms: u64) -> Vec<u64> {
    assert!(max_jump_ms > 0, "the engine's clock bound is positive (config validation)");
    if last_ts == 0 || wall_ts <= last_ts.saturating_add(max_jump_ms) {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let mut ts = last_ts;
    while ts < wall_ts && (steps.len() as u64) < MAX_CATCH_UP_LINES {
        ts = ts.saturating_add(max_jump_ms).min(wall_ts);
        steps.push(ts);
    }
    steps
}

fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Sequencer {
    pub fn new(
        receiver: mpsc::Receiver<Command>,
        engine: Engine,
        shared: Arc<Shared>,
        journal: JournalWriter,
        settings: ServerSection,
        snapshot_dir: std::path::PathBuf,
        worker: Worker,
    ) -> Sequencer {
        let now = Instant::now();
        let last_snapshot_seq = shared.snapshot_seq.load(Ordering::SeqCst);
        let publisher = Publisher::new(engine.last_seq());
        Sequencer {
            receiver,
            engine,
            publisher,
            shared,
            journal,
            settings,
            snapshot_dir,
            worker,
            last_snapshot_seq,
            last_snapshot_at: now,
            last_risk_scan_at: None,
            rate_window_start: now,
            rate_window_events: 0,
            effects: Vec::with_capacity(64),
        }
    }

    /// The thread body: runs until shutdown or until every handle is dropped.
    pub fn run(mut self) {
        let _guard = StopOnPanic(self.shared.clone());
        loop {
            let command = match self.receiver.try_recv() {
                Ok(command) => command,
                Err(_) => {
                    self.publisher.when_idle(&self.shared.view, &self.engine);
                    match self.receiver.blocking_recv() {
                        Some(command) => command,
                        None => break,
                    }
                }
            };
            let mut batch = Batch::default();
            let mut shutdown = self.take(command, &mut batch);
            while shutdown.is_none() && batch.events < self.settings.max_batch_events {
                match self.receiver.try_recv() {
                    Ok(command) => shutdown = self.take(command, &mut batch),
                    Err(_) => break,
                }
            }
            self.commit(batch);
            self.housekeeping();
            if let Some(done) = shutdown {
                self.stop();
                let _ = done.send(());
                return;
            }
        }
        self.stop();
    }

    fn take(&mut self, command: Command, batch: &mut Batch) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Submit(submission) => {
                batch.events += submission.lines.len();
                batch.submissions.push(submission);
                None
            }
            Command::ClockTick => {
                batch.clock = self.settings.clock_interval_ms > 0;
                None
            }
            Command::Shutdown(done) => Some(done),
        }
    }

    /// The server's `clock` lines for this batch, journaled before its submissions: the ticker's
    /// line at the wall clock (less `clock_lag_ms`), preceded, after an outage longer than the
    /// engine's `max_clock_jump_ms`, by catch-up lines at most that far apart, so the honest
    /// events of the batch are not refused as `clock_jump` (the bound stops a writer from poisoning
    /// the clock, not the server from telling the time it was down). Only a server that keeps
    /// the time (`clock_interval_ms` > 0) catches up; without it, writers' `ts` are the only time.
    fn clock_lines(&self, ticker: bool) -> Vec<Vec<u8>> {
        if self.settings.clock_interval_ms == 0 {
            return Vec::new();
        }
        let last_ts = self.engine.last_ts();
        let wall_ts = wall_clock_ms().saturating_sub(self.settings.clock_lag_ms).max(last_ts);
        let steps = catch_up_clock(last_ts, wall_ts, self.engine.max_clock_jump_ms());
        let mut lines: Vec<Vec<u8>> = steps.iter().map(|&ts| clock_line(ts)).collect();
        if ticker && steps.last() != Some(&wall_ts) {
            lines.push(clock_line(wall_ts));
        }
        lines
    }

    /// Journal the batch (one fdatasync in group mode), apply it, publish and answer.
    fn commit(&mut self, batch: Batch) {
        if batch.submissions.is_empty() && !batch.clock {
            return;
        }
        let clock = self.clock_lines(batch.clock);
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(batch.events + clock.len());
        payloads.extend(clock.iter().map(Vec::as_slice));
        for submission in &batch.submissions {
            payloads.extend(submission.lines.iter().map(Vec::as_slice));
        }
        let first_seq = self.journal.next_seq();
        if let Err(error) = self.journal.append(&payloads, self.settings.sync_mode) {
            let reason = error.to_string();
            self.fail(batch, reason);
            return;
        }
        metrics::histogram!(t::COMMIT_BATCH_EVENTS).record(payloads.len() as f64);
        let results = self.apply(first_seq, &payloads);
        self.publisher.after_batch(&self.shared.view, &self.engine);
        let last_seq = first_seq + payloads.len() as u64 - 1;
        let published: Vec<Arc<SeqEffects>> = results.iter().filter(|r| !r.effects.is_empty()).cloned().collect();
        self.shared.hub.publish(last_seq, &published);
        self.shared.head_seq.store(last_seq, Ordering::SeqCst);
        metrics::gauge!(t::JOURNAL_SEQ).set(last_seq as f64);
        let mut offset = clock.len();
        for submission in batch.submissions {
            let answer = results[offset..offset + submission.lines.len()].to_vec();
            offset += submission.lines.len();
            let _ = submission.reply.send(Ok(answer));
        }
    }

    /// Answer every submission of a batch whose append failed: none of it is acknowledged.
    fn fail(&mut self, batch: Batch, reason: String) {
        tracing::error!(%reason, "journal append failed: nothing in this batch is acknowledged; refusing writes");
        metrics::gauge!(t::JOURNAL_FAILED).set(1.0);
        if let Ok(mut failure) = self.shared.journal_failure.lock() {
            failure.get_or_insert_with(|| reason.clone());
        }
        for submission in batch.submissions {
            let _ = submission.reply.send(Err(SubmitError::Journal(reason.clone())));
        }
    }

    fn apply(&mut self, first_seq: u64, payloads: &[&[u8]]) -> Vec<Arc<SeqEffects>> {
        let mut results = Vec::with_capacity(payloads.len());
        let mut rejected = 0u64;
        let engine = &mut self.engine;
        let apply_latency = metrics::histogram!(t::APPLY_LATENCY);
        for (i, payload) in payloads.iter().enumerate() {
            let seq = first_seq + i as u64;
            self.effects.clear();
            let started = Instant::now();
            engine.apply_line(seq, payload, &mut self.effects);
            apply_latency.record(started.elapsed().as_secs_f64());
            rejected += u64::from(self.effects.iter().any(|e| e.seq == seq && e.rejection_kind().is_some()));
            results.push(Arc::new(SeqEffects { seq, effects: self.effects.clone() }));
        }
        metrics::gauge!(t::INSURANCE_FUND).set(worker::quote_as_f64(engine.insurance_fund()));
        for market in engine.markets() {
            // Gauges only (floats never reach the engine); one pass over at most 256 markets.
            let size = |s: solvent_core::Size| s.raw() as f64 / solvent_core::Size::ONE_RAW as f64;
            let name = market.name.to_string();
            metrics::gauge!(t::MARKET_SKEW, "market" => name.clone())
                .set(size(solvent_core::funding::traders_skew(market)));
            metrics::gauge!(t::INVENTORY_COST_BASIS, "market" => name.clone())
                .set(worker::quote_as_f64(market.inventory.cost));
            let pnl = market.mark_price.and_then(|mark| market.inventory.unrealized_pnl(mark).ok());
            metrics::gauge!(t::INVENTORY_UNREALIZED_PNL, "market" => name.clone())
                .set(pnl.map_or(0.0, worker::quote_as_f64));
            metrics::gauge!(t::PROTOCOL_DELTA, "market" => name).set(size(market.inventory.size));
        }
        metrics::gauge!(t::BAD_DEBT).set(worker::quote_as_f64(engine.bad_debt()));
        if let Ok(net) = engine.protocol_net_position() {
            metrics::gauge!(t::PROTOCOL_NET_POSITION).set(worker::quote_as_f64(net));
        }
        count_effects(&results);
        let total = payloads.len() as u64;
        metrics::counter!(t::EVENTS_TOTAL, "outcome" => "accepted").increment(total - rejected);
        metrics::counter!(t::EVENTS_TOTAL, "outcome" => "rejected").increment(rejected);
        self.rate_window_events += total;
        results
    }

    /// Snapshots every N events or T seconds, the risk scan, the events/s gauge.
    fn housekeeping(&mut self) {
        let now = Instant::now();
        let window = now.duration_since(self.rate_window_start);
        if window >= Duration::from_secs(1) {
            metrics::gauge!(t::EVENTS_PER_SECOND).set(self.rate_window_events as f64 / window.as_secs_f64());
            self.rate_window_start = now;
            self.rate_window_events = 0;
        }
        let head = self.journal.next_seq() - 1;
        let due_by_count = head >= self.last_snapshot_seq + self.settings.snapshot_every_events;
        let due_by_time = head > self.last_snapshot_seq
            && now.duration_since(self.last_snapshot_at) >= Duration::from_secs(self.settings.snapshot_every_secs);
        let scan_due = self
            .last_risk_scan_at
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(self.settings.risk_scan_secs));
        let snapshot = due_by_count || due_by_time;
        if !(snapshot || scan_due) || self.journal.failure().is_some() {
            return;
        }
        let view = self.publisher.current(&self.shared.view, &self.engine);
        if self.worker.offer(Job { seq: head, view, snapshot }) {
            self.last_risk_scan_at = Some(now);
            if snapshot {
                self.last_snapshot_seq = head;
                self.last_snapshot_at = now;
            }
        }
    }

    /// Final snapshot (after the worker has finished its job) so the next start is quick.
    fn stop(&mut self) {
        self.worker.finish();
        let head = self.journal.next_seq() - 1;
        let written = self.shared.snapshot_seq.load(Ordering::SeqCst);
        if head > written && self.journal.failure().is_none() {
            worker::write_snapshot(&self.snapshot_dir, &self.shared.snapshot_seq, head, &self.engine);
        }
        self.publisher.current(&self.shared.view, &self.engine);
        tracing::info!(head_seq = head, "sequencer stopped");
    }
}

/// Dropped when the sequencer thread ends; if it ends by a panic, the engine may be half-written:
/// refuse writes and wake the server, which stops (a restart recovers from the journal).
struct StopOnPanic(Arc<Shared>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let reason = "the sequencer thread panicked; the server stops (restart to recover from the journal)";
            tracing::error!("{reason}");
            if let Ok(mut failure) = self.0.journal_failure.lock() {
                failure.get_or_insert_with(|| reason.to_string());
            }
            metrics::gauge!(t::JOURNAL_FAILED).set(1.0);
            self.0.sequencer_died.notify_one();
        }
    }
}

fn count_effects(results: &[Arc<SeqEffects>]) {
    for effect in results.iter().flat_map(|r| r.effects.iter()) {
        metrics::counter!(t::EFFECTS_TOTAL, "type" => effect.type_name()).increment(1);
        if effect.type_name() == "liquidation" {
            metrics::counter!(t::LIQUIDATIONS_TOTAL).increment(1);
        }
        if let EffectKind::OracleRejected { reason, .. } = &effect.kind {
            metrics::counter!(t::ORACLE_REJECTIONS_TOTAL, "reason" => reason.clone()).increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{catch_up_clock, MAX_CATCH_UP_LINES};

    #[test]
    fn catch_up_steps_are_bounded_by_the_clock_jump_and_end_at_the_wall_clock() {
        assert!(catch_up_clock(0, 10_000_000, 1_000).is_empty(), "the first time is free");
        assert!(catch_up_clock(5_000, 6_000, 1_000).is_empty(), "within one jump: no catch-up");
        assert_eq!(catch_up_clock(5_000, 7_500, 1_000), vec![6_000, 7_000, 7_500]);
        let long = catch_up_clock(1, u64::MAX / 2, 1_000);
        assert_eq!(long.len() as u64, MAX_CATCH_UP_LINES, "one batch journals a bounded number");
        assert!(long.windows(2).all(|w| w[1] - w[0] <= 1_000));
    }
}
