//! Durability and recovery: torn tails, corruption in the middle of the journal, corrupt
//! snapshots, segment rotation, and I/O failures (injected, and a real full or read-only tmpfs
//! where the test may mount one). Every recovered state is checked against a replay of the
//! exported journal.

mod support;

use serde_json::Value;
use solvent_node::error::JournalError;
use solvent_node::journal::format::{self, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use solvent_node::journal::{JournalFs, OsFs, SegmentFile};
use solvent_node::{snapshot, NodeError, ServerSection};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use support::*;

fn post_deposits(addr: std::net::SocketAddr, count: u64) {
    for i in 0..count {
        let (status, body) = post(addr, TREASURY, &deposit(0, &format!("acct-{}", i % 3), &format!("{}", i + 1)));
        assert_eq!(status, 200, "{body}");
    }
}

fn only_segment(dir: &Path) -> PathBuf {
    let segments = solvent_node::journal::list_segments(&dir.join("journal")).unwrap();
    assert_eq!(segments.len(), 1);
    segments[0].path.clone()
}

/// Byte offset of the record with `seq` in a segment that starts at seq 1.
fn record_offset(segment: &Path, seq: u64) -> usize {
    let data = std::fs::read(segment).unwrap();
    let mut offset = SEGMENT_HEADER_BYTES;
    for _ in 1..seq {
        offset = format::decode_record(&data, offset).unwrap().end;
    }
    offset
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}

fn assert_recovers_to_replay(dir: &Path, expected_seq: u64) {
    let server = start(dir, test_section());
    let (seq, hash) = state(server.local_addr());
    server.shutdown().unwrap();
    let (replayed, lines) = replay_journal(dir, None);
    assert_eq!(seq, expected_seq);
    assert_eq!(lines.len() as u64, expected_seq);
    assert_eq!(hash, replayed, "recovered state hash equals a replay of the journal");
}

/// Turns a complete record into what a torn write might leave.
type Tear = fn(&mut Vec<u8>);

#[test]
fn a_torn_tail_is_dropped_and_everything_acknowledged_survives() {
    let torn_writes: [(&str, Tear); 3] = [
        ("half a record", |tail| tail.truncate(tail.len() / 2)),
        ("a record cut inside its header", |tail| tail.truncate(7)),
        ("zero-filled blocks", |tail| tail.iter_mut().for_each(|b| *b = 0)),
    ];
    for (what, tear) in torn_writes {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), test_section());
        post_deposits(server.local_addr(), 10);
        server.shutdown().unwrap();
        let segment = only_segment(dir.path());
        let valid_len = std::fs::metadata(&segment).unwrap().len();
        let mut tail = Vec::new();
        format::encode_record(&mut tail, 11, deposit(0, "acct-0", "999").as_bytes());
        tear(&mut tail);
        append_bytes(&segment, &tail);
        assert_recovers_to_replay(dir.path(), 10);
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), valid_len, "{what}: the torn bytes are cut off");
    }
}

#[test]
fn a_flipped_byte_in_the_middle_of_the_journal_stops_the_start_naming_file_and_offset() {
    for (what, byte_in_record) in [("payload", RECORD_HEADER_BYTES + 5), ("length field", 2), ("seq field", 6)] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), test_section());
        post_deposits(server.local_addr(), 20);
        server.shutdown().unwrap();
        let segment = only_segment(dir.path());
        let offset = record_offset(&segment, 7);
        let mut data = std::fs::read(&segment).unwrap();
        data[offset + byte_in_record] ^= 0x40;
        std::fs::write(&segment, &data).unwrap();
        let error = try_start(dir.path(), test_section(), None).err().expect("refuses to start");
        match &error {
            NodeError::Journal(JournalError::Corrupt { path, offset: at, .. }) => {
                assert_eq!((path, *at), (&segment, offset as u64), "{what}");
            }
            other => panic!("{what}: expected a corruption error, got {other}"),
        }
        let message = error.to_string();
        assert!(message.contains(&format!("byte offset {offset}")), "{message}");
        assert!(message.contains(&segment.display().to_string()), "{message}");
        let (code, stderr) = run_binary_expecting_exit(dir.path());
        assert_eq!(code, Some(2), "the binary exits with an error");
        assert!(stderr.contains(&format!("byte offset {offset}")), "{what}: {stderr}");
    }
}

/// Start the real binary on `data_dir`; it must exit by itself within 30 s (it is killed and the
/// test fails otherwise). Returns its exit code and stderr.
fn run_binary_expecting_exit(data_dir: &Path) -> (Option<i32>, String) {
    let config = data_dir.join("server-test.toml");
    std::fs::write(&config, server_config_toml("")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_solvent-serve"))
        .arg("--server-config")
        .arg(&config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started on a corrupt journal");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let section = ServerSection { snapshot_every_events: 4, ..test_section() };
    let server = start(dir.path(), section.clone());
    for _ in 0..3 {
        post_deposits(server.local_addr(), 4);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.shutdown().unwrap();
    let snapshots_dir = dir.path().join("snapshots");
    let kept = snapshot::list(&snapshots_dir).unwrap();
    assert_eq!(kept.len(), 2, "the newest two are kept: {kept:?}");
    let (newest_seq, newest) = kept[1].clone();
    assert_eq!(newest_seq, 12, "shutdown writes a final snapshot");
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&newest, bytes).unwrap();
    let fallback = snapshot::load_newest_valid(&snapshots_dir, u64::MAX).unwrap().expect("the previous one");
    assert_eq!(fallback.seq, kept[0].0);
    assert!(fallback.seq < 12);
    assert_recovers_to_replay(dir.path(), 12);
    for (_, path) in snapshot::list(&snapshots_dir).unwrap() {
        std::fs::write(path, b"garbage").unwrap();
    }
    assert_recovers_to_replay(dir.path(), 12);
}

#[test]
fn segments_rotate_and_a_missing_segment_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let section = ServerSection { segment_bytes: 65_536, ..test_section() };
    let server = start(dir.path(), section.clone());
    let batch: Vec<String> = (0..700).map(|i| deposit(0, &format!("rotating-account-{}", i % 50), "1")).collect();
    for _ in 0..4 {
        assert_eq!(post(server.local_addr(), TREASURY, &batch.join("\n")).0, 200);
    }
    server.shutdown().unwrap();
    let segments = solvent_node::journal::list_segments(&dir.path().join("journal")).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    assert_recovers_to_replay(dir.path(), 2800);
    std::fs::remove_file(&segments[1].path).unwrap();
    match try_start(dir.path(), section, None) {
        Err(NodeError::Journal(JournalError::Gap { .. })) => {}
        other => panic!("expected a gap error, got {:?}", other.map(|_| ())),
    }
}

/// A filesystem whose segment writes can be made to fail like a full disk, and whose fsyncs can
/// be made to fail like a dying device.
struct FaultyFs {
    fail_writes: Arc<AtomicBool>,
    failing_syncs: Arc<AtomicU32>,
}

struct FaultyFile {
    inner: Box<dyn SegmentFile>,
    fail_writes: Arc<AtomicBool>,
    failing_syncs: Arc<AtomicU32>,
}

impl SegmentFile for FaultyFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            self.inner.write_all(&bytes[..bytes.len() / 2])?;
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let failing = self.failing_syncs.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing_syncs.store(failing - 1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.sync_data()
    }
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }
}

impl FaultyFs {
    fn wrap(&self, inner: Box<dyn SegmentFile>) -> Box<dyn SegmentFile> {
        let (fail_writes, failing_syncs) = (self.fail_writes.clone(), self.failing_syncs.clone());
        Box::new(FaultyFile { inner, fail_writes, failing_syncs })
    }
}

impl JournalFs for FaultyFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(self.wrap(OsFs.create_new(path)?))
    }
    fn open_at(&self, path: &Path, len_bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        Ok(self.wrap(OsFs.open_at(path, len_bytes)?))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        OsFs.sync_dir(dir)
    }
}

fn assert_journal_unavailable(addr: std::net::SocketAddr, body: &str) {
    let (status, response) = post(addr, TREASURY, body);
    assert_eq!(status, 503, "{response}");
    assert_eq!(response["error"], "journal_unavailable", "{response}");
}

#[test]
fn an_injected_write_or_fsync_error_acknowledges_nothing_and_stops_writes() {
    for fail_sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let fail_writes = Arc::new(AtomicBool::new(false));
        let failing_syncs = Arc::new(AtomicU32::new(0));
        let fs = Arc::new(FaultyFs { fail_writes: fail_writes.clone(), failing_syncs: failing_syncs.clone() });
        let server = try_start(dir.path(), test_section(), Some(fs)).unwrap();
        let addr = server.local_addr();
        assert_eq!(post(addr, TREASURY, &deposit(0, "alice", "100")).0, 200);
        if fail_sync {
            failing_syncs.store(1, Ordering::SeqCst);
        } else {
            fail_writes.store(true, Ordering::SeqCst);
        }
        assert_journal_unavailable(addr, &deposit(0, "alice", "5"));
        fail_writes.store(false, Ordering::SeqCst);
        assert_journal_unavailable(addr, &deposit(0, "alice", "7"));
        assert_eq!(usdc_balance(addr, "alice").as_deref(), Some("100"), "nothing unacknowledged was applied");
        let (status, health) = get(addr, None, "/v1/health");
        assert_eq!((status, &health["ready"]), (503, &Value::Bool(false)), "{health}");
        server.shutdown().unwrap();
        // The failed append was cut back, so the journal holds only the acknowledged event.
        assert_recovers_to_replay(dir.path(), 1);
    }
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.path().to_str()?])
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir })
    }
    fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}"), self.dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_tmpfs_answers_503_and_recovers_after_space_returns() {
    let Some(tmpfs) = Tmpfs::mount("256k") else {
        eprintln!("SKIPPED a_full_tmpfs_answers_503: cannot mount a tmpfs here (the injected-error test covers it)");
        return;
    };
    let data = tmpfs.dir.path().join("data");
    let server = start(&data, test_section());
    let addr = server.local_addr();
    assert_eq!(post(addr, TREASURY, &deposit(0, "alice", "100")).0, 200);
    let batch: Vec<String> = (0..3000).map(|i| deposit(0, &format!("filler-account-{i}"), "1")).collect();
    assert_journal_unavailable(addr, &batch.join("\n"));
    assert_journal_unavailable(addr, &deposit(0, "alice", "1"));
    assert_eq!(usdc_balance(addr, "alice").as_deref(), Some("100"));
    assert_eq!(get(addr, None, "/v1/health").0, 503);
    server.shutdown().unwrap();
    tmpfs.remount("size=16m");
    assert_recovers_to_replay(&data, 1);
}

#[test]
fn a_read_only_data_directory_refuses_to_start_with_a_clear_error() {
    let Some(tmpfs) = Tmpfs::mount("4m") else {
        eprintln!("SKIPPED a_read_only_data_directory: cannot mount a tmpfs here");
        return;
    };
    let data = tmpfs.dir.path().join("data");
    let server = start(&data, test_section());
    assert_eq!(post(server.local_addr(), TREASURY, &deposit(0, "alice", "100")).0, 200);
    server.shutdown().unwrap();
    tmpfs.remount("ro");
    let error = try_start(&data, test_section(), None).err().expect("refuses to start");
    let message = error.to_string();
    assert!(matches!(error, NodeError::DataDir { .. }), "{message}");
    assert!(message.contains("not writable") && message.contains("Read-only file system"), "{message}");
    tmpfs.remount("rw");
    assert_recovers_to_replay(&data, 1);
}

/// An engine-config.toml edited while the server was down is caught at the next start (the
/// snapshot holds the old parameters, so the state would no longer equal a replay of the journal
/// under the file); restoring the file starts again.
#[test]
fn an_edited_engine_config_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    post_deposits(server.local_addr(), 3);
    server.shutdown().unwrap();
    let path = dir.path().join(solvent_node::datadir::ENGINE_CONFIG_FILE);
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, original.replacen("im_factor = \"2\"", "im_factor = \"3\"", 1)).unwrap();
    let error = try_start(dir.path(), test_section(), None).err().expect("an edited config is refused").to_string();
    assert!(error.contains("was edited") && error.contains("engine-config.toml"), "{error}");
    std::fs::write(&path, &original).unwrap();
    let restarted = start(dir.path(), test_section());
    assert_eq!(state(restarted.local_addr()).0, 3);
}

/// The last record written whole and damaged since (a flipped payload byte) may have been
/// acknowledged: it is not dropped (its seq would be reused). The start is refused, naming the
/// seq, the file and the `truncate -s` that accepts the loss; after it, the start succeeds.
#[test]
fn a_damaged_complete_last_record_refuses_the_start_and_says_how_to_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    post_deposits(server.local_addr(), 10);
    server.shutdown().unwrap();
    // Remove the snapshot written at shutdown too: no later state vouches for the record.
    for entry in std::fs::read_dir(dir.path().join("snapshots")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let segment = only_segment(dir.path());
    let offset = record_offset(&segment, 10);
    let mut bytes = std::fs::read(&segment).unwrap();
    *bytes.last_mut().unwrap() ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let error = try_start(dir.path(), test_section(), None).err().expect("refused").to_string();
    assert!(error.contains("seq 10") && error.contains(&format!("truncate -s {offset}")), "{error}");
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(offset as u64).unwrap();
    assert_recovers_to_replay(dir.path(), 9);
}
