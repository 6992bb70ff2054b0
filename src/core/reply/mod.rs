//! Every text Sluice posts on a pull request that is not a plan or apply comment (those are
//! `core::plan::render`): refusals, queueing, unlock and close notices, the `approve_policies`
//! and `version` answers, commit status descriptions, and what a job's report says when the job
//! never ran to its end. Each is a pure function of plain values, with an inline snapshot of
//! what the user reads next to it; the flows in `app::bot` and `app::worker` only choose which
//! one to post.
//!
//! Grouped by the event or command that posts them. Usage and comment-grammar errors live with
//! the grammar (`core::command`), the stale-command refusal with its rule (`core::freshness`),
//! dead-letter notices with theirs (`core::dead_letter`).

pub mod apply;
pub mod approve_policies;
pub mod automerge;
pub mod comment;
pub mod delivery;
pub mod job;
pub mod merge_queue;
pub mod plan;
pub mod pull_request;
pub mod remediate;
pub mod removed;
pub mod rollback;
pub mod state;
pub mod status;
pub mod unlock;
pub mod version;

/// `s` when `n` is not one (`1 lock`, `2 locks`).
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
