//! Automerge (`automerge: { enabled: true, method: … }` in the base branch's `sluice.yaml`,
//! PRODUCT.md §15): whether Sluice merges a pull request after an apply. Pure: the app reads
//! the pull request, its projects and its plans, and asks [`decide`].
//!
//! Sluice merges only a pull request it has applied completely: at least one project, every
//! project applied by Sluice at the pull request's current head, no plan left unapplied, and no
//! project that applies only after merge (merging is that project's apply, and its gate is
//! GitHub's to enforce). A pull request that changes no project is never merged.

use super::delivery::ApplyMode;
use super::repo_config::MergeMethod;

/// One project of the pull request at its head, as automerge sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectState {
    pub name: String,
    /// Sluice applied a plan of it for the pull request's current head.
    pub applied: bool,
    pub mode: ApplyMode,
}

/// The facts of one pull request after an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// `automerge` of the base branch's configuration (`None`: off).
    pub method: Option<MergeMethod>,
    /// Open and not merged.
    pub open: bool,
    /// The apply was of the pull request's current head.
    pub head_current: bool,
    pub projects: &'a [ProjectState],
    /// Plans of the head that are neither applied nor discarded.
    pub unapplied_plans: usize,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Merge(MergeMethod),
    /// Not merged, and why (logged; nothing is posted: a partial apply is ordinary).
    Skip(String),
}

pub fn decide(f: &Facts<'_>) -> Decision {
    let skip = |why: String| Decision::Skip(why);
    let Some(method) = f.method else {
        return skip("automerge is off".into());
    };
    if !f.open {
        return skip("the pull request is not open".into());
    }
    if !f.head_current {
        return skip("the pull request has new commits since the apply".into());
    }
    if f.projects.is_empty() {
        return skip("the pull request changes no project".into());
    }
    if let Some(p) = f.projects.iter().find(|p| p.mode == ApplyMode::OnMerge) {
        return skip(format!("`{}` applies after merge", p.name));
    }
    if let Some(p) = f.projects.iter().find(|p| !p.applied) {
        return skip(format!("`{}` is not applied", p.name));
    }
    if f.unapplied_plans > 0 {
        return skip(format!("{} plan(s) not applied", f.unapplied_plans));
    }
    Decision::Merge(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, applied: bool, mode: ApplyMode) -> ProjectState {
        ProjectState {
            name: name.into(),
            applied,
            mode,
        }
    }

    #[test]
    fn only_a_completely_applied_pull_request_is_merged() {
        let all = [
            p("a", true, ApplyMode::Comment),
            p("b", true, ApplyMode::CommentOrMerge),
        ];
        let ok = Facts {
            method: Some(MergeMethod::Squash),
            open: true,
            head_current: true,
            projects: &all,
            unapplied_plans: 0,
        };
        assert_eq!(decide(&ok), Decision::Merge(MergeMethod::Squash));
        let skipped = |f: Facts<'_>| match decide(&f) {
            Decision::Skip(why) => why,
            Decision::Merge(_) => panic!("merged: {f:?}"),
        };
        assert_eq!(
            skipped(Facts {
                method: None,
                ..ok.clone()
            }),
            "automerge is off"
        );
        assert_eq!(
            skipped(Facts {
                open: false,
                ..ok.clone()
            }),
            "the pull request is not open"
        );
        assert_eq!(
            skipped(Facts {
                head_current: false,
                ..ok.clone()
            }),
            "the pull request has new commits since the apply"
        );
        assert_eq!(
            skipped(Facts {
                projects: &[],
                ..ok.clone()
            }),
            "the pull request changes no project"
        );
        let partial = [
            p("a", true, ApplyMode::Comment),
            p("b", false, ApplyMode::Comment),
        ];
        assert_eq!(
            skipped(Facts {
                projects: &partial,
                ..ok.clone()
            }),
            "`b` is not applied"
        );
        let after = [
            p("a", true, ApplyMode::Comment),
            p("c", false, ApplyMode::OnMerge),
        ];
        assert_eq!(
            skipped(Facts {
                projects: &after,
                ..ok.clone()
            }),
            "`c` applies after merge"
        );
        assert_eq!(
            skipped(Facts {
                unapplied_plans: 1,
                ..ok
            }),
            "1 plan(s) not applied"
        );
    }
}
