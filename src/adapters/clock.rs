//! The system clock: the one place the server reads the time of day. Flows take the time from
//! here and hand it to the store and to `core` as an argument; `core` never reads a clock.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
