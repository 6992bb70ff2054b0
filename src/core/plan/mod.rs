//! Plans: the model of `terraform show -json`, its summary, the human diff, secret redaction,
//! and the PR comment (markdown, split to GitHub's size limit) or terminal rendering of a run.
//!
//! Everything here is pure: no I/O, no async, no clock, no environment. Inputs are bytes and
//! values; outputs are strings. The flow is
//! `parse_plan_json` → `PlanSummary::from_plan` + `render_diff` → `Redactor::redact` →
//! `ProjectReport` → `render_comments` (which splits) or `render_terminal`.

pub mod diff;
pub mod model;
pub mod redact;
pub mod render;
pub mod split;
pub mod summary;
pub mod synthetic;

pub use diff::{render_diff, render_diff_into};
pub use model::{
    Action, Change, ConfigResource, Configuration, Importing, ModuleCall, ModuleConfig, Plan,
    PlanJsonError, ResourceChange, ResourceMode, parse_plan_json,
};
pub use redact::Redactor;
pub use render::{
    CommandName, CommentLimits, FailedStage, ProjectOutcome, ProjectReport, RenderContext,
    TerminalStyle, render_comments, render_terminal,
};
pub use split::{Frame, split_markdown};
pub use summary::PlanSummary;
pub use synthetic::synthetic_plan_json;
