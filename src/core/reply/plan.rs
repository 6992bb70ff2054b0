//! What `plan` (and autoplan) says besides the plan comment itself: a configuration it cannot
//! read, projects it could not detect, targets that match nothing, nothing to plan, too much to
//! plan, a refusal by policy, and a wait behind another pull request's locks.

use crate::core::diag::Diagnostic;
use crate::core::lock::Lock;
use crate::core::types::CommitSha;

/// The configuration file at `head` has errors: nothing is planned. `file` is its name
/// (`sluice.yaml`), when known; only the errors among `diagnostics` are listed.
pub fn config_rejected(file: Option<&str>, head: &CommitSha, diagnostics: &[Diagnostic]) -> String {
    let mut body = format!(
        "❌ **Sluice cannot plan this pull request**: `{}` has errors at {}:\n\n```\n",
        file.unwrap_or("the configuration"),
        head.short()
    );
    for d in diagnostics.iter().filter(|d| d.is_error()) {
        body.push_str(&format!("{d}\n"));
    }
    body.push_str(
        "```\nFix the file and push again; `sluice config check` shows the same errors locally.",
    );
    body
}

/// Detection errors that stop some projects (a glob matching nothing, a dir leaving the
/// repository, a module cycle, a file not read); the other projects still plan.
pub fn detection_errors(head: &CommitSha, errors: &[String]) -> String {
    format!(
        "⚠️ **Some projects could not be planned** at {}:\n\n```\n{}\n```\n`sluice config check` shows the same locally.",
        head.short(),
        errors.join("\n")
    )
}

/// A target (`-p`, `-d`, `-w`) that picks nothing: `why` names what exists; detection errors
/// that may explain it (a file Sluice did not read keeps its directory's projects from being
/// known) follow.
pub fn target_not_found(why: &str, diagnostics: &[Diagnostic]) -> String {
    let reply = format!("❌ {why}");
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    if errors.is_empty() {
        return reply;
    }
    format!(
        "{reply}\n\nProject detection found problems:\n\n```\n{}\n```",
        errors.join("\n")
    )
}

/// Projects not planned because their plan requirements (Atlantis `plan_requirements`, from
/// the base branch's configuration or the server's repo rules) do not hold: `held` is each
/// project's name and the failed requirements. `autoplan`: the push's automatic plan was
/// skipped (else a `plan` comment was refused). Nothing is planned until every one holds.
pub fn requirements_unmet(
    autoplan: bool,
    bot_name: &str,
    held: &[(String, Vec<String>)],
) -> String {
    let what = if autoplan {
        "Autoplan skipped"
    } else {
        "Plan refused"
    };
    let mut s = format!("🚫 **{what}: plan requirements are not met.**\n\n");
    for (project, reasons) in held {
        for r in reasons {
            s.push_str(&format!("* `{project}`: {r}\n"));
        }
    }
    s.push_str(&format!(
        "\nThe requirements come from the base branch's configuration (`plan_requirements`) or \
         the server's repo rules. Nothing was planned; once they hold, comment `{bot_name} plan`."
    ));
    s
}

/// A `plan` target that names only projects whose Atlantis `branch` excludes the pull
/// request's base branch: `left_out` is each such project's name and its pattern, as written in
/// `config_file`.
pub fn target_outside_branch(
    base: &str,
    config_file: &str,
    left_out: &[(String, String)],
) -> String {
    let mut s = String::new();
    for (name, pattern) in left_out {
        s.push_str(&format!(
            "❌ Project `{name}` exists only for pull requests into base branches matching \
             `{pattern}` (its `branch` in {config_file}); this pull request is into `{base}`, so \
             it is not planned here.\n"
        ));
    }
    s.trim_end().to_string()
}

/// A `plan` comment on a pull request that affects no project.
pub fn no_projects() -> String {
    "Ran plan for **0 projects**: no Terraform project is affected by the files this pull request changes."
        .to_string()
}

/// A plan over `limits.projects_per_run`.
pub fn too_many_projects(n: usize, max: usize, bot_name: &str) -> String {
    format!(
        "❌ **Sluice did not plan this pull request**: it affects {n} projects, and one plan \
         runs at most {max} (limits.projects_per_run). Plan some of them with \
         `{bot_name} plan -d <dir>` or `{bot_name} plan -p <project>`."
    )
}

/// `plan` refused by policy: `sections` are the rendered policy sections of the refused
/// projects (`core::policy::render_section`), in order.
pub fn refused_by_policy(login: &str, sections: &[String]) -> String {
    let mut body = String::new();
    for s in sections {
        body.push_str(s);
        body.push('\n');
    }
    format!("🚫 **Plan refused by policy** for @{login}:\n\n{body}")
}

/// A plan that waits behind the pull requests holding `held` (at least one), linked under
/// `repo_url` (`https://github.com/owner/name`).
pub fn queued(held: &[Lock], repo_url: &str) -> String {
    let mut holders: Vec<u64> = held.iter().map(|l| l.pr.get()).collect();
    holders.dedup();
    let links: Vec<String> = holders
        .iter()
        .map(|n| format!("[#{n}]({repo_url}/pull/{n})"))
        .collect();
    let mut s = format!(
        "⏳ **Queued behind {}**: another pull request holds the lock of {}:\n\n",
        links.join(", "),
        if held.len() == 1 {
            "a project this change affects"
        } else {
            "projects this change affects"
        }
    );
    for l in held {
        s.push_str(&format!(
            "* `{}` — held by #{} (@{})\n",
            l.key,
            l.pr.get(),
            l.holder_login
        ));
    }
    s.push_str("\nThis plan starts by itself as soon as those locks are released (when that pull request is merged or closed, or its author comments `unlock`).");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lock::LockKey;
    use crate::core::types::{PrNumber, ProjectDir, RepoName, UnixMs, Workspace};

    fn head() -> CommitSha {
        CommitSha::new(&"c0ffee".repeat(7)[..40]).unwrap()
    }

    #[test]
    fn config_and_detection() {
        let diags = vec![
            Diagnostic::error("sluice.yaml", 3, 5, "unknown key `projcts`"),
            Diagnostic::warning("sluice.yaml", 9, 1, "only a warning"),
        ];
        insta::assert_snapshot!(config_rejected(Some("sluice.yaml"), &head(), &diags), @r"
        ❌ **Sluice cannot plan this pull request**: `sluice.yaml` has errors at c0ffeec:

        ```
        sluice.yaml:3:5: error: unknown key `projcts`
        ```
        Fix the file and push again; `sluice config check` shows the same errors locally.
        ");
        insta::assert_snapshot!(detection_errors(&head(), &["sluice.yaml:4:5: error: dir `envs/missing-*` matches no directory".to_string()]), @r"
        ⚠️ **Some projects could not be planned** at c0ffeec:

        ```
        sluice.yaml:4:5: error: dir `envs/missing-*` matches no directory
        ```
        `sluice config check` shows the same locally.
        ");
        insta::assert_snapshot!(target_not_found("no project in dir `envs/qa`; projects: `envs/a`", &[]), @"❌ no project in dir `envs/qa`; projects: `envs/a`");
        insta::assert_snapshot!(target_not_found("no project named `a`; this repository has no projects at this commit", &diags), @r"
        ❌ no project named `a`; this repository has no projects at this commit

        Project detection found problems:

        ```
        sluice.yaml:3:5: error: unknown key `projcts`
        ```
        ");
    }

    #[test]
    fn nothing_or_too_much() {
        insta::assert_snapshot!(no_projects(), @"Ran plan for **0 projects**: no Terraform project is affected by the files this pull request changes.");
        insta::assert_snapshot!(too_many_projects(501, 500, "sluice"), @"❌ **Sluice did not plan this pull request**: it affects 501 projects, and one plan runs at most 500 (limits.projects_per_run). Plan some of them with `sluice plan -d <dir>` or `sluice plan -p <project>`.");
        insta::assert_snapshot!(refused_by_policy("alice", &["**Policies** for `a`: 1 failed".to_string()]), @r"
        🚫 **Plan refused by policy** for @alice:

        **Policies** for `a`: 1 failed
        ");
    }

    #[test]
    fn queued_behind_the_holders() {
        let lock = |dir: &str, pr: u64| Lock {
            repo: RepoName::parse("acme/infra").unwrap(),
            key: LockKey {
                dir: ProjectDir::new(dir).unwrap(),
                workspace: Workspace::default(),
            },
            pr: PrNumber::new(pr).unwrap(),
            holder_login: "bob".into(),
            acquired_at: UnixMs::new(0),
        };
        insta::assert_snapshot!(queued(&[lock("envs/a", 1)], "https://github.com/acme/infra"), @r"
        ⏳ **Queued behind [#1](https://github.com/acme/infra/pull/1)**: another pull request holds the lock of a project this change affects:

        * `envs/a (workspace default)` — held by #1 (@bob)

        This plan starts by itself as soon as those locks are released (when that pull request is merged or closed, or its author comments `unlock`).
        ");
        insta::assert_snapshot!(queued(&[lock("envs/a", 1), lock("envs/b", 1), lock("envs/c", 4)], "https://github.com/acme/infra"), @r"
        ⏳ **Queued behind [#1](https://github.com/acme/infra/pull/1), [#4](https://github.com/acme/infra/pull/4)**: another pull request holds the lock of projects this change affects:

        * `envs/a (workspace default)` — held by #1 (@bob)
        * `envs/b (workspace default)` — held by #1 (@bob)
        * `envs/c (workspace default)` — held by #4 (@bob)

        This plan starts by itself as soon as those locks are released (when that pull request is merged or closed, or its author comments `unlock`).
        ");
    }
}
