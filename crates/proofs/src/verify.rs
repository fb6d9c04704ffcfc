//! `solvent verify`: replay the events, rebuild every line of the effects file (encoding, chain
//! link, state hash) and check every signature; the first line that differs is named with why.

use crate::keys::strict_hex;
use crate::order;
use crate::signing::{lines, Entry, Replay};
use ed25519_dalek::{Signature, VerifyingKey};
use solvent_core::Config;

/// Counts of a verified file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VerifySummary {
    pub events: u64,
    pub effects: u64,
    pub signatures: u64,
}

/// The first failure: 1-based line of the effects file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "effects line {}: {}", self.line, self.reason)
    }
}

/// Check `effects` (a file written by the signer) against a replay of `events`.
pub fn verify_effects(
    config: &Config,
    events: &[u8],
    effects: &[u8],
    key: &VerifyingKey,
) -> Result<VerifySummary, Failure> {
    verify_effects_with(config, events, effects, key, None)
}

/// [`verify_effects`]; with `eip712_address`, every order must also carry an EIP-712 signature
/// that recovers to that address.
pub fn verify_effects_with(
    config: &Config,
    events: &[u8],
    effects: &[u8],
    key: &VerifyingKey,
    eip712_address: Option<[u8; 20]>,
) -> Result<VerifySummary, Failure> {
    let mut replay = Replay::new(config);
    let mut summary = VerifySummary::default();
    let mut file = lines(effects);
    let mut line_no = 0u64;
    for event in lines(events) {
        replay.apply(event);
        summary.events += 1;
        for entry in replay.entries() {
            line_no += 1;
            let fail = |reason: String| Failure { line: line_no, reason };
            let Some(text) = file.next() else {
                return Err(fail(format!(
                    "the file ends here; the replay has a {} effect of seq {} next",
                    entry.effect.type_name(),
                    entry.effect.seq
                )));
            };
            let text = std::str::from_utf8(text).map_err(|_| fail("not UTF-8".into()))?;
            if check_line(&entry, text, key, eip712_address).map_err(fail)? {
                summary.signatures += 1;
            }
            summary.effects += 1;
        }
    }
    if file.next().is_some() {
        return Err(Failure { line: line_no + 1, reason: "the replay emits no more effects, the file goes on".into() });
    }
    Ok(summary)
}

/// `Ok(true)` for a signed line whose signature verifies, `Ok(false)` for a matching unsigned one.
fn check_line(entry: &Entry<'_>, text: &str, key: &VerifyingKey, eip712: Option<[u8; 20]>) -> Result<bool, String> {
    let head = order::line_head(entry.effect, entry.chain_before.as_ref(), entry.state_hash.as_ref());
    let (Some(chain), Some(hash)) = (entry.chain_before, entry.state_hash) else {
        return if text.strip_prefix(head.as_str()) == Some("}") {
            Ok(false)
        } else {
            Err(difference(&head, "}", text))
        };
    };
    let rest = text
        .strip_prefix(head.as_str())
        .and_then(|rest| rest.strip_prefix(",\"sig\":\""))
        .and_then(|rest| rest.strip_suffix("\"}"))
        .ok_or_else(|| difference(&head, ",\"sig\":\"..\"}", text))?;
    let (sig_hex, evm_hex) = match rest.split_once("\",\"eip712_sig\":\"") {
        Some((sig, evm)) => (sig, Some(evm)),
        None => (rest, None),
    };
    match (eip712, evm_hex) {
        (None, None) => {}
        (Some(_), None) => return Err("`eip712_sig` is missing".into()),
        (None, Some(_)) => return Err("`eip712_sig` is present: pass the engine's EVM address to check it".into()),
        (Some(address), Some(evm_hex)) => {
            let bytes = strict_hex(evm_hex).ok_or("`eip712_sig` is not lowercase hex")?;
            let bytes: [u8; 65] = bytes.try_into().map_err(|_| "`eip712_sig` is not 65 bytes".to_string())?;
            let digest = crate::eip712::digest(entry.effect, &hash, &chain).ok_or("not an order type")?;
            if crate::eip712::recover(&digest, &bytes) != Some(address) {
                return Err("the EIP-712 signature does not recover to the engine's address".into());
            }
        }
    }
    let bytes = strict_hex(sig_hex).ok_or("`sig` is not lowercase hex")?;
    let bytes: [u8; 64] = bytes.try_into().map_err(|_| "`sig` is not 64 bytes".to_string())?;
    let signature = Signature::from_bytes(&bytes);
    if !order::check(key, entry.effect, &hash, &chain, &signature) {
        return Err(format!(
            "the signature of this {} (seq {}) does not verify under the public key",
            entry.effect.type_name(),
            entry.effect.seq
        ));
    }
    Ok(true)
}

/// Why `text` is not `head` + `tail`: the first field that differs, or where the bytes part.
fn difference(head: &str, tail: &str, text: &str) -> String {
    let Ok(serde_json::Value::Object(got)) = serde_json::from_str::<serde_json::Value>(text) else {
        return "not a JSON object".into();
    };
    let expected_text = format!("{head}{}", if tail == "}" { "}" } else { ",\"sig\":\"\"}" });
    let Ok(serde_json::Value::Object(expected)) = serde_json::from_str::<serde_json::Value>(&expected_text) else {
        return "the replay's line is not JSON (a bug)".into();
    };
    for (field, want) in &expected {
        match got.get(field) {
            None => return format!("field `{field}` is missing (the replay has {want})"),
            Some(value) if field != "sig" && value != want => {
                return format!("field `{field}` is {value}, the replay gives {want}");
            }
            _ => {}
        }
    }
    if let Some(field) = got.keys().find(|k| !expected.contains_key(*k)) {
        return format!("field `{field}` is not in the replay's effect");
    }
    let at = text
        .bytes()
        .zip(expected_text.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(text.len().min(expected_text.len()));
    format!("the fields match but the bytes differ from the canonical line at column {}", at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    /// Every single-byte change of a signed line (of each signed kind) and of an unsigned one is
    /// refused: one bit flipped, and the case of letters changed. Black Thursday has every signed
    /// kind but the collateral ones, which the squeeze example has.
    #[test]
    fn every_byte_of_a_line_matters() {
        let mut pending: Vec<&str> = order::SIGNED_TYPES.to_vec();
        pending.push("insurance");
        let mut checked = 0;
        for example in ["black_thursday.jsonl", "collateral_squeeze.jsonl"] {
            let path = format!("{}/../../examples/{example}", env!("CARGO_MANIFEST_DIR"));
            checked += every_byte_of(&std::fs::read(path).unwrap(), &mut pending);
        }
        assert!(pending.is_empty(), "the examples emit {pending:?}");
        assert!(checked > 4_000, "{checked} changes checked");
    }

    /// Flips every byte of the first line of each kind still `pending` in `events`' effects.
    fn every_byte_of(events: &[u8], pending: &mut Vec<&str>) -> u64 {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut replay = Replay::new(&Config::embedded_default());
        let mut checked = 0;
        for event in lines(events) {
            replay.apply(event);
            for entry in replay.entries() {
                let Some(at) = pending.iter().position(|t| *t == entry.effect.type_name()) else { continue };
                pending.remove(at);
                let mut line = order::line_head(entry.effect, entry.chain_before.as_ref(), entry.state_hash.as_ref());
                match (entry.chain_before, entry.state_hash) {
                    (Some(chain), Some(hash)) => {
                        line.push_str(&order::sig_field(&order::sign(&key, entry.effect, &hash, &chain)))
                    }
                    _ => line.push('}'),
                }
                assert!(check_line(&entry, &line, &key.verifying_key(), None).is_ok(), "{line}");
                let bytes = line.as_bytes();
                for i in 0..bytes.len() {
                    for change in [0x01u8, 0x20] {
                        let mut changed = bytes.to_vec();
                        changed[i] ^= change;
                        let Ok(text) = std::str::from_utf8(&changed) else { continue };
                        assert!(
                            check_line(&entry, text, &key.verifying_key(), None).is_err(),
                            "byte {i} ^ {change:#x}: {text}"
                        );
                        checked += 1;
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        checked
    }
}
