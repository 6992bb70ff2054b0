//! Sluice's integration tests: one binary, real git, real terraform, real SQLite, a fake GitHub.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::too_many_lines,
    reason = "tests start the binary and tools themselves, and a failed unwrap is a failed test"
)]

mod atlantis;
mod audit;
mod bot;
mod bounds;
mod delivery;
mod detection;
mod drift;
mod durability;
mod engine_download;
mod engine_steering;
mod engine_version;
mod fake_github;
mod flows;
mod github_client;
mod intake;
mod merge_queue;
mod odd_names;
mod plan_view;
mod policy;
mod preview;
mod real_dirs;
mod redaction;
mod rego;
mod rego_gate;
mod remediate;
mod removed;
mod repo_rules;
mod review_flow;
mod review_github;
mod review_writes;
mod rollback;
mod sandbox;
mod sandbox_network;
mod sandbox_probe;
mod server;
mod state_backend;
mod state_commands;
mod support;
mod tidy;
mod ui;
mod ui_browser;
mod webhooks;
mod workflows;
