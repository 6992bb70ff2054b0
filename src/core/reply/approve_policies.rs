//! What `approve_policies` answers: the overrides granted and refused, that nothing fails, that
//! there is no plan to approve, or that the policy files are broken.

use crate::core::types::CommitSha;

/// No plan of the current head commit is targeted.
pub fn nothing_to_approve(head: &CommitSha, bot_name: &str) -> String {
    format!(
        "❌ Nothing to approve: there is no plan for the current head commit {}. Comment `{bot_name} plan` first.",
        head.short()
    )
}

/// One line of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The override of `policy` for `project` is recorded.
    Granted { policy: String, project: String },
    /// `actor` may not override `policy` for `project`, because `why`.
    Refused {
        policy: String,
        project: String,
        why: String,
    },
    /// `--policy-set NAME` names no policy.
    Unknown { policy: String },
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Granted { policy, project } => {
                format!("✅ overrode policy `{policy}` for `{project}`")
            }
            Line::Refused {
                policy,
                project,
                why,
            } => format!("❌ `{policy}` for `{project}`: {why}"),
            Line::Unknown { policy } => format!("❓ there is no policy named `{policy}`"),
        }
    }
}

/// The answer to `approve_policies` by `login` at `head`. Repeated lines are shown once.
pub fn answer(login: &str, head: &CommitSha, lines: &[Line], bot_name: &str) -> String {
    if lines.is_empty() {
        return "ℹ️ `approve_policies`: no policy fails for these projects, so there is nothing to approve."
            .to_string();
    }
    let mut rendered: Vec<String> = lines.iter().map(Line::render).collect();
    rendered.dedup();
    let granted = lines.iter().any(|l| matches!(l, Line::Granted { .. }));
    format!(
        "**approve_policies** by @{login} for commit `{}`:\n\n{}\n\nOverrides last until the next commit.{}",
        head.short(),
        rendered.join("\n"),
        if granted {
            format!(" Comment `{bot_name} apply` to apply.")
        } else {
            String::new()
        }
    )
}

/// The policy files are broken (`message`: `PolicySet::broken_message`): nothing can be
/// overridden.
pub fn policies_broken(message: &str) -> String {
    format!("❌ {message}")
}

/// The audit reason (and, after `🚫`, the reply) when a targeted plan was made after the
/// comment: `project`'s, with `core::freshness::plan_after_comment_reason`.
pub fn plan_after_comment(project: &str, reason: &str) -> String {
    format!("`{project}`: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> CommitSha {
        CommitSha::new(&"ab".repeat(20)).unwrap()
    }

    #[test]
    fn answers() {
        let lines = vec![
            Line::Granted {
                policy: "protect-prod".into(),
                project: "envs/prod".into(),
            },
            Line::Refused {
                policy: "cost-cap".into(),
                project: "envs/prod".into(),
                why: "only @acme/finance may override it".into(),
            },
            Line::Unknown {
                policy: "nope".into(),
            },
            Line::Unknown {
                policy: "nope".into(),
            },
        ];
        insta::assert_snapshot!(answer("dba", &head(), &lines, "sluice"), @"
        **approve_policies** by @dba for commit `abababa`:

        ✅ overrode policy `protect-prod` for `envs/prod`
        ❌ `cost-cap` for `envs/prod`: only @acme/finance may override it
        ❓ there is no policy named `nope`

        Overrides last until the next commit. Comment `sluice apply` to apply.
        ");
        insta::assert_snapshot!(answer("dba", &head(), &lines[1..2], "sluice"), @"
        **approve_policies** by @dba for commit `abababa`:

        ❌ `cost-cap` for `envs/prod`: only @acme/finance may override it

        Overrides last until the next commit.
        ");
        insta::assert_snapshot!(answer("dba", &head(), &[], "sluice"), @"ℹ️ `approve_policies`: no policy fails for these projects, so there is nothing to approve.");
        insta::assert_snapshot!(nothing_to_approve(&head(), "sluice"), @"❌ Nothing to approve: there is no plan for the current head commit abababa. Comment `sluice plan` first.");
        insta::assert_snapshot!(policies_broken("the policy files on the base branch have errors"), @"❌ the policy files on the base branch have errors");
        insta::assert_snapshot!(plan_after_comment("envs/a", "this plan was made after the comment was written"), @"`envs/a`: this plan was made after the comment was written");
    }
}
