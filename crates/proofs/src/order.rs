//! Signed orders. The engine signs each `liquidation`, `adl`, `socialized_loss`,
//! `auction_fill`, `collateral_conversion` and `collateral_fill` effect: the message is
//!
//! ```text
//! "solvent-order-v1" (16 bytes) || state hash (32 bytes) || chain head before the effect (32 bytes)
//!   || the effect's canonical encoding (solvent_core::effect, version byte first)
//! ```
//!
//! The encoding carries the account, market, size, price, seq and ts (and every other field of
//! the effect); the state hash is the engine's after the event that emitted the effect, and the
//! chain head commits to every effect before it.
//!
//! In an effects file every effect of an accepted event carries `"chain"` (64 hex digits, the head
//! before it); a signed one also `"state_hash"` and `"sig"` (128 hex digits), appended in that
//! order after the effect's own fields. Refusals carry none of them: they are not chained.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use solvent_core::Effect;

/// Domain tag that starts every order message.
pub const ORDER_DOMAIN: &[u8] = b"solvent-order-v1";

/// The effect types the engine signs.
pub const SIGNED_TYPES: [&str; 6] =
    ["liquidation", "adl", "socialized_loss", "auction_fill", "collateral_conversion", "collateral_fill"];

/// Whether the engine signs this effect.
pub fn is_signed(effect: &Effect) -> bool {
    SIGNED_TYPES.contains(&effect.type_name())
}

/// The bytes the engine signs for `effect`.
pub fn message(effect: &Effect, state_hash: &[u8; 32], chain_before: &[u8; 32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ORDER_DOMAIN.len() + 64 + 160);
    bytes.extend_from_slice(ORDER_DOMAIN);
    bytes.extend_from_slice(state_hash);
    bytes.extend_from_slice(chain_before);
    effect.encode(&mut bytes);
    bytes
}

pub fn sign(key: &SigningKey, effect: &Effect, state_hash: &[u8; 32], chain_before: &[u8; 32]) -> Signature {
    key.sign(&message(effect, state_hash, chain_before))
}

pub fn check(
    key: &VerifyingKey,
    effect: &Effect,
    state_hash: &[u8; 32],
    chain_before: &[u8; 32],
    signature: &Signature,
) -> bool {
    key.verify(&message(effect, state_hash, chain_before), signature).is_ok()
}

/// One effect as the effects file holds it, without the closing `}` and without `sig`: the
/// effect's JSON line, then `chain` and `state_hash` when given.
pub fn line_head(effect: &Effect, chain_before: Option<&[u8; 32]>, state_hash: Option<&[u8; 32]>) -> String {
    let mut line = effect.to_json_line();
    let closing = line.pop();
    debug_assert_eq!(closing, Some('}'), "an effect is a JSON object");
    if let Some(chain) = chain_before {
        line.push_str(&format!(",\"chain\":\"{}\"", hex::encode(chain)));
    }
    if let Some(hash) = state_hash {
        line.push_str(&format!(",\"state_hash\":\"{}\"", hex::encode(hash)));
    }
    line
}

/// The text between [`line_head`] and the end of a signed line.
pub fn sig_field(signature: &Signature) -> String {
    format!(",\"sig\":\"{}\"}}", hex::encode(signature.to_bytes()))
}
