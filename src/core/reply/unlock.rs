//! What `unlock` (and an administrator's release) says: what was released, that there was
//! nothing to release, that a running apply keeps the locks, or that policy refuses.

use super::plural;
use crate::core::lock::LockKey;

/// `unlock` while an apply of the pull request runs.
pub fn apply_running() -> String {
    "⏳ `unlock` was not run: an apply of this pull request is running, and its locks \
keep other pull requests off the same workspaces until it ends. Unlock after it finishes."
        .to_string()
}

/// What `unlock` released: `locks` it held, `plans` discarded.
pub fn released(locks: &[LockKey], plans: usize, bot_name: &str) -> String {
    if locks.is_empty() && plans == 0 {
        return "🔓 Nothing to unlock: this pull request holds no locks and has no saved plans."
            .to_string();
    }
    let mut s = format!(
        "🔓 Released {} lock{} and discarded {plans} plan{} of this pull request.\n",
        locks.len(),
        plural(locks.len()),
        plural(plans)
    );
    for key in locks {
        s.push_str(&format!("* `{key}`\n"));
    }
    s.push_str(&format!(
        "\nComment `{bot_name} plan` to plan (and lock) again."
    ));
    s
}

/// What the jobs an `unlock` cancels say.
pub fn cancel_reason(login: &str) -> String {
    format!("cancelled by `unlock` from @{login}")
}

/// `unlock` refused by policy: `sections` are the rendered policy sections
/// (`core::policy::render_section`), concatenated.
pub fn refused_by_policy(login: &str, sections: &str) -> String {
    format!("🚫 **Unlock refused by policy** for @{login}:\n\n{sections}")
}

/// Someone released one of the pull request's locks from outside it: an operator with
/// `sluice locks release`, or a writer of the repository on the web UI's locks page. `by` is
/// their login (or the operator's name).
pub fn admin_released(by: &str, key: &LockKey) -> String {
    format!(
        "🔓 {by} released this pull request's lock on `{key}` (outside this pull request: \
         `sluice locks release` or the web UI's locks page). \
         Plans of that project must be made again before they can be applied."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::{ProjectDir, Workspace};

    fn key(dir: &str) -> LockKey {
        LockKey {
            dir: ProjectDir::new(dir).unwrap(),
            workspace: Workspace::default(),
        }
    }

    #[test]
    fn replies() {
        insta::assert_snapshot!(released(&[key("envs/a"), key("envs/b")], 2, "sluice"), @r"
        🔓 Released 2 locks and discarded 2 plans of this pull request.
        * `envs/a (workspace default)`
        * `envs/b (workspace default)`

        Comment `sluice plan` to plan (and lock) again.
        ");
        insta::assert_snapshot!(released(&[key("envs/a")], 0, "atlantis"), @r"
        🔓 Released 1 lock and discarded 0 plans of this pull request.
        * `envs/a (workspace default)`

        Comment `atlantis plan` to plan (and lock) again.
        ");
        insta::assert_snapshot!(released(&[], 0, "sluice"), @"🔓 Nothing to unlock: this pull request holds no locks and has no saved plans.");
        insta::assert_snapshot!(apply_running(), @"⏳ `unlock` was not run: an apply of this pull request is running, and its locks keep other pull requests off the same workspaces until it ends. Unlock after it finishes.");
        insta::assert_snapshot!(refused_by_policy("alice", "**Policies** for `a`: 1 failed\n"), @r"
        🚫 **Unlock refused by policy** for @alice:

        **Policies** for `a`: 1 failed
        ");
        insta::assert_snapshot!(admin_released("root", &key("envs/a")), @"🔓 root released this pull request's lock on `envs/a (workspace default)` (outside this pull request: `sluice locks release` or the web UI's locks page). Plans of that project must be made again before they can be applied.");
        assert_eq!(cancel_reason("alice"), "cancelled by `unlock` from @alice");
    }
}
