//! Sluice's integration tests: one binary, real git, real terraform, real SQLite, a fake GitHub.

mod audit;
mod bot;
mod durability;
mod fake_github;
mod github_client;
mod policy;
mod preview;
mod sandbox;
mod sandbox_network;
mod sandbox_probe;
mod server;
mod support;
mod tidy;
mod webhooks;
