//! solvent-proofs: what lets someone outside the venue check the engine.
//!
//! - [`order`]: the signed order message over an effect's canonical encoding (`solvent-core`'s
//!   `effect.rs`), ed25519 signing and checking.
//! - [`keys`]: engine key pairs (`solvent keygen`), loaded from a file or an environment variable.
//! - [`signing`]: replay an event file and write the effects with their chain links, state hashes
//!   and signatures; [`verify`]: replay again and check every line of such a file.
//! - [`liabilities`]: the Merkle-sum tree over account equity, its signed root and inclusion proofs.
//! - [`health`]: zero-knowledge margin health (Pedersen commitments, aggregated Bulletproofs).
//!
//! Reads engine state and encodings only; the core knows nothing of this crate. `docs/proofs.md`
//! is the auditor's description.

pub mod eip712;
pub mod health;
pub mod keys;
pub mod liabilities;
pub mod order;
pub mod signing;
pub mod verify;
