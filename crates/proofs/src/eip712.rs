//! Orders as EIP-712 typed data, signed with secp256k1, so that an EVM contract can check them
//! with `ecrecover`. The engine's secp256k1 key is derived from its ed25519 seed
//! (`BLAKE3-derive-key("solvent eip712 order key v1", seed)`), so one key file serves both.
//!
//! ```text
//! EIP712Domain(string name,string version)        name "solvent", version "1"
//! Order(string kind,string account,string market,int256 size,int256 price,uint256 seq,
//!       bytes32 stateHash,bytes32 chainHash,bytes32 effectHash)
//! ```
//!
//! `size` and `price` are the raw integers (8 decimals); `account`/`market`/`size`/`price` are the
//! liquidated account, or the deleveraged one, or the auction's bidder, and for a socialized loss
//! the bankrupt account with an empty market and zeros; for a collateral conversion the seller
//! and for a collateral fill the bidder, with the collateral asset in `market`. `effectHash` is keccak256 of the effect's
//! canonical encoding, which binds every other field. The signature is r || s || v (v = 27 or 28).

use ed25519_dalek::SigningKey as EdKey;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};
use solvent_core::{Effect, EffectKind};

pub const KEY_CONTEXT: &str = "solvent eip712 order key v1";
pub const ORDER_TYPE: &str = "Order(string kind,string account,string market,int256 size,int256 price,uint256 seq,bytes32 stateHash,bytes32 chainHash,bytes32 effectHash)";
pub const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version)";

fn keccak(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// The engine's secp256k1 key, derived from its ed25519 seed.
pub fn key(engine_key: &EdKey) -> Result<SigningKey, String> {
    let secret = blake3::derive_key(KEY_CONTEXT, &engine_key.to_bytes());
    SigningKey::from_slice(&secret).map_err(|e| format!("eip712 key: {e}"))
}

/// The 20-byte EVM address of a key.
pub fn address(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_encoded_point(false);
    let hash = keccak(&point.as_bytes()[1..]);
    hash[12..].try_into().expect("20 bytes")
}

/// (account, market, size raw, price raw) of a signed order.
pub fn order_fields(effect: &Effect) -> Option<(&str, &str, i64, i64)> {
    match &effect.kind {
        EffectKind::Liquidation { account, market, closed_size, price, .. } => {
            Some((account, market, closed_size.raw(), price.raw()))
        }
        EffectKind::Adl { account, market, size, price, .. } => Some((account, market, size.raw(), price.raw())),
        EffectKind::AuctionFill { bidder, market, size, price, .. } => Some((bidder, market, size.raw(), price.raw())),
        EffectKind::SocializedLoss { bankrupt, .. } => Some((bankrupt, "", 0, 0)),
        EffectKind::CollateralConversion { account, asset, size, price, .. } => {
            Some((account, asset, size.raw(), price.raw()))
        }
        EffectKind::CollateralFill { bidder, asset, size, price, .. } => Some((bidder, asset, size.raw(), price.raw())),
        _ => None,
    }
}

fn int256(v: i64) -> [u8; 32] {
    let mut word = if v < 0 { [0xff; 32] } else { [0; 32] };
    word[24..].copy_from_slice(&v.to_be_bytes());
    word
}

/// The EIP-712 digest of an order.
pub fn digest(effect: &Effect, state_hash: &[u8; 32], chain_before: &[u8; 32]) -> Option<[u8; 32]> {
    let (account, market, size, price) = order_fields(effect)?;
    let mut domain = Vec::with_capacity(96);
    domain.extend(keccak(DOMAIN_TYPE.as_bytes()));
    domain.extend(keccak(b"solvent"));
    domain.extend(keccak(b"1"));
    let mut order = Vec::with_capacity(320);
    order.extend(keccak(ORDER_TYPE.as_bytes()));
    order.extend(keccak(effect.type_name().as_bytes()));
    order.extend(keccak(account.as_bytes()));
    order.extend(keccak(market.as_bytes()));
    order.extend(int256(size));
    order.extend(int256(price));
    order.extend(int256(0)[..24].iter().copied().chain(effect.seq.to_be_bytes()));
    order.extend(state_hash);
    order.extend(chain_before);
    order.extend(keccak(&effect.canonical_bytes()));
    let mut message = vec![0x19, 0x01];
    message.extend(keccak(&domain));
    message.extend(keccak(&order));
    Some(keccak(&message))
}

/// r || s || v over the order's digest.
pub fn sign(key: &SigningKey, digest: &[u8; 32]) -> Result<[u8; 65], String> {
    let (signature, recovery) = key.sign_prehash_recoverable(digest).map_err(|e| format!("eip712 signing: {e}"))?;
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&signature.to_bytes());
    out[64] = 27 + recovery.to_byte();
    Ok(out)
}

/// The address that signed `digest`, as `ecrecover` finds it.
pub fn recover(digest: &[u8; 32], signature: &[u8; 65]) -> Option<[u8; 20]> {
    let parsed = Signature::from_slice(&signature[..64]).ok()?;
    let recovery = RecoveryId::from_byte(signature[64].checked_sub(27)?)?;
    VerifyingKey::recover_from_prehash(digest, &parsed, recovery).ok().map(|key| address(&key))
}
