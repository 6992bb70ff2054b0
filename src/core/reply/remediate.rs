//! What `sluice drift remediate` says (PRODUCT.md §14): the remediation pull request it opened
//! on the default branch's head (or the one already open), its title, body and branch, and the
//! refusal when the drift is not open or acknowledged. A remediation is never an apply: the
//! pull request's plan of the project is the fix, reviewed and applied like any other.

use crate::core::types::{PrNumber, ProjectName};

/// What every remediation branch starts with.
pub const BRANCH_PREFIX: &str = "sluice/remediate-";

/// The branch a project's remediation pull request comes from: one per project, so a second
/// `remediate` finds the first one's pull request. Characters git refuses in a ref (and any
/// other than letters, digits, `.`, `_`, `-`) become `-`.
pub fn branch(project: &ProjectName) -> String {
    let name: String = project
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{BRANCH_PREFIX}{name}")
}

/// The remediation pull request's title.
pub fn title(project: &ProjectName, default_branch: &str) -> String {
    format!("Remediate drift: re-apply `{project}` from `{default_branch}`")
}

/// The remediation pull request's body: what it is for, where the drift is reported, and that
/// it is planned and gated like any pull request. `apply_hint` is the project's apply command
/// (`core::command::project_hint`).
pub fn body(
    project: &ProjectName,
    default_branch: &str,
    issue: u64,
    asked_by: &str,
    apply_hint: &str,
    bot_name: &str,
) -> String {
    format!(
        "Re-applies `{default_branch}` to project `{project}`, whose live infrastructure has \
drifted (#{issue}). This branch is `{default_branch}` with one empty commit: no file changes. \
Sluice plans `{project}` on it, and that plan is the fix — it puts back what Git says.\n\n\
Asked for by @{asked_by} with `drift remediate`. Review the plan, then apply it like any pull \
request (`{apply_hint}` once approved). Nothing is applied until then. If the \
drift should stay, close this pull request and `{bot_name} drift accept` it on #{issue} instead."
    )
}

/// On the drift issue: the remediation pull request was opened.
pub fn opened(project: &ProjectName, pr: PrNumber, url: &str) -> String {
    format!(
        "Opened {pr} ({url}) to remediate `{project}`: its plan re-applies Git's state over \
the drift. Review it and apply it there; nothing has been applied."
    )
}

/// On the drift issue: a remediation pull request is already open.
pub fn already_open(project: &ProjectName, pr: PrNumber, url: &str) -> String {
    format!(
        "A remediation pull request for `{project}` is already open: {pr} ({url}). Review and \
apply it there, or close it before asking again."
    )
}

/// Why remediation is refused: the drift is in `phase` (`accepted`, `resolved`), or there is
/// none (`None`).
pub fn not_open(project: &ProjectName, phase: Option<&str>) -> String {
    match phase {
        Some(phase) => format!(
            "the drift of `{project}` is {phase}; only open or acknowledged drift is remediated"
        ),
        None => format!("`{project}` has no drift to remediate"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ProjectName {
        ProjectName::new(s).expect("a valid name")
    }

    #[test]
    fn texts() {
        let pr = PrNumber::new(4).expect("a number");
        insta::assert_snapshot!(branch(&name("app")), @"sluice/remediate-app");
        insta::assert_snapshot!(branch(&name("envs/prod.eu")), @"sluice/remediate-envs-prod-eu");
        insta::assert_snapshot!(title(&name("app"), "main"), @"Remediate drift: re-apply `app` from `main`");
        insta::assert_snapshot!(body(&name("app"), "main", 12, "alice", "sluice apply -p app", "sluice"), @"
        Re-applies `main` to project `app`, whose live infrastructure has drifted (#12). This branch is `main` with one empty commit: no file changes. Sluice plans `app` on it, and that plan is the fix — it puts back what Git says.

        Asked for by @alice with `drift remediate`. Review the plan, then apply it like any pull request (`sluice apply -p app` once approved). Nothing is applied until then. If the drift should stay, close this pull request and `sluice drift accept` it on #12 instead.
        ");
        insta::assert_snapshot!(opened(&name("app"), pr, "https://github.com/o/r/pull/4"), @"Opened #4 (https://github.com/o/r/pull/4) to remediate `app`: its plan re-applies Git's state over the drift. Review it and apply it there; nothing has been applied.");
        insta::assert_snapshot!(already_open(&name("app"), pr, "https://github.com/o/r/pull/4"), @"A remediation pull request for `app` is already open: #4 (https://github.com/o/r/pull/4). Review and apply it there, or close it before asking again.");
        insta::assert_snapshot!(not_open(&name("app"), Some("accepted")), @"the drift of `app` is accepted; only open or acknowledged drift is remediated");
        insta::assert_snapshot!(not_open(&name("app"), None), @"`app` has no drift to remediate");
    }
}
