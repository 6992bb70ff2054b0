//! Sluice: a self-hosted pull-request bot that gates Terraform/OpenTofu changes through Git.
//!
//! Layers (see ARCHITECTURE.md): `core` is pure; `app` orchestrates flows over the port traits;
//! `adapters` talk to the world (git, terraform in a sandbox, GitHub, the store); `http` is the
//! axum router; `cli` parses arguments and dispatches.
// Tests are tables and stories: the line limit is for shipped code (the lib target keeps it).
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;
pub mod core;
pub mod http;
