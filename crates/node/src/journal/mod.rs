//! The durable journal: append-only segment files of checksummed, sequence-numbered records.
//! `docs/serve.md` describes the format and the recovery rules.

pub mod format;
pub mod scan;
pub mod tail;
pub mod writer;

pub use scan::{list_segments, read_range, scan_journal, JournalEnd, Segment, TailSegment, TornTail};
pub use tail::{JournalTail, JournalTailError};
pub use writer::{AppendStats, JournalFs, JournalWriter, OsFs, SegmentFile, SyncMode};
