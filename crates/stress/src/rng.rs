//! Seeded random streams. Every consumer draws from its own ChaCha8 stream of
//! the run's seed, so results do not depend on the order in which threads run.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Stream of the synthetic population.
pub const STREAM_POPULATION: u64 = 1 << 40;
/// Streams of the fixed-shock noise (plus the scenario's index).
pub const STREAM_SHOCKS: u64 = 2 << 40;
/// Streams of the makers' congestion (plus 40 bits of the scenario's name hash).
pub const STREAM_CONGESTION: u64 = 3 << 40;

/// ChaCha8 seeded with `seed`, on stream `stream`.
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}
