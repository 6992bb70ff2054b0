//! Commit status descriptions (`sluice/plan`, `sluice/apply`, `sluice/policy`): one short line
//! each, as GitHub shows them beside the commit. A finished run's is `core::job::RunTally`'s.

use super::plural;
use crate::core::policy::PolicyVerdict;

/// `sluice/plan` pending while the plan runs.
pub fn planning(n: usize) -> String {
    format!("planning {n} project{}", plural(n))
}

/// `sluice/plan` pending while the plan waits behind PR `#holder`'s locks.
pub fn queued_behind(holder: u64) -> String {
    format!("queued behind #{holder}")
}

/// `sluice/apply` pending while the apply runs.
pub fn applying(n: usize) -> String {
    format!("applying {n} project{}", plural(n))
}

/// `sluice/plan` when the configuration has errors.
pub const CONFIG_ERRORS: &str = "configuration has errors";

/// `sluice/plan` when the pull request affects no project.
pub const NO_PROJECTS: &str = "0 projects affected";

/// `sluice/apply-gate` on a pull request that changes no Terraform project.
pub const NO_TERRAFORM_CHANGES: &str = "no Terraform changes";

/// `sluice/plan` pending after a run that planned the destroy of `n` projects the pull request
/// removes: settled once applied (and the PR planned again).
pub fn removed_destroy_planned(n: usize) -> String {
    format!(
        "apply the destroy plan{} of {n} removed project{}, then plan again",
        plural(n),
        plural(n)
    )
}

/// `sluice/plan` when policy refuses the plan.
pub const PLAN_REFUSED_BY_POLICY: &str = "refused by policy";

/// `sluice/plan` when plan requirements (`plan_requirements`) do not hold.
pub const PLAN_REQUIREMENTS_UNMET: &str = "plan requirements not met";

/// `sluice/apply` when the gate refuses.
pub const APPLY_REFUSED: &str = "apply refused: requirements not met";

/// `sluice/plan` when a plan is over `limits.projects_per_run`.
pub fn too_many_projects(n: usize, max: usize) -> String {
    format!("{n} projects: more than {max} at once")
}

/// `sluice/policy` of a plan run, from its projects' verdicts (`None` ones left out by the
/// caller): the overall verdict — `Fail`, `Pending` or `Pass` — and its description. `None`
/// when no project has a policy.
pub fn policy(verdicts: &[PolicyVerdict]) -> Option<(PolicyVerdict, String)> {
    let applicable: Vec<PolicyVerdict> = verdicts
        .iter()
        .copied()
        .filter(|v| *v != PolicyVerdict::None)
        .collect();
    if applicable.is_empty() {
        return None;
    }
    let count = |v: PolicyVerdict| applicable.iter().filter(|x| **x == v).count();
    let n = applicable.len();
    let (failing, pending) = (count(PolicyVerdict::Fail), count(PolicyVerdict::Pending));
    Some(if failing > 0 {
        (
            PolicyVerdict::Fail,
            format!(
                "{k} of {n} project{} {}",
                super::plural(n),
                if failing == 1 {
                    "fails a policy"
                } else {
                    "fail a policy"
                },
                k = failing
            ),
        )
    } else if pending > 0 {
        (
            PolicyVerdict::Pending,
            format!(
                "{k} of {n} project{} {}",
                super::plural(n),
                if pending == 1 {
                    "waits for approvals"
                } else {
                    "wait for approvals"
                },
                k = pending
            ),
        )
    } else {
        (
            PolicyVerdict::Pass,
            if n == 1 {
                "1 project passes its policies".to_string()
            } else {
                format!("{n} projects pass their policies")
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PolicyVerdict::*;

    #[test]
    fn descriptions() {
        insta::assert_snapshot!(planning(1), @"planning 1 project");
        insta::assert_snapshot!(planning(3), @"planning 3 projects");
        insta::assert_snapshot!(applying(2), @"applying 2 projects");
        insta::assert_snapshot!(queued_behind(7), @"queued behind #7");
        insta::assert_snapshot!(too_many_projects(501, 500), @"501 projects: more than 500 at once");
        insta::assert_snapshot!(removed_destroy_planned(1), @"apply the destroy plan of 1 removed project, then plan again");
        let show = |v: &[PolicyVerdict]| format!("{:?}", policy(v));
        insta::assert_snapshot!(show(&[None, None]), @"None");
        insta::assert_snapshot!(show(&[Pass, Fail, Pending, None]), @r#"Some((Fail, "1 of 3 projects fails a policy"))"#);
        insta::assert_snapshot!(show(&[Fail, Fail, Pass]), @r#"Some((Fail, "2 of 3 projects fail a policy"))"#);
        insta::assert_snapshot!(show(&[Fail]), @r#"Some((Fail, "1 of 1 project fails a policy"))"#);
        insta::assert_snapshot!(show(&[Pass]), @r#"Some((Pass, "1 project passes its policies"))"#);
        insta::assert_snapshot!(show(&[Pass, Pending]), @r#"Some((Pending, "1 of 2 projects waits for approvals"))"#);
        insta::assert_snapshot!(show(&[Pass, Warn]), @r#"Some((Pass, "2 projects pass their policies"))"#);
    }
}
