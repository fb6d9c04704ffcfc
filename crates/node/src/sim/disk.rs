//! The simulated disk: the real journal code writes through [`SimFs`] into files of a scratch
//! directory, and the simulator decides what a crash leaves of them. `sync_data` does not reach
//! the device: it records how many bytes of the file are durable. At a crash, every file keeps
//! its durable bytes and a seeded random part of the rest (torn or lost writes), possibly zeroed
//! or with a flipped bit (garbage in unsynced blocks); a file created since its directory was
//! last synced may vanish. Faults on the way: a write that fails after writing a prefix (EIO),
//! a full disk (ENOSPC past a byte budget), an `fsync` that fails.

use super::rng::Rng;
use crate::journal::{JournalFs, SegmentFile};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Fault rates, each in parts per 10,000 operations.
#[derive(Clone, Copy, Debug)]
pub struct FaultRates {
    pub write_error: u64,
    pub fsync_error: u64,
}

#[derive(Debug, Default)]
struct FileState {
    durable_len: u64,
    /// Created since the last sync of its directory: may vanish at a crash.
    entry_durable: bool,
}

#[derive(Debug)]
struct DiskState {
    rng: Rng,
    rates: FaultRates,
    files: BTreeMap<PathBuf, FileState>,
    /// Bytes the disk still takes before ENOSPC.
    free_bytes: u64,
    pub faults_injected: u64,
}

/// The simulated disk, shared by the writer's files.
#[derive(Clone, Debug)]
pub struct SimFs {
    state: Arc<Mutex<DiskState>>,
}

fn fault(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("simulated {what}"))
}

impl SimFs {
    pub fn new(seed: u64, rates: FaultRates, free_bytes: u64) -> SimFs {
        let state = DiskState { rng: Rng::new(seed), rates, files: BTreeMap::new(), free_bytes, faults_injected: 0 };
        SimFs { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn faults_injected(&self) -> u64 {
        self.lock().faults_injected
    }

    /// Space comes back (the operator freed it).
    pub fn set_free_bytes(&self, free_bytes: u64) {
        self.lock().free_bytes = free_bytes;
    }

    /// Apply a crash to the files on disk: what was not made durable is torn, lost or garbled.
    pub fn crash(&self) -> io::Result<()> {
        let mut state = self.lock();
        let files: Vec<(PathBuf, u64, bool)> =
            state.files.iter().map(|(p, f)| (p.clone(), f.durable_len, f.entry_durable)).collect();
        for (path, durable_len, entry_durable) in files {
            if !entry_durable && state.rng.below(2) == 0 {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                state.files.remove(&path);
                continue;
            }
            let mut bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    state.files.remove(&path); // removed by recovery (a torn segment)
                    continue;
                }
                Err(e) => return Err(e),
            };
            let len = bytes.len() as u64;
            if len > durable_len {
                let kept = durable_len + state.rng.below(len - durable_len + 1);
                bytes.truncate(kept as usize);
                let unsynced = durable_len as usize..bytes.len();
                match state.rng.below(4) {
                    0 if !unsynced.is_empty() => bytes[unsynced].iter_mut().for_each(|b| *b = 0),
                    1 if !unsynced.is_empty() => {
                        let at = unsynced.start + state.rng.below(unsynced.len() as u64) as usize;
                        bytes[at] ^= 1 << state.rng.below(8);
                    }
                    _ => {}
                }
                std::fs::write(&path, &bytes)?;
            }
            if let Some(file) = state.files.get_mut(&path) {
                file.durable_len = bytes.len() as u64;
                file.entry_durable = true;
            }
        }
        Ok(())
    }
}

struct SimFile {
    path: PathBuf,
    file: std::fs::File,
    disk: SimFs,
}

impl SegmentFile for SimFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.disk.lock();
        let rate = state.rates.write_error;
        if state.rng.below(10_000) < rate {
            state.faults_injected += 1;
            let prefix = state.rng.below(bytes.len() as u64 + 1) as usize;
            self.file.write_all(&bytes[..prefix])?;
            return Err(fault(io::ErrorKind::Other, "write error (EIO) after a partial write"));
        }
        if bytes.len() as u64 > state.free_bytes {
            state.faults_injected += 1;
            let prefix = state.free_bytes as usize;
            state.free_bytes = 0;
            self.file.write_all(&bytes[..prefix])?;
            return Err(fault(io::ErrorKind::StorageFull, "full disk (ENOSPC)"));
        }
        state.free_bytes -= bytes.len() as u64;
        self.file.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.disk.lock();
        let rate = state.rates.fsync_error;
        if state.rng.below(10_000) < rate {
            state.faults_injected += 1;
            return Err(fault(io::ErrorKind::Other, "fsync error (EIO)"));
        }
        let len = self.file.metadata()?.len();
        state.files.entry(self.path.clone()).or_default().durable_len = len;
        Ok(())
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)?;
        let mut state = self.disk.lock();
        let file = state.files.entry(self.path.clone()).or_default();
        file.durable_len = file.durable_len.min(len_bytes);
        Ok(())
    }
}

impl JournalFs for SimFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().append(true).create_new(true).open(path)?;
        self.lock().files.insert(path.to_path_buf(), FileState { durable_len: 0, entry_durable: false });
        Ok(Box::new(SimFile { path: path.to_path_buf(), file, disk: self.clone() }))
    }

    fn open_at(&self, path: &Path, len_bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().append(true).open(path)?;
        if file.metadata()?.len() != len_bytes {
            file.set_len(len_bytes)?;
        }
        let mut state = self.lock();
        let entry = state.files.entry(path.to_path_buf()).or_insert(FileState { durable_len: 0, entry_durable: true });
        entry.durable_len = len_bytes; // what recovery found after the crash is on the device
        Ok(Box::new(SimFile { path: path.to_path_buf(), file, disk: self.clone() }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        for (_, file) in state.files.range_mut(dir.to_path_buf()..).take_while(|(p, _)| p.starts_with(dir)) {
            file.entry_durable = true;
        }
        Ok(())
    }
}
