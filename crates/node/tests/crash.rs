//! Crash test: the real `solvent-serve` process, several concurrent clients posting deposits with
//! unique amounts, SIGKILL at random moments (25 cycles), restart. After every restart the
//! recovered state must hold every acknowledged event (same line at the same seq in the journal,
//! balances at least the acknowledged sums) and its state hash must equal a replay of the
//! exported journal up to the recovered seq. Seed: `SOLVENT_CRASH_SEED` (printed on failure).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

const CYCLES: usize = 25;
const CLIENTS: usize = 4;
const MAX_REQUESTS_PER_CLIENT_AND_CYCLE: usize = 400;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One acknowledged event.
#[derive(Clone, Debug)]
struct Acked {
    seq: u64,
    line: String,
    account: String,
    amount: u64,
}

struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn spawn(config: &Path, data_dir: &Path) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_solvent-serve"))
            .arg("--server-config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn solvent-serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("solvent-serve listening on http://") {
                    let _ = sender.send(url.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = receiver.recv_timeout(Duration::from_secs(60)).expect("the server reports its address");
        ServerProcess { child, addr }
    }

    /// SIGKILL (`Child::kill` sends SIGKILL on Unix) and reap.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    /// A failing assertion must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_loop(
    addr: SocketAddr,
    client: usize,
    first_amount: u64,
    ts: u64,
    stop: &AtomicBool,
    seed: u64,
) -> Vec<Acked> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut rng = Rng(seed | 1);
    let mut acked = Vec::new();
    let mut amount = first_amount;
    for _ in 0..MAX_REQUESTS_PER_CLIENT_AND_CYCLE {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let batch: Vec<(String, u64, String)> = (0..1 + rng.below(8))
            .map(|_| {
                amount += 1;
                let account = format!("c{client}-{}", amount % 3);
                (account.clone(), amount, deposit(ts, &account, &amount.to_string()))
            })
            .collect();
        let body = batch.iter().map(|(_, _, line)| line.as_str()).collect::<Vec<_>>().join("\n");
        let sent = agent
            .post(format!("http://{addr}/v1/events"))
            .header("Authorization", format!("Bearer {TREASURY}"))
            .send(body.as_str());
        let Ok(mut response) = sent else { break };
        let Ok(text) = response.body_mut().read_to_string() else { break };
        if response.status() != 200 {
            break;
        }
        let answer: serde_json::Value = serde_json::from_str(&text).expect("an acknowledgement is JSON");
        for (result, (account, amount, line)) in answer["results"].as_array().unwrap().iter().zip(batch) {
            assert_eq!(result["accepted"], true, "{result}");
            acked.push(Acked { seq: result["seq"].as_u64().unwrap(), line, account, amount });
        }
    }
    acked
}

/// Run clients until a random moment, then SIGKILL the server; returns what was acknowledged.
fn run_cycle(server: ServerProcess, cycle: usize, ts: u64, rng: &mut Rng) -> Vec<Acked> {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let stop = stop.clone();
            let first_amount = ((cycle * CLIENTS + client) as u64) * 1_000_000;
            let seed = rng.below(u64::MAX);
            std::thread::spawn(move || client_loop(addr, client, first_amount, ts, &stop, seed))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
    server.kill();
    stop.store(true, Ordering::SeqCst);
    handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect()
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let started = Instant::now();
    let seed = std::env::var("SOLVENT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash test seed {seed} (SOLVENT_CRASH_SEED to repeat)");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("server.toml");
    let server_lines = "clock_interval_ms = 20\nclock_lag_ms = 3600000\nsnapshot_every_events = 150\n\
                        segment_bytes = 65536\nrisk_scan_secs = 1\nrate_limit_per_sec = 100000.0\n\
                        rate_limit_burst = 100000.0";
    std::fs::write(&config, server_config_toml(server_lines)).unwrap();
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 - 1_000;
    let mut acked: Vec<Acked> = Vec::new();
    let mut recovered_points: Vec<(u64, String)> = Vec::new();
    for cycle in 0..CYCLES {
        let server = ServerProcess::spawn(&config, &data_dir);
        let (seq, hash) = state(server.addr);
        let max_acked = acked.iter().map(|a| a.seq).max().unwrap_or(0);
        assert!(seq >= max_acked, "seed {seed}: recovered seq {seq} < acknowledged seq {max_acked}");
        check_balances(server.addr, &acked, seed);
        recovered_points.push((seq, hash));
        acked.extend(run_cycle(server, cycle, ts, &mut rng));
    }
    let server = ServerProcess::spawn(&config, &data_dir);
    recovered_points.push(state(server.addr));
    check_balances(server.addr, &acked, seed);
    server.kill();
    check_journal(&data_dir, &acked, &recovered_points, seed);
    eprintln!(
        "crash test: {CYCLES} SIGKILL cycles, {} acknowledged events, journal of {} events, {:.1} s",
        acked.len(),
        recovered_points.last().unwrap().0,
        started.elapsed().as_secs_f64()
    );
    assert!(acked.len() > 100, "the clients got acknowledgements ({})", acked.len());
}

fn check_balances(addr: SocketAddr, acked: &[Acked], seed: u64) {
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    for a in acked {
        *sums.entry(&a.account).or_default() += a.amount;
    }
    for (account, sum) in sums {
        let balance = usdc_balance(addr, account).unwrap_or_else(|| panic!("seed {seed}: {account} lost"));
        let balance: u64 = balance.parse().expect("whole-number balances");
        assert!(balance >= sum, "seed {seed}: {account} holds {balance} < acknowledged {sum}");
    }
}

/// Every acknowledged line is at its seq; every recovered state equals a replay (as `solvent
/// replay` does it: `Engine::apply_line`, seq = line number) of the journal up to its seq.
fn check_journal(data_dir: &Path, acked: &[Acked], recovered_points: &[(u64, String)], seed: u64) {
    let mut exported = Vec::new();
    solvent_node::export::export_journal(data_dir, &mut exported).expect("the journal exports");
    let text = String::from_utf8(exported).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for a in acked {
        assert_eq!(
            lines.get(a.seq as usize - 1),
            Some(&a.line.as_str()),
            "seed {seed}: acknowledged seq {} changed",
            a.seq
        );
    }
    let config = solvent_node::datadir::stored_engine_config(data_dir).unwrap();
    let mut engine = solvent_core::Engine::new(&config);
    let mut effects = Vec::new();
    let mut points = recovered_points.to_vec();
    points.sort();
    let mut applied = 0u64;
    for (seq, hash) in points {
        while applied < seq {
            effects.clear();
            engine.apply_line(applied + 1, lines[applied as usize].as_bytes(), &mut effects);
            applied += 1;
        }
        assert_eq!(engine.state_hash(), hash, "seed {seed}: state recovered at seq {seq} differs from a replay");
    }
}
