//! What Sluice says on a merge queue's temporary commit: the descriptions of `sluice/plan` and
//! `sluice/apply-gate` there (GitHub shows them on the queue entry; at most 140 characters are
//! kept, so the first reason comes first).

use super::plural;

/// `sluice/plan` and `sluice/apply-gate` while the queue commit is planned.
pub fn planning(n: usize) -> String {
    format!("planning the queue commit ({n} project{})", plural(n))
}

/// `sluice/plan` and `sluice/apply-gate` on a queue commit that changes no Terraform project.
pub const NO_TERRAFORM_CHANGES: &str = "queue commit: no Terraform changes";

/// `sluice/plan` when every affected project planned.
pub fn planned(n: usize) -> String {
    format!("queue commit: {n} project{} planned", plural(n))
}

/// `sluice/plan` when some project could not be planned: the first, and how many more.
pub fn plan_failed(first: &str, n: usize) -> String {
    match n {
        0 | 1 => format!("queue commit: `{first}` could not be planned"),
        _ => format!(
            "queue commit: `{first}` and {} more could not be planned",
            n - 1
        ),
    }
}

/// `sluice/apply-gate` when every project of the queued pull request applied after merge
/// passes.
pub fn gate_passed(n: usize) -> String {
    match n {
        0 => "ready: no project of the pull request applies after merge".to_string(),
        _ => format!("ready: {n} project{} apply after merge", plural(n)),
    }
}

/// `sluice/apply-gate` when some project does not pass: the first reason.
pub fn gate_failed(first_reason: &str) -> String {
    format!("not ready: {first_reason}")
}

/// A project of the queued pull request that was never planned on it (or not on its head).
pub fn not_reviewed(project: &str) -> String {
    format!(
        "`{project}` has no reviewed plan for the pull request's head (plan it before queueing)"
    )
}

/// A project applied after merge whose plan on the queue commit failed.
pub fn queue_plan_failed(project: &str) -> String {
    format!("`{project}` could not be planned on the queue commit")
}

/// The base branch's policies refuse the queue commit's plan of a project applied after merge
/// (or could not be evaluated on it).
pub fn queue_policy_refused(project: &str) -> String {
    format!("the base branch's policies refuse `{project}`'s plan on the queue commit")
}

/// Both checks when the queue commit could not be fetched and the compare API lists as many
/// files as it ever does: the list may be cut short, so nothing is trusted.
pub fn compare_truncated(n: usize) -> String {
    format!(
        "not checked: queue commit unreadable and GitHub's compare lists {n} files (its limit); \
         re-queue"
    )
}

/// Both checks when the queue commit could not be fetched and it changes Terraform files.
pub const UNFETCHABLE: &str =
    "not checked: the queue commit could not be fetched and it changes Terraform files; re-queue";

/// Both checks when the queue's ref names no pull request (`gh-readonly-queue/<base>/pr-<N>-…`).
pub const NO_PULL_REQUEST: &str = "not checked: the merge queue ref names no pull request (expected gh-readonly-queue/<base>/pr-<N>-<sha>)";

/// `sluice/apply-gate` when the queued pull request's gate could not be evaluated (it cannot
/// be read, GitHub or git failed): failed, so the queue does not wait for ever.
pub const GATE_NOT_EVALUATED: &str =
    "not checked: the pull request's gate could not be evaluated (see the server log); re-queue";

/// Both checks when the queue commit's configuration has errors.
pub const CONFIG_ERRORS: &str = "queue commit: the configuration has errors";

/// Both checks when the queue commit affects more projects than one run may plan.
pub fn too_many_projects(n: usize, max: usize) -> String {
    format!("queue commit: {n} projects affected, more than limits.projects_per_run = {max}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub keeps 140 characters of a status description: the fixed texts fit.
    #[test]
    fn descriptions_fit_in_a_commit_status() {
        for text in [
            NO_TERRAFORM_CHANGES.to_string(),
            UNFETCHABLE.to_string(),
            NO_PULL_REQUEST.to_string(),
            CONFIG_ERRORS.to_string(),
            GATE_NOT_EVALUATED.to_string(),
            compare_truncated(300),
            planning(12),
            too_many_projects(120, 100),
        ] {
            assert!(text.chars().count() <= 140, "{} chars: {text}", text.len());
        }
    }
}
