//! The replica loop: one task owns the engine. As a follower it applies the stream in order
//! (idempotent by stream sequence) and campaigns for the lease; as the leader it publishes each
//! batch of submissions, applies what the stream acknowledged, answers, and renews the lease.

use super::{message_id, JetStreamOptions, Log, LEASE_KEY, PUBLISH_WINDOW_MESSAGES};
use super::{JETSTREAM_LEADER, JETSTREAM_STEP_DOWNS_TOTAL};
use crate::sequencer::{Command, Shared, Submission, SubmitError};
use crate::settings::ServerSection;
use crate::stream::SeqEffects;
use crate::telemetry as t;
use crate::view::Publisher;
use crate::worker::{self, Job, Worker};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use solvent_core::{Effect, Engine};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Pause before retrying after a NATS error (connection lost, consumer gone).
const RETRY_PAUSE_MS: u64 = 200;
/// Most stream messages applied in one batch.
const APPLY_BATCH_MESSAGES: usize = 4_096;
/// With nothing to apply for this long, a view behind the engine is published (reads lag the
/// head by at most this plus one copy when idle).
const IDLE_PUBLISH_DELAY: Duration = Duration::from_millis(5);

pub(super) struct Parts {
    pub options: JetStreamOptions,
    pub log: Log,
    /// The engine at `snapshot_seq` (the newest local snapshot, or empty at 0).
    pub engine: Engine,
    pub snapshot_seq: u64,
    pub shared: Arc<Shared>,
    pub receiver: mpsc::Receiver<Command>,
    pub section: ServerSection,
    pub snapshot_dir: std::path::PathBuf,
    pub worker: Worker,
    pub ready: std::sync::mpsc::SyncSender<Result<(), String>>,
}

/// Why a role ended.
enum Step {
    /// Won the lease (its revision) and caught up: lead.
    Lead(u64),
    /// Lost or gave up the lease, or a publish failed: follow (and resynchronize).
    Follow,
    /// Shut down (answer the waiter, if any).
    Stop(Option<oneshot::Sender<()>>),
}

pub(super) struct Replica {
    options: JetStreamOptions,
    log: Log,
    /// Owned by this task alone; readers get published copies (`view.rs`).
    engine: Engine,
    publisher: Publisher,
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<Command>,
    section: ServerSection,
    snapshot_dir: std::path::PathBuf,
    worker: Worker,
    ready: Option<std::sync::mpsc::SyncSender<Result<(), String>>>,
    /// Start without `--follow`: the start fails unless the lease is won by this deadline
    /// (set once caught up).
    must_lead_by: Option<Instant>,
    head: u64,
    last_snapshot_seq: u64,
    last_snapshot_at: Instant,
    effects: Vec<Effect>,
}

fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Replica {
    pub(super) fn new(parts: Parts) -> Replica {
        let head = parts.snapshot_seq;
        Replica {
            options: parts.options,
            log: parts.log,
            publisher: Publisher::new(parts.engine.last_seq()),
            engine: parts.engine,
            shared: parts.shared,
            receiver: parts.receiver,
            section: parts.section,
            snapshot_dir: parts.snapshot_dir,
            worker: parts.worker,
            ready: Some(parts.ready),
            must_lead_by: None,
            head,
            last_snapshot_seq: head,
            last_snapshot_at: Instant::now(),
            effects: Vec::with_capacity(64),
        }
    }

    /// Follow, lead, follow, ... until shutdown.
    pub(super) async fn run(mut self) {
        let mut step = Step::Follow;
        loop {
            step = match step {
                Step::Follow => self.follow().await,
                Step::Lead(revision) => self.lead(revision).await,
                Step::Stop(done) => {
                    self.stop().await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            };
        }
    }

    fn signal_ready(&mut self, result: Result<(), String>) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(result);
        }
    }

    async fn stream_last_seq(&self) -> Result<u64, String> {
        let info = self.log.stream.get_info().await.map_err(|e| format!("stream info: {e}"))?;
        Ok(info.state.last_sequence)
    }

    async fn messages_from(&self, start_sequence: u64) -> Result<pull::Ordered, String> {
        let config = pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
            ..Default::default()
        };
        let consumer = self.log.stream.create_consumer(config).await.map_err(|e| format!("consumer: {e}"))?;
        consumer.messages().await.map_err(|e| format!("consumer messages: {e}"))
    }

    /// Follower: apply the stream from `head + 1`, refuse submissions, campaign for the lease.
    async fn follow(&mut self) -> Step {
        metrics::gauge!(JETSTREAM_LEADER).set(0.0);
        loop {
            match self.follow_once().await {
                Ok(step) => return step,
                Err(reason) => {
                    tracing::warn!(%reason, head = self.head, "following the stream failed; retrying");
                    if let Some(step) = self.pause_answering(Duration::from_millis(RETRY_PAUSE_MS)).await {
                        return step;
                    }
                }
            }
        }
    }

    async fn follow_once(&mut self) -> Result<Step, String> {
        let mut messages = self.messages_from(self.head + 1).await?;
        let mut target = Some(self.stream_last_seq().await?);
        let campaign_every = (self.log.lease_duration / 4).max(Duration::from_millis(50));
        let mut campaign = tokio::time::interval(campaign_every);
        campaign.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(last) = target.filter(|&last| self.head >= last) {
                target = None;
                if let Some(step) = self.caught_up(last) {
                    return Ok(step);
                }
            }
            tokio::select! {
                biased;
                command = self.receiver.recv() => match command {
                    None => return Ok(Step::Stop(None)),
                    Some(command) => if let Some(step) = self.refuse(command) { return Ok(step) },
                },
                message = messages.next() => {
                    let first = message.ok_or("the consumer ended")?.map_err(|e| format!("consumer: {e}"))?;
                    self.apply_messages(first, &mut messages)?;
                    self.housekeeping();
                }
                _ = tokio::time::sleep(IDLE_PUBLISH_DELAY), if self.publisher.behind(&self.engine) => {
                    self.publisher.current(&self.shared.view, &self.engine);
                }
                _ = campaign.tick(), if target.is_none() => {
                    if let Some(revision) = self.try_lease().await {
                        let last = self.stream_last_seq().await?;
                        self.catch_up(&mut messages, last).await?;
                        return Ok(Step::Lead(revision));
                    }
                    if self.must_lead_by.is_some_and(|by| Instant::now() >= by) {
                        return Ok(self.lease_refused());
                    }
                }
            }
        }
    }

    /// Caught up with the stream as it was when following began: a replica is ready to serve;
    /// a node started without `--follow` must now win the lease. A local snapshot past the
    /// stream's end means the stream was replaced: refuse to start.
    fn caught_up(&mut self, last: u64) -> Option<Step> {
        if self.head > last && self.ready.is_some() {
            self.signal_ready(Err(format!(
                "the local snapshot is at seq {} but stream {} ends at seq {last}: was the stream replaced?",
                self.head, self.options.stream
            )));
            return Some(Step::Stop(None));
        }
        self.publisher.current(&self.shared.view, &self.engine);
        if self.options.follow {
            self.signal_ready(Ok(()));
        } else if self.ready.is_some() && self.must_lead_by.is_none() {
            self.must_lead_by = Some(Instant::now() + self.log.lease_duration * 2);
        }
        None
    }

    /// Start without `--follow` and another node holds the lease: fail the start.
    fn lease_refused(&mut self) -> Step {
        self.signal_ready(Err(format!(
            "another node holds the lease of stream {}: start this one with --follow",
            self.options.stream
        )));
        Step::Stop(None)
    }

    /// The lease's revision if this node holds it now: created (free), or still ours (a
    /// leader that stepped down to resynchronize, or restarted under the same `--node-id`).
    async fn try_lease(&self) -> Option<u64> {
        let value = Bytes::from(self.options.node_id.clone().into_bytes());
        if let Ok(revision) = self.log.lease.create(LEASE_KEY, value).await {
            tracing::info!(node = %self.options.node_id, revision, head = self.head, "won the lease");
            return Some(revision);
        }
        let entry = self.log.lease.entry(LEASE_KEY).await.ok().flatten()?;
        let ours = entry.operation == async_nats::jetstream::kv::Operation::Put
            && entry.value.as_ref() == self.options.node_id.as_bytes();
        ours.then_some(entry.revision)
    }

    async fn catch_up(&mut self, messages: &mut pull::Ordered, last: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(super::START_TIMEOUT_SECS);
        while self.head < last {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(remaining, messages.next()).await;
            let first = next
                .map_err(|_| format!("catching up: stream at {last}, applied {} before the deadline", self.head))?
                .ok_or("the consumer ended")?
                .map_err(|e| format!("consumer: {e}"))?;
            self.apply_messages(first, messages)?;
        }
        Ok(())
    }

    /// Apply `first` and every message already buffered (up to a bound) under one lock.
    fn apply_messages(
        &mut self,
        first: async_nats::jetstream::Message,
        messages: &mut pull::Ordered,
    ) -> Result<(), String> {
        let mut batch = vec![first];
        while batch.len() < APPLY_BATCH_MESSAGES {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                _ => break,
            }
        }
        let mut lines: Vec<(u64, Bytes)> = Vec::with_capacity(batch.len());
        for message in batch {
            let seq = message.info().map_err(|e| format!("message info: {e}"))?.stream_sequence;
            if seq <= self.head + lines.len() as u64 {
                continue; // applied already: idempotent by stream sequence
            }
            let expected = self.head + lines.len() as u64 + 1;
            if seq != expected {
                return Err(format!("stream gap: message {seq}, expected {expected}"));
            }
            lines.push((seq, message.message.payload.clone()));
        }
        if let Some((first_seq, _)) = lines.first() {
            let first_seq = *first_seq;
            let payloads: Vec<&[u8]> = lines.iter().map(|(_, p)| p.as_ref()).collect();
            let results = self.apply(first_seq, &payloads);
            self.publish(&results);
        }
        Ok(())
    }

    fn apply(&mut self, first_seq: u64, payloads: &[&[u8]]) -> Vec<Arc<SeqEffects>> {
        assert_eq!(first_seq, self.head + 1, "events are applied in stream order");
        let mut results = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            let seq = first_seq + i as u64;
            self.effects.clear();
            self.engine.apply_line(seq, payload, &mut self.effects);
            results.push(Arc::new(SeqEffects { seq, effects: self.effects.clone() }));
        }
        self.head = first_seq + payloads.len() as u64 - 1;
        self.publisher.after_batch(&self.shared.view, &self.engine);
        metrics::counter!(t::EVENTS_TOTAL, "outcome" => "applied").increment(payloads.len() as u64);
        results
    }

    fn publish(&self, results: &[Arc<SeqEffects>]) {
        let published: Vec<Arc<SeqEffects>> = results.iter().filter(|r| !r.effects.is_empty()).cloned().collect();
        self.shared.hub.publish(self.head, &published);
        self.shared.head_seq.store(self.head, Ordering::SeqCst);
        metrics::gauge!(t::JOURNAL_SEQ).set(self.head as f64);
    }

    /// A command reaching a follower: submissions are refused (the leader takes them).
    fn refuse(&mut self, command: Command) -> Option<Step> {
        match command {
            Command::Submit(submission) => {
                let reason = format!("this node follows stream {}; submit to the leader", self.options.stream);
                let _ = submission.reply.send(Err(SubmitError::Journal(reason)));
                None
            }
            Command::ClockTick => None,
            Command::Shutdown(done) => Some(Step::Stop(Some(done))),
        }
    }

    /// Sleep `pause`, still answering commands; `Some` on shutdown.
    async fn pause_answering(&mut self, pause: Duration) -> Option<Step> {
        let until = tokio::time::Instant::now() + pause;
        loop {
            match tokio::time::timeout_at(until, self.receiver.recv()).await {
                Err(_) => return None,
                Ok(None) => return Some(Step::Stop(None)),
                Ok(Some(command)) => {
                    if let Some(step) = self.refuse(command) {
                        return Some(step);
                    }
                }
            }
        }
    }

    /// Leader: take submissions in batches, publish, apply, answer; renew the lease.
    async fn lead(&mut self, mut revision: u64) -> Step {
        metrics::gauge!(JETSTREAM_LEADER).set(1.0);
        self.must_lead_by = None;
        self.signal_ready(Ok(()));
        let renew_every = self.log.lease_duration / 3;
        let mut renew_at = tokio::time::Instant::now() + renew_every;
        loop {
            if tokio::time::Instant::now() >= renew_at {
                let value = Bytes::from(self.options.node_id.clone().into_bytes());
                match self.log.lease.update(LEASE_KEY, value, revision).await {
                    Ok(next) => revision = next,
                    Err(error) => {
                        tracing::warn!(%error, "lease renewal failed: stepping down");
                        return Step::Follow;
                    }
                }
                renew_at = tokio::time::Instant::now() + renew_every;
            }
            let idle_publish_at = tokio::time::Instant::now() + IDLE_PUBLISH_DELAY;
            let wake_at = if self.publisher.behind(&self.engine) { renew_at.min(idle_publish_at) } else { renew_at };
            let command = match tokio::time::timeout_at(wake_at, self.receiver.recv()).await {
                Err(_) => {
                    self.publisher.current(&self.shared.view, &self.engine);
                    continue;
                }
                Ok(None) => return self.release(revision, None).await,
                Ok(Some(command)) => command,
            };
            let mut batch = Batch::default();
            let mut shutdown = batch.take(command, &self.section);
            while shutdown.is_none() && batch.events < self.section.max_batch_events {
                match self.receiver.try_recv() {
                    Ok(command) => shutdown = batch.take(command, &self.section),
                    Err(_) => break,
                }
            }
            let committed = self.commit(batch).await;
            self.housekeeping();
            if shutdown.is_some() {
                return self.release(revision, shutdown).await;
            }
            if let Err(reason) = committed {
                tracing::warn!(%reason, head = self.head, "publish failed: stepping down to resynchronize");
                metrics::counter!(JETSTREAM_STEP_DOWNS_TOTAL).increment(1);
                return Step::Follow;
            }
        }
    }

    /// Give up the lease (graceful stop: a replica takes over at once, not after the lease).
    async fn release(&mut self, revision: u64, done: Option<oneshot::Sender<()>>) -> Step {
        if let Err(error) = self.log.lease.delete_expect_revision(LEASE_KEY, Some(revision)).await {
            tracing::warn!(%error, "could not release the lease (it lapses by itself)");
        }
        Step::Stop(done)
    }

    fn clock_line(&self) -> Vec<u8> {
        let ts = wall_clock_ms().saturating_sub(self.section.clock_lag_ms).max(self.engine.last_ts());
        format!(r#"{{"type":"clock","ts":{ts}}}"#).into_bytes()
    }

    /// Publish the batch (seq N expects last N − 1), apply the acknowledged prefix, answer
    /// every submission wholly inside it; the rest get an error (their outcome is unknown:
    /// the stream decides, and every node applies what it holds).
    async fn commit(&mut self, batch: Batch) -> Result<(), String> {
        if batch.submissions.is_empty() && !batch.clock {
            return Ok(());
        }
        let clock = batch.clock.then(|| self.clock_line());
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(batch.events + 1);
        payloads.extend(clock.as_deref());
        for submission in &batch.submissions {
            payloads.extend(submission.lines.iter().map(Vec::as_slice));
        }
        let first_seq = self.head + 1;
        let (acknowledged, failure) = self.publish_all(first_seq, &payloads).await;
        metrics::histogram!(t::COMMIT_BATCH_EVENTS).record(payloads.len() as f64);
        let results = if acknowledged > 0 { self.apply(first_seq, &payloads[..acknowledged]) } else { Vec::new() };
        self.publish(&results);
        let mut offset = usize::from(clock.is_some());
        for submission in batch.submissions {
            let end = offset + submission.lines.len();
            let answer = if end <= acknowledged {
                Ok(results[offset..end].to_vec())
            } else {
                let reason = failure.clone().unwrap_or_default();
                Err(SubmitError::Journal(format!("the stream did not acknowledge: {reason} (outcome unknown)")))
            };
            offset = end;
            let _ = submission.reply.send(answer);
        }
        failure.map_or(Ok(()), Err)
    }

    /// Publish in windows; returns how many leading payloads the stream acknowledged at their
    /// seq, and the first failure.
    async fn publish_all(&self, first_seq: u64, payloads: &[&[u8]]) -> (usize, Option<String>) {
        let mut acknowledged = 0usize;
        for window in payloads.chunks(PUBLISH_WINDOW_MESSAGES) {
            let mut pending = Vec::with_capacity(window.len());
            for payload in window {
                let seq = first_seq + (acknowledged + pending.len()) as u64;
                let publish = Publish::build()
                    .payload(Bytes::copy_from_slice(payload))
                    .message_id(message_id(seq, payload))
                    .expected_last_sequence(seq - 1);
                match self.log.context.send_publish(self.log.subject.clone(), publish).await {
                    Ok(ack) => pending.push((seq, ack)),
                    Err(e) => return (acknowledged, Some(format!("publish of seq {seq}: {e}"))),
                }
            }
            for (seq, ack) in pending {
                match ack.await {
                    Ok(ack) if ack.sequence == seq && !ack.duplicate => acknowledged += 1,
                    Ok(ack) => {
                        return (
                            acknowledged,
                            Some(format!("seq {seq} acknowledged as {} (dup {})", ack.sequence, ack.duplicate)),
                        )
                    }
                    Err(e) => return (acknowledged, Some(format!("seq {seq}: {e}"))),
                }
            }
        }
        (acknowledged, None)
    }

    /// Snapshots every N events or T seconds (a copy handed to the worker, which also scans risk).
    fn housekeeping(&mut self) {
        let now = Instant::now();
        let due_by_count = self.head >= self.last_snapshot_seq + self.section.snapshot_every_events;
        let due_by_time = self.head > self.last_snapshot_seq
            && now.duration_since(self.last_snapshot_at) >= Duration::from_secs(self.section.snapshot_every_secs);
        if !(due_by_count || due_by_time) {
            return;
        }
        let view = self.publisher.current(&self.shared.view, &self.engine);
        if self.worker.offer(Job { seq: self.head, view, snapshot: true }) {
            self.last_snapshot_seq = self.head;
            self.last_snapshot_at = now;
        }
    }

    async fn stop(&mut self) {
        self.worker.finish();
        let written = self.shared.snapshot_seq.load(Ordering::SeqCst);
        if self.head > written && self.ready.is_none() {
            worker::write_snapshot(&self.snapshot_dir, &self.shared.snapshot_seq, self.head, &self.engine);
        }
        self.publisher.current(&self.shared.view, &self.engine);
        self.signal_ready(Err("stopped before it was ready".into()));
        tracing::info!(head_seq = self.head, "replica stopped");
    }
}

#[derive(Default)]
struct Batch {
    clock: bool,
    submissions: Vec<Submission>,
    events: usize,
}

impl Batch {
    fn take(&mut self, command: Command, section: &ServerSection) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Submit(submission) => {
                self.events += submission.lines.len();
                self.submissions.push(submission);
                None
            }
            Command::ClockTick => {
                self.clock = section.clock_interval_ms > 0;
                None
            }
            Command::Shutdown(done) => Some(done),
        }
    }
}
