//! What `apply` says when it does not start: nothing to apply, the gate's refusal with every
//! reason of every project, or a plan taken by another apply meanwhile.

/// No saved plan to apply: none at all (`has_plans == false`), or none the target picks.
pub fn nothing_to_apply(has_plans: bool, bot_name: &str) -> String {
    let what = if has_plans {
        "no saved plan matches that target"
    } else {
        "this pull request has no saved plans"
    };
    format!("❌ Nothing to apply: {what}. Comment `{bot_name} plan` first.")
}

/// One project's reasons for refusing the apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub project: String,
    pub reasons: Vec<String>,
}

/// The reason when the plan's stored project cannot be read.
pub const PROJECT_UNREADABLE: &str = "the plan's project could not be read; run plan again";

/// The reason a failing policy adds.
pub fn policy_failed(policy: &str) -> String {
    format!("policy `{policy}` failed")
}

/// The heading of a project's policy section under the refusal.
pub fn policy_section(project: &str, section: &str) -> String {
    format!("Policies for **{project}**:\n\n{section}")
}

/// The gate's refusal: nothing is applied. Every project with its reasons, then the policy
/// sections of those refused by policy.
pub fn refused(refusals: &[Refusal], policy_sections: &[String]) -> String {
    let mut body = String::from("🚫 **Apply refused.** Nothing was applied:\n\n");
    for r in refusals {
        body.push_str(&format!("**{}**\n", r.project));
        for reason in &r.reasons {
            body.push_str(&format!("* {reason}\n"));
        }
        body.push('\n');
    }
    for section in policy_sections {
        body.push_str(section);
        body.push('\n');
    }
    body
}

/// The apply passed the gate, but its run could not be created (`reason`: a plan was applied,
/// discarded or taken by another apply meanwhile).
pub fn not_started(login: &str, reason: &str) -> String {
    format!("❌ **Apply not started** for @{login}: {reason}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        insta::assert_snapshot!(nothing_to_apply(false, "sluice"), @"❌ Nothing to apply: this pull request has no saved plans. Comment `sluice plan` first.");
        insta::assert_snapshot!(nothing_to_apply(true, "sluice"), @"❌ Nothing to apply: no saved plan matches that target. Comment `sluice plan` first.");
        insta::assert_snapshot!(not_started("alice", "the plan of `envs/a` is already being applied"), @"❌ **Apply not started** for @alice: the plan of `envs/a` is already being applied.");
    }

    /// Every reason the gate gives, as the refusal lists them.
    #[test]
    fn refusal_with_every_reason() {
        let refusals = vec![
            Refusal {
                project: "envs/a".into(),
                reasons: vec![
                    "requirement `approved` failed: no approval from someone other than the author".into(),
                    "the plan was made for commit aaaaaaa but the head is now bbbbbbb; run plan again".into(),
                    "this plan was made after the comment was written, so it is not the plan that was read: review it and comment `sluice apply` again".into(),
                    policy_failed("protect-prod"),
                ],
            },
            Refusal {
                project: "envs/b".into(),
                reasons: vec![PROJECT_UNREADABLE.into()],
            },
        ];
        let sections = vec![policy_section(
            "envs/a",
            "❌ **protect-prod**: destroys `aws_db_instance.main`\n",
        )];
        insta::assert_snapshot!(refused(&refusals, &sections), @r"
        🚫 **Apply refused.** Nothing was applied:

        **envs/a**
        * requirement `approved` failed: no approval from someone other than the author
        * the plan was made for commit aaaaaaa but the head is now bbbbbbb; run plan again
        * this plan was made after the comment was written, so it is not the plan that was read: review it and comment `sluice apply` again
        * policy `protect-prod` failed

        **envs/b**
        * the plan's project could not be read; run plan again

        Policies for **envs/a**:

        ❌ **protect-prod**: destroys `aws_db_instance.main`
        ");
    }
}
