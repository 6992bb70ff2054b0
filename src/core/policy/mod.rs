//! Repository policies (PRODUCT.md §6): who may run which command, which approvals `apply`
//! needs, and rules over the plan itself — written in plain YAML that lives in the repository,
//! is reviewed like code, and is always read from the PR's **base** branch so a PR cannot weaken
//! the policy that governs it (the caller's job: this module never sees a branch).
//!
//! The flow: [`parse_policy_file`] for each `policies/*.yaml` (and `sluice.yaml`'s `policies:`,
//! read by `repo_config` into `RepoConfig::policies`) → [`load_policies`] (set-wide checks; no
//! policies at all when any file has an error) → the caller resolves [`teams_referenced`]
//! through GitHub into a [`TeamMembership`] → [`evaluate`] per project and command → [`blocks`],
//! [`render_section`] for the PR comment, [`Decision::to_audit`] for the audit log;
//! `approve_policies` goes through [`plan_overrides`] and [`may_override`].
//!
//! Everything here is pure: no I/O, no clock, no async. The user-facing description of the
//! format is `policies/README.md` at the repository root; in short:
//!
//! ```yaml
//! version: 1
//! policies:
//!   - name: protect-prod-databases        # unique; `approve_policies --policy-set NAME`
//!     description: DBAs sign off on destroying production databases
//!     scope:                              # all optional; a missing key means "all"
//!       projects: ["prod-*", "envs/prod/**"]   # project names or dirs (globs)
//!       workspaces: [default]
//!       branches: [main]                  # the PR's target branch
//!     access:                             # who may run each command (others: unrestricted)
//!       apply: { teams: [acme/infra], users: [alice] }
//!     approvals:                          # or all_of / any_of: [{minimum, from}, ...]
//!       minimum: 2
//!       from: { teams: [acme/platform] }
//!       ignore_stale: true                # only approvals of the head commit count
//!     rules:
//!       - deny: [delete, replace]
//!         resource_types: [aws_db_instance]
//!       - require_approval: [update]
//!         resource_types: ["aws_db_*"]
//!         approvals: { minimum: 1, from: { teams: [acme/dba] } }
//!       - max_destroys: 10
//!       - max_changes: 100
//!       - deny_providers: [hashicorp/external]
//!       - require_tags: [Owner, CostCenter]
//!         resource_types: ["aws_*"]
//!     on_failure: require_override        # deny (default) | require_override | warn
//!     owners: { teams: [acme/dba] }       # who may override
//! ```

mod check;
mod eval;
mod model;
mod parse;
mod render;
#[cfg(test)]
mod test_support;

pub use check::{
    POLICY_DIR, check_policy_set, check_teams, is_policy_file, load_policies, teams_referenced,
};
pub use eval::{
    Decision, MAX_REASONS_PER_RULE, Outcome, OverridePlan, PolicyInput, PolicyOverride, Reason,
    ReasonKind, TeamLookup, TeamMembership, blocks, evaluate, may_override, plan_overrides,
};
pub use model::{
    AccessRule, ApprovalGroup, Approvals, ChangeKind, Combine, OnFailure, Pattern, PatternKind,
    PlanRule, Policy, Principal, Principals, ResourceFilter, RuleAction, RuleKind, Scope, Stage,
    TeamRef,
};
pub(crate) use parse::policies_node;
pub use parse::{DEFAULT_TAG_ATTRIBUTES, SUPPORTED_VERSIONS, parse_policy_file};
pub use render::{MAX_RENDERED_REASONS, render_section};

/// An inline code span for text that may contain anything (addresses come from the PR's own
/// code): whitespace and control characters collapse to one space, and the fence is longer than
/// any run of back-ticks inside, so the text can never close the span and become markup.
pub(crate) fn code(s: &str) -> String {
    let flat: String = s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let longest = flat.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    if longest == 0 {
        format!("`{flat}`")
    } else {
        let fence = "`".repeat(longest + 1);
        format!("{fence} {flat} {fence}")
    }
}
