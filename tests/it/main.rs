//! Sluice's integration tests: one binary, real git, real terraform, real SQLite, a fake GitHub.

mod audit;
mod bot;
mod bounds;
mod drift;
mod durability;
mod engine_steering;
mod fake_github;
mod github_client;
mod intake;
mod policy;
mod preview;
mod real_dirs;
mod sandbox;
mod sandbox_network;
mod sandbox_probe;
mod server;
mod state_backend;
mod support;
mod tidy;
mod webhooks;
