//! `signal` events: external inputs an advisor may read (funding, basis, open interest, an
//! implied-volatility index, a sentiment score), journaled like any event so that a replay sees
//! what the advisor saw. The engine keeps the latest value per (market, name), bounded; a signal
//! never changes margin by itself (only the advisor's `params` events do).

use crate::engine::Engine;
use crate::error::Error;
use crate::event::Signal;
use crate::num::Quote;
use serde::{Deserialize, Serialize};

/// Most signal names kept per market (and for the market-less ones).
pub const MAX_SIGNALS: usize = 64;

/// The latest value of one signal and the `ts` of the event that set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalValue {
    pub value: Quote,
    pub ts: u64,
}

/// Latest signals by name, sorted by name (so hashing and the dump need no sort).
pub type Signals = Vec<(Box<str>, SignalValue)>;

impl Engine {
    pub(crate) fn signal(&mut self, signal: &Signal) -> Result<(), Error> {
        let table = match &signal.market {
            Some(name) => {
                let id = self.market_id(name)?;
                &mut self.markets[id.0 as usize].signals
            }
            None => &mut self.signals,
        };
        let entry = SignalValue { value: signal.value, ts: signal.ts };
        match table.binary_search_by(|(name, _)| (**name).cmp(signal.name.as_str())) {
            Ok(i) => table[i].1 = entry,
            Err(_) if table.len() >= MAX_SIGNALS => {
                return Err(Error::TooManySignals { max: MAX_SIGNALS, name: signal.name.clone() })
            }
            Err(i) => table.insert(i, (signal.name.as_str().into(), entry)),
        }
        Ok(())
    }

    /// The latest market-less signals, sorted by name.
    pub fn signals(&self) -> &[(Box<str>, SignalValue)] {
        &self.signals
    }
}
