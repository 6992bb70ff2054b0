//! The revert of a merged pull request, computed in the server's bare mirror with git's own
//! plumbing — no checkout, no hooks, no PR code run — and pushed to a branch of the repository.
//!
//! What a merge brought is found the way GitHub merged it: a merge commit (two parents) brought
//! the change between its first parent and itself (`git revert -m 1`); a squash merge is one
//! commit; a rebase merge is the run of first-parent commits ending at the merge commit whose
//! patches (`git patch-id --stable`) are the pull request's own commits. That range is reverted
//! at once onto the base branch tip with `git merge-tree --write-tree` (a three-way merge whose
//! base is the range's newest commit and whose other side is the range's parent): the same
//! result as `git revert` of each commit, newest first, without touching a work tree. A clean
//! result becomes a commit (`git commit-tree`) on the base tip.
//!
//! The push uses the credential the mirror fetches with, given to git through the environment
//! ([`super::auth_env`]), never the command line or a log line.

use anyhow::{Context, bail};

use super::{
    GIT_TIMEOUT, GitRepo, auth_env, base_env, bounded, confined, git_output, kill_groups,
    redact_url,
};
use crate::config::Secret;
use crate::core::types::CommitSha;

/// What was merged, as the mirror holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertRequest {
    /// GitHub's `merge_commit_sha` of the merged pull request.
    pub merge_sha: CommitSha,
    /// The pull request's head (its own commits, for telling a rebase merge from a squash).
    pub pr_head: CommitSha,
    /// The base branch tip the revert is made on.
    pub base_tip: CommitSha,
    /// The revert commit's message.
    pub message: String,
    /// Author and committer of the revert commit (name, email).
    pub identity: (String, String),
}

/// What reverting gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertOutcome {
    /// The revert commit, on `base_tip`, reverting `commits` commits (see [`RevertPlan`]).
    Commit { sha: CommitSha, plan: RevertPlan },
    /// The revert conflicts with what the base branch did since; the conflicting paths, sorted.
    Conflict {
        files: Vec<String>,
        plan: RevertPlan,
    },
    /// The revert changes nothing: the base branch already undoes the change.
    Empty { plan: RevertPlan },
    /// The merge commit is not on the base branch (it was rewritten).
    NotOnBase,
}

/// Which commits a merge brought, and how they are reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertPlan {
    /// The newest commit of the range (the merge commit).
    pub top: CommitSha,
    /// The commit the range started from (the first parent of its oldest commit).
    pub bottom: CommitSha,
    /// How many commits the range holds: 1 for a merge commit or a squash.
    pub commits: usize,
    /// The merge commit has several parents (`git revert -m 1`).
    pub mainline: bool,
}

impl GitRepo {
    /// The commits `merge_sha` brought onto its branch (see the module docs).
    pub fn merge_range(
        &self,
        merge_sha: &CommitSha,
        pr_head: &CommitSha,
    ) -> anyhow::Result<RevertPlan> {
        let parents = self.parents(merge_sha)?;
        let Some(first) = parents.first().cloned() else {
            bail!(
                "{} has no parent: a root commit cannot be reverted",
                merge_sha.short()
            );
        };
        if parents.len() > 1 {
            return Ok(RevertPlan {
                top: merge_sha.clone(),
                bottom: first,
                commits: 1,
                mainline: true,
            });
        }
        // A rebase merge: walk back along first parents while each commit's patch is one of
        // the pull request's own commits. A squash (or a one-commit rebase) stops after one.
        let own = self.patch_ids_of_pr(pr_head, merge_sha)?;
        let rebased = self
            .patch_id(merge_sha)?
            .is_some_and(|id| own.contains(&id));
        let mut bottom = first;
        let mut commits = 1;
        while rebased && commits < own.len() {
            let Some(id) = self.patch_id(&bottom)? else {
                break;
            };
            if !own.contains(&id) {
                break;
            }
            match self.parents(&bottom)?.as_slice() {
                [only] => {
                    bottom = only.clone();
                    commits += 1;
                }
                _ => break,
            }
        }
        Ok(RevertPlan {
            top: merge_sha.clone(),
            bottom,
            commits,
            mainline: false,
        })
    }

    /// Computes the revert of `req.merge_sha` onto `req.base_tip` and, when clean, writes the
    /// revert commit (into the mirror only; [`GitRepo::push_branch`] publishes it).
    pub fn revert_onto(&self, req: &RevertRequest) -> anyhow::Result<RevertOutcome> {
        if !self.is_ancestor(&req.merge_sha, &req.base_tip)? {
            return Ok(RevertOutcome::NotOnBase);
        }
        let plan = self.merge_range(&req.merge_sha, &req.pr_head)?;
        let merged = self.merge_tree(&plan.top, &req.base_tip, &plan.bottom)?;
        let tree = match merged {
            MergeTree::Clean(tree) => tree,
            MergeTree::Conflict(files) => return Ok(RevertOutcome::Conflict { files, plan }),
        };
        let base_tree = self.tree_of(&req.base_tip)?;
        if tree == base_tree {
            return Ok(RevertOutcome::Empty { plan });
        }
        let sha = self
            .commit_tree(&tree, &req.base_tip, &req.message, &req.identity)
            .context("writing the revert commit")?;
        Ok(RevertOutcome::Commit { sha, plan })
    }

    /// A commit on `parent` with `parent`'s tree (no change): what a pull request that only
    /// asks for a plan of the branch as it is starts from (`drift remediate`).
    pub fn empty_commit(
        &self,
        parent: &CommitSha,
        message: &str,
        identity: &(String, String),
    ) -> anyhow::Result<CommitSha> {
        let tree = self.tree_of(parent)?;
        self.commit_tree(&tree, parent, message, identity)
    }

    /// `git commit-tree`: a commit of `tree` on `parent`, by `identity` (name, email).
    fn commit_tree(
        &self,
        tree: &str,
        parent: &CommitSha,
        message: &str,
        identity: &(String, String),
    ) -> anyhow::Result<CommitSha> {
        let (name, email) = identity;
        let env = [
            ("GIT_AUTHOR_NAME", name),
            ("GIT_AUTHOR_EMAIL", email),
            ("GIT_COMMITTER_NAME", name),
            ("GIT_COMMITTER_EMAIL", email),
        ]
        .map(|(k, v)| (k.to_string(), v.clone()));
        let out = git_output(
            Some(&self.git_dir),
            &["commit-tree", tree, "-p", parent.as_str(), "-m", message],
            &env,
            None,
            self.limits.git_memory_bytes,
            self.read_timeout(),
        )?;
        CommitSha::new(String::from_utf8_lossy(&out).trim()).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Pushes `commit` to `refs/heads/<branch>` of `url`, replacing what the branch held (a
    /// branch of Sluice's own: a stale revert of a closed revert pull request is replaced).
    pub fn push_branch(
        &self,
        url: &str,
        commit: &CommitSha,
        branch: &str,
        token: Option<&Secret>,
    ) -> anyhow::Result<()> {
        if branch.starts_with('-') || branch.contains("..") || branch.contains(':') {
            bail!("`{branch}` is not a branch Sluice pushes to");
        }
        let refspec = format!("+{commit}:refs/heads/{branch}");
        git_output(
            Some(&self.git_dir),
            &["push", "--quiet", "--no-verify", "--", url, &refspec],
            &auth_env(url, token),
            None,
            self.limits.git_memory_bytes,
            bounded(GIT_TIMEOUT),
        )
        .with_context(|| format!("pushing {branch} to {}", redact_url(url)))?;
        Ok(())
    }

    fn parents(&self, commit: &CommitSha) -> anyhow::Result<Vec<CommitSha>> {
        let spec = format!("{commit}^@");
        let out = self.git(&["rev-parse", &spec])?;
        String::from_utf8_lossy(&out)
            .lines()
            .map(|l| CommitSha::new(l.trim()).map_err(|e| anyhow::anyhow!("{e}")))
            .collect()
    }

    fn tree_of(&self, commit: &CommitSha) -> anyhow::Result<String> {
        let spec = format!("{commit}^{{tree}}");
        let out = self.git(&["rev-parse", &spec])?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// `git patch-id --stable` of one commit's change against its first parent; `None` for a
    /// commit that changes nothing.
    fn patch_id(&self, commit: &CommitSha) -> anyhow::Result<Option<String>> {
        let diff = self.git(&[
            "diff-tree",
            "-p",
            "--first-parent",
            "--no-renames",
            commit.as_str(),
        ])?;
        Ok(self.patch_ids(diff)?.into_iter().next())
    }

    /// The patch ids of the pull request's own commits: those of `head` not on `merged`'s
    /// first parent.
    fn patch_ids_of_pr(&self, head: &CommitSha, merged: &CommitSha) -> anyhow::Result<Vec<String>> {
        let base = self.merge_base(head, merged)?;
        let range = format!("{base}..{head}");
        let log = self.git(&[
            "log",
            "-p",
            "--no-merges",
            "--no-renames",
            "--format=commit %H",
            &range,
        ])?;
        self.patch_ids(log)
    }

    fn patch_ids(&self, patches: Vec<u8>) -> anyhow::Result<Vec<String>> {
        let out = git_output(
            Some(&self.git_dir),
            &["patch-id", "--stable"],
            &[],
            Some(patches),
            self.limits.git_memory_bytes,
            self.read_timeout(),
        )?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect())
    }

    /// `git merge-tree --write-tree --merge-base=<base> <ours> <theirs>`: the merged tree, or
    /// the conflicting paths.
    fn merge_tree(
        &self,
        base: &CommitSha,
        ours: &CommitSha,
        theirs: &CommitSha,
    ) -> anyhow::Result<MergeTree> {
        let timeout = self.read_timeout();
        let handle = confined(
            duct::cmd(
                "git",
                [
                    format!("--git-dir={}", self.git_dir.display()),
                    "merge-tree".into(),
                    "--write-tree".into(),
                    "-z".into(),
                    "--name-only".into(),
                    "--no-messages".into(),
                    format!("--merge-base={base}"),
                    ours.to_string(),
                    theirs.to_string(),
                ],
            )
            .full_env(base_env())
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked(),
            self.limits.git_memory_bytes,
        )
        .start()
        .context("cannot start git (is it installed?)")?;
        let Some(out) = handle.wait_timeout(timeout)? else {
            kill_groups(&handle.pids());
            let _ = handle.kill();
            bail!("git merge-tree was stopped after {}s", timeout.as_secs());
        };
        let mut fields = out
            .stdout
            .split(|b| *b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        match out.status.code() {
            Some(0) => {
                let tree = fields.next().unwrap_or_default();
                Ok(MergeTree::Clean(tree.trim().to_string()))
            }
            Some(1) => {
                let mut files: Vec<String> = fields.skip(1).filter(|f| !f.is_empty()).collect();
                files.sort();
                files.dedup();
                Ok(MergeTree::Conflict(files))
            }
            _ => Err(super::git_failure(
                "merge-tree",
                &out.stderr,
                self.limits.git_memory_bytes,
            )),
        }
    }
}

enum MergeTree {
    Clean(String),
    Conflict(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::super::tests::sh;
    use super::*;

    fn repo(script: &str) -> (tempfile::TempDir, GitRepo) {
        let dir = tempfile::tempdir().expect("temp dir");
        sh(
            dir.path(),
            &format!(
                "git init -q -b main . && git config user.email t@e && git config user.name t && {script}"
            ),
        );
        let git = GitRepo::open(dir.path()).expect("a repository");
        (dir, git)
    }

    fn sha(git: &GitRepo, rev: &str) -> CommitSha {
        git.resolve(rev).expect("a revision")
    }

    fn request(git: &GitRepo, merge: &str, head: &str) -> RevertRequest {
        RevertRequest {
            merge_sha: sha(git, merge),
            pr_head: sha(git, head),
            base_tip: sha(git, "main"),
            message: "Revert".into(),
            identity: ("sluice".into(), "sluice@localhost".into()),
        }
    }

    fn file_at(git: &GitRepo, commit: &CommitSha, path: &str) -> String {
        git.read_file(commit, path)
            .expect("readable")
            .unwrap_or_else(|| "<none>".into())
    }

    const BASE: &str = "echo a1 > a && echo b1 > b && git add . && git commit -qm base";

    #[test]
    fn a_merge_commit_is_reverted_against_its_first_parent() {
        let (_d, git) = repo(&format!(
            "{BASE} && git switch -qc pr && echo a2 > a && git commit -qam a2 && echo new > c && git add c && git commit -qm c \
             && git switch -q main && echo b2 > b && git commit -qam b2 && git merge -q --no-ff -m merge pr \
             && echo b3 > b && git commit -qam b3"
        ));
        let req = request(&git, "main~1", "pr");
        let RevertOutcome::Commit { sha, plan } = git.revert_onto(&req).expect("reverted") else {
            panic!("a clean revert")
        };
        assert!(plan.mainline);
        assert_eq!(plan.commits, 1);
        assert_eq!(file_at(&git, &sha, "a"), "a1\n");
        assert_eq!(file_at(&git, &sha, "c"), "<none>");
        assert_eq!(file_at(&git, &sha, "b"), "b3\n", "later changes stay");
    }

    #[test]
    fn squash_and_rebase_merges_revert_what_they_brought_and_nothing_before() {
        // Squash: one commit on main holding both PR commits' changes, after an unrelated one.
        let (_d, git) = repo(&format!(
            "{BASE} && git switch -qc pr && echo a2 > a && git commit -qam a2 && echo new > c && git add c && git commit -qm c \
             && git switch -q main && echo b2 > b && git commit -qam b2 && git merge -q --squash pr && git commit -qm squash"
        ));
        let RevertOutcome::Commit { sha, plan } = git
            .revert_onto(&request(&git, "main", "pr"))
            .expect("reverted")
        else {
            panic!("a clean revert")
        };
        assert_eq!((plan.commits, plan.mainline), (1, false));
        assert_eq!(file_at(&git, &sha, "a"), "a1\n");
        assert_eq!(file_at(&git, &sha, "c"), "<none>");
        assert_eq!(
            file_at(&git, &sha, "b"),
            "b2\n",
            "the commit before the squash stays"
        );

        // Rebase: the PR's two commits replayed on main (new SHAs, same patches).
        let (_d, git) = repo(&format!(
            "{BASE} && git switch -qc pr && echo a2 > a && git commit -qam a2 && echo new > c && git add c && git commit -qm c \
             && git switch -q main && echo b2 > b && git commit -qam b2 && git cherry-pick pr~1 pr >/dev/null"
        ));
        let RevertOutcome::Commit { sha, plan } = git
            .revert_onto(&request(&git, "main", "pr"))
            .expect("reverted")
        else {
            panic!("a clean revert")
        };
        assert_eq!((plan.commits, plan.mainline), (2, false));
        assert_eq!(file_at(&git, &sha, "a"), "a1\n");
        assert_eq!(file_at(&git, &sha, "c"), "<none>");
        assert_eq!(file_at(&git, &sha, "b"), "b2\n");
    }

    #[test]
    fn conflicts_empty_reverts_and_rewritten_bases_are_told_apart() {
        let (_d, git) = repo(&format!(
            "{BASE} && git switch -qc pr && echo a2 > a && git commit -qam a2 \
             && git switch -q main && git merge -q --no-ff -m merge pr && echo a3 > a && git commit -qam a3"
        ));
        match git
            .revert_onto(&request(&git, "main~1", "pr"))
            .expect("computed")
        {
            RevertOutcome::Conflict { files, plan } => {
                assert_eq!(files, vec!["a".to_string()]);
                assert!(plan.mainline);
            }
            other => panic!("a conflict, got {other:?}"),
        }

        let (_d, git) = repo(&format!(
            "{BASE} && git switch -qc pr && echo a2 > a && git commit -qam a2 \
             && git switch -q main && git merge -q --no-ff -m merge pr && echo a1 > a && git commit -qam undo"
        ));
        assert!(matches!(
            git.revert_onto(&request(&git, "main~1", "pr"))
                .expect("computed"),
            RevertOutcome::Empty { .. }
        ));

        let (_d, git) = repo(&format!(
            "{BASE} && git switch -qc pr && echo a2 > a && git commit -qam a2 && git switch -q main"
        ));
        assert_eq!(
            git.revert_onto(&request(&git, "pr", "pr"))
                .expect("computed"),
            RevertOutcome::NotOnBase
        );
    }

    #[test]
    fn the_branch_is_pushed_to_a_bare_repository() {
        let (d, git) = repo(&format!(
            "{BASE} && git switch -qc pr && echo a2 > a && git commit -qam a2 && git switch -q main && git merge -q --no-ff -m merge pr"
        ));
        let RevertOutcome::Commit { sha, .. } = git
            .revert_onto(&request(&git, "main", "pr"))
            .expect("reverted")
        else {
            panic!("a clean revert")
        };
        let remote = tempfile::tempdir().expect("temp dir");
        sh(remote.path(), "git init -q --bare .");
        let url = remote.path().to_string_lossy().to_string();
        git.push_branch(&url, &sha, "sluice/revert-pr-1", None)
            .expect("pushed");
        // Pushed again (a stale branch of a closed revert PR) it is replaced.
        git.push_branch(&url, &sha, "sluice/revert-pr-1", None)
            .expect("pushed again");
        let bare = GitRepo::open(remote.path()).expect("bare");
        assert_eq!(
            bare.resolve("refs/heads/sluice/revert-pr-1")
                .expect("the branch"),
            sha
        );
        assert!(git.push_branch(&url, &sha, "--force", None).is_err());
        drop(d);
    }
}
