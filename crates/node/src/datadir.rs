//! The data directory: layout, an exclusive lock (one server per directory), and the engine
//! configuration the journal was written under (`engine-config.toml`, kept so that a restart or a
//! replay applies the journal with the same configuration).

use crate::error::NodeError;
use solvent_core::Config;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const ENGINE_CONFIG_FILE: &str = "engine-config.toml";
/// Hex BLAKE3 of `engine-config.toml` as recorded: an edit of the file is caught at start.
pub const ENGINE_CONFIG_HASH_FILE: &str = "engine-config.blake3";
const LOCK_FILE: &str = "LOCK";

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    pub root: PathBuf,
    pub journal: PathBuf,
    pub snapshots: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout { root: root.to_path_buf(), journal: root.join("journal"), snapshots: root.join("snapshots") }
    }
}

/// An opened, locked data directory. The lock is released when this is dropped or the process
/// dies (it is an `flock`).
pub struct DataDir {
    pub layout: Layout,
    _lock: File,
}

fn dir_error(path: &Path, message: String) -> NodeError {
    NodeError::DataDir { path: path.to_path_buf(), message }
}

/// How long a held LOCK is retried before the start is refused.
const LOCK_WAIT_MS: u64 = 500;

/// Take the directory's `flock`. A lock that is held is retried for [`LOCK_WAIT_MS`]: the lock
/// belongs to the open file, and a process that embeds the server and forks a child at the
/// moment a server stops lends its descriptor to the child until the child's `exec` closes it,
/// so a restart in the same process can find the lock held for that instant. A second server
/// holds it for good and is refused with a clear message.
fn take_lock(lock: &File, root: &Path) -> Result<(), NodeError> {
    const RETRY_MS: u64 = 10;
    let mut retries_left = LOCK_WAIT_MS / RETRY_MS;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if retries_left > 0 => {
                retries_left -= 1;
                std::thread::sleep(std::time::Duration::from_millis(RETRY_MS));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(dir_error(root, "in use by another solvent server (LOCK is held)".to_string()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(dir_error(root, format!("cannot lock: {e}"))),
        }
    }
}

impl DataDir {
    /// Create the directories if needed and take the lock. A read-only or missing-permission
    /// directory fails here, before anything is served.
    pub fn open(root: &Path) -> Result<DataDir, NodeError> {
        let layout = Layout::new(root);
        for dir in [&layout.root, &layout.journal, &layout.snapshots] {
            std::fs::create_dir_all(dir).map_err(|e| dir_error(dir, format!("cannot create directory: {e}")))?;
        }
        let lock_path = root.join(LOCK_FILE);
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| {
                dir_error(root, format!("not writable ({e}); the server needs a writable data directory"))
            })?;
        take_lock(&lock, root)?;
        Ok(DataDir { layout, _lock: lock })
    }

    /// The engine configuration to run with. `given` is the text of `--config` (or `None`).
    /// A new directory records the given text (or the embedded default); an existing one keeps
    /// its recorded configuration, and a different `--config` is refused.
    pub fn engine_config(&self, given: Option<&str>) -> Result<(Config, String), NodeError> {
        let path = self.layout.root.join(ENGINE_CONFIG_FILE);
        let parse = |text: &str, origin: &str| {
            Config::from_toml(text).map_err(|e| NodeError::EngineConfig(format!("{origin}: {e}")))
        };
        match std::fs::read_to_string(&path) {
            Ok(stored_text) => {
                self.check_config_unedited(&path, &stored_text)?;
                let stored = parse(&stored_text, &path.display().to_string())?;
                if let Some(text) = given {
                    if parse(text, "--config")? != stored {
                        return Err(NodeError::EngineConfig(format!(
                            "--config differs from {}, the configuration this data directory's journal was written \
                             under; start without --config, or with a fresh --data-dir",
                            path.display()
                        )));
                    }
                }
                Ok((stored, stored_text))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = given.unwrap_or(solvent_core::DEFAULT_CONFIG_TOML).to_string();
                let config = parse(&text, "--config")?;
                let hash_path = self.layout.root.join(ENGINE_CONFIG_HASH_FILE);
                write_durably(&self.layout.root, &hash_path, config_hash(&text).as_bytes())?;
                write_durably(&self.layout.root, &path, text.as_bytes())?;
                Ok((config, text))
            }
            Err(e) => Err(dir_error(&path, format!("cannot read: {e}"))),
        }
    }
}

impl DataDir {
    /// The recorded configuration must be the one the journal was written under: its BLAKE3 is
    /// kept next to it, and a start with an edited file is refused (snapshots hold the old
    /// parameters, so the state would no longer equal a replay of the journal under the file).
    /// A directory written before the hash was kept gets it now.
    fn check_config_unedited(&self, path: &Path, text: &str) -> Result<(), NodeError> {
        let hash_path = self.layout.root.join(ENGINE_CONFIG_HASH_FILE);
        let recorded = match std::fs::read_to_string(&hash_path) {
            Ok(recorded) => recorded,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return write_durably(&self.layout.root, &hash_path, config_hash(text).as_bytes());
            }
            Err(e) => return Err(dir_error(&hash_path, format!("cannot read: {e}"))),
        };
        let now = config_hash(text);
        if recorded.trim() != now {
            return Err(NodeError::EngineConfig(format!(
                "{} was edited after the journal was written under it (BLAKE3 {} recorded in {}, {now} now): the \
                 snapshots and the journal hold the old configuration. Restore the file; to change parameters, \
                 post `params` events; to run a new configuration, start with a fresh --data-dir",
                path.display(),
                recorded.trim(),
                hash_path.display()
            )));
        }
        Ok(())
    }
}

/// Hex BLAKE3 of a configuration text.
pub fn config_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Write a small file atomically and durably: temp file, fsync, rename, fsync the directory.
pub fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let temp = path.with_extension("tmp");
    let fail = |e: std::io::Error| dir_error(path, format!("cannot write: {e}"));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail)
}

/// The engine configuration recorded in a data directory (for export and replay).
pub fn stored_engine_config(root: &Path) -> Result<Config, NodeError> {
    let path = root.join(ENGINE_CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| dir_error(&path, format!("cannot read: {e}")))?;
    Config::from_toml(&text).map_err(|e| NodeError::EngineConfig(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_on_the_same_directory_is_refused_and_the_lock_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();
        let error = DataDir::open(dir.path()).err().expect("the directory is locked");
        assert!(error.to_string().contains("in use by another solvent server"), "{error}");
        drop(first);
        DataDir::open(dir.path()).expect("the lock is released when the holder is dropped");
    }
}
