//! Drift: the pure core of reconciliation (PRODUCT.md §14).
pub mod classify;
pub mod fingerprint;
pub mod grammar;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
pub mod report;
pub mod schedule;
pub mod status;
pub(crate) mod text;
