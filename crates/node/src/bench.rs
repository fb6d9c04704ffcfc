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
    let addr = server.local_addr();
    let deadline = Instant::now() + options.run_duration;
    let per_client_max = (options.max_events_per_run / clients as u64).max(1);
    let base = format!("http://{}", server.local_addr());
    let period = Duration::from_secs_f64(1.0 / options.reader_rate_per_sec.clamp(0.01, 1_000.0));
    let started = Instant::now();
    // The writers' elapsed time, not the run's: writers that reach `max_events_per_run` stop
    // early while the readers poll on to the deadline.
    type Outcomes = (Vec<Result<ClientStats, String>>, Duration, Vec<Result<Vec<f64>, String>>);
    let (outcomes, elapsed, reads): Outcomes = std::thread::scope(|scope| {
        let writers = scope.spawn(move || {
            let outcomes = run_clients(addr, clients, batch, deadline, per_client_max);
            (outcomes, started.elapsed())
        });
        let pollers: Vec<_> = (0..readers)
            .map(|reader| {
                let base = base.clone();
                scope.spawn(move || reader_loop(&base, reader, period, deadline))
            })
            .collect();
        let (outcomes, elapsed) =
            writers.join().unwrap_or_else(|_| (vec![Err("client thread panicked".into())], started.elapsed()));
        (outcomes, elapsed, pollers.into_iter().map(join_thread).collect())
    });
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

/// A keep-alive client whose every phase is bounded by 30 s. Not one global timeout: with a global
/// (or per-call) timeout ureq resolves the host on a new thread for every request, even an IP
/// literal on a pooled connection, and that thread start was most of the single-event runs' CPU
/// (the clients, not the server, were the bottleneck).
fn agent() -> ureq::Agent {
    let phase = Some(Duration::from_secs(30));
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(phase)
        .timeout_send_request(phase)
        .timeout_send_body(phase)
        .timeout_recv_response(phase)
        .timeout_recv_body(phase)
        .build();
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

async fn client_loop(
    addr: std::net::SocketAddr,
    client: usize,
    batch: usize,
    deadline: Instant,
    max_events: u64,
) -> Result<ClientStats, String> {
    let mut connection = Connection::open(addr).await.map_err(|e| format!("client {client}: {e}"))?;
    let mut stats = ClientStats { events: 0, latencies_ms: Vec::with_capacity(1 << 16) };
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
        let answer = tokio::time::timeout(CLIENT_IO_TIMEOUT, connection.post_events(body.as_bytes()))
            .await
            .map_err(|_| format!("client {client}: no answer within {CLIENT_IO_TIMEOUT:?}"))?;
        let (status, text) = answer.map_err(|e| format!("client {client}: {e}"))?;
        stats.latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
        if status != 200 {
            return Err(format!("client {client}: HTTP {status}: {text}"));
        }
        let ack: Acknowledgement = serde_json::from_str(&text).map_err(|e| format!("client {client}: {e}"))?;
        stats.events += ack.accepted;
    }
    Ok(stats)
}

/// Every writing client of a run, each a task with its own connection, on one client thread
/// (as wrk drives many connections from few threads): on two cores, 64 client threads cost more
/// in wake-ups and context switches than the server they measured.
fn run_clients(
    addr: std::net::SocketAddr,
    clients: usize,
    batch: usize,
    deadline: Instant,
    max_events: u64,
) -> Vec<Result<ClientStats, String>> {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return vec![Err(format!("client runtime: {e}"))],
    };
    runtime.block_on(async {
        let tasks: Vec<_> =
            (0..clients).map(|client| tokio::spawn(client_loop(addr, client, batch, deadline, max_events))).collect();
        let mut outcomes = Vec::with_capacity(clients);
        for task in tasks {
            outcomes.push(task.await.unwrap_or_else(|e| Err(format!("client task: {e}"))));
        }
        outcomes
    })
}

/// Most bytes of one answer's head (status line and headers) the load client reads.
const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;
/// Most bytes of one answer's body the load client reads.
const MAX_RESPONSE_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How long the load client waits to connect or for one answer before it gives up.
const CLIENT_IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The load generator's HTTP/1.1 keep-alive connection for `POST /v1/events`: one request
/// written in one `write`, the answer's head parsed by `httparse`, the body read by its
/// Content-Length. A general client (ureq, a thread per connection) spent more CPU per request
/// than the server it measured, since on two cores the clients share the machine with the
/// server, so the single-event runs measured the clients; wrk-style load generators are lean
/// for the same reason.
struct Connection {
    stream: tokio::net::TcpStream,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr) -> Result<Self, String> {
        let stream = tokio::time::timeout(CLIENT_IO_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("no connection within {CLIENT_IO_TIMEOUT:?}"))?
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        Ok(Connection { stream, request: Vec::with_capacity(1024), buffer: Vec::with_capacity(4096) })
    }

    /// Post one body of JSON Lines; the answer's status and body.
    async fn post_events(&mut self, body: &[u8]) -> Result<(u16, String), String> {
        use std::io::Write;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.request.clear();
        let _ = write!(
            self.request,
            "POST /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {BENCH_TOKEN}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await.map_err(|e| format!("write: {e}"))?;
        self.buffer.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) =
                response.parse(&self.buffer).map_err(|e| format!("answer head: {e}"))?
            {
                let status = response.code.ok_or("answer without a status")?;
                let length = content_length(response.headers)?;
                if length > MAX_RESPONSE_BODY_BYTES {
                    return Err(format!("answer body of {length} bytes"));
                }
                while self.buffer.len() < head_len + length {
                    let read = self.stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                    if read == 0 {
                        return Err("connection closed inside an answer".into());
                    }
                    self.buffer.extend_from_slice(&chunk[..read]);
                }
                let text = String::from_utf8_lossy(&self.buffer[head_len..head_len + length]).into_owned();
                return Ok((status, text));
            }
            if self.buffer.len() > MAX_RESPONSE_HEAD_BYTES {
                return Err("answer head too long".into());
            }
            let read = self.stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if read == 0 {
                return Err("connection closed before an answer".into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

fn content_length(headers: &[httparse::Header<'_>]) -> Result<usize, String> {
    let header = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .ok_or("answer without Content-Length")?;
    std::str::from_utf8(header.value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "answer with a bad Content-Length".to_string())
}
