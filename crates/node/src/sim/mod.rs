//! Deterministic simulation testing of the storage path: the real journal writer, recovery and
//! snapshots run over a simulated disk ([`disk::SimFs`]) and a simulated clock under a random
//! adversarial workload ([`workload`]), with faults injected from the seed: torn and lost
//! writes, failed writes and fsyncs, a full disk, garbage in unsynced blocks, bit flips in
//! snapshots and in durable journal records, and crashes between any two steps.
//!
//! Checked, per seed: after every applied event the engine's invariants (positions sum to zero,
//! open interest is the sum of longs, fund and bad debt not negative, value conserved to the last
//! unit per asset); after every recovery, the journal still holds every acknowledged event in
//! order and the recovered state hash equals a fresh replay of the journal. Damage to durable
//! journal records must stop the start (it is never repaired silently). One seed replays the same
//! run exactly: `solvent sim --seeds 1 --seed S`.

pub mod disk;
pub mod rng;
pub mod workload;

use crate::datadir::Layout;
use crate::error::{JournalError, NodeError};
use crate::journal::{self, JournalWriter, SyncMode};
use crate::{recovery, snapshot};
use rng::Rng;
use solvent_core::{Config, Effect, Engine, Event};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Segment size in the simulation: small, so that rotation happens often.
const SEGMENT_BYTES: u64 = 4_096;
/// The server's tolerance for a ts ahead of its (here simulated) wall clock.
const MAX_TS_AHEAD_MS: u64 = 5_000;
/// A generous disk, and how small a full one gets.
const ROOMY_DISK_BYTES: u64 = 1 << 30;

/// What one seed did.
#[derive(Clone, Debug, Default)]
pub struct SeedOutcome {
    pub seed: u64,
    pub steps: usize,
    pub acknowledged: usize,
    pub crashes: u64,
    pub faults: u64,
    pub refused_by_server: u64,
    /// The run ended on injected damage to durable journal records, which recovery refused.
    pub detected_corruption: bool,
}

/// A seed that broke an invariant.
#[derive(Clone, Debug)]
pub struct SimFailure {
    pub seed: u64,
    pub step: usize,
    pub message: String,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed at step {}: {} (reproduce: solvent sim --seeds 1 --seed {})",
            self.seed, self.step, self.message, self.seed
        )
    }
}

/// Where the scratch directories go: memory when the machine has /dev/shm.
pub fn default_scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && std::fs::metadata(shm).is_ok_and(|m| !m.permissions().readonly()) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Run seeds `first..first + count`, `steps` steps each; stops at the first failure.
pub fn run_seeds(first: u64, count: u64, steps: usize, root: &Path) -> Result<Vec<SeedOutcome>, SimFailure> {
    (first..first.saturating_add(count)).map(|seed| run_seed(seed, steps, root)).collect()
}

/// One seed, in its own scratch directory (removed afterwards).
pub fn run_seed(seed: u64, steps: usize, root: &Path) -> Result<SeedOutcome, SimFailure> {
    let dir = root.join(format!("solvent-sim-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = Sim::new(seed, &dir).and_then(|mut sim| sim.run(steps));
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|(step, message)| SimFailure { seed, step, message })
}

type Step<T> = Result<T, (usize, String)>;

struct Sim {
    rng: Rng,
    workload: workload::Workload,
    config: Config,
    layout: Layout,
    disk: disk::SimFs,
    engine: Engine,
    journal: Option<JournalWriter>,
    /// Every acknowledged event, by seq - 1.
    acked: Vec<Vec<u8>>,
    outcome: SeedOutcome,
    step: usize,
    durable_damage: bool,
}

impl Sim {
    fn new(seed: u64, dir: &Path) -> Step<Sim> {
        let layout = Layout::new(dir);
        for d in [&layout.root, &layout.journal, &layout.snapshots] {
            std::fs::create_dir_all(d).map_err(|e| (0, format!("scratch directory {}: {e}", d.display())))?;
        }
        let rates = disk::FaultRates { write_error: 40, fsync_error: 40 };
        let config = Config::embedded_default();
        let mut sim = Sim {
            rng: Rng::new(seed),
            workload: workload::Workload::new(seed),
            engine: Engine::new(&config),
            config,
            layout,
            disk: disk::SimFs::new(seed.wrapping_mul(31).wrapping_add(7), rates, ROOMY_DISK_BYTES),
            journal: None,
            acked: Vec::new(),
            outcome: SeedOutcome { seed, ..SeedOutcome::default() },
            step: 0,
            durable_damage: false,
        };
        sim.recover()?;
        Ok(sim)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Step<T> {
        Err((self.step, message.into()))
    }

    fn run(&mut self, steps: usize) -> Step<SeedOutcome> {
        for step in 0..steps {
            self.step = step;
            match self.rng.below(100) {
                0..=3 => self.crash_and_recover()?,
                4..=6 => self.snapshot()?,
                7 => self.disk.set_free_bytes(self.rng.below(2_000)), // the disk fills up
                _ => self.batch()?,
            }
            if self.outcome.detected_corruption {
                break;
            }
        }
        self.outcome.steps = self.step + 1;
        self.outcome.acknowledged = self.acked.len();
        self.outcome.faults = self.disk.faults_injected();
        Ok(self.outcome.clone())
    }

    /// A client's batch: lines that do not parse or are stamped too far ahead of the clock are
    /// refused before the journal (as the server does); the rest are journaled with one fsync,
    /// acknowledged, and applied, with the invariants checked after each event.
    fn batch(&mut self) -> Step<()> {
        let lines = self.workload.batch();
        let now_ms = self.workload.now_ms;
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(lines.len());
        for line in &lines {
            match Event::parse_line(line.as_bytes()) {
                Ok(event) if event.ts() <= now_ms.saturating_add(MAX_TS_AHEAD_MS) => payloads.push(line.as_bytes()),
                _ => self.outcome.refused_by_server += 1,
            }
        }
        if payloads.is_empty() {
            return Ok(());
        }
        let Some(journal) = self.journal.as_mut() else { return self.fail("no journal open") };
        if journal.append(&payloads, SyncMode::Group).is_err() {
            // Nothing of the batch is acknowledged; the server stops writing until restarted.
            return self.crash_and_recover();
        }
        let mut effects: Vec<Effect> = Vec::new();
        for payload in payloads {
            self.acked.push(payload.to_vec());
            effects.clear();
            self.engine.apply_line(self.acked.len() as u64, payload, &mut effects);
            if let Err(message) = check_invariants(&self.engine) {
                return self.fail(format!("after seq {}: {message}", self.acked.len()));
            }
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Step<()> {
        let seq = self.acked.len() as u64;
        if seq == 0 {
            return Ok(());
        }
        match snapshot::write(&self.layout.snapshots, seq, &self.engine) {
            Ok(_) => Ok(()),
            Err(error) => self.fail(format!("snapshot at seq {seq}: {error}")),
        }
    }

    /// Crash: the writer and the engine are gone, the disk keeps what the faults leave.
    fn crash_and_recover(&mut self) -> Step<()> {
        self.outcome.crashes += 1;
        self.journal = None;
        self.engine = Engine::new(&self.config);
        if let Err(error) = self.damage_snapshots() {
            return self.fail(format!("damaging snapshots: {error}"));
        }
        if self.rng.below(60) == 0 {
            self.durable_damage |= self.flip_durable_journal_bit().map_err(|e| (self.step, e.to_string()))?;
        }
        if let Err(error) = self.disk.crash() {
            return self.fail(format!("simulated crash: {error}"));
        }
        self.disk.set_free_bytes(ROOMY_DISK_BYTES);
        self.recover()
    }

    /// A snapshot write cut short (a temp file left) and a bit flip in the newest snapshot.
    fn damage_snapshots(&mut self) -> std::io::Result<()> {
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(&self.layout.snapshots)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        if self.rng.below(4) == 0 {
            let temp = self.layout.snapshots.join(format!(".{}.tmp", snapshot::snapshot_file_name(u64::MAX >> 1)));
            std::fs::write(temp, b"SOLVSNP\n partial")?;
        }
        if let Some(newest) = names.iter().rev().find(|p| p.extension().is_some_and(|e| e == "snap")) {
            if self.rng.below(4) == 0 {
                let mut bytes = std::fs::read(newest)?;
                let at = self.rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << self.rng.below(8);
                std::fs::write(newest, bytes)?;
            }
        }
        Ok(())
    }

    /// Flip a bit inside a durable record that is not the journal's last (the last one's damage
    /// is the documented case that refuses or drops by its shape); returns whether it did.
    fn flip_durable_journal_bit(&mut self) -> std::io::Result<bool> {
        let mut records: Vec<(PathBuf, usize, usize)> = Vec::new();
        for segment in journal::list_segments(&self.layout.journal).map_err(std::io::Error::other)? {
            let data = std::fs::read(&segment.path)?;
            let mut offset = journal::format::SEGMENT_HEADER_BYTES;
            while let Ok(record) = journal::format::decode_record(&data, offset) {
                records.push((segment.path.clone(), offset, record.end));
                offset = record.end;
            }
        }
        records.pop();
        if records.is_empty() {
            return Ok(false);
        }
        let (path, start, end) = records[self.rng.below(records.len() as u64) as usize].clone();
        let mut data = std::fs::read(&path)?;
        let at = start + self.rng.below((end - start) as u64) as usize;
        data[at] ^= 1 << self.rng.below(8);
        std::fs::write(&path, data)?;
        Ok(true)
    }

    /// Recover and check: every acknowledged event is still in the journal, in order, and the
    /// recovered state equals a replay of the journal. A damaged whole last record that was never
    /// acknowledged is truncated as the start's message says (the operator's step).
    fn recover(&mut self) -> Step<()> {
        for _ in 0..16 {
            let fs: Arc<dyn journal::JournalFs> = Arc::new(self.disk.clone());
            match recovery::recover(&self.layout, &self.config, fs, SEGMENT_BYTES) {
                Ok(recovered) => return self.check_recovered(recovered),
                Err(_) if self.durable_damage => {
                    self.outcome.detected_corruption = true;
                    return Ok(());
                }
                Err(NodeError::Journal(JournalError::Corrupt { path, offset, reason }))
                    if reason.contains("complete but its checksum fails") =>
                {
                    let first_lost = self.records_before(&path, offset)? + 1;
                    if first_lost <= self.acked.len() as u64 {
                        return self.fail(format!("acknowledged seq {first_lost} damaged without an injected fault"));
                    }
                    let file = std::fs::OpenOptions::new().write(true).open(&path);
                    file.and_then(|f| f.set_len(offset)).map_err(|e| (self.step, e.to_string()))?;
                }
                Err(NodeError::Journal(JournalError::Io { .. })) => {
                    // An injected I/O fault during the start (opening the next segment): the
                    // start fails cleanly and is tried again, as an operator would.
                    self.disk.crash().map_err(|e| (self.step, e.to_string()))?;
                }
                Err(error) => return self.fail(format!("recovery refused without durable damage: {error}")),
            }
        }
        self.fail("recovery kept refusing")
    }

    /// How many records come before `offset` of segment `path` in the whole journal.
    fn records_before(&self, path: &Path, offset: u64) -> Step<u64> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let first_seq = journal::format::parse_segment_file_name(name).unwrap_or(1);
        let data = std::fs::read(path).map_err(|e| (self.step, e.to_string()))?;
        let mut at = journal::format::SEGMENT_HEADER_BYTES;
        let mut count = first_seq - 1;
        while (at as u64) < offset {
            let Ok(record) = journal::format::decode_record(&data, at) else { break };
            at = record.end;
            count += 1;
        }
        Ok(count)
    }

    fn check_recovered(&mut self, recovered: recovery::Recovered) -> Step<()> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let scan = journal::scan_journal(&self.layout.journal, &mut |_, payload| {
            lines.push(payload.to_vec());
            ControlFlow::Continue(())
        });
        if let Err(error) = scan {
            return self.fail(format!("journal unreadable after a successful recovery: {error}"));
        }
        if lines.len() < self.acked.len() {
            return self.fail(format!(
                "{} events acknowledged but the journal holds {}",
                self.acked.len(),
                lines.len()
            ));
        }
        if let Some(i) = (0..self.acked.len()).find(|&i| lines[i] != self.acked[i]) {
            return self.fail(format!("acknowledged seq {} differs in the recovered journal", i + 1));
        }
        if recovered.last_seq != lines.len() as u64 {
            return self.fail(format!("recovered seq {} but the journal holds {}", recovered.last_seq, lines.len()));
        }
        let mut replayed = Engine::new(&self.config);
        let mut effects = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            effects.clear();
            replayed.apply_line(i as u64 + 1, line, &mut effects);
        }
        if replayed.state_hash() != recovered.engine.state_hash() {
            return self.fail(format!("recovered state at seq {} differs from a replay of the journal", lines.len()));
        }
        if let Err(message) = check_invariants(&recovered.engine) {
            return self.fail(format!("after recovery: {message}"));
        }
        // Records that reached the disk without an acknowledgement are part of the history now.
        self.acked = lines;
        self.engine = recovered.engine;
        self.journal = Some(recovered.journal);
        Ok(())
    }
}

/// The engine's invariants, from its public state: zero-sum positions and open interest per
/// market, fund and bad debt not negative, and value conserved exactly per asset.
pub fn check_invariants(engine: &Engine) -> Result<(), String> {
    let add = |a: i128, b: i128| a.checked_add(b).ok_or_else(|| "sum overflows i128".to_string());
    let mut cost_total = 0i128;
    for (i, market) in engine.markets().iter().enumerate() {
        let (mut size_sum, mut longs) = (i128::from(market.inventory.size.raw()), 0i128);
        longs += i128::from(market.inventory.size.raw().max(0));
        cost_total = add(cost_total, market.inventory.cost.raw())?;
        for account in engine.accounts() {
            for p in account.positions.iter().filter(|p| p.market.0 as usize == i) {
                size_sum += i128::from(p.size.raw());
                longs += i128::from(p.size.raw().max(0));
                cost_total = add(cost_total, p.cost.raw())?;
            }
        }
        if size_sum != 0 {
            return Err(format!("market {}: positions sum to {size_sum} raw, not 0", market.name));
        }
        if longs != i128::from(market.open_interest.raw()) {
            return Err(format!(
                "market {}: open interest {} but longs sum to {longs} raw",
                market.name, market.open_interest
            ));
        }
    }
    if engine.insurance_fund().is_negative() || engine.bad_debt().is_negative() {
        return Err(format!("fund {} / bad debt {} negative", engine.insurance_fund(), engine.bad_debt()));
    }
    // Settlement: deposits - withdrawals = balances + uPnL + fund + fees - bad debt - what the
    // protocol paid for the collateral it holds, where the uPnL of a market at one mark is
    // -(sum of costs), its sizes summing to zero.
    let mut held = engine.insurance_fund().raw() + engine.fees_collected().raw() - engine.bad_debt().raw();
    for account in engine.accounts() {
        held = add(held, account.settlement.raw())?;
    }
    held -= cost_total;
    for holding in engine.collateral_holdings() {
        held -= holding.cost.raw();
    }
    let flows = engine.settlement_flows();
    let net = flows.deposited.raw() - flows.withdrawn.raw();
    if held != net {
        return Err(format!("settlement not conserved: net flows {net} raw, held {held} raw"));
    }
    for (i, asset) in engine.assets().iter().enumerate() {
        let id = solvent_core::state::AssetId(i as u16);
        let per_size = solvent_core::Quote::ONE_RAW / i128::from(solvent_core::Size::ONE_RAW);
        let mut balance = 0i128;
        for account in engine.accounts() {
            balance = add(balance, i128::from(account.collateral_balance(id).raw()) * per_size)?;
        }
        balance = add(balance, i128::from(engine.collateral_holding(id).size.raw()) * per_size)?;
        let flows = engine.asset_flows(id);
        if balance != flows.deposited.raw() - flows.withdrawn.raw() {
            return Err(format!("{}: balances {balance} raw, net flows differ", asset.name));
        }
    }
    Ok(())
}
