//! Any text as an engine configuration: refused with a reason, or it builds an engine.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = solvent_core::Config::from_toml(text) {
            let _ = solvent_core::Engine::new(&config);
        }
    }
});
