//! What a pull request's own events get: refusals of pull requests Sluice does not run (forks,
//! untrusted base branches) and the notice when one is closed or merged.

use super::plural;

/// Why a pull request from a fork is not run.
pub fn fork_refusal() -> String {
    "🚫 **Sluice does not run on pull requests from forks.** The code of a fork would run with \
this repository's credentials at plan time. A maintainer can push the branch to this repository \
instead, or the server can allow fork pull requests (`allow_fork_prs`)."
        .to_string()
}

/// Why a pull request into `base`, which is not trusted, is not run (`default` is the
/// repository's default branch).
pub fn untrusted_base(base: &str, default: &str) -> String {
    format!(
        "🚫 **Sluice does not run pull requests into `{base}`.** Policies and apply requirements are read from \
the base branch, so only trusted base branches are run: `{default}` (the default branch) and those the server's \
`base_branches` setting lists. Target `{default}`, or ask an administrator to add `{base}` (and protect it like `{default}`)."
    )
}

/// Why a pull request into `base` is not run: the server's repo rule `by` (`repos.yaml:4:5 (id
/// /.*/)`) limits the repository to base branches matching `pattern` (Atlantis' `branch`).
pub fn base_outside_rule(base: &str, pattern: &str, by: &str) -> String {
    format!(
        "🚫 **Sluice does not run pull requests into `{base}` in this repository.** The server's repo \
rule {by} limits it to base branches matching `{pattern}`. Target a matching branch, or ask an \
administrator to change the rule's `branch`."
    )
}

/// The notice of a closed (or merged) pull request that held locks or plans: `plans` discarded,
/// and `delivered` reviewed plans kept for the apply after merge (never called discarded).
pub fn closed(merged: bool, locks: usize, plans: usize, delivered: usize) -> String {
    let mut out = format!(
        "Pull request {}: released {locks} lock{}",
        if merged { "merged" } else { "closed" },
        plural(locks),
    );
    if plans > 0 || delivered == 0 {
        out.push_str(&format!(" and discarded {plans} plan{}", plural(plans)));
    }
    if delivered > 0 {
        out.push_str(&format!(
            "; {delivered} reviewed plan{} {} applied after merge (the merge commit is planned \
             and compared with {})",
            plural(delivered),
            if delivered == 1 { "is" } else { "are" },
            if delivered == 1 { "it" } else { "them" },
        ));
    }
    out.push('.');
    out
}

/// What the jobs of a closed pull request say when they are cancelled.
pub fn closed_cancel_reason(merged: bool) -> &'static str {
    if merged {
        "the pull request was merged"
    } else {
        "the pull request was closed"
    }
}

/// The audit reason of a fork refusal.
pub const FORK_REASON: &str = "fork pull requests are not run";

/// The audit reason of a refusal by a repo rule's `branch`.
pub const RULE_BRANCH_REASON: &str = "base branch outside the repo rule's branch";

/// The audit reason of an untrusted-base refusal.
pub const UNTRUSTED_BASE_REASON: &str = "base branch not trusted";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        insta::assert_snapshot!(fork_refusal(), @"🚫 **Sluice does not run on pull requests from forks.** The code of a fork would run with this repository's credentials at plan time. A maintainer can push the branch to this repository instead, or the server can allow fork pull requests (`allow_fork_prs`).");
        insta::assert_snapshot!(base_outside_rule("dev", "/^main$/", "repos.yaml:2:3 (id /.*/)"), @"🚫 **Sluice does not run pull requests into `dev` in this repository.** The server's repo rule repos.yaml:2:3 (id /.*/) limits it to base branches matching `/^main$/`. Target a matching branch, or ask an administrator to change the rule's `branch`.");
        insta::assert_snapshot!(untrusted_base("weak", "main"), @"🚫 **Sluice does not run pull requests into `weak`.** Policies and apply requirements are read from the base branch, so only trusted base branches are run: `main` (the default branch) and those the server's `base_branches` setting lists. Target `main`, or ask an administrator to add `weak` (and protect it like `main`).");
    }

    #[test]
    fn close_notices() {
        insta::assert_snapshot!(closed(false, 1, 1, 0), @"Pull request closed: released 1 lock and discarded 1 plan.");
        insta::assert_snapshot!(closed(true, 2, 0, 0), @"Pull request merged: released 2 locks and discarded 0 plans.");
        insta::assert_snapshot!(closed(true, 0, 0, 2), @"Pull request merged: released 0 locks; 2 reviewed plans are applied after merge (the merge commit is planned and compared with them).");
        insta::assert_snapshot!(closed(true, 1, 1, 1), @"Pull request merged: released 1 lock and discarded 1 plan; 1 reviewed plan is applied after merge (the merge commit is planned and compared with it).");
        assert_eq!(closed_cancel_reason(true), "the pull request was merged");
    }
}
