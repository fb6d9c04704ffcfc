//! Any bytes as a snapshot payload, with a correct header and checksum so that the postcard
//! decoder and the engine's reference checks see them: refused, or a consistent engine.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(data.len() + 64);
    bytes.extend_from_slice(b"SOLVSNP\n");
    bytes.extend_from_slice(&solvent_node::snapshot::SNAPSHOT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0; 6]);
    let seq = data.get(..8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or_default()));
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
    bytes.extend_from_slice(data);
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    if let Ok(loaded) = solvent_node::snapshot::decode(std::path::Path::new("fuzz.snap"), &bytes) {
        let _ = loaded.engine.state_hash();
    }
});
