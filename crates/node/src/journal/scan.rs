//! Reading and verifying the journal: every record of every segment is checked (framing,
//! checksum, contiguous sequence numbers). A bad record in the last segment with no valid
//! record anywhere after it is the torn tail of an unacknowledged write; any other bad record is
//! corruption and stops the caller with the file and byte offset.

use super::format::{self, RecordProblem, SEGMENT_HEADER_BYTES};
use crate::error::JournalError;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Segments larger than this are refused rather than read into memory.
pub const MAX_SEGMENT_FILE_BYTES: u64 = 1 << 30;

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub first_seq: u64,
}

/// The last segment and how many of its bytes are valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailSegment {
    pub path: PathBuf,
    pub first_seq: u64,
    pub valid_len_bytes: u64,
}

/// A torn tail found (and not yet removed) by a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    pub dropped_bytes: u64,
    pub reason: String,
    /// The segment's own header is incomplete: the whole file is the torn part.
    pub whole_segment: bool,
}

/// Where a verified journal ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalEnd {
    /// Sequence number of the last valid record (0 for an empty journal).
    pub last_seq: u64,
    pub tail: Option<TailSegment>,
    pub torn: Option<TornTail>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_path_buf(), source }
}

/// The segment files of `dir`, in sequence order. Other files are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<Segment>, JournalError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        if let Some(first_seq) = name.to_str().and_then(format::parse_segment_file_name) {
            segments.push(Segment { path: entry.path(), first_seq });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

fn read_segment(path: &Path) -> Result<Vec<u8>, JournalError> {
    let len_bytes = std::fs::metadata(path).map_err(io_error(path))?.len();
    if len_bytes > MAX_SEGMENT_FILE_BYTES {
        return Err(JournalError::SegmentTooLarge {
            path: path.to_path_buf(),
            len_bytes,
            max_bytes: MAX_SEGMENT_FILE_BYTES,
        });
    }
    std::fs::read(path).map_err(io_error(path))
}

/// What one segment scan found.
enum SegmentOutcome {
    /// All records valid; `end` is the file length, `stopped` whether the visitor stopped early.
    Complete {
        last_seq: u64,
        end: u64,
        stopped: bool,
    },
    Torn {
        last_seq: u64,
        torn: TornTail,
    },
}

/// Verify one segment, handing each record with its seq to `visit`.
fn scan_segment(
    segment: &Segment,
    expected_first_seq: u64,
    is_last: bool,
    last_wanted_seq: u64,
    visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<SegmentOutcome, JournalError> {
    let data = read_segment(&segment.path)?;
    let path = segment.path.clone();
    let first_seq = match format::decode_segment_header(&data) {
        Ok(first_seq) => first_seq,
        Err(reason) if is_last && data.len() <= SEGMENT_HEADER_BYTES => {
            let torn = TornTail { path, offset: 0, dropped_bytes: data.len() as u64, reason, whole_segment: true };
            return Ok(SegmentOutcome::Torn { last_seq: expected_first_seq - 1, torn });
        }
        Err(reason) => return Err(JournalError::BadHeader { path, reason }),
    };
    if first_seq != segment.first_seq || first_seq != expected_first_seq {
        return Err(JournalError::Gap { path, found: first_seq, expected: expected_first_seq });
    }
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut expected = first_seq;
    while offset < data.len() {
        if expected > last_wanted_seq {
            return Ok(SegmentOutcome::Complete { last_seq: expected - 1, end: offset as u64, stopped: true });
        }
        match format::decode_expected(&data, offset, expected) {
            Ok(record) => {
                offset = record.end;
                expected += 1;
                if visit(record.seq, record.payload).is_break() {
                    return Ok(SegmentOutcome::Complete { last_seq: expected - 1, end: offset as u64, stopped: true });
                }
            }
            Err(problem) => return classify_bad_record(&data, path, offset, expected, is_last, problem),
        }
    }
    Ok(SegmentOutcome::Complete { last_seq: expected - 1, end: offset as u64, stopped: false })
}

/// A bad record at `offset`: the torn tail, or corruption that stops recovery.
fn classify_bad_record(
    data: &[u8],
    path: PathBuf,
    offset: usize,
    expected: u64,
    is_last: bool,
    problem: RecordProblem,
) -> Result<SegmentOutcome, JournalError> {
    let follower = format::valid_record_after(data, offset, expected);
    if is_last && follower.is_none() && complete_but_damaged(data, offset, expected, &problem) {
        let reason = format!(
            "the last record (seq {expected}) is complete but its checksum fails: it may have been acknowledged, so it \
             is not dropped. Restore the segment from a replica or backup; to accept losing seq {expected}, \
             truncate -s {offset} {} and restart",
            path.display()
        );
        return Err(JournalError::Corrupt { path, offset: offset as u64, reason });
    }
    if is_last && follower.is_none() {
        let dropped_bytes = (data.len() - offset) as u64;
        let torn =
            TornTail { path, offset: offset as u64, dropped_bytes, reason: problem.to_string(), whole_segment: false };
        return Ok(SegmentOutcome::Torn { last_seq: expected - 1, torn });
    }
    let reason = match follower {
        Some(at) => format!("{problem} (a valid record follows at offset {at})"),
        None => format!("{problem} in a segment that is not the last one"),
    };
    Err(JournalError::Corrupt { path, offset: offset as u64, reason })
}

/// Whether the bad last record at `offset` was written whole and damaged since (so it may have
/// been acknowledged): its header names the expected seq, its length ends it exactly at the end
/// of the file, only the checksum fails, and its payload is not all zeros. A torn append leaves a
/// short record or zero-filled blocks instead; those are dropped as never acknowledged.
fn complete_but_damaged(data: &[u8], offset: usize, expected: u64, problem: &RecordProblem) -> bool {
    use format::RECORD_HEADER_BYTES;
    if *problem != RecordProblem::BadChecksum || data.len() < offset + RECORD_HEADER_BYTES {
        return false;
    }
    let header = &data[offset..offset + RECORD_HEADER_BYTES];
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
    let seq = u64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
    let payload = &data[offset + RECORD_HEADER_BYTES..];
    seq == expected && payload.len() == len && payload.iter().any(|&b| b != 0)
}

/// Verify the whole journal in `dir`, handing every record to `visit` in sequence order. The
/// visitor may stop early (`ControlFlow::Break`); then the result describes where it stopped.
pub fn scan_journal(
    dir: &Path,
    visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<JournalEnd, JournalError> {
    let segments = list_segments(dir)?;
    let mut end = JournalEnd::default();
    for (i, segment) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        match scan_segment(segment, end.last_seq + 1, is_last, u64::MAX, visit)? {
            SegmentOutcome::Complete { last_seq, end: valid_len_bytes, stopped } => {
                end.last_seq = last_seq;
                let first_seq = segment.first_seq;
                end.tail = Some(TailSegment { path: segment.path.clone(), first_seq, valid_len_bytes });
                if stopped {
                    return Ok(end);
                }
            }
            SegmentOutcome::Torn { last_seq, torn } => {
                end.last_seq = last_seq;
                if !torn.whole_segment {
                    let first_seq = segment.first_seq;
                    end.tail =
                        Some(TailSegment { path: segment.path.clone(), first_seq, valid_len_bytes: torn.offset });
                }
                end.torn = Some(torn);
            }
        }
    }
    Ok(end)
}

/// Read records `from_seq..=to_seq` (verified as they are read) and hand them to `visit`. Nothing
/// past `to_seq` is decoded, so a concurrent append to the last segment is never misread.
pub fn read_range(
    dir: &Path,
    from_seq: u64,
    to_seq: u64,
    visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<u64, JournalError> {
    let segments = list_segments(dir)?;
    let start = segments.iter().rposition(|s| s.first_seq <= from_seq).unwrap_or(0);
    let mut last_seen = 0;
    for (i, segment) in segments.iter().enumerate().skip(start) {
        if segment.first_seq > to_seq {
            break;
        }
        let is_last = i + 1 == segments.len();
        let mut inner = |seq: u64, payload: &[u8]| {
            last_seen = seq;
            if seq < from_seq {
                return ControlFlow::Continue(());
            }
            visit(seq, payload)
        };
        match scan_segment(segment, segment.first_seq, is_last, to_seq, &mut inner)? {
            SegmentOutcome::Complete { stopped: true, .. } => break,
            SegmentOutcome::Complete { .. } | SegmentOutcome::Torn { .. } => {}
        }
    }
    Ok(last_seen)
}
