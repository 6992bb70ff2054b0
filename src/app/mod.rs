//! Orchestration: the flows of Sluice (preview, webhook intake, workers, plan/apply/unlock,
//! reporting) written over the port traits — the store, GitHub, git and the runner — held as
//! `Arc<dyn …>`. Rules come from `core`; I/O happens in `adapters`.

pub mod audit;
pub mod bot;
pub mod bounded;
pub mod config_check;
pub mod drift;
pub mod drift_check;
pub mod drift_cli;
pub mod engine_choice;
pub mod events_cli;
pub mod job_log;
pub mod layout;
pub mod locks_cli;
pub mod migrate_cli;
pub mod policy;
pub mod ports;
pub mod preview;
pub mod project_run;
pub mod repo_state;
pub mod rollback_cli;
pub mod server;
pub mod worker;
pub mod workflow_run;
