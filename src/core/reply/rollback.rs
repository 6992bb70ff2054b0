//! What `sluice rollback` says (PRODUCT.md §15): the revert pull request it opened (or the one
//! already open), and each refusal — the pull request is not merged, Sluice never applied it,
//! the asker may not push to the repository, the revert conflicts (with what to do by hand) or
//! reverts nothing. Also the revert pull request's own title, body and branch name.
//!
//! Rollback never applies anything: it opens a pull request, which is planned, reviewed,
//! policy-checked and applied like any other. Every text says so where it matters.

use crate::core::types::PrNumber;

/// The branch a revert of pull request `pr` is pushed to. One name per reverted pull request,
/// so a second `rollback` finds the first one's pull request instead of opening another.
pub fn branch(pr: PrNumber) -> String {
    format!("sluice/revert-pr-{}", pr.get())
}

/// The revert pull request's title: `Revert #N: <title>` (GitHub's own revert button says
/// `Revert "<title>"`; the number makes the link in GitHub's lists).
pub fn title(pr: PrNumber, original_title: &str) -> String {
    format!("Revert {pr}: {original_title}")
}

/// What a merge was reverted as: which commit, and how GitHub merged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reverted<'a> {
    /// The merge commit GitHub recorded (`merge_commit_sha`), abbreviated or not.
    pub merge_sha: &'a str,
    /// How many commits the merge commit's reversal undid: 1 for a squash or a merge commit,
    /// more for a rebase merge (each rebased commit is reverted, newest first).
    pub commits: usize,
}

/// The revert pull request's body: what it reverts, who asked, and that it is gated like any
/// pull request (nothing is applied until it is).
pub fn body(pr: PrNumber, original_url: &str, asked_by: &str, reverted: Reverted<'_>) -> String {
    let what = if reverted.commits > 1 {
        format!(
            "the {} commits that merged {pr} (rebase merge, up to `{}`)",
            reverted.commits,
            short(reverted.merge_sha)
        )
    } else {
        format!("`{}`, the merge commit of {pr}", short(reverted.merge_sha))
    };
    format!(
        "Reverts {pr} ({original_url}): this branch undoes {what} on top of the base \
branch as it is now.\n\nAsked for by @{asked_by} with `rollback`. This pull request is \
planned, reviewed, policy-checked and applied like any other: nothing is applied until it is \
approved and applied (or merged, for projects applied after merge)."
    )
}

/// On the original pull request: the revert pull request was opened.
pub fn opened(revert: PrNumber, revert_url: &str) -> String {
    format!(
        "↩️ Opened {revert} ({revert_url}) to revert this pull request. It is planned like \
any pull request: review its plan, and apply it as usual once approved. Nothing has been \
applied yet."
    )
}

/// On the original pull request: a revert pull request is already open for it.
pub fn already_open(revert: PrNumber, revert_url: &str) -> String {
    format!(
        "↩️ A revert of this pull request is already open: {revert} ({revert_url}). Review \
and apply it there, or close it before asking for another rollback."
    )
}

/// Why a rollback was refused, for the reply and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The pull request is open, or was closed without being merged.
    NotMerged { open: bool },
    /// GitHub reports it merged, but without a merge commit.
    NoMergeCommit,
    /// No successful apply of this pull request is in the audit log.
    NotApplied,
    /// The asker's permission on the repository (GitHub's word) is below `write`.
    NoPermission { login: String, permission: String },
    /// The base branch no longer contains the merge commit (force-pushed away).
    NotOnBase { base: String },
    /// The revert changes nothing: the base branch already undid the change.
    NothingToRevert { base: String },
}

impl Refusal {
    /// The reason recorded in the audit log.
    pub fn reason(&self) -> String {
        match self {
            Refusal::NotMerged { open: true } => {
                "the pull request is not merged (still open)".into()
            }
            Refusal::NotMerged { open: false } => {
                "the pull request was closed without being merged".into()
            }
            Refusal::NoMergeCommit => "GitHub reports no merge commit for the pull request".into(),
            Refusal::NotApplied => {
                "no apply of this pull request by Sluice is in the audit log".into()
            }
            Refusal::NoPermission { login, permission } => format!(
                "@{login} has `{permission}` permission on the repository; rollback needs `write`"
            ),
            Refusal::NotOnBase { base } => {
                format!("the merge commit is no longer on `{base}`")
            }
            Refusal::NothingToRevert { base } => {
                format!("`{base}` already undoes every change of the pull request")
            }
        }
    }

    /// The reply on the pull request.
    pub fn reply(&self) -> String {
        let why = self.reason();
        let next = match self {
            Refusal::NotMerged { open: true } => {
                " There is nothing to revert: to undo changes it applied, push a commit that \
undoes them to this pull request, or comment `unlock` to discard its plans."
            }
            Refusal::NotMerged { open: false } | Refusal::NoMergeCommit => {
                " There is nothing on the base branch to revert."
            }
            Refusal::NotApplied => {
                " Sluice did not change the infrastructure for it, so a revert would be planned \
against state that this pull request never touched through Sluice. If you still want to undo its \
code, revert it with GitHub's Revert button or `git revert`: that pull request is planned and \
gated like any other."
            }
            Refusal::NoPermission { .. } => {
                " A rollback pushes a branch and opens a pull request on the repository."
            }
            Refusal::NotOnBase { .. } => {
                " The base branch was rewritten; revert the change by hand if it is still there."
            }
            Refusal::NothingToRevert { .. } => "",
        };
        format!("🚫 `rollback` was not run: {why}.{next}")
    }
}

/// On the original pull request: the revert of `merge_sha` onto `base` conflicts in `files`
/// (sorted, at most a screenful; `more` others not listed), and what to do by hand.
pub fn conflict(
    pr: PrNumber,
    merge_sha: &str,
    mainline: bool,
    base: &str,
    files: &[String],
    more: usize,
) -> String {
    let mut s = format!(
        "⚠️ **Rollback could not be prepared**: reverting `{}` onto `{base}` conflicts with \
changes made since this pull request merged, in:\n\n",
        short(merge_sha)
    );
    for f in files {
        s.push_str(&format!("* `{}`\n", f.replace('`', "'")));
    }
    if more > 0 {
        s.push_str(&format!("* … and {more} more\n"));
    }
    let m = if mainline { " -m 1" } else { "" };
    let n = pr.get();
    s.push_str(&format!(
        "\nNothing was pushed or applied. To revert by hand:\n\n```\ngit fetch origin\n\
git switch -c revert-pr-{n} origin/{base}\ngit revert{m} {merge_sha}\n\
# resolve the conflicts, then: git add … && git revert --continue\n\
git push origin revert-pr-{n}\n```\n\nand open a pull request from that branch: it is \
planned, reviewed and applied like any other."
    ));
    s
}

/// At most this many conflicting files are listed in a reply.
pub const MAX_LISTED_CONFLICTS: usize = 50;

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(n: u64) -> PrNumber {
        PrNumber::new(n).expect("a valid number")
    }

    #[test]
    fn the_revert_pull_request() {
        insta::assert_snapshot!(branch(pr(7)), @"sluice/revert-pr-7");
        insta::assert_snapshot!(title(pr(7), "Bigger instances"), @"Revert #7: Bigger instances");
        let merge = Reverted {
            merge_sha: "0123456789abcdef0123456789abcdef01234567",
            commits: 1,
        };
        insta::assert_snapshot!(body(pr(7), "https://github.com/o/r/pull/7", "bob", merge), @"
        Reverts #7 (https://github.com/o/r/pull/7): this branch undoes `0123456789ab`, the merge commit of #7 on top of the base branch as it is now.

        Asked for by @bob with `rollback`. This pull request is planned, reviewed, policy-checked and applied like any other: nothing is applied until it is approved and applied (or merged, for projects applied after merge).
        ");
        let rebase = Reverted {
            commits: 3,
            ..merge
        };
        insta::assert_snapshot!(body(pr(7), "https://github.com/o/r/pull/7", "bob", rebase), @"
        Reverts #7 (https://github.com/o/r/pull/7): this branch undoes the 3 commits that merged #7 (rebase merge, up to `0123456789ab`) on top of the base branch as it is now.

        Asked for by @bob with `rollback`. This pull request is planned, reviewed, policy-checked and applied like any other: nothing is applied until it is approved and applied (or merged, for projects applied after merge).
        ");
    }

    #[test]
    fn answers_on_the_original_pull_request() {
        insta::assert_snapshot!(opened(pr(9), "https://github.com/o/r/pull/9"), @"↩️ Opened #9 (https://github.com/o/r/pull/9) to revert this pull request. It is planned like any pull request: review its plan, and apply it as usual once approved. Nothing has been applied yet.");
        insta::assert_snapshot!(already_open(pr(9), "https://github.com/o/r/pull/9"), @"↩️ A revert of this pull request is already open: #9 (https://github.com/o/r/pull/9). Review and apply it there, or close it before asking for another rollback.");
        let files = vec!["envs/a/main.tf".to_string(), "odd`name.tf".to_string()];
        insta::assert_snapshot!(conflict(pr(7), "0123456789abcdef0123456789abcdef01234567", true, "main", &files, 2), @r"
        ⚠️ **Rollback could not be prepared**: reverting `0123456789ab` onto `main` conflicts with changes made since this pull request merged, in:

        * `envs/a/main.tf`
        * `odd'name.tf`
        * … and 2 more

        Nothing was pushed or applied. To revert by hand:

        ```
        git fetch origin
        git switch -c revert-pr-7 origin/main
        git revert -m 1 0123456789abcdef0123456789abcdef01234567
        # resolve the conflicts, then: git add … && git revert --continue
        git push origin revert-pr-7
        ```

        and open a pull request from that branch: it is planned, reviewed and applied like any other.
        ");
    }

    #[test]
    fn refusals() {
        let all = [
            Refusal::NotMerged { open: true },
            Refusal::NotMerged { open: false },
            Refusal::NoMergeCommit,
            Refusal::NotApplied,
            Refusal::NoPermission {
                login: "mallory".into(),
                permission: "read".into(),
            },
            Refusal::NotOnBase {
                base: "main".into(),
            },
            Refusal::NothingToRevert {
                base: "main".into(),
            },
        ];
        let text: Vec<String> = all.iter().map(Refusal::reply).collect();
        insta::assert_snapshot!(text.join("\n\n"), @"
        🚫 `rollback` was not run: the pull request is not merged (still open). There is nothing to revert: to undo changes it applied, push a commit that undoes them to this pull request, or comment `unlock` to discard its plans.

        🚫 `rollback` was not run: the pull request was closed without being merged. There is nothing on the base branch to revert.

        🚫 `rollback` was not run: GitHub reports no merge commit for the pull request. There is nothing on the base branch to revert.

        🚫 `rollback` was not run: no apply of this pull request by Sluice is in the audit log. Sluice did not change the infrastructure for it, so a revert would be planned against state that this pull request never touched through Sluice. If you still want to undo its code, revert it with GitHub's Revert button or `git revert`: that pull request is planned and gated like any other.

        🚫 `rollback` was not run: @mallory has `read` permission on the repository; rollback needs `write`. A rollback pushes a branch and opens a pull request on the repository.

        🚫 `rollback` was not run: the merge commit is no longer on `main`. The base branch was rewritten; revert the change by hand if it is still there.

        🚫 `rollback` was not run: `main` already undoes every change of the pull request.
        ");
    }
}
