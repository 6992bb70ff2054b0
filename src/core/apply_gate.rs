//! The apply gate (PRODUCT.md §10): may this PR apply this project now? Every requirement is
//! checked and every failure is named, so the refusal tells the user exactly what to fix.
//! Pure: the facts (reviews, PR state, plan hashes, locks) are gathered by the caller.

use serde::{Deserialize, Serialize};

use super::event::{Actor, ActorKind, Review, ReviewState};
use super::types::{ApplyRequirement, CommitSha};

/// An approval the gate relied on (recorded in the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub login: String,
    pub user_id: u64,
    pub review_id: u64,
    pub submitted_at: Option<String>,
    pub commit_id: Option<CommitSha>,
}

/// Approvals in force: for each reviewer other than the author (and not a bot), their latest *decisive* review
/// (approved, changes requested, dismissed — a plain comment changes nothing, as on GitHub) when
/// that review is an approval. `reviews` is in the API's chronological order.
pub fn approvals(reviews: &[Review], author: &Actor) -> Vec<Approval> {
    let mut latest: Vec<&Review> = Vec::new();
    for r in reviews {
        if !matches!(
            r.state,
            ReviewState::Approved | ReviewState::ChangesRequested | ReviewState::Dismissed
        ) {
            continue;
        }
        if r.reviewer.id == author.id || r.reviewer.login.eq_ignore_ascii_case(&author.login) {
            continue;
        }
        // An app's review is no one's judgement: it never counts as an approval.
        if r.reviewer.kind == ActorKind::Bot {
            continue;
        }
        match latest.iter_mut().find(|l| l.reviewer.id == r.reviewer.id) {
            Some(slot) => *slot = r,
            None => latest.push(r),
        }
    }
    latest
        .into_iter()
        .filter(|r| r.state == ReviewState::Approved)
        .map(|r| Approval {
            login: r.reviewer.login.clone(),
            user_id: r.reviewer.id,
            review_id: r.id,
            submitted_at: r.submitted_at.clone(),
            commit_id: r.commit_id.clone(),
        })
        .collect()
}

/// GitHub `mergeable_state` values that mean "can be merged": `clean`, plus `unstable`
/// (non-required checks failing — Sluice's own pending `sluice/apply` status would otherwise
/// block itself) and `has_hooks`.
pub fn is_mergeable(mergeable_state: Option<&str>) -> bool {
    matches!(mergeable_state, Some("clean" | "unstable" | "has_hooks"))
}

/// The saved plan of one project, as the gate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFacts {
    pub head_sha: CommitSha,
    pub recorded_sha256: String,
    /// The plan file's hash now; `None` when the file is gone.
    pub current_sha256: Option<String>,
}

/// PR-wide facts.
#[derive(Debug, Clone)]
pub struct PrFacts<'a> {
    pub open: bool,
    pub head_sha: &'a CommitSha,
    pub author: &'a Actor,
    pub reviews: &'a [Review],
    pub mergeable_state: Option<&'a str>,
    /// Whether the head contains the base branch's tip; `None` when not computed.
    pub undiverged: Option<bool>,
}

/// Per-project facts.
#[derive(Debug, Clone)]
pub struct ProjectFacts<'a> {
    pub requirements: &'a [ApplyRequirement],
    pub plan: Option<&'a PlanFacts>,
    pub holds_locks: bool,
}

/// Every reason the project may not be applied now; empty means allowed.
pub fn refusals(pr: &PrFacts<'_>, project: &ProjectFacts<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if !pr.open {
        out.push("the pull request is closed".to_string());
        return out;
    }
    match project.plan {
        None => out.push(format!(
            "there is no plan for the current head commit {}; run plan first",
            pr.head_sha.short()
        )),
        Some(plan) => {
            if &plan.head_sha != pr.head_sha {
                out.push(format!(
                    "the plan was made for commit {} but the head is now {}; run plan again",
                    plan.head_sha.short(),
                    pr.head_sha.short()
                ));
            }
            match &plan.current_sha256 {
                None => out.push("the saved plan file is missing; run plan again".to_string()),
                Some(now) if now != &plan.recorded_sha256 => out.push(format!(
                    "the saved plan file changed since it was reviewed (sha256 {} ≠ {}); run plan again",
                    short_hash(now),
                    short_hash(&plan.recorded_sha256)
                )),
                Some(_) => {}
            }
        }
    }
    if !project.holds_locks {
        out.push(
            "this pull request no longer holds the project's lock; run plan again".to_string(),
        );
    }
    out.extend(requirement_failures(pr, project.requirements));
    out
}

/// What the gate refuses of a change that has no saved plan (`import`, `state rm`:
/// `core::state_command`): the pull request must be open and meet the project's apply
/// requirements, exactly as for `apply`. Empty means allowed.
pub fn refusals_without_plan(pr: &PrFacts<'_>, requirements: &[ApplyRequirement]) -> Vec<String> {
    if !pr.open {
        return vec!["the pull request is closed".to_string()];
    }
    requirement_failures(pr, requirements)
}

/// Every requirement of `requirements` (`apply_requirements`, or Atlantis `plan_requirements`)
/// that does not hold for the pull request, each as a sentence naming it and what to do.
pub fn requirement_failures(pr: &PrFacts<'_>, requirements: &[ApplyRequirement]) -> Vec<String> {
    let mut out = Vec::new();
    for req in requirements {
        match req {
            ApplyRequirement::Approved => {
                if approvals(pr.reviews, pr.author).is_empty() {
                    out.push(format!(
                        "requirement `approved` failed: the pull request needs an approving review from someone other than its author (@{})",
                        pr.author.login
                    ));
                }
            }
            ApplyRequirement::Mergeable => {
                if !is_mergeable(pr.mergeable_state) {
                    out.push(format!(
                        "requirement `mergeable` failed: GitHub reports the pull request as `{}`",
                        pr.mergeable_state.unwrap_or("unknown")
                    ));
                }
            }
            ApplyRequirement::Undiverged => {
                if pr.undiverged != Some(true) {
                    out.push(
                        "requirement `undiverged` failed: the branch does not contain the latest commit of its base branch; merge or rebase it"
                            .to_string(),
                    );
                }
            }
        }
    }
    out
}

fn short_hash(h: &str) -> &str {
    &h[..h.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(login: &str, id: u64) -> Actor {
        Actor {
            login: login.into(),
            id,
            kind: ActorKind::Human,
        }
    }

    fn review(id: u64, who: &Actor, state: ReviewState) -> Review {
        Review {
            id,
            reviewer: who.clone(),
            state,
            commit_id: None,
            submitted_at: None,
        }
    }

    fn sha(c: char) -> CommitSha {
        CommitSha::new(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn approval_rules() {
        let author = actor("alice", 1);
        let bob = actor("bob", 2);
        let carol = actor("carol", 3);
        let approved_by = |rs: &[Review]| -> Vec<String> {
            approvals(rs, &author)
                .into_iter()
                .map(|a| a.login)
                .collect()
        };
        // The author cannot approve their own PR.
        assert!(approved_by(&[review(1, &author, ReviewState::Approved)]).is_empty());
        assert_eq!(
            approved_by(&[review(1, &bob, ReviewState::Approved)]),
            ["bob"]
        );
        // A later request for changes, or a dismissal, cancels that reviewer's approval.
        assert!(
            approved_by(&[
                review(1, &bob, ReviewState::Approved),
                review(2, &bob, ReviewState::ChangesRequested)
            ])
            .is_empty()
        );
        assert!(approved_by(&[review(1, &bob, ReviewState::Dismissed)]).is_empty());
        // A later plain comment does not.
        assert_eq!(
            approved_by(&[
                review(1, &bob, ReviewState::Approved),
                review(2, &bob, ReviewState::Commented)
            ]),
            ["bob"]
        );
        // One reviewer's change request does not cancel another's approval.
        assert_eq!(
            approved_by(&[
                review(1, &bob, ReviewState::Approved),
                review(2, &carol, ReviewState::ChangesRequested)
            ]),
            ["bob"]
        );
        // A bot's approval does not count.
        let app = Actor {
            kind: ActorKind::Bot,
            ..actor("deploy-helper[bot]", 9)
        };
        assert!(approved_by(&[review(1, &app, ReviewState::Approved)]).is_empty());
        // Re-approval after changes requested counts.
        assert_eq!(
            approved_by(&[
                review(1, &bob, ReviewState::ChangesRequested),
                review(2, &bob, ReviewState::Approved)
            ]),
            ["bob"]
        );
    }

    #[test]
    fn gate_names_each_failure() {
        let author = actor("alice", 1);
        let head = sha('a');
        let plan = PlanFacts {
            head_sha: sha('b'),
            recorded_sha256: "1".repeat(64),
            current_sha256: Some("2".repeat(64)),
        };
        let pr = PrFacts {
            open: true,
            head_sha: &head,
            author: &author,
            reviews: &[],
            mergeable_state: Some("dirty"),
            undiverged: Some(false),
        };
        let reasons = refusals(
            &pr,
            &ProjectFacts {
                requirements: &[
                    ApplyRequirement::Approved,
                    ApplyRequirement::Mergeable,
                    ApplyRequirement::Undiverged,
                ],
                plan: Some(&plan),
                holds_locks: false,
            },
        );
        let text = reasons.join("\n");
        insta::assert_snapshot!(text, @r"
        the plan was made for commit bbbbbbb but the head is now aaaaaaa; run plan again
        the saved plan file changed since it was reviewed (sha256 222222222222 ≠ 111111111111); run plan again
        this pull request no longer holds the project's lock; run plan again
        requirement `approved` failed: the pull request needs an approving review from someone other than its author (@alice)
        requirement `mergeable` failed: GitHub reports the pull request as `dirty`
        requirement `undiverged` failed: the branch does not contain the latest commit of its base branch; merge or rebase it
        ");
    }

    #[test]
    fn gate_allows_when_everything_holds() {
        let author = actor("alice", 1);
        let bob = actor("bob", 2);
        let head = sha('a');
        let plan = PlanFacts {
            head_sha: head.clone(),
            recorded_sha256: "1".repeat(64),
            current_sha256: Some("1".repeat(64)),
        };
        let reviews = [review(9, &bob, ReviewState::Approved)];
        let pr = PrFacts {
            open: true,
            head_sha: &head,
            author: &author,
            reviews: &reviews,
            mergeable_state: Some("clean"),
            undiverged: None,
        };
        let facts = ProjectFacts {
            requirements: &[ApplyRequirement::Approved],
            plan: Some(&plan),
            holds_locks: true,
        };
        assert!(refusals(&pr, &facts).is_empty());
        let none = ProjectFacts {
            plan: None,
            ..facts
        };
        assert_eq!(
            refusals(&pr, &none),
            ["there is no plan for the current head commit aaaaaaa; run plan first"]
        );
        let closed = PrFacts { open: false, ..pr };
        assert_eq!(refusals(&closed, &facts), ["the pull request is closed"]);
    }

    /// `import` / `state rm` have no plan: only the PR's state and the requirements count, the
    /// same requirement sentences as `apply`.
    #[test]
    fn the_gate_without_a_plan_checks_the_requirements_only() {
        let author = actor("alice", 1);
        let bob = actor("bob", 2);
        let head = sha('a');
        let own = [review(8, &author, ReviewState::Approved)];
        let pr = PrFacts {
            open: true,
            head_sha: &head,
            author: &author,
            reviews: &own,
            mergeable_state: Some("clean"),
            undiverged: Some(true),
        };
        let approved = [ApplyRequirement::Approved];
        assert_eq!(
            refusals_without_plan(&pr, &approved),
            [
                "requirement `approved` failed: the pull request needs an approving review from someone other than its author (@alice)"
            ]
        );
        assert!(
            refusals_without_plan(&pr, &[]).is_empty(),
            "no requirement, no plan needed"
        );
        let by_bob = [review(9, &bob, ReviewState::Approved)];
        let ok = PrFacts {
            reviews: &by_bob,
            ..pr
        };
        assert!(refusals_without_plan(&ok, &approved).is_empty());
        let closed = PrFacts { open: false, ..ok };
        assert_eq!(
            refusals_without_plan(&closed, &approved),
            ["the pull request is closed"]
        );
    }
}
