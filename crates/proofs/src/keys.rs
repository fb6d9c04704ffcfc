//! Engine key pairs. A secret key file holds the 32-byte ed25519 seed as 64 hex digits (and a
//! newline); a public key file the 32-byte public key the same way. The engine's key is read from
//! a file named in configuration or from the environment variable [`KEY_ENV`], never from the
//! repository.

use ed25519_dalek::{SigningKey, VerifyingKey};
use std::path::Path;

/// Environment variable holding the engine's secret key (64 hex digits) when no file is named.
pub const KEY_ENV: &str = "SOLVENT_ENGINE_KEY";

/// A fresh key pair from the operating system's random source.
pub fn generate() -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Write `key` to `secret_path` (mode 0600 on Unix, refusing to overwrite) and its public key to
/// `public_path`.
pub fn write_pair(key: &SigningKey, secret_path: &Path, public_path: &Path) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(secret_path).map_err(|e| format!("cannot create {}: {e}", secret_path.display()))?;
    writeln!(file, "{}", hex::encode(key.to_bytes())).map_err(|e| format!("{}: {e}", secret_path.display()))?;
    std::fs::write(public_path, format!("{}\n", hex::encode(key.verifying_key().to_bytes())))
        .map_err(|e| format!("cannot write {}: {e}", public_path.display()))
}

/// The engine's secret key: from `path` when given, else from [`KEY_ENV`].
pub fn load_signing_key(path: Option<&Path>) -> Result<SigningKey, String> {
    let (text, origin) = match path {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("cannot read key {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            std::env::var(KEY_ENV).map_err(|_| format!("no engine key: name a key file or set {KEY_ENV}"))?,
            KEY_ENV.to_string(),
        ),
    };
    Ok(SigningKey::from_bytes(&hex32(text.trim(), &origin)?))
}

/// A public key from a file of 64 hex digits.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read public key {}: {e}", path.display()))?;
    parse_verifying_key(text.trim(), &path.display().to_string())
}

/// A public key from 64 hex digits.
pub fn parse_verifying_key(text: &str, origin: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&hex32(text, origin)?).map_err(|e| format!("{origin}: not an ed25519 public key: {e}"))
}

/// 32 bytes from exactly 64 lowercase hex digits.
pub fn hex32(text: &str, origin: &str) -> Result<[u8; 32], String> {
    let bytes = strict_hex(text).ok_or_else(|| format!("{origin}: expected 64 lowercase hex digits"))?;
    bytes.try_into().map_err(|_| format!("{origin}: expected 64 lowercase hex digits"))
}

/// Hex decoding that accepts only the canonical (lowercase) spelling, so that every byte of a
/// file has exactly one meaning.
pub fn strict_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text).ok()?;
    (hex::encode(&bytes) == text).then_some(bytes)
}
