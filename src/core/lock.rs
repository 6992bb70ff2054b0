//! Lock rules (PRODUCT.md §7). A lock is held per (repo, project dir, workspace) by one PR.
//! A run takes the locks of all its projects at once or none of them; a conflict names the PR
//! holding the lock so the run can wait behind it. Pure: the store reads the current locks and
//! writes what [`decide`] says, inside one transaction.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::types::{PrNumber, ProjectDir, RepoName, UnixMs, Workspace};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockKey {
    pub dir: ProjectDir,
    pub workspace: Workspace,
}

impl std::fmt::Display for LockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (workspace {})", self.dir, self.workspace)
    }
}

/// A lock as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub repo: RepoName,
    pub key: LockKey,
    pub pr: PrNumber,
    /// Who caused it to be taken.
    pub holder_login: String,
    pub acquired_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockDecision {
    /// Take these (the ones the PR does not hold yet); the rest are already the PR's.
    Acquire(Vec<LockKey>),
    /// Another PR holds at least one: take nothing. `held` lists each conflicting lock.
    Conflict { held: Vec<Lock> },
}

/// Decides whether `pr` may take all of `wanted`, given the repository's current `locks`.
pub fn decide(pr: PrNumber, wanted: &[LockKey], locks: &[Lock]) -> LockDecision {
    let wanted: BTreeSet<&LockKey> = wanted.iter().collect();
    let mut held: Vec<Lock> = locks
        .iter()
        .filter(|l| l.pr != pr && wanted.contains(&l.key))
        .cloned()
        .collect();
    if !held.is_empty() {
        held.sort_by(|a, b| a.key.cmp(&b.key));
        return LockDecision::Conflict { held };
    }
    let mine: BTreeSet<&LockKey> = locks
        .iter()
        .filter(|l| l.pr == pr)
        .map(|l| &l.key)
        .collect();
    LockDecision::Acquire(
        wanted
            .into_iter()
            .filter(|k| !mine.contains(k))
            .cloned()
            .collect(),
    )
}

/// True when `pr` holds every one of `keys`.
pub fn holds_all(pr: PrNumber, keys: &[LockKey], locks: &[Lock]) -> bool {
    keys.iter()
        .all(|k| locks.iter().any(|l| l.pr == pr && &l.key == k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &str) -> LockKey {
        LockKey {
            dir: ProjectDir::new(dir).unwrap(),
            workspace: Workspace::default(),
        }
    }

    fn lock(dir: &str, pr: u64) -> Lock {
        Lock {
            repo: RepoName::parse("acme/infra").unwrap(),
            key: key(dir),
            pr: PrNumber::new(pr).unwrap(),
            holder_login: "alice".into(),
            acquired_at: UnixMs::new(0),
        }
    }

    fn pr(n: u64) -> PrNumber {
        PrNumber::new(n).unwrap()
    }

    #[test]
    fn free_locks_are_all_taken() {
        let d = decide(pr(1), &[key("a"), key("b")], &[]);
        assert_eq!(d, LockDecision::Acquire(vec![key("a"), key("b")]));
    }

    #[test]
    fn own_locks_are_kept_not_retaken() {
        let d = decide(pr(1), &[key("a"), key("b")], &[lock("a", 1)]);
        assert_eq!(d, LockDecision::Acquire(vec![key("b")]));
    }

    #[test]
    fn one_conflict_takes_nothing() {
        let d = decide(pr(2), &[key("a"), key("b")], &[lock("b", 1), lock("c", 3)]);
        assert_eq!(
            d,
            LockDecision::Conflict {
                held: vec![lock("b", 1)]
            }
        );
    }

    #[test]
    fn workspaces_are_distinct_locks() {
        let mut other_ws = lock("a", 1);
        other_ws.key.workspace = Workspace::new("blue").unwrap();
        assert_eq!(
            decide(pr(2), &[key("a")], &[other_ws]),
            LockDecision::Acquire(vec![key("a")])
        );
    }

    #[test]
    fn holds_all_checks_every_key() {
        let locks = [lock("a", 1), lock("b", 2)];
        assert!(holds_all(pr(1), &[key("a")], &locks));
        assert!(!holds_all(pr(1), &[key("a"), key("b")], &locks));
        assert!(holds_all(pr(1), &[], &locks));
    }
}
