//! NATS JetStream as the journal: a leader and hot replicas on a real `nats-server -js` (started
//! here on a free loopback port with its own store directory, stopped by its pid).
//!
//! - `replicas_match_one_engine_through_a_crash`: the Black Thursday example (liquidations,
//!   auctions, ADL, socialized loss) posted to the leader; both replicas and the stream replayed
//!   by one engine have the leader's state hash, and the stream holds the file's lines in order.
//! - `failover_under_load_loses_nothing_acknowledged`: three `solvent-serve --follow` processes;
//!   the leader is killed with SIGKILL at random moments (10 times; a replica too every third
//!   time) while clients post; every acknowledged event is in the stream exactly once, at the
//!   seq it was acknowledged at, and every node (restarted from its snapshot and the stream) has
//!   the hash of a replay of the stream; `solvent-serve export-stream` writes the same lines.
//!   Seed: `SOLVENT_FAILOVER_SEED`.
//! - `second_sequencer_cannot_interleave` and `leader_start_refused_while_lease_held`.
//!
//! Outside CI (`SOLVENT_CI` unset) the tests skip loudly when `nats-server` is absent; in CI its
//! absence is a failure.

mod support;

use serde_json::Value;
use solvent_node::auth::{hash_token, Role};
use solvent_node::jetstream::{self, JetStreamOptions};
use solvent_node::{NodeSettings, RunningServer, ServerSection, StartOptions, TokenSpec};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ORACLE: &str = "tok-oracle";
const MATCHER: &str = "tok-matcher";
const TREASURY: &str = "tok-treasury";
const BACKSTOP: &str = "tok-backstop";
const ADMIN: &str = "tok-admin";
const VIEWER: &str = "tok-viewer";
const FAILOVER_CYCLES: usize = 10;
const FAILOVER_LEASE_MS: u64 = 600;
const TIME_BUDGET: Duration = Duration::from_secs(100);

fn token_specs() -> Vec<TokenSpec> {
    let spec = |name: &str, role, token: &str, sources: &[&str], bidders: &[&str]| TokenSpec {
        name: name.into(),
        role,
        token_blake3: hash_token(token),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        bidders: bidders.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        spec("oracle", Role::Oracle, ORACLE, &["s1", "s2", "s3", "s4", "s5"], &[]),
        spec("matcher", Role::Matcher, MATCHER, &[], &[]),
        spec("treasury", Role::Treasury, TREASURY, &[], &[]),
        spec("backstop", Role::Backstop, BACKSTOP, &[], &["mm1", "mm2", "mm3"]),
        spec("admin", Role::Admin, ADMIN, &[], &[]),
        spec("viewer", Role::Viewer, VIEWER, &[], &[]),
    ]
}

fn find_nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join("nats-server")).find(|p| p.is_file())
}

/// A `nats-server -js` on a free loopback port with its own store directory; killed by pid on drop.
struct NatsServer {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// `None` (after a loud note) when the binary is absent outside CI; a failure in CI.
    fn start() -> Option<NatsServer> {
        let Some(binary) = find_nats_server() else {
            assert!(
                std::env::var_os("SOLVENT_CI").is_none(),
                "nats-server is not installed (CI installs it: apt-get install -y nats-server)"
            );
            eprintln!("SKIPPED: nats-server not found (apt-get install -y nats-server); JetStream tests did not run");
            return None;
        };
        let store = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let stderr = child.stderr.take().unwrap();
        let (sender, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server is ready") {
                    let _ = sender.send(());
                }
            }
        });
        ready.recv_timeout(Duration::from_secs(30)).expect("nats-server is ready");
        Some(NatsServer { child, url: format!("nats://127.0.0.1:{port}"), _store: store })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn section() -> ServerSection {
    ServerSection {
        listen: "127.0.0.1:0".into(),
        clock_interval_ms: 0,
        snapshot_every_events: 1_000,
        snapshot_every_secs: 3_600,
        rate_limit_per_sec: 1_000_000.0,
        rate_limit_burst: 1_000_000.0,
        ..ServerSection::default()
    }
}

fn js_options(nats: &NatsServer, stream: &str, node: &str, follow: bool) -> JetStreamOptions {
    let mut options = JetStreamOptions::new(nats.url.clone(), node);
    options.stream = stream.into();
    options.follow = follow;
    options.lease_ms = 1_000;
    options
}

fn start_node(dir: &Path, options: JetStreamOptions) -> Result<RunningServer, solvent_node::NodeError> {
    let settings = NodeSettings::build(section(), token_specs()).expect("valid settings");
    let mut start = StartOptions::new(dir.to_path_buf(), settings);
    start.jetstream = Some(options);
    RunningServer::start(start)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn post(agent: &ureq::Agent, addr: SocketAddr, token: &str, body: &str) -> Option<(u16, Value)> {
    let mut response = agent
        .post(format!("http://{addr}/v1/events"))
        .header("Authorization", format!("Bearer {token}"))
        .content_type("application/x-ndjson")
        .send(body)
        .ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

fn state(addr: SocketAddr) -> Option<(u64, String)> {
    let mut response = agent()
        .get(format!("http://{addr}/v1/state"))
        .header("Authorization", format!("Bearer {VIEWER}"))
        .call()
        .ok()?;
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
    Some((body["seq"].as_u64()?, body["state_hash"].as_str()?.to_string()))
}

/// Wait until every node reports seq `head`; their (seq, hash).
fn wait_for_heads(addrs: &[SocketAddr], head: u64) -> Vec<(u64, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states: Vec<Option<(u64, String)>> = addrs.iter().map(|a| state(*a)).collect();
        if states.iter().all(|s| s.as_ref().is_some_and(|(seq, _)| *seq == head)) {
            return states.into_iter().map(Option::unwrap).collect();
        }
        assert!(Instant::now() < deadline, "nodes did not reach seq {head}: {states:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state hash of one engine (the default configuration) fed `lines`.
fn replay_hash(lines: &[Vec<u8>]) -> String {
    let mut input = Vec::new();
    for line in lines {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let config = solvent_core::Config::from_toml(solvent_core::DEFAULT_CONFIG_TOML).unwrap();
    solvent_node::export::replay_lines(&config, &mut input.as_slice()).expect("replay").state_hash()
}

fn token_for(line: &str) -> &'static str {
    let kind = line.split("\"type\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("");
    match kind {
        "price" => ORACLE,
        "trade" => MATCHER,
        "deposit" | "withdraw" | "fund_deposit" => TREASURY,
        "auction_take" => BACKSTOP,
        _ => ADMIN,
    }
}

#[test]
fn replicas_match_one_engine_through_a_crash() {
    let Some(nats) = NatsServer::start() else { return };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let leader = start_node(dirs[0].path(), js_options(&nats, "CRASH", "leader", false)).expect("leader starts");
    let followers: Vec<RunningServer> = (1..3)
        .map(|i| start_node(dirs[i].path(), js_options(&nats, "CRASH", &format!("f{i}"), true)).expect("follower"))
        .collect();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/black_thursday.jsonl"))
        .expect("example");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let agent = agent();
    let mut next_seq = 1u64;
    let mut start = 0;
    while start < lines.len() {
        let token = token_for(lines[start]);
        let mut end = start + 1;
        while end < lines.len() && end - start < 400 && token_for(lines[end]) == token {
            end += 1;
        }
        let (status, answer) = post(&agent, leader.local_addr(), token, &lines[start..end].join("\n")).unwrap();
        assert_eq!(status, 200, "{answer}");
        for result in answer["results"].as_array().unwrap() {
            assert_eq!(result["seq"].as_u64(), Some(next_seq), "{result}");
            next_seq += 1;
        }
        start = end;
    }
    let head = lines.len() as u64;
    assert_eq!(next_seq, head + 1);
    let mut addrs = vec![leader.local_addr()];
    addrs.extend(followers.iter().map(RunningServer::local_addr));
    let states = wait_for_heads(&addrs, head);
    let stream = jetstream::export_stream(&nats.url, "CRASH").expect("export");
    assert_eq!(stream.len(), lines.len());
    for (i, (stored, line)) in stream.iter().zip(&lines).enumerate() {
        assert_eq!(stored.as_slice(), line.as_bytes(), "seq {}", i + 1);
    }
    let expected = replay_hash(&stream);
    for (i, (_, hash)) in states.iter().enumerate() {
        assert_eq!(hash, &expected, "node {i} differs from one engine fed the same events");
    }
    let effects = support::get(leader.local_addr(), Some(VIEWER), "/v1/insurance").1;
    eprintln!("crash replicated to 2 followers; {head} events; insurance {effects}");
    for follower in followers {
        follower.shutdown().unwrap();
    }
    leader.shutdown().unwrap();
    // A restart reads its snapshot and the stream's tail and reaches the same hash.
    let again = start_node(dirs[1].path(), js_options(&nats, "CRASH", "f1", true)).expect("restart");
    assert_eq!(again.head_seq(), head);
    assert_eq!(again.state_hash(), expected);
    again.shutdown().unwrap();
}

#[test]
fn second_sequencer_cannot_interleave() {
    let Some(nats) = NatsServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let leader = start_node(dir.path(), js_options(&nats, "FENCE", "leader", false)).expect("leader starts");
    let agent = agent();
    let line = support::deposit(1, "alice", "10");
    let (status, answer) = post(&agent, leader.local_addr(), TREASURY, &line).unwrap();
    assert_eq!(status, 200, "{answer}");
    // Another writer that believes the stream is empty is refused by the server.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let refused = runtime.block_on(async {
        let client = async_nats::connect(nats.url.as_str()).await.unwrap();
        let context = async_nats::jetstream::new(client);
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(bytes::Bytes::from(support::deposit(1, "mallory", "99")))
            .message_id(jetstream::message_id(1, b"x"))
            .expected_last_sequence(0);
        context.send_publish("fence.events", publish).await.unwrap().await
    });
    assert!(refused.is_err(), "a publish expecting a stale last sequence must be refused: {refused:?}");
    let (status, answer) = post(&agent, leader.local_addr(), TREASURY, &support::deposit(2, "bob", "5")).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["seq"].as_u64(), Some(2));
    let stream = jetstream::export_stream(&nats.url, "FENCE").unwrap();
    assert_eq!(stream.len(), 2);
    leader.shutdown().unwrap();
}

#[test]
fn leader_start_refused_while_lease_held() {
    let Some(nats) = NatsServer::start() else { return };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = start_node(a.path(), js_options(&nats, "LEASE", "first", false)).expect("leader starts");
    let second = start_node(b.path(), js_options(&nats, "LEASE", "second", false));
    let error = second.err().expect("a second leader must not start").to_string();
    assert!(error.contains("--follow"), "{error}");
    // A follower starts, refuses writes, and takes over when the leader stops (lease released).
    let follower = start_node(b.path(), js_options(&nats, "LEASE", "second", true)).expect("follower starts");
    let agent = agent();
    let (status, answer) = post(&agent, follower.local_addr(), TREASURY, &support::deposit(1, "a", "1")).unwrap();
    assert_eq!(status, 503, "{answer}");
    leader.shutdown().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = post(&agent, follower.local_addr(), TREASURY, &support::deposit(1, "a", "1")).unwrap();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the follower did not take over after a graceful stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    follower.shutdown().unwrap();
}

// ---- fail-over with real processes ----

struct NodeProcess {
    child: Child,
    addr: SocketAddr,
}

impl NodeProcess {
    fn spawn(config: &Path, data_dir: &Path, url: &str) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_solvent-serve"))
            .arg("--server-config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--nats", url, "--follow", "--stream", "FAILOVER", "--lease-ms"])
            .arg(FAILOVER_LEASE_MS.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn solvent-serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("solvent listening on http://") {
                    let _ = sender.send(url.parse::<SocketAddr>().unwrap());
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => NodeProcess { child, addr },
            Err(error) => {
                // Never leave the process behind a failed test.
                let _ = child.kill();
                let _ = child.wait();
                panic!("the node did not report its address: {error}");
            }
        }
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Shared by the client threads: node addresses (replaced on restart), acknowledged events,
/// and the time of the last acknowledgement.
struct Load {
    addrs: Mutex<Vec<SocketAddr>>,
    acked: Mutex<Vec<(u64, String)>>,
    last_ack_at: Mutex<Instant>,
    next_amount: AtomicUsize,
    stop: AtomicBool,
}

/// Post small batches of deposits with unique amounts to whichever node accepts them.
fn client_loop(load: &Load, client: usize) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(3)))
        .build()
        .into();
    let mut node = client;
    while !load.stop.load(Ordering::SeqCst) {
        let batch: Vec<String> = (0..4)
            .map(|_| {
                let amount = load.next_amount.fetch_add(1, Ordering::SeqCst);
                support::deposit(1, &format!("c{client}-{}", amount % 5), &amount.to_string())
            })
            .collect();
        let addr = {
            let addrs = load.addrs.lock().unwrap();
            addrs[node % addrs.len()]
        };
        match post(&agent, addr, TREASURY, &batch.join("\n")) {
            Some((200, answer)) => {
                let results = answer["results"].as_array().unwrap();
                let mut acked = load.acked.lock().unwrap();
                for (result, line) in results.iter().zip(batch) {
                    acked.push((result["seq"].as_u64().unwrap(), line));
                }
                *load.last_ack_at.lock().unwrap() = Instant::now();
            }
            _ => {
                node += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Which node accepts writes now (waits for one).
fn find_leader(load: &Load, agent: &ureq::Agent) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let addrs = load.addrs.lock().unwrap().clone();
        for (i, addr) in addrs.iter().enumerate() {
            if let Some((200, _)) = post(agent, *addr, ADMIN, r#"{"type":"clock","ts":1}"#) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn failover_under_load_loses_nothing_acknowledged() {
    let Some(nats) = NatsServer::start() else { return };
    let started = Instant::now();
    let seed = std::env::var("SOLVENT_FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("fail-over test seed {seed} (SOLVENT_FAILOVER_SEED to repeat)");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    let server_lines = "clock_interval_ms = 0\nsnapshot_every_events = 300\nrate_limit_per_sec = 1000000.0\n\
                        rate_limit_burst = 1000000.0";
    let mut text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{server_lines}\n");
    for spec in token_specs() {
        let role = serde_json::to_value(spec.role).unwrap();
        text.push_str(&format!(
            "[[tokens]]\nname = {:?}\nrole = {role}\ntoken_blake3 = {:?}\nsources = {:?}\nbidders = {:?}\n\n",
            spec.name, spec.token_blake3, spec.sources, spec.bidders
        ));
    }
    std::fs::write(&config, text).unwrap();
    let data_dirs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("node{i}"))).collect();
    let mut nodes: Vec<NodeProcess> = data_dirs.iter().map(|d| NodeProcess::spawn(&config, d, &nats.url)).collect();
    let load = Arc::new(Load {
        addrs: Mutex::new(nodes.iter().map(|n| n.addr).collect()),
        acked: Mutex::new(Vec::new()),
        last_ack_at: Mutex::new(Instant::now()),
        next_amount: AtomicUsize::new(1),
        stop: AtomicBool::new(false),
    });
    let agent = agent();
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let load = load.clone();
            std::thread::spawn(move || client_loop(&load, c))
        })
        .collect();
    let mut failover_ms: Vec<u128> = Vec::new();
    for cycle in 0..FAILOVER_CYCLES {
        assert!(started.elapsed() < TIME_BUDGET, "seed {seed}: over the time budget at cycle {cycle}");
        let leader = find_leader(&load, &agent);
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        let acked_before = load.acked.lock().unwrap().len();
        nodes[leader].kill();
        let killed_at = Instant::now();
        if cycle % 3 == 2 {
            let replica = (leader + 1 + rng.below(2) as usize) % 3;
            nodes[replica].kill();
            nodes[replica] = NodeProcess::spawn(&config, &data_dirs[replica], &nats.url);
            load.addrs.lock().unwrap()[replica] = nodes[replica].addr;
        }
        nodes[leader] = NodeProcess::spawn(&config, &data_dirs[leader], &nats.url);
        load.addrs.lock().unwrap()[leader] = nodes[leader].addr;
        let deadline = Instant::now() + Duration::from_secs(20);
        while *load.last_ack_at.lock().unwrap() <= killed_at {
            assert!(Instant::now() < deadline, "seed {seed}: no acknowledgement within 20 s of the kill");
            std::thread::sleep(Duration::from_millis(2));
        }
        failover_ms.push(load.last_ack_at.lock().unwrap().duration_since(killed_at).as_millis());
        assert!(load.acked.lock().unwrap().len() >= acked_before);
    }
    load.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let stream = jetstream::export_stream(&nats.url, "FAILOVER").expect("export");
    let acked = load.acked.lock().unwrap().clone();
    let mut count: BTreeMap<&[u8], usize> = BTreeMap::new();
    for line in &stream {
        *count.entry(line.as_slice()).or_default() += 1;
    }
    for (seq, line) in &acked {
        assert_eq!(
            stream[*seq as usize - 1],
            line.as_bytes(),
            "seed {seed}: acknowledged seq {seq} holds another event"
        );
        assert_eq!(count[line.as_bytes()], 1, "seed {seed}: {line} is in the stream more than once");
    }
    let out = dir.path().join("stream.jsonl");
    let exported = Command::new(env!("CARGO_BIN_EXE_solvent-serve"))
        .args(["export-stream", "--nats", &nats.url, "--stream", "FAILOVER", "--out"])
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .expect("run export-stream");
    assert!(exported.success());
    let file_lines: Vec<Vec<u8>> = std::fs::read(&out).unwrap().split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(&file_lines[..stream.len()], stream.as_slice(), "export-stream writes the stream, line N = seq N");
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let states = wait_for_heads(&addrs, stream.len() as u64);
    let expected = replay_hash(&stream);
    for (i, (_, hash)) in states.iter().enumerate() {
        assert_eq!(hash, &expected, "seed {seed}: node {i} differs from a replay of the stream");
    }
    for (i, data_dir) in data_dirs.iter().enumerate() {
        // Restarts began from a local snapshot, not from seq 1.
        let snapshots = std::fs::read_dir(data_dir.join("snapshots"))
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snap")))
            .count();
        assert!(snapshots > 0, "seed {seed}: node {i} wrote no snapshot");
    }
    failover_ms.sort();
    eprintln!(
        "fail-over: {FAILOVER_CYCLES} SIGKILLs of the leader, lease {FAILOVER_LEASE_MS} ms: kill to next \
         acknowledgement median {} ms, max {} ms; {} acknowledged events, stream of {}; {:.1} s",
        failover_ms[failover_ms.len() / 2],
        failover_ms[failover_ms.len() - 1],
        acked.len(),
        stream.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(acked.len() > 100, "the clients got acknowledgements ({})", acked.len());
}

/// Throughput on this machine (not a pass/fail target): `cargo test --release -p solvent-node
/// --test jetstream -- --ignored --nocapture jetstream_throughput`. The leader's acknowledged
/// events/s with 4 clients posting 1,000-event batches; then 1, 2 and 3 replicas started
/// together from an empty data directory, each consuming the whole stream (events/s each and
/// in total); one engine replaying the same lines in-process, and parsing them only.
#[test]
#[ignore]
fn jetstream_throughput() {
    let Some(nats) = NatsServer::start() else { return };
    let events: usize = std::env::var("SOLVENT_JS_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = start_node(leader_dir.path(), js_options(&nats, "BENCH", "leader", false)).expect("leader");
    let addr = leader.local_addr();
    let clients = 4;
    let per_client = events / clients;
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let agent = agent();
                let mut sent = 0;
                while sent < per_client {
                    let n = (per_client - sent).min(1_000);
                    let body: Vec<String> = (0..n)
                        .map(|i| support::deposit(1, &format!("acct-{c}-{}", (sent + i) % 10_000), "1"))
                        .collect();
                    let (status, answer) = post(&agent, addr, TREASURY, &body.join("\n")).unwrap();
                    assert_eq!(status, 200, "{answer}");
                    sent += n;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let leader_secs = started.elapsed().as_secs_f64();
    let total = (per_client * clients) as u64;
    println!(
        "| leader: acknowledged | {total} events | {leader_secs:.2} s | {:.0} events/s |",
        total as f64 / leader_secs
    );
    let expected = leader.state_hash();
    for replicas in 1..=3usize {
        let dirs: Vec<tempfile::TempDir> = (0..replicas).map(|_| tempfile::tempdir().unwrap()).collect();
        let started = Instant::now();
        let threads: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let path = dir.path().to_path_buf();
                let options = js_options(&nats, "BENCH", &format!("r{replicas}-{i}"), true);
                std::thread::spawn(move || {
                    let node = start_node(&path, options).expect("replica");
                    let hash = node.state_hash();
                    node.shutdown().unwrap();
                    hash
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), expected);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {replicas} replica(s) catching up together | {total} events each | {secs:.2} s | {:.0} events/s each, {:.0} in total |",
            total as f64 / secs,
            (total * replicas as u64) as f64 / secs
        );
    }
    let lines = jetstream::export_stream(&nats.url, "BENCH").unwrap();
    let started = Instant::now();
    assert_eq!(replay_hash(&lines), expected);
    let secs = started.elapsed().as_secs_f64();
    println!("| one engine, in-process replay | {total} events | {secs:.2} s | {:.0} events/s |", total as f64 / secs);
    // What a shard would pay for an event of another shard's account: parsing it.
    let started = Instant::now();
    let parsed = lines.iter().filter(|l| solvent_core::event::Event::parse_line(l).is_ok()).count();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(parsed as u64, total);
    println!("| parse only (no apply) | {total} events | {secs:.2} s | {:.0} events/s |", total as f64 / secs);
    leader.shutdown().unwrap();
}
