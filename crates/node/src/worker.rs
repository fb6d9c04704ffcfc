//! Background work on copies of the engine, off the sequencer thread: snapshots and the risk
//! scan (accounts near liquidation). The sequencer hands over a clone; when the worker is still
//! busy with the previous job the new one is skipped, never queued without bound.

use crate::snapshot;
use crate::telemetry as t;
use solvent_core::margin;
use solvent_core::{Engine, Quote, Rate, Round};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Equity below this multiple of maintenance margin counts as near liquidation.
pub const NEAR_LIQUIDATION_FACTOR: &str = "1.2";

pub struct Job {
    pub seq: u64,
    /// The published read view at `seq` (shared with readers, never copied again).
    pub view: Arc<crate::view::View>,
    pub snapshot: bool,
}

/// Counts of one risk scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskCounts {
    pub accounts: u64,
    pub near_liquidation: u64,
    pub below_maintenance: u64,
}

/// Accounts with positions whose equity is below 1.2 x MM, and below MM.
pub fn risk_scan(engine: &Engine) -> RiskCounts {
    let factor = Rate::parse(NEAR_LIQUIDATION_FACTOR).unwrap_or(Rate::ONE);
    let mut counts = RiskCounts { accounts: engine.accounts().len() as u64, ..RiskCounts::default() };
    for account in engine.accounts().iter().filter(|a| !a.positions.is_empty()) {
        let Ok(health) = margin::health(account, engine.assets(), engine.markets()) else { continue };
        let threshold = health.maintenance_margin.mul_rate(factor, Round::Up).unwrap_or(Quote::MAX);
        if health.equity < threshold {
            counts.near_liquidation += 1;
        }
        if health.below_maintenance() {
            counts.below_maintenance += 1;
        }
    }
    counts
}

/// Settlement-asset amount as a float, for gauges only.
pub fn quote_as_f64(amount: Quote) -> f64 {
    amount.raw() as f64 / Quote::ONE_RAW as f64
}

pub struct Worker {
    sender: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Start the worker thread; snapshots go to `snapshot_dir`, their seq to `snapshot_seq`.
    pub fn start(snapshot_dir: PathBuf, snapshot_seq: Arc<AtomicU64>) -> std::io::Result<Worker> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(1);
        let thread = std::thread::Builder::new().name("solvent-worker".into()).spawn(move || {
            for job in receiver {
                run_job(&snapshot_dir, &snapshot_seq, job);
            }
        })?;
        Ok(Worker { sender: Some(sender), thread: Some(thread) })
    }

    /// Hand over a job; `false` if the worker is still busy (the job is dropped).
    pub fn offer(&self, job: Job) -> bool {
        match self.sender.as_ref().map(|s| s.try_send(job)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        }
    }

    /// Finish the queued job and stop the thread.
    pub fn finish(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run_job(snapshot_dir: &std::path::Path, snapshot_seq: &AtomicU64, job: Job) {
    if job.snapshot {
        write_snapshot(snapshot_dir, snapshot_seq, job.seq, job.view.engine());
    }
    let counts = risk_scan(job.view.engine());
    metrics::gauge!(t::ACCOUNTS_TOTAL).set(counts.accounts as f64);
    metrics::gauge!(t::ACCOUNTS_NEAR_LIQUIDATION).set(counts.near_liquidation as f64);
    metrics::gauge!(t::ACCOUNTS_BELOW_MAINTENANCE).set(counts.below_maintenance as f64);
}

/// Write a snapshot and record it (logged, never fatal: the journal still holds everything).
pub fn write_snapshot(snapshot_dir: &std::path::Path, snapshot_seq: &AtomicU64, seq: u64, engine: &Engine) {
    let started = Instant::now();
    match snapshot::write(snapshot_dir, seq, engine) {
        Ok((path, size_bytes)) => {
            let elapsed = started.elapsed();
            snapshot_seq.fetch_max(seq, Ordering::SeqCst);
            metrics::gauge!(t::SNAPSHOT_SEQ).set(seq as f64);
            metrics::gauge!(t::SNAPSHOT_BYTES).set(size_bytes as f64);
            metrics::histogram!(t::SNAPSHOT_DURATION).record(elapsed.as_secs_f64());
            tracing::info!(seq, path = %path.display(), size_bytes, elapsed_ms = elapsed.as_millis() as u64, "snapshot written");
        }
        Err(error) => tracing::error!(seq, %error, "snapshot failed (the journal still holds every event)"),
    }
}
