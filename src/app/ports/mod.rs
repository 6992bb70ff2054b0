//! The ports: the traits the flows are written against, and the data they exchange. The store
//! (everything persisted) and GitHub (everything said to or heard from it) live here; adapters
//! implement them (`adapters::store`, `adapters::github`), tests implement them in-process.
//!
//! Ports speak in core types and closed enums: no JSON strings, no string vocabularies. Turning
//! them into columns, JSON or HTTP is the adapters' business.

pub mod delivery;
pub mod drift;
pub mod github;
pub mod job_log;
pub mod store;

pub use github::{
    CommitStatus, GitHubApi, GitHubError, MAX_STATUS_DESCRIPTION, MergeableState, PostedReviewIds,
    PullDetails, PullState, StatusState,
};
pub use github::{NewPull, PullLink};
pub use store::Store;
