//! What a comment command gets when it is not run at all: on a closed pull request, from someone
//! who may not run commands, or when Sluice could not act on its event.

use crate::core::command::CommandKind;

/// A command other than `unlock` on a closed pull request.
pub fn closed_pull_request(kind: CommandKind) -> String {
    format!("❌ `{kind}` was not run: this pull request is closed.")
}

/// Why a comment author may not run commands (also the audit entry's reason): their
/// `author_association` as GitHub reports it (`None`: unknown), and those allowed.
pub fn outsider_reason(login: &str, association: Option<&str>, allowed: &[String]) -> String {
    format!(
        "@{login} is not a collaborator of this repository (GitHub says `{}`); commands are taken from {} only",
        association.unwrap_or("unknown"),
        allowed.join(", ")
    )
}

/// A command that was not run, and why (`why` ends without a full stop).
pub fn not_run(kind: CommandKind, why: &str) -> String {
    format!("🚫 `{kind}` was not run: {why}.")
}

/// The audit reason of a command on a pull request GitHub no longer knows.
pub const PULL_REQUEST_GONE: &str = "the pull request does not exist (GitHub answered 404)";

/// Sluice could not act on an event (the repository cannot be fetched, GitHub refused, …):
/// `error` is the whole error chain, host paths and secrets already taken out.
pub fn could_not_act(error: &str) -> String {
    format!("❌ **Sluice could not act on this pull request**:\n\n```\n{error}\n```")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        insta::assert_snapshot!(closed_pull_request(CommandKind::Apply), @"❌ `apply` was not run: this pull request is closed.");
        let allowed = ["OWNER".to_string(), "MEMBER".to_string()];
        let why = outsider_reason("mallory", Some("NONE"), &allowed);
        insta::assert_snapshot!(why, @"@mallory is not a collaborator of this repository (GitHub says `NONE`); commands are taken from OWNER, MEMBER only");
        insta::assert_snapshot!(not_run(CommandKind::Plan, &why), @"🚫 `plan` was not run: @mallory is not a collaborator of this repository (GitHub says `NONE`); commands are taken from OWNER, MEMBER only.");
        insta::assert_snapshot!(outsider_reason("x", None, &allowed), @"@x is not a collaborator of this repository (GitHub says `unknown`); commands are taken from OWNER, MEMBER only");
        insta::assert_snapshot!(could_not_act("fetching acme/infra for #1: repository not found"), @r"
        ❌ **Sluice could not act on this pull request**:

        ```
        fetching acme/infra for #1: repository not found
        ```
        ");
    }
}
