//! What Sluice says when it merges a pull request after applying all of it (`automerge`), or
//! when GitHub refuses the merge.

use crate::core::repo_config::MergeMethod;
use crate::core::types::CommitSha;

/// Sluice merged the pull request.
pub fn merged(method: MergeMethod, merge_sha: &CommitSha) -> String {
    format!(
        "### 🔀 Merged by automerge\n\nEvery project of this pull request is applied, so Sluice \
         merged it (`{}`, commit {}), as `automerge` in the base branch's configuration asks.\n",
        method.as_str(),
        merge_sha.short()
    )
}

/// GitHub refused the merge (branch protection, a conflict, new commits) or could not be
/// reached: why, and what to do. Nothing is lost: the applies stand.
pub fn refused(method: MergeMethod, error: &str) -> String {
    format!(
        "### ⚠️ Automerge refused\n\nEvery project of this pull request is applied, but GitHub \
         refused to merge it (`{}`):\n\n```\n{error}\n```\n\nNothing was lost: the applies stand \
         and the pull request stays open. Meet what the branch protection asks (required \
         reviews, required checks, an up-to-date branch) and merge it by hand. If the branch \
         moved on, plan and apply again.\n",
        method.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_and_refused() {
        let sha = CommitSha::new("0123456789abcdef0123456789abcdef01234567").expect("sha");
        insta::assert_snapshot!(merged(MergeMethod::Squash, &sha), @"
        ### 🔀 Merged by automerge

        Every project of this pull request is applied, so Sluice merged it (`squash`, commit 0123456), as `automerge` in the base branch's configuration asks.
        ");
        insta::assert_snapshot!(refused(MergeMethod::Merge, "PUT /repos/o/r/pulls/1/merge answered 405 Method Not Allowed: Required status check \"ci\" is expected."), @r#"
        ### ⚠️ Automerge refused

        Every project of this pull request is applied, but GitHub refused to merge it (`merge`):

        ```
        PUT /repos/o/r/pulls/1/merge answered 405 Method Not Allowed: Required status check "ci" is expected.
        ```

        Nothing was lost: the applies stand and the pull request stays open. Meet what the branch protection asks (required reviews, required checks, an up-to-date branch) and merge it by hand. If the branch moved on, plan and apply again.
        "#);
    }
}
