//! Appending to the journal: batches of records, one `fdatasync` per batch (group commit) or
//! one per record (the baseline mode), segment rotation, and rollback of a failed append.
//!
//! File access goes through [`JournalFs`] so tests can inject I/O errors (a full disk, a failing
//! fsync) without root or a special filesystem.

use super::format::{self, MAX_PAYLOAD_BYTES, SEGMENT_HEADER_BYTES};
use super::scan::TailSegment;
use crate::error::JournalError;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An open segment file.
pub trait SegmentFile: Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Make the written bytes (and the file length) durable: `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()>;
}

/// How the journal opens files and makes directory entries durable.
pub trait JournalFs: Send + Sync {
    /// Create a new segment file; it must not exist.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Open an existing segment for appending at `len_bytes` (the file is truncated to it).
    fn open_at(&self, path: &Path, len_bytes: u64) -> io::Result<Box<dyn SegmentFile>>;
    /// `fsync` a directory so that a created or renamed entry survives a crash.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

/// A segment file on the real filesystem.
pub struct OsSegmentFile(File);

impl SegmentFile for OsSegmentFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.0.set_len(len_bytes)
    }
}

impl JournalFs for OsFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(OsSegmentFile(OpenOptions::new().append(true).create_new(true).open(path)?)))
    }
    fn open_at(&self, path: &Path, len_bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().append(true).open(path)?;
        if file.metadata()?.len() != len_bytes {
            file.set_len(len_bytes)?;
            file.sync_data()?;
        }
        Ok(Box::new(OsSegmentFile(file)))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// When appended records are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// One `fdatasync` per batch of pending requests (group commit).
    Group,
    /// One `fdatasync` per record: the baseline the load test compares against.
    PerEvent,
}

/// Timing of one durable append.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppendStats {
    pub fsyncs: u32,
    pub fsync_time: Duration,
}

/// Appends records to the segment files of one directory.
pub struct JournalWriter {
    dir: PathBuf,
    fs: Arc<dyn JournalFs>,
    file: Box<dyn SegmentFile>,
    segment_first_seq: u64,
    segment_len_bytes: u64,
    segment_limit_bytes: u64,
    next_seq: u64,
    buffer: Vec<u8>,
    failed: Option<String>,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_path_buf(), source }
}

impl JournalWriter {
    /// Open for appending after a verified scan: at the end of `tail`, or a first segment.
    pub fn open(
        dir: &Path,
        fs: Arc<dyn JournalFs>,
        tail: Option<&TailSegment>,
        last_seq: u64,
        segment_limit_bytes: u64,
    ) -> Result<JournalWriter, JournalError> {
        let (file, segment_first_seq, segment_len_bytes) = match tail {
            Some(tail) => {
                let file = fs.open_at(&tail.path, tail.valid_len_bytes).map_err(io_at(&tail.path))?;
                (file, tail.first_seq, tail.valid_len_bytes)
            }
            None => (create_segment(dir, fs.as_ref(), last_seq + 1)?, last_seq + 1, SEGMENT_HEADER_BYTES as u64),
        };
        Ok(JournalWriter {
            dir: dir.to_path_buf(),
            fs,
            file,
            segment_first_seq,
            segment_len_bytes,
            segment_limit_bytes: segment_limit_bytes.max(SEGMENT_HEADER_BYTES as u64 + 1),
            next_seq: last_seq + 1,
            buffer: Vec::with_capacity(1 << 20),
            failed: None,
        })
    }

    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Append `payloads` as records `next_seq..`, durable before this returns `Ok`. On error
    /// nothing is acknowledged; the segment is cut back to its last durable length when
    /// possible, and any error leaves the writer failed (every later append is refused).
    pub fn append(&mut self, payloads: &[&[u8]], mode: SyncMode) -> Result<AppendStats, JournalError> {
        if let Some(reason) = &self.failed {
            return Err(JournalError::Failed(reason.clone()));
        }
        if let Some(big) = payloads.iter().find(|p| p.is_empty() || p.len() > MAX_PAYLOAD_BYTES) {
            return Err(JournalError::RecordTooLarge { len_bytes: big.len(), max_bytes: MAX_PAYLOAD_BYTES });
        }
        let batch_bytes: u64 = payloads.iter().map(|p| (p.len() + format::RECORD_HEADER_BYTES) as u64).sum();
        if self.segment_len_bytes > SEGMENT_HEADER_BYTES as u64
            && self.segment_len_bytes + batch_bytes > self.segment_limit_bytes
        {
            self.rotate().inspect_err(|e| self.failed = Some(e.to_string()))?;
        }
        let durable_len = self.segment_len_bytes;
        match self.write_records(payloads, mode) {
            Ok(stats) => {
                self.next_seq += payloads.len() as u64;
                Ok(stats)
            }
            Err(error) => {
                self.rollback(durable_len);
                self.failed = Some(error.to_string());
                Err(error)
            }
        }
    }

    fn write_records(&mut self, payloads: &[&[u8]], mode: SyncMode) -> Result<AppendStats, JournalError> {
        let path = self.segment_path();
        let mut stats = AppendStats::default();
        let flush = |this: &mut JournalWriter, stats: &mut AppendStats| -> Result<(), JournalError> {
            this.file.write_all(&this.buffer).map_err(io_at(&path))?;
            this.segment_len_bytes += this.buffer.len() as u64;
            this.buffer.clear();
            let started = Instant::now();
            this.file.sync_data().map_err(io_at(&path))?;
            let elapsed = started.elapsed();
            metrics::histogram!(crate::telemetry::FSYNC_LATENCY).record(elapsed.as_secs_f64());
            stats.fsyncs += 1;
            stats.fsync_time += elapsed;
            Ok(())
        };
        self.buffer.clear();
        for (i, payload) in payloads.iter().enumerate() {
            format::encode_record(&mut self.buffer, self.next_seq + i as u64, payload);
            if mode == SyncMode::PerEvent {
                flush(self, &mut stats)?;
            }
        }
        if !self.buffer.is_empty() {
            flush(self, &mut stats)?;
        }
        Ok(stats)
    }

    /// Cut the segment back to `durable_len` after a failed append (best effort: if this fails
    /// too, recovery treats the unsynced bytes as a torn tail or replays them, never acknowledged).
    fn rollback(&mut self, durable_len: u64) {
        self.buffer.clear();
        let path = self.segment_path();
        let result = self.file.set_len(durable_len).and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => self.segment_len_bytes = durable_len,
            Err(error) => tracing::error!(path = %path.display(), %error, "cannot roll back a failed journal append"),
        }
    }

    fn segment_path(&self) -> PathBuf {
        self.dir.join(format::segment_file_name(self.segment_first_seq))
    }

    fn rotate(&mut self) -> Result<(), JournalError> {
        self.file = create_segment(&self.dir, self.fs.as_ref(), self.next_seq)?;
        self.segment_first_seq = self.next_seq;
        self.segment_len_bytes = SEGMENT_HEADER_BYTES as u64;
        Ok(())
    }

    /// Whether an earlier failure has stopped the writer.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

/// Create segment `first_seq`: header written and synced, directory entry synced.
fn create_segment(dir: &Path, fs: &dyn JournalFs, first_seq: u64) -> Result<Box<dyn SegmentFile>, JournalError> {
    let path = dir.join(format::segment_file_name(first_seq));
    let mut file = fs.create_new(&path).map_err(io_at(&path))?;
    file.write_all(&format::encode_segment_header(first_seq)).map_err(io_at(&path))?;
    file.sync_data().map_err(io_at(&path))?;
    fs.sync_dir(dir).map_err(io_at(dir))?;
    Ok(file)
}
