//! Bearer-token authentication, role checks per event, and a token-bucket rate limit per token.
//!
//! Tokens are stored as BLAKE3 hashes; a presented token is hashed and compared with every stored
//! hash in constant time (`subtle`), without stopping at the first match. Roles: `oracle` (price
//! ticks, only for its `sources`), `matcher` (trades), `treasury` (deposits, withdrawals,
//! insurance fund deposits),
//! `backstop` (auction takes, only as one of its `bidders`), `admin` (params, clock, signals, asset status), `viewer`
//! (reads). Every valid token may read.

use crate::settings::TokenSpec;
use serde::{Deserialize, Serialize};
use solvent_core::Event;
use std::sync::Mutex;
use std::time::Instant;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Longest bearer token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Oracle,
    Matcher,
    Treasury,
    Backstop,
    Admin,
    Viewer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Oracle => "oracle",
            Role::Matcher => "matcher",
            Role::Treasury => "treasury",
            Role::Backstop => "backstop",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// A configured token: its hash, role and bindings.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub hash: [u8; 32],
    pub sources: Vec<String>,
    pub bidders: Vec<String>,
}

/// Hex BLAKE3 of a token, as stored in the server config.
pub fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl TokenEntry {
    pub fn from_spec(spec: TokenSpec) -> Result<TokenEntry, String> {
        let what = format!("token {:?}", spec.name);
        let bytes = hex::decode(&spec.token_blake3).map_err(|_| format!("{what}: token_blake3 must be hex"))?;
        let hash: [u8; 32] = bytes.try_into().map_err(|_| format!("{what}: token_blake3 must be 64 hex digits"))?;
        match spec.role {
            Role::Oracle if spec.sources.is_empty() => return Err(format!("{what}: an oracle token needs `sources`")),
            Role::Backstop if spec.bidders.is_empty() => {
                return Err(format!("{what}: a backstop token needs `bidders`"));
            }
            Role::Oracle | Role::Backstop => {}
            _ if !spec.sources.is_empty() || !spec.bidders.is_empty() => {
                return Err(format!("{what}: `sources` and `bidders` only apply to oracle and backstop tokens"));
            }
            _ => {}
        }
        Ok(TokenEntry { name: spec.name, role: spec.role, hash, sources: spec.sources, bidders: spec.bidders })
    }
}

/// Why a request was not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (Authorization: Bearer <token>)")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("{0}")]
    Forbidden(String),
    #[error("rate limit exceeded for token {0:?}; retry later")]
    RateLimited(String),
}

/// What an event needs from the token that posts it.
pub fn authorize_event(token: &TokenEntry, event: &Event) -> Result<(), AuthError> {
    // Deliberately exhaustive (no `_` arm): a new event type does not compile until someone
    // decides here which role may post it, and docs/serve.md's role table says so too.
    let (needed, what) = match event {
        Event::Deposit(_) => (Role::Treasury, "deposit"),
        Event::Withdraw(_) => (Role::Treasury, "withdraw"),
        Event::FundDeposit { .. } => (Role::Treasury, "fund_deposit"),
        Event::Price(_) => (Role::Oracle, "price"),
        Event::Trade(_) => (Role::Matcher, "trade"),
        Event::AuctionTake(_) => (Role::Backstop, "auction_take"),
        // A backstop maker buying the protocol's liquidated collateral, as it takes auctions.
        Event::CollateralTake(_) => (Role::Backstop, "collateral_take"),
        Event::Clock { .. } => (Role::Admin, "clock"),
        Event::Params(_) => (Role::Admin, "params"),
        Event::Signal(_) => (Role::Admin, "signal"),
        // Collateral moves between an account's wallets, as a deposit or withdrawal does.
        Event::IsolatedMargin(_) => (Role::Treasury, "isolated_margin"),
        // An account setting that changes what its collateral must cover, judged like a
        // withdrawal: the venue's account service, not the matcher or an oracle.
        Event::MarginModel(_) => (Role::Treasury, "margin_model"),
        // A venue risk decision about a collateral asset's bridge or peg, like `params`.
        Event::AssetStatus(_) => (Role::Admin, "asset_status"),
    };
    if token.role != needed {
        let message = format!(
            "token {:?} has role {}; a {what} event needs role {}",
            token.name,
            token.role.name(),
            needed.name()
        );
        return Err(AuthError::Forbidden(message));
    }
    match event {
        Event::Price(tick) if !token.sources.contains(&tick.source) => Err(AuthError::Forbidden(format!(
            "token {:?} may post prices only for sources {:?}, not {:?}",
            token.name, token.sources, tick.source
        ))),
        Event::AuctionTake(take) if !token.bidders.contains(&take.bidder) => Err(AuthError::Forbidden(format!(
            "token {:?} may take auctions only as bidders {:?}, not {:?}",
            token.name, token.bidders, take.bidder
        ))),
        Event::CollateralTake(take) if !token.bidders.contains(&take.bidder) => Err(AuthError::Forbidden(format!(
            "token {:?} may take collateral only as bidders {:?}, not {:?}",
            token.name, token.bidders, take.bidder
        ))),
        _ => Ok(()),
    }
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// The configured tokens, their rate-limit buckets, and the checks.
pub struct Authenticator {
    tokens: Vec<TokenEntry>,
    buckets: Vec<Mutex<Bucket>>,
    rate_per_sec: f64,
    burst: f64,
}

impl Authenticator {
    pub fn new(tokens: Vec<TokenEntry>, rate_per_sec: f64, burst: f64) -> Authenticator {
        let now = Instant::now();
        let buckets = tokens.iter().map(|_| Mutex::new(Bucket { tokens: burst, refilled_at: now })).collect();
        Authenticator { tokens, buckets, rate_per_sec, burst }
    }

    /// The token behind an `Authorization` header value, by index.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<usize, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = strip_bearer(header).ok_or(AuthError::Invalid)?;
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid);
        }
        let presented = blake3::hash(token);
        let mut found = subtle::Choice::from(0u8);
        let mut index = 0u64;
        for (i, entry) in self.tokens.iter().enumerate() {
            let equal = presented.as_bytes().ct_eq(&entry.hash);
            index = u64::conditional_select(&index, &(i as u64), equal);
            found |= equal;
        }
        if bool::from(found) {
            Ok(index as usize)
        } else {
            Err(AuthError::Invalid)
        }
    }

    pub fn token(&self, index: usize) -> &TokenEntry {
        &self.tokens[index]
    }

    /// Take one request from the token's bucket.
    pub fn check_rate(&self, index: usize) -> Result<(), AuthError> {
        let limited = || AuthError::RateLimited(self.tokens[index].name.clone());
        let mut bucket = self.buckets[index].lock().map_err(|_| limited())?;
        let now = Instant::now();
        let elapsed_secs = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed_secs * self.rate_per_sec).min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens < 1.0 {
            return Err(limited());
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, role: Role, token: &str, sources: &[&str]) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            role,
            hash: *blake3::hash(token.as_bytes()).as_bytes(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            bidders: Vec::new(),
        }
    }

    #[test]
    fn tokens_roles_and_bindings() {
        let auth = Authenticator::new(
            vec![entry("o1", Role::Oracle, "tok-o1", &["s1"]), entry("t", Role::Treasury, "tok-t", &[])],
            1.0,
            2.0,
        );
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(auth.authenticate(Some(b"Bearer nope")), Err(AuthError::Invalid));
        assert_eq!(auth.authenticate(Some(b"Basic tok-t")), Err(AuthError::Invalid));
        assert_eq!(auth.authenticate(Some(b"bearer tok-t")), Ok(1));
        let oracle = auth.token(auth.authenticate(Some(b"Bearer tok-o1")).unwrap());
        let tick = |source: &str| {
            Event::parse_str(&format!(
                r#"{{"type":"price","ts":1,"market":"BTC-PERP","source":"{source}","price":"1"}}"#
            ))
            .unwrap()
        };
        assert_eq!(authorize_event(oracle, &tick("s1")), Ok(()));
        assert!(matches!(authorize_event(oracle, &tick("s2")), Err(AuthError::Forbidden(_))));
        let deposit =
            Event::parse_str(r#"{"type":"deposit","ts":1,"account":"a","asset":"USDC","amount":"1"}"#).unwrap();
        assert!(matches!(authorize_event(oracle, &deposit), Err(AuthError::Forbidden(_))));
        let model = Event::parse_str(r#"{"type":"margin_model","ts":1,"account":"a","model":"portfolio"}"#).unwrap();
        assert!(matches!(authorize_event(oracle, &model), Err(AuthError::Forbidden(_))));
        let treasury = auth.token(auth.authenticate(Some(b"Bearer tok-t")).unwrap());
        assert_eq!(authorize_event(treasury, &model), Ok(()));
        let status =
            Event::parse_str(r#"{"type":"asset_status","ts":1,"asset":"BTC","status":"bridge_halted"}"#).unwrap();
        assert!(matches!(authorize_event(treasury, &status), Err(AuthError::Forbidden(_))), "an admin decision");
        assert!(matches!(authorize_event(oracle, &status), Err(AuthError::Forbidden(_))));
        assert_eq!(authorize_event(&entry("a", Role::Admin, "tok-a", &[]), &status), Ok(()));
        assert_eq!(auth.check_rate(0), Ok(()));
        assert_eq!(auth.check_rate(0), Ok(()));
        assert!(matches!(auth.check_rate(0), Err(AuthError::RateLimited(_))));
    }

    /// A collateral take needs the backstop role, as an auction take, and a bidder of the token.
    #[test]
    fn collateral_takes_need_the_backstop_role_and_its_bidders() {
        let mut backstop = entry("b", Role::Backstop, "tok-b", &[]);
        backstop.bidders = vec!["mm1".into()];
        let treasury = entry("t", Role::Treasury, "tok-t", &[]);
        let take = |bidder: &str| {
            Event::parse_str(&format!(
                r#"{{"type":"collateral_take","ts":1,"asset":"BTC","bidder":"{bidder}","size":"1"}}"#
            ))
            .unwrap()
        };
        assert_eq!(authorize_event(&backstop, &take("mm1")), Ok(()));
        assert!(matches!(authorize_event(&backstop, &take("mm2")), Err(AuthError::Forbidden(_))));
        assert!(matches!(authorize_event(&treasury, &take("mm1")), Err(AuthError::Forbidden(_))));
    }
}
