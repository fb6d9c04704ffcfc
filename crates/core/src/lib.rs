//! solvent-core: the pure, deterministic solvency state machine.
//!
//! Events in, effects out: [`Engine::apply`] takes an [`Event`] and either changes the state and
//! appends [`Effect`]s, or returns a typed [`Error`] and changes nothing. No I/O, no clock, no
//! threads, no floats, no hash-map iteration in anything observable. `docs/ARCHITECTURE.md` maps
//! the modules.

pub mod asset_status;
pub mod config;
pub mod config_check;
pub mod dump;
pub mod effect;
pub mod engine;
pub mod error;
pub mod event;
mod fastparse;
pub mod funding;
pub mod hash;
mod isolated;
pub mod json;
pub mod liquidation;
pub mod liquidation_map;
pub mod margin;
pub(crate) mod names;
pub mod num;
pub mod oracle;
pub mod params;
pub mod phase_in;
pub mod portfolio;
pub mod prefetch;
pub mod protocol_book;
pub mod risk_index;
pub mod signal;
pub mod state;
pub mod trade;
pub mod transfer;

pub use config::{Config, ConfigError, DEFAULT_CONFIG_TOML};
pub use effect::{Effect, EffectKind};
pub use engine::Engine;
pub use error::Error;
pub use event::Event;
pub use num::{Price, Quote, Rate, Round, Size};
pub use prefetch::Prefetch;
