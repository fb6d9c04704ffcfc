//! Property tests of the node's decoders of untrusted bytes: journal records and segment
//! headers, a whole journal directory, and snapshots (checksum recomputed after the damage, so
//! that the postcard decoder and the engine's checks see the garbage). Zero panics; damage is
//! refused or, for the journal's tail, cut off as a torn write. (Coverage-guided fuzzing of the
//! same entry points: `fuzz/`, see docs/security.md.)

use proptest::prelude::*;
use solvent_core::{Config, Engine};
use solvent_node::journal::{self, format};
use solvent_node::snapshot;
use std::ops::ControlFlow;
use std::path::Path;

fn sample_engine() -> Engine {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut out = Vec::new();
    let lines = [
        r#"{"type":"clock","ts":1000}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s1","price":"10000"}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s2","price":"10000"}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s3","price":"10000"}"#,
        r#"{"type":"deposit","ts":1000,"account":"alice","asset":"USDC","amount":"100000"}"#,
        r#"{"type":"deposit","ts":1000,"account":"bob","asset":"USDC","amount":"100000"}"#,
        r#"{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1","price":"10000"}"#,
    ];
    for (i, line) in lines.iter().enumerate() {
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
    }
    engine
}

fn journal_bytes() -> Vec<u8> {
    let mut data = format::encode_segment_header(1).to_vec();
    for seq in 1..=4u64 {
        format::encode_record(&mut data, seq, format!(r#"{{"type":"clock","ts":{seq}}}"#).as_bytes());
    }
    data
}

fn flip(bytes: &mut [u8], flips: &[(usize, u8)]) {
    for &(at, bit) in flips {
        let len = bytes.len();
        bytes[at % len] ^= 1 << (bit % 8);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn journal_record_decoders_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), offset in 0usize..220) {
        let _ = format::decode_segment_header(&bytes);
        let offset = offset.min(bytes.len());
        let _ = format::decode_record(&bytes, offset);
        let _ = format::decode_expected(&bytes, offset, 1);
        let _ = format::valid_record_after(&bytes, offset, 1);
    }

    #[test]
    fn a_damaged_journal_is_read_or_refused_without_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut data = journal_bytes();
        flip(&mut data, &flips);
        data.truncate(cut % (data.len() + 1));
        std::fs::write(dir.path().join(format::segment_file_name(1)), &data).unwrap();
        let mut seen = 0u64;
        if let Ok(end) = journal::scan_journal(dir.path(), &mut |seq, _| { seen = seq; ControlFlow::Continue(()) }) {
            prop_assert_eq!(end.last_seq, seen);
            prop_assert!(end.last_seq <= 4);
        }
    }

    #[test]
    fn a_damaged_snapshot_is_refused_without_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        fix_checksum in any::<bool>(),
    ) {
        let engine = sample_engine();
        let mut bytes = snapshot::encode(7, &engine).unwrap();
        let body_len = bytes.len() - 32;
        flip(&mut bytes[..body_len], &flips);
        if fix_checksum {
            let checksum = blake3::hash(&bytes[..body_len]);
            bytes[body_len..].copy_from_slice(checksum.as_bytes());
        }
        // A flip the checks cannot see (a field outside the state hash) must still give the
        // same state.
        if let Ok(loaded) = snapshot::decode(Path::new("x.snap"), &bytes) {
            prop_assert_eq!(loaded.engine.state_hash(), engine.state_hash());
        }
    }

    #[test]
    fn any_bytes_as_a_snapshot_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(snapshot::decode(Path::new("x.snap"), &bytes).is_err());
    }
}
