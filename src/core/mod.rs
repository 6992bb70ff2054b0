//! The pure core: the rules of Sluice, with no I/O.
//!
//! Nothing under `core` touches the network, the filesystem, processes, the environment, the
//! clock or async runtimes; time and ids come in as arguments. That keeps every rule testable
//! in milliseconds and makes the edge (`adapters`) the only place that can fail for reasons
//! outside the input. The `tidy` test enforces this.

pub mod allowlist;
pub mod apply_gate;
pub mod audit;
pub mod automerge;
pub mod base_rules;
pub mod checkout;
pub mod command;
pub mod dead_letter;
pub mod delivery;
pub mod diag;
pub mod displayed;
pub mod drift;
pub mod engine_version;
pub mod event;
pub mod freshness;
pub mod glob;
pub mod graph;
pub mod hcl_scan;
pub mod host_paths;
pub mod job;
pub mod lock;
pub mod merge_queue;
pub mod migrate;
pub mod plan;
pub mod policy;
pub mod projects;
pub mod removed;
pub mod reply;
pub mod repo_config;
pub mod review;
pub mod server_rules;
pub mod state_command;
pub mod target;
pub mod types;
pub mod ui;
pub mod workflow;
pub mod yaml;
