//! Sluice's integration tests: one binary, real git, real terraform, real SQLite, a fake GitHub.

mod tidy;
