//! Following the journal as it grows, beside the writer: records in order from a starting seq,
//! read incrementally (each pass reads only the bytes appended since the previous one, not the
//! segment from its start), verified as they are read. Only records up to a seq the caller knows
//! to be durable are decoded, so a record the writer is still appending is never misread.

use super::format::{self, RecordProblem, SEGMENT_HEADER_BYTES};
use super::scan::list_segments;
use crate::error::JournalError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most bytes one pass reads from a segment; a longer backlog is read over several passes.
pub const MAX_PASS_BYTES: u64 = 64 << 20;

/// What a reader hands each record to (seq, payload); an `Err` stops the reader.
pub type Visit<'a> = dyn FnMut(u64, &[u8]) -> Result<(), String> + 'a;

/// The segment being read and where its next record starts.
struct Open {
    path: PathBuf,
    file: File,
    offset: u64,
}

/// A reader that hands out journal records `next_seq, next_seq + 1, …` as they become durable.
pub struct JournalTail {
    dir: PathBuf,
    open: Option<Open>,
    next_seq: u64,
    buffer: Vec<u8>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_path_buf(), source }
}

impl JournalTail {
    /// A reader whose first record will be `next_seq` (≥ 1).
    pub fn new(dir: &Path, next_seq: u64) -> JournalTail {
        assert!(next_seq >= 1, "journal seqs start at 1");
        JournalTail { dir: dir.to_path_buf(), open: None, next_seq, buffer: Vec::new() }
    }

    /// The seq of the next record this reader hands out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Hand the records `next_seq..=durable_seq` to `visit` in order (at most
    /// [`MAX_PASS_BYTES`] of one segment per call); the number handed out. The caller promises
    /// that every record up to `durable_seq` is durable; a record missing below it is an error.
    pub fn read_to(&mut self, durable_seq: u64, visit: &mut Visit<'_>) -> Result<u64, JournalTailError> {
        let mut handed = 0u64;
        // Bounded: one segment change per segment the backlog spans, and a pass per segment.
        let mut segments_left = 1_024u32;
        while self.next_seq <= durable_seq && segments_left > 0 {
            segments_left -= 1;
            let fresh = self.open.is_none();
            if fresh {
                self.open = Some(self.open_segment_holding(self.next_seq)?);
            }
            let before = self.next_seq;
            let exhausted = self.read_segment(durable_seq, visit)?;
            handed += self.next_seq - before;
            if !exhausted {
                break; // the pass's byte budget is spent; the caller comes back
            }
            if self.next_seq <= durable_seq {
                if fresh && self.next_seq == before {
                    let reason = format!("record seq {} is missing though seq {durable_seq} is durable", self.next_seq);
                    return Err(JournalError::Corrupt { path: self.dir.clone(), offset: 0, reason }.into());
                }
                self.open = None; // this segment has no more records: the next one holds them
            }
        }
        Ok(handed)
    }

    /// Read the open segment from its offset; `true` when it holds no record at or below
    /// `durable_seq` beyond what was read (the next one must be in the following segment).
    fn read_segment(&mut self, durable_seq: u64, visit: &mut Visit<'_>) -> Result<bool, JournalTailError> {
        let open = self.open.as_mut().expect("a segment is open");
        open.file.seek(SeekFrom::Start(open.offset)).map_err(io_error(&open.path))?;
        self.buffer.clear();
        let read = (&open.file).take(MAX_PASS_BYTES).read_to_end(&mut self.buffer).map_err(io_error(&open.path))?;
        let mut at = 0usize;
        while self.next_seq <= durable_seq {
            match format::decode_expected(&self.buffer, at, self.next_seq) {
                Ok(record) => {
                    visit(record.seq, record.payload).map_err(JournalTailError::Visit)?;
                    at = record.end;
                    self.next_seq += 1;
                }
                Err(RecordProblem::Truncated { .. }) if read as u64 == MAX_PASS_BYTES => {
                    open.offset += at as u64;
                    return Ok(false);
                }
                Err(RecordProblem::Truncated { .. }) if at == self.buffer.len() => break,
                Err(problem) => {
                    let reason = format!("{problem} while following the journal (record seq {})", self.next_seq);
                    return Err(JournalError::Corrupt {
                        path: open.path.clone(),
                        offset: open.offset + at as u64,
                        reason,
                    }
                    .into());
                }
            }
        }
        open.offset += at as u64;
        Ok(self.next_seq <= durable_seq)
    }

    /// Open the segment that holds `seq` and position it at that record.
    fn open_segment_holding(&mut self, seq: u64) -> Result<Open, JournalTailError> {
        let segments = list_segments(&self.dir)?;
        let Some(segment) = segments.iter().rev().find(|s| s.first_seq <= seq) else {
            let reason = format!("no journal segment holds seq {seq}");
            return Err(JournalError::Corrupt { path: self.dir.clone(), offset: 0, reason }.into());
        };
        let path = segment.path.clone();
        let mut file = File::open(&path).map_err(io_error(&path))?;
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        file.read_exact(&mut header).map_err(io_error(&path))?;
        let first_seq = format::decode_segment_header(&header)
            .map_err(|reason| JournalError::BadHeader { path: path.clone(), reason })?;
        if first_seq != segment.first_seq {
            return Err(JournalError::Gap { path, found: first_seq, expected: segment.first_seq }.into());
        }
        let mut open = Open { path, file, offset: SEGMENT_HEADER_BYTES as u64 };
        // Skip the records before `seq` (once, when a reader starts inside a segment).
        let mut skip = |_: u64, _: &[u8]| Ok(());
        if seq > first_seq {
            let saved = std::mem::replace(&mut self.next_seq, first_seq);
            self.open = Some(open);
            let outcome = self.read_to_within(seq - 1, &mut skip);
            open = self.open.take().expect("still open");
            let reached = std::mem::replace(&mut self.next_seq, saved);
            outcome?;
            if reached != seq {
                let reason = format!("the segment ends at seq {} before seq {seq}", reached - 1);
                return Err(JournalError::Corrupt { path: open.path, offset: open.offset, reason }.into());
            }
        }
        Ok(open)
    }

    /// [`JournalTail::read_segment`] until `durable_seq` within the open segment only.
    fn read_to_within(&mut self, durable_seq: u64, visit: &mut Visit<'_>) -> Result<(), JournalTailError> {
        let mut passes_left = 1 + super::scan::MAX_SEGMENT_FILE_BYTES / MAX_PASS_BYTES;
        while self.next_seq <= durable_seq && passes_left > 0 {
            passes_left -= 1;
            let exhausted = self.read_segment(durable_seq, visit)?;
            if exhausted {
                break;
            }
        }
        Ok(())
    }
}

/// Why following the journal stopped.
#[derive(Debug, thiserror::Error)]
pub enum JournalTailError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The visitor refused a record (for the signer: its output could not be written).
    #[error("{0}")]
    Visit(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{JournalWriter, OsFs, SyncMode};
    use std::sync::Arc;

    fn collect(tail: &mut JournalTail, to: u64) -> Vec<(u64, Vec<u8>)> {
        let mut seen = Vec::new();
        tail.read_to(to, &mut |seq, payload| {
            seen.push((seq, payload.to_vec()));
            Ok(())
        })
        .expect("reads");
        seen
    }

    #[test]
    fn follows_appends_across_segments_from_any_start() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(OsFs);
        // 64 KiB segments: 200 records of ~1 KiB span several of them.
        let mut writer = JournalWriter::open(dir.path(), fs, None, 0, 1 << 16).unwrap();
        let line = |seq: u64| format!("{{\"type\":\"clock\",\"ts\":{seq},\"pad\":\"{}\"}}", "x".repeat(1000));
        let mut tail = JournalTail::new(dir.path(), 1);
        let mut seen = Vec::new();
        for chunk in 0..10u64 {
            let lines: Vec<String> = (chunk * 20 + 1..=chunk * 20 + 20).map(line).collect();
            let payloads: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            writer.append(&payloads, SyncMode::Group).unwrap();
            // The reader is told less than what is durable: it never reads past what it is told.
            seen.extend(collect(&mut tail, chunk * 20 + 15));
            assert_eq!(tail.next_seq(), chunk * 20 + 16);
        }
        seen.extend(collect(&mut tail, 200));
        assert_eq!(seen.len(), 200);
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, (seq, payload))| *seq == i as u64 + 1 && *payload == line(*seq).into_bytes()));
        assert!(list_segments(dir.path()).unwrap().len() > 2, "the test spans several segments");
        // A reader starting in the middle of a later segment.
        let mut late = JournalTail::new(dir.path(), 137);
        let rest = collect(&mut late, 200);
        assert_eq!(rest.first().map(|r| r.0), Some(137));
        assert_eq!(rest.len(), 64);
        // Asking beyond what exists is an error, not a silent stop.
        let mut beyond = JournalTail::new(dir.path(), 150);
        let error = beyond.read_to(201, &mut |_, _| Ok(())).unwrap_err();
        assert!(error.to_string().contains("201"), "{error}");
    }

    #[test]
    fn a_damaged_record_stops_the_reader_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = JournalWriter::open(dir.path(), Arc::new(OsFs), None, 0, 1 << 20).unwrap();
        let lines: Vec<String> = (1..=5u64).map(|ts| format!("{{\"type\":\"clock\",\"ts\":{ts}}}")).collect();
        writer.append(&lines.iter().map(|l| l.as_bytes()).collect::<Vec<_>>(), SyncMode::Group).unwrap();
        let segment = list_segments(dir.path()).unwrap().remove(0).path;
        let mut bytes = std::fs::read(&segment).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        std::fs::write(&segment, bytes).unwrap();
        let mut tail = JournalTail::new(dir.path(), 1);
        let mut seen = 0;
        let error = tail
            .read_to(5, &mut |_, _| {
                seen += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(seen, 4, "the records before the damage are handed out");
        assert!(error.to_string().contains("checksum") && error.to_string().contains("seq 5"), "{error}");
    }
}
