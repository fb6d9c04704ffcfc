//! Replaying an event file into the lines of a signed effects file. [`Replay`] is shared with the
//! verifier, so both derive each line from the same engine run.

use crate::order;
use ed25519_dalek::SigningKey;
use solvent_core::effect::chain_link;
use solvent_core::{Config, Effect, Engine};
use std::io::Write;

/// One effect of the replay with what its line carries.
pub struct Entry<'a> {
    pub effect: &'a Effect,
    /// Chain head before the effect; `None` for a refusal (not chained).
    pub chain_before: Option<[u8; 32]>,
    /// The state hash after the event, for the effects the engine signs.
    pub state_hash: Option<[u8; 32]>,
}

/// An engine replaying an event file line by line (seq = 1-based line number, as `solvent replay`).
pub struct Replay {
    engine: Engine,
    seq: u64,
    effects: Vec<Effect>,
    chain_before: [u8; 32],
    state_hash: Option<[u8; 32]>,
}

impl Replay {
    pub fn new(config: &Config) -> Replay {
        Replay::resume(Engine::new(config), 0)
    }

    /// Continue a replay from `engine` as it stood after event `seq` (a snapshot, or an engine
    /// that applied events `1..=seq`): the next line applied is event `seq + 1`.
    pub fn resume(engine: Engine, seq: u64) -> Replay {
        let chain_before = engine.effect_chain_head();
        Replay { engine, seq, effects: Vec::new(), chain_before, state_hash: None }
    }

    /// Apply the next line; its entries follow from [`Replay::entries`].
    pub fn apply(&mut self, line: &[u8]) {
        self.seq += 1;
        self.effects.clear();
        self.chain_before = self.engine.effect_chain_head();
        self.engine.apply_line(self.seq, line, &mut self.effects);
        // The state hash is computed only for events that emit a signed order.
        self.state_hash = if self.effects.iter().any(order::is_signed) {
            let hex = self.engine.state_hash();
            Some(crate::keys::hex32(&hex, "state hash").expect("the engine writes 64 hex digits"))
        } else {
            None
        };
    }

    /// The effects of the last line with their chain links.
    pub fn entries(&self) -> Vec<Entry<'_>> {
        let mut head = self.chain_before;
        let mut entries = Vec::with_capacity(self.effects.len());
        for effect in &self.effects {
            if effect.rejection_kind().is_some() {
                entries.push(Entry { effect, chain_before: None, state_hash: None });
                continue;
            }
            let state_hash = if order::is_signed(effect) { self.state_hash } else { None };
            entries.push(Entry { effect, chain_before: Some(head), state_hash });
            head = chain_link(&head, effect);
        }
        debug_assert_eq!(head, self.engine.effect_chain_head(), "the engine chains what it emits");
        entries
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Counts of a signing run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SignSummary {
    pub lines: u64,
    pub effects: u64,
    pub signed: u64,
}

/// Replay `events` and write every effect with its chain link, and the signed ones with the
/// state hash and an ed25519 signature, one per line.
pub fn sign_events(
    config: &Config,
    events: &[u8],
    key: &SigningKey,
    out: &mut dyn Write,
) -> Result<SignSummary, String> {
    sign_events_with(config, events, key, None, out)
}

/// [`sign_events`], and with `eip712` each order also as EIP-712 typed data (`"eip712_sig"`,
/// r || s || v in hex, after `"sig"`).
pub fn sign_events_with(
    config: &Config,
    events: &[u8],
    key: &SigningKey,
    eip712: Option<&k256::ecdsa::SigningKey>,
    out: &mut dyn Write,
) -> Result<SignSummary, String> {
    let mut replay = Replay::new(config);
    let mut summary = SignSummary::default();
    for line in lines(events) {
        replay.apply(line);
        summary.lines += 1;
        let written = write_lines(&replay, key, eip712, out)?;
        summary.effects += written.effects;
        summary.signed += written.signed;
    }
    Ok(summary)
}

/// Write the effects of the replay's last line, each with its chain link, and the signed ones
/// with the state hash, the ed25519 signature and (with `eip712`) the EIP-712 signature: the
/// lines of an effects file. `lines` of the answer is 0.
pub fn write_lines(
    replay: &Replay,
    key: &SigningKey,
    eip712: Option<&k256::ecdsa::SigningKey>,
    out: &mut dyn Write,
) -> Result<SignSummary, String> {
    let mut summary = SignSummary::default();
    for entry in replay.entries() {
        let mut text = order::line_head(entry.effect, entry.chain_before.as_ref(), entry.state_hash.as_ref());
        match (entry.chain_before, entry.state_hash) {
            (Some(chain), Some(hash)) => {
                let mut tail = order::sig_field(&order::sign(key, entry.effect, &hash, &chain));
                if let Some(evm) = eip712 {
                    let digest = crate::eip712::digest(entry.effect, &hash, &chain).expect("a signed type");
                    tail.pop();
                    tail.push_str(&format!(
                        ",\"eip712_sig\":\"{}\"}}",
                        hex::encode(crate::eip712::sign(evm, &digest)?)
                    ));
                }
                text.push_str(&tail);
                summary.signed += 1;
            }
            _ => text.push('}'),
        }
        summary.effects += 1;
        writeln!(out, "{text}").map_err(|e| format!("cannot write effects: {e}"))?;
    }
    Ok(summary)
}

/// The lines of an event file: split at `\n`, without the empty piece after a final newline.
pub fn lines(events: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = events.strip_suffix(b"\n").unwrap_or(events);
    body.split(|&b| b == b'\n').take(if events.is_empty() { 0 } else { usize::MAX })
}
