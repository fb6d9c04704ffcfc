//! On-disk format of journal segments (little-endian throughout).
//!
//! ```text
//! segment header (24 bytes): magic "SOLVJNL\n" | version u16 | flags u16 | first_seq u64 | crc32c u32
//! record (16-byte header + payload): len u32 | seq u64 | crc32c u32 | payload (len bytes)
//! ```
//! The header crc covers the 20 bytes before it; a record's crc covers `len`, `seq` and the payload.
//! The payload is the event's JSON line exactly as received (no newline).

use solvent_core::event::MAX_LINE_BYTES;

pub const SEGMENT_MAGIC: [u8; 8] = *b"SOLVJNL\n";
pub const FORMAT_VERSION: u16 = 1;
pub const SEGMENT_HEADER_BYTES: usize = 24;
pub const RECORD_HEADER_BYTES: usize = 16;
/// Largest payload a record may carry: the core's line limit.
pub const MAX_PAYLOAD_BYTES: usize = MAX_LINE_BYTES;

/// File name of the segment whose first record has `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The `first_seq` encoded in a segment file name, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn encode_segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[10..12].copy_from_slice(&0u16.to_le_bytes());
    header[12..20].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&header[..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Check a segment header; returns its `first_seq`.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(format!("{} bytes, shorter than the {SEGMENT_HEADER_BYTES}-byte header", bytes.len()));
    }
    if bytes[..8] != SEGMENT_MAGIC {
        return Err("wrong magic (not a solvent journal segment)".into());
    }
    let stored_crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap_or_default());
    if crc32c::crc32c(&bytes[..20]) != stored_crc {
        return Err("header checksum mismatch".into());
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}, this build reads version {FORMAT_VERSION}"));
    }
    Ok(u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default()))
}

fn record_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &seq.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Append one framed record to `out`. The caller has checked the payload size.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&record_crc(len, seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why the bytes at an offset are not the next valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordProblem {
    /// Header or payload runs past the end of the file.
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    /// Length zero or above the record limit.
    BadLength(u32),
    BadChecksum,
    /// Checksum fine, but not the sequence number expected here.
    WrongSeq {
        found: u64,
        expected: u64,
    },
}

impl std::fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordProblem::Truncated { needed_bytes, available_bytes } => {
                write!(f, "record truncated ({available_bytes} of {needed_bytes} bytes present)")
            }
            RecordProblem::BadLength(len) => write!(f, "impossible record length {len}"),
            RecordProblem::BadChecksum => write!(f, "record checksum mismatch"),
            RecordProblem::WrongSeq { found, expected } => write!(f, "record has seq {found}, expected {expected}"),
        }
    }
}

/// A record that decoded: its seq, payload and the offset just past it.
pub struct Record<'a> {
    pub seq: u64,
    pub payload: &'a [u8],
    pub end: usize,
}

/// Decode the record at `offset`, checking framing and checksum (not the expected seq).
pub fn decode_record(data: &[u8], offset: usize) -> Result<Record<'_>, RecordProblem> {
    let available_bytes = data.len().saturating_sub(offset);
    if available_bytes < RECORD_HEADER_BYTES {
        return Err(RecordProblem::Truncated { needed_bytes: RECORD_HEADER_BYTES, available_bytes });
    }
    let header = &data[offset..offset + RECORD_HEADER_BYTES];
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default());
    let seq = u64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
    let stored_crc = u32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
    if len == 0 || len as usize > MAX_PAYLOAD_BYTES {
        return Err(RecordProblem::BadLength(len));
    }
    let needed_bytes = RECORD_HEADER_BYTES + len as usize;
    if available_bytes < needed_bytes {
        return Err(RecordProblem::Truncated { needed_bytes, available_bytes });
    }
    let payload = &data[offset + RECORD_HEADER_BYTES..offset + needed_bytes];
    if record_crc(len, seq, payload) != stored_crc {
        return Err(RecordProblem::BadChecksum);
    }
    Ok(Record { seq, payload, end: offset + needed_bytes })
}

/// Decode the record at `offset` and check that it carries `expected_seq`.
pub fn decode_expected(data: &[u8], offset: usize, expected_seq: u64) -> Result<Record<'_>, RecordProblem> {
    let record = decode_record(data, offset)?;
    if record.seq != expected_seq {
        return Err(RecordProblem::WrongSeq { found: record.seq, expected: expected_seq });
    }
    Ok(record)
}

/// Whether any valid record with `seq >= min_seq` starts anywhere after `offset`. A bad record
/// followed by such a record is corruption in the middle of the journal, not a torn tail.
pub fn valid_record_after(data: &[u8], offset: usize, min_seq: u64) -> Option<usize> {
    let last_start = data.len().checked_sub(RECORD_HEADER_BYTES + 1)?;
    (offset + 1..=last_start).find(|&at| matches!(decode_record(data, at), Ok(r) if r.seq >= min_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_detect_damage() {
        let mut data = Vec::new();
        encode_record(&mut data, 7, b"{\"type\":\"clock\",\"ts\":1}");
        let first_end = data.len();
        encode_record(&mut data, 8, b"{\"type\":\"clock\",\"ts\":2}");
        let record = decode_expected(&data, 0, 7).unwrap();
        assert_eq!(record.end, first_end);
        assert_eq!(decode_expected(&data, first_end, 8).unwrap().payload, b"{\"type\":\"clock\",\"ts\":2}");
        assert_eq!(decode_expected(&data, 0, 9).err(), Some(RecordProblem::WrongSeq { found: 7, expected: 9 }));
        let mut flipped = data.clone();
        flipped[20] ^= 0x01;
        assert_eq!(decode_record(&flipped, 0).err(), Some(RecordProblem::BadChecksum));
        assert_eq!(valid_record_after(&flipped, 0, 8), Some(first_end));
        assert!(matches!(decode_record(&data[..first_end - 1], 0), Err(RecordProblem::Truncated { .. })));
        assert_eq!(valid_record_after(&data[..first_end - 1], 0, 7), None);
    }

    #[test]
    fn headers_and_names() {
        let header = encode_segment_header(42);
        assert_eq!(decode_segment_header(&header), Ok(42));
        let mut bad = header;
        bad[13] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("42.seg"), None);
    }
}
