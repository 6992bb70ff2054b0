//! Orchestration: the flows of Sluice (preview, webhook intake, workers, plan/apply/unlock,
//! reporting) written over the port traits — the store, GitHub, git and the runner — held as
//! `Arc<dyn …>`. Rules come from `core`; I/O happens in `adapters`.

pub mod store;
