//! Any bytes as a journal segment: every record decoder, and a scan of a directory holding it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use solvent_node::journal::{self, format};

fuzz_target!(|data: &[u8]| {
    let _ = format::decode_segment_header(data);
    for offset in [0, format::SEGMENT_HEADER_BYTES.min(data.len())] {
        let _ = format::decode_record(data, offset);
        let _ = format::valid_record_after(data, offset, 1);
    }
    let dir = std::env::temp_dir().join(format!("solvent-fuzz-journal-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format::segment_file_name(1));
    if std::fs::write(&path, data).is_ok() {
        let _ = journal::scan_journal(&dir, &mut |_, _| std::ops::ControlFlow::Continue(()));
    }
    let _ = std::fs::remove_file(&path);
});
