//! What Sluice says about delivery after merge (`apply_mode: on_merge`): the `sluice/apply-gate`
//! check, the refusal of an `apply` comment on a project applied after merge, the comment on a
//! merged pull request whose merge commit was not (all) applied, and the notification of it.
//! The apply itself is reported like any apply (`core::plan::render`).

use super::plural;
use crate::core::delivery::Change;
use crate::core::types::CommitSha;

/// `sluice/apply-gate` when every project applied after merge passes the gate.
pub fn gate_passed(n: usize) -> String {
    format!("ready: {n} project{} apply after merge", plural(n))
}

/// `sluice/apply-gate` when every project passes: `n` projects apply after merge and the
/// `by_comment` others are applied at the head (or have nothing to apply there).
pub fn gate_passed_all(n: usize, by_comment: usize) -> String {
    match (n, by_comment) {
        (_, 0) => gate_passed(n),
        (0, m) => format!("ready: nothing left to apply ({m} project{})", plural(m)),
        (n, m) => format!(
            "ready: nothing left to apply by comment ({m} project{}), {n} apply after merge",
            plural(m)
        ),
    }
}

/// Why `sluice/apply-gate` does not pass for a project applied by comment: its plan for the
/// head has changes nobody applied yet.
pub const NOT_APPLIED_YET: &str = "planned at the head, not applied yet (comment `apply`)";

/// Why `sluice/apply-gate` does not pass for a project applied by comment: no plan for the
/// head yet.
pub const NOT_PLANNED_AT_HEAD: &str = "not planned at the head commit yet";

/// Why `sluice/apply-gate` does not pass for a project applied by comment at an earlier commit:
/// the head has not been planned since.
pub const NOT_PLANNED_SINCE_APPLY: &str =
    "applied at an earlier commit; the head commit is not planned yet";

/// `sluice/apply-gate` when some project fails the gate: the first reason.
pub fn gate_failed(first_reason: &str) -> String {
    format!("not ready: {first_reason}")
}

/// `sluice/apply-gate` while the pull request's plan runs.
pub const GATE_PLANNING: &str = "waiting for the plan";

/// `sluice/apply` on the merge commit while it is planned and applied.
pub fn delivering(n: usize) -> String {
    format!(
        "planning and applying the merge commit ({n} project{})",
        plural(n)
    )
}

/// `sluice/apply` on the merge commit when something was not applied.
pub const NOT_APPLIED: &str = "not applied after merge: see the pull request";

/// The refusal reason of an `apply` comment on a project that is applied after merge.
pub fn applies_after_merge(bot_name: &str) -> String {
    format!(
        "this project is applied after merge (`apply_mode: on_merge` in the base branch's \
         {bot_name}.yaml): merge the pull request once `sluice/apply-gate` passes"
    )
}

/// Why a project was not applied: its reviewed plan is missing.
pub const NO_REVIEWED_PLAN: &str = "the pull request merged without a reviewed plan of this \
     project for its head commit (merged while the plan was running or waiting for a lock, \
     after it failed, or never planned)";

/// Why `sluice/apply-gate` does not pass for a project the merge would apply: it has no plan
/// for the pull request's head.
pub const NO_PLAN_AT_HEAD: &str = "no reviewed plan for the head commit (not planned, its plan \
     failed, or it waits for a lock)";

/// Why a project was not applied: the merge commit's plan differs from the reviewed one.
pub fn plan_differs(reviewed_only: &[Change], merged_only: &[Change], replan: bool) -> String {
    let list = changes_list;
    let then = if replan {
        "and the base branch's policies refuse the new plan"
    } else {
        "and `merge_plan_check: strict` applies only what was reviewed"
    };
    format!(
        "the merge commit's plan differs from the reviewed plan (only reviewed: {}; only at \
         merge: {}) {then}",
        list(reviewed_only),
        list(merged_only)
    )
}

/// The note on an apply after merge whose plan differs from the reviewed one and was applied
/// (`merge_plan_check: replan`, the policies passed): what differs, by address and action.
pub fn replanned(reviewed_only: &[Change], merged_only: &[Change]) -> String {
    format!(
        "⚠️ **Not the reviewed plan:** the merge commit's plan differs from the reviewed plan \
         (only reviewed: {}; only at merge: {}); `merge_plan_check: replan` applied it because \
         the base branch's policies pass on it.",
        changes_list(reviewed_only),
        changes_list(merged_only)
    )
}

fn changes_list(cs: &[Change]) -> String {
    if cs.is_empty() {
        "nothing".to_string()
    } else {
        cs.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a project was not applied: the base branch's policies refuse the merge commit's plan.
pub fn policy_refused(policy: &str) -> String {
    format!("policy `{policy}` refuses the merge commit's plan")
}

/// Why a project was not applied: the merge commit could not be planned.
pub const PLAN_FAILED: &str = "the merge commit could not be planned (see the plan output above)";

/// Why a project was not attempted: a project it depends on did not apply.
pub fn blocked_by(project: &str) -> String {
    format!("blocked by `{project}`: it did not apply")
}

/// One project of a merged pull request that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    pub project: String,
    pub reasons: Vec<String>,
}

/// The comment on a merged pull request when projects of its merge commit were not applied.
/// `revertable`: Sluice applied something of the pull request (`rollback`'s own rule), so
/// `rollback` is offered; otherwise it would be refused, and is not suggested.
pub fn not_applied(merge_sha: &CommitSha, items: &[NotApplied], revertable: bool) -> String {
    let mut out = format!(
        "### ❌ Not applied after merge\n\nThe merge commit {} was not applied for {} project{}:\n\n",
        merge_sha.short(),
        items.len(),
        plural(items.len())
    );
    for item in items {
        out.push_str(&format!(
            "- `{}`: {}\n",
            item.project,
            item.reasons.join("; ")
        ));
    }
    out.push_str(
        "\nThese projects are now **out of sync**: the default branch holds changes that are \
         not applied. Nothing is retried by itself. Fix forward with a new pull request (it is \
         planned, reviewed and applied like any other)",
    );
    out.push_str(if revertable {
        ", or `sluice rollback` to revert what of this one was applied.\n"
    } else {
        ".\n"
    });
    out
}

/// The comment on a merged pull request when what applies after merge could not even be
/// prepared (the base configuration, the mirror or GitHub failed): nothing was applied, the
/// locks were released, and `error` says why.
pub fn preparation_failed(error: &str) -> String {
    format!(
        "### ❌ Not applied after merge\n\n**Sluice did not apply this merge.** Preparing the \
         apply after merge failed, so nothing was applied; the locks were released.\n\n\
         ```\n{error}\n```\n\nThe projects applied after merge are now **out of sync**. Fix \
         the cause, then fix forward with a new pull request (it is planned, reviewed and \
         applied like any other), or apply by hand.\n"
    )
}

/// The text of the notification (Slack and signed JSON webhook) of a failed delivery.
pub fn notification_text(
    repo: &str,
    pr: u64,
    merge_sha: &CommitSha,
    items: &[NotApplied],
) -> String {
    let names: Vec<String> = items.iter().map(|i| format!("`{}`", i.project)).collect();
    format!(
        "{repo}#{pr}: merge commit {} not applied for {} — now out of sync",
        merge_sha.short(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha() -> CommitSha {
        CommitSha::new("0123456789abcdef0123456789abcdef01234567").expect("sha")
    }

    #[test]
    fn preparation_failure_says_nothing_was_applied_and_why() {
        insta::assert_snapshot!(preparation_failed("reading the base configuration: timed out"), @"
        ### ❌ Not applied after merge

        **Sluice did not apply this merge.** Preparing the apply after merge failed, so nothing was applied; the locks were released.

        ```
        reading the base configuration: timed out
        ```

        The projects applied after merge are now **out of sync**. Fix the cause, then fix forward with a new pull request (it is planned, reviewed and applied like any other), or apply by hand.
        ");
    }

    #[test]
    fn not_applied_lists_every_project_and_what_to_do() {
        let items = vec![
            NotApplied {
                project: "network".into(),
                reasons: vec!["terraform apply failed".into()],
            },
            NotApplied {
                project: "app".into(),
                reasons: vec![blocked_by("network")],
            },
        ];
        let never = not_applied(&sha(), &items, false);
        assert!(!never.contains("rollback"), "{never}");
        insta::assert_snapshot!(not_applied(&sha(), &items, true), @r"
        ### ❌ Not applied after merge

        The merge commit 0123456 was not applied for 2 projects:

        - `network`: terraform apply failed
        - `app`: blocked by `network`: it did not apply

        These projects are now **out of sync**: the default branch holds changes that are not applied. Nothing is retried by itself. Fix forward with a new pull request (it is planned, reviewed and applied like any other), or `sluice rollback` to revert what of this one was applied.
        ");
        insta::assert_snapshot!(notification_text("o/r", 7, &sha(), &items), @"o/r#7: merge commit 0123456 not applied for `network`, `app` — now out of sync");
    }

    #[test]
    fn plan_differs_names_both_sides() {
        let c = |a: &str, r: &str| Change {
            action: a.into(),
            address: r.into(),
        };
        insta::assert_snapshot!(plan_differs(&[], &[c("create", "null_resource.extra")], false), @"the merge commit's plan differs from the reviewed plan (only reviewed: nothing; only at merge: `create null_resource.extra`) and `merge_plan_check: strict` applies only what was reviewed");
    }
}
