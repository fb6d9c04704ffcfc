//! The load test (loopback only, bounded in count and time): acknowledged events/s and request
//! latency (p50/p99) with group commit versus an fsync per event, in one run, and the group
//! commit runs again under a polling dashboard (readers that each GET an account, the state
//! hash, the markets and the insurance fund in turn at a fixed rate), alternating with the runs
//! without readers. Used by the `load` test (`SOLVENT_LOAD=1`) and `solvent serve bench`.

use crate::auth::Role;
use crate::error::NodeError;
use crate::journal::SyncMode;
use crate::server::{RunningServer, StartOptions};
use crate::settings::{NodeSettings, ServerSection, TokenSpec};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BENCH_TOKEN: &str = "bench-treasury-token";

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Concurrent HTTP clients (threads, keep-alive connections) of the batching runs.
    pub clients: usize,
    /// Concurrent clients of the single-event runs (group commit needs many to batch).
    pub single_event_clients: usize,
    /// Events per request for the batching runs.
    pub batch_events: usize,
    /// Each run stops after this long ...
    pub run_duration: Duration,
    /// ... or after this many acknowledged events.
    pub max_events_per_run: u64,
    /// Where the runs' data directories go (each is removed after its run).
    pub scratch_dir: PathBuf,
    /// Polling readers of the runs with a dashboard (0: no such runs).
    pub readers: usize,
    /// Requests per second of each reader.
    pub reader_rate_per_sec: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            clients: 4,
            single_event_clients: 64,
            batch_events: 1_000,
            run_duration: Duration::from_secs(5),
            max_events_per_run: 2_000_000,
            scratch_dir: std::env::temp_dir(),
            readers: 10,
            reader_rate_per_sec: 10.0,
        }
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct LoadRun {
    pub label: String,
    pub sync_mode: SyncMode,
    pub clients: usize,
    pub batch_events: usize,
    pub events: u64,
    pub requests: u64,
    pub elapsed: Duration,
    pub events_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Polling readers during the run, their answered reads and the reads' p99 latency.
    pub readers: usize,
    pub reads: u64,
    pub read_p99_ms: f64,
}

#[derive(Clone, Debug)]
pub struct LoadReport {
    pub runs: Vec<LoadRun>,
}

impl LoadReport {
    fn rate(&self, mode: SyncMode, batching: bool) -> f64 {
        let found =
            self.runs.iter().find(|r| r.sync_mode == mode && (r.batch_events > 1) == batching && r.readers == 0);
        found.map_or(0.0, |r| r.events_per_sec)
    }

    /// Group commit throughput with polling readers over the same run without them.
    pub fn with_readers_ratio(&self, batching: bool) -> Option<f64> {
        let pick = |readers: bool| {
            let runs: Vec<f64> = self
                .runs
                .iter()
                .filter(|r| r.sync_mode == SyncMode::Group && (r.batch_events > 1) == batching)
                .filter(|r| (r.readers > 0) == readers)
                .map(|r| r.events_per_sec)
                .collect();
            (!runs.is_empty()).then(|| runs.iter().sum::<f64>() / runs.len() as f64)
        };
        Some(pick(true)? / pick(false)?.max(f64::MIN_POSITIVE))
    }

    /// Group commit with batching clients over the per-event-fsync run with the same clients.
    pub fn speedup_same_clients(&self) -> f64 {
        self.rate(SyncMode::Group, true) / self.rate(SyncMode::PerEvent, true).max(f64::MIN_POSITIVE)
    }

    /// Group commit with batching clients over per-event fsync with single-event clients.
    pub fn speedup_over_single(&self) -> f64 {
        self.rate(SyncMode::Group, true) / self.rate(SyncMode::PerEvent, false).max(f64::MIN_POSITIVE)
    }

    pub fn best_events_per_sec(&self) -> f64 {
        self.rate(SyncMode::Group, true)
    }

    /// A Markdown table of the runs and the two ratios.
    pub fn to_markdown(&self) -> String {
        let mut text = String::from(
            "| run | commit | clients | events/request | readers | acked events | events/s | p50 ms | p99 ms | reads | read p99 ms |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for run in &self.runs {
            let mode = match run.sync_mode {
                SyncMode::Group => "group",
                SyncMode::PerEvent => "fsync per event",
            };
            let _ = writeln!(
                text,
                "| {} | {mode} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
                run.label,
                run.clients,
                run.batch_events,
                run.readers,
                run.events,
                run.events_per_sec,
                run.p50_ms,
                run.p99_ms,
                run.reads,
                run.read_p99_ms
            );
        }
        let _ = writeln!(
            text,
            "\nGroup commit (batching clients) / fsync per event: {:.1}x with the same clients, {:.1}x against \
             single-event clients.",
            self.speedup_same_clients(),
            self.speedup_over_single()
        );
        for (batching, what) in [(false, "single-event"), (true, "batching")] {
            if let Some(ratio) = self.with_readers_ratio(batching) {
                let _ = writeln!(
                    text,
                    "Group commit, {what} clients, with polling readers / without (mean of the alternating runs): {ratio:.3}."
                );
            }
        }
        text
    }
}

/// Run the four configurations one after the other, then (with readers) the group commit runs
/// twice more, alternating without and with the polling readers.
pub fn run_load(options: &LoadOptions) -> Result<LoadReport, NodeError> {
    let (batching, single) = (options.clients.max(1), options.single_event_clients.max(1));
    let mut plan = vec![
        ("fsync per event, batching clients", SyncMode::PerEvent, batching, options.batch_events, 0),
        ("fsync per event, single-event clients", SyncMode::PerEvent, single, 1, 0),
        ("group commit, single-event clients", SyncMode::Group, single, 1, 0),
        ("group commit, batching clients", SyncMode::Group, batching, options.batch_events, 0),
    ];
    let readers = options.readers.min(MAX_READERS);
    if readers > 0 {
        for _ in 0..2 {
            plan.push(("group commit, single-event clients + readers", SyncMode::Group, single, 1, readers));
            plan.push(("group commit, single-event clients", SyncMode::Group, single, 1, 0));
            plan.push((
                "group commit, batching clients + readers",
                SyncMode::Group,
                batching,
                options.batch_events,
                readers,
            ));
            plan.push(("group commit, batching clients", SyncMode::Group, batching, options.batch_events, 0));
        }
    }
    let mut runs = Vec::with_capacity(plan.len());
    for (i, (label, mode, clients, batch, readers)) in plan.into_iter().enumerate() {
        let dir = options.scratch_dir.join(format!("solvent-load-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let shape = RunShape { label, mode, clients, batch: batch.max(1), readers };
        let run = one_run(options, &dir, &shape);
        let _ = std::fs::remove_dir_all(&dir);
        runs.push(run?);
    }
    Ok(LoadReport { runs })
}

fn bench_settings(mode: SyncMode) -> Result<NodeSettings, NodeError> {
    let server = ServerSection {
        listen: "127.0.0.1:0".into(),
        sync_mode: mode,
        clock_interval_ms: 0,
        snapshot_every_events: u64::MAX / 2,
        snapshot_every_secs: 3_600,
        risk_scan_secs: 3_600,
        rate_limit_per_sec: 1e9,
        rate_limit_burst: 1e9,
        ..ServerSection::default()
    };
    let token = TokenSpec {
        name: "bench".into(),
        role: Role::Treasury,
        token_blake3: crate::auth::hash_token(BENCH_TOKEN),
        sources: Vec::new(),
        bidders: Vec::new(),
    };
    Ok(NodeSettings::build(server, vec![token])?)
}

/// Most polling readers of one run.
const MAX_READERS: usize = 256;

/// What one run varies.
struct RunShape {
    label: &'static str,
    mode: SyncMode,
    clients: usize,
    batch: usize,
    readers: usize,
}

fn one_run(options: &LoadOptions, dir: &std::path::Path, shape: &RunShape) -> Result<LoadRun, NodeError> {
    let RunShape { label, mode, clients, batch, readers } = *shape;
    let server = RunningServer::start(StartOptions::new(dir.to_path_buf(), bench_settings(mode)?))?;
    let url = format!("http://{}/v1/events", server.local_addr());
    let deadline = Instant::now() + options.run_duration;
    let per_client_max = (options.max_events_per_run / clients as u64).max(1);
    let base = format!("http://{}", server.local_addr());
    let period = Duration::from_secs_f64(1.0 / options.reader_rate_per_sec.clamp(0.01, 1_000.0));
    let started = Instant::now();
    type Outcomes = (Vec<Result<ClientStats, String>>, Vec<Result<Vec<f64>, String>>);
    let (outcomes, reads): Outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let url = url.clone();
                scope.spawn(move || client_loop(&url, client, batch, deadline, per_client_max))
            })
            .collect();
        let pollers: Vec<_> = (0..readers)
            .map(|reader| {
                let base = base.clone();
                scope.spawn(move || reader_loop(&base, reader, period, deadline))
            })
            .collect();
        (handles.into_iter().map(join_thread).collect(), pollers.into_iter().map(join_thread).collect())
    });
    let elapsed = started.elapsed();
    server.shutdown()?;
    let mut read_ms = Vec::new();
    for outcome in reads {
        read_ms.extend(outcome.map_err(NodeError::Other)?);
    }
    read_ms.sort_by(f64::total_cmp);
    let mut latencies_ms = Vec::new();
    let (mut events, mut requests) = (0u64, 0u64);
    for outcome in outcomes {
        let stats = outcome.map_err(NodeError::Other)?;
        events += stats.events;
        requests += stats.latencies_ms.len() as u64;
        latencies_ms.extend(stats.latencies_ms);
    }
    latencies_ms.sort_by(f64::total_cmp);
    let pick = |q: f64| quantile(&latencies_ms, q);
    Ok(LoadRun {
        label: label.to_string(),
        sync_mode: mode,
        clients,
        batch_events: batch,
        events,
        requests,
        elapsed,
        events_per_sec: events as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        readers,
        reads: read_ms.len() as u64,
        read_p99_ms: quantile(&read_ms, 0.99),
    })
}

fn join_thread<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    handle.join().unwrap_or_else(|_| Err("thread panicked".into()))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0)
}

fn agent() -> ureq::Agent {
    let config =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(30))).build();
    ureq::Agent::new_with_config(config)
}

/// A dashboard's poller: every `period`, the next of an account, the state hash, the markets and
/// the insurance fund (paced by the clock, not by the answers). The latencies of the reads.
fn reader_loop(base: &str, reader: usize, period: Duration, deadline: Instant) -> Result<Vec<f64>, String> {
    let agent = agent();
    let paths = [
        format!("/v1/accounts/load-0-{}", reader % 64),
        "/v1/state".into(),
        "/v1/markets".into(),
        "/v1/insurance".into(),
    ];
    let mut latencies_ms = Vec::new();
    let mut next = Instant::now();
    for round in 0usize.. {
        next += period;
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(now));
        let sent = Instant::now();
        let mut response = agent
            .get(format!("{base}{}", paths[round % paths.len()]))
            .header("Authorization", format!("Bearer {BENCH_TOKEN}"))
            .call()
            .map_err(|e| format!("reader {reader}: {e}"))?;
        let status = response.status();
        let _ = response.body_mut().read_to_string().map_err(|e| format!("reader {reader}: {e}"))?;
        if status != 200 && status != 404 {
            return Err(format!("reader {reader}: HTTP {status}"));
        }
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    Ok(latencies_ms)
}

struct ClientStats {
    events: u64,
    latencies_ms: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct Acknowledgement {
    accepted: u64,
}

fn client_loop(
    url: &str,
    client: usize,
    batch: usize,
    deadline: Instant,
    max_events: u64,
) -> Result<ClientStats, String> {
    let agent = agent();
    let mut stats = ClientStats { events: 0, latencies_ms: Vec::new() };
    let mut body = String::with_capacity(batch * 100);
    let mut round = 0u64;
    while Instant::now() < deadline && stats.events < max_events {
        body.clear();
        for i in 0..batch {
            let _ = writeln!(
                body,
                r#"{{"type":"deposit","ts":0,"account":"load-{client}-{}","asset":"USDC","amount":"1"}}"#,
                (round as usize + i) % 64
            );
        }
        round += 1;
        let sent = Instant::now();
        let mut response = agent
            .post(url)
            .header("Authorization", format!("Bearer {BENCH_TOKEN}"))
            .content_type("application/x-ndjson")
            .send(body.as_bytes())
            .map_err(|e| format!("client {client}: {e}"))?;
        let status = response.status();
        let text = response.body_mut().read_to_string().map_err(|e| format!("client {client}: {e}"))?;
        stats.latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
        if status != 200 {
            return Err(format!("client {client}: HTTP {status}: {text}"));
        }
        let ack: Acknowledgement = serde_json::from_str(&text).map_err(|e| format!("client {client}: {e}"))?;
        stats.events += ack.accepted;
    }
    Ok(stats)
}
