pub mod calibrate;
pub mod error;
pub mod gap;
pub mod optim;
pub mod stats;
pub mod svjd;
pub mod vol;
pub use error::{ModelError, Result};
pub const SECONDS_PER_YEAR: f64 = 365.0 * 86_400.0;
