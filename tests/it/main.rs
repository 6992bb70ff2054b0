//! Sluice's integration tests: one binary, real git, real terraform, real SQLite, a fake GitHub.

mod fake_github;
mod github_client;
mod preview;
mod sandbox;
mod support;
mod tidy;
mod webhooks;
