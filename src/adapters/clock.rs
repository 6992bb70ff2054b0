//! The system clock: the one place the server reads the time of day. Flows take the time from
//! here and hand it to the store and to `core` as an argument; `core` never reads a clock.

use crate::core::types::UnixMs;

/// The time now.
pub fn now() -> UnixMs {
    UnixMs::new(chrono::Utc::now().timestamp_millis())
}
