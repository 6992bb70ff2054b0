//! The GitHub adapter: everything Sluice says to or hears from GitHub.
//!
//! * [`webhook`] verifies webhook signatures and converts payloads into core events;
//! * [`client`] is the implementation of the GitHub port (`app::ports::GitHubApi`),
//!   [`OctocrabGitHub`]: one octocrab client, one rate limiter, one retry policy, for every API
//!   call.
//!
//! Nothing here decides what to do with an event or what to post; that is `core` and `app`.

pub mod client;
pub mod webhook;

pub use client::{GitHubAuth, GitHubConfig, OctocrabGitHub};
pub use webhook::{ParseError, SignatureError, parse_event, verify_signature};
