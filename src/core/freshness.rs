//! Which state a comment command acts on. A comment is written against the pull request as its
//! author saw it; by the time Sluice handles it, new commits may have been pushed (or the comment
//! may be an old one delivered late). `apply` and `approve_policies` must act on the head commit
//! the comment was written on, never on one pushed after it.
//!
//! The rule: Sluice records *sightings* of each PR's head — `(sha, at)`, meaning "`sha` was the
//! head at time `at`" — from every `pull_request` delivery (GitHub's `updated_at` in it, which a
//! push sets) and whenever a command finds a head it had no sighting of (then the later of
//! Sluice's clock and the comment's own time, so the sighting never predates the moment Sluice
//! saw it). The head at a comment's time is the latest sighting strictly before the comment's
//! `created_at`. A command may act only when that is the head now; a tie, a head first seen
//! after the comment, or a comment without a time are refused — fail closed: the commenter
//! comments again, on what they now see. Likewise a saved plan made after the comment (a
//! re-plan of the same head) is not the one the commenter read, and is not acted upon.
//!
//! Pure: times (Unix milliseconds) and sightings come in as arguments.

use super::types::{CommitSha, UnixMs};

/// `sha` was the pull request's head at `at` (GitHub's clock for deliveries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadSeen {
    pub sha: CommitSha,
    pub at: UnixMs,
}

/// The head a comment was written on, compared with the head now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentHead {
    /// The head now is the head the comment was written on.
    Current,
    /// The head moved after the comment was written: `then` was the head at the comment's
    /// time, `now` is the head at handling time.
    Moved { then: CommitSha, now: CommitSha },
    /// No head is known from before the comment (Sluice first saw this pull request later).
    Unknown { now: CommitSha },
    /// The comment carries no time (a delivery stored before Sluice read it).
    Undated,
}

/// Which head a comment written at `comment_at_ms` was written on, given the head `current` now
/// and every sighting Sluice has of the pull request (any order).
pub fn head_at_comment(
    comment_at_ms: Option<UnixMs>,
    current: &CommitSha,
    seen: &[HeadSeen],
) -> CommentHead {
    let Some(t) = comment_at_ms else {
        return CommentHead::Undated;
    };
    let Some(latest) = seen.iter().filter(|s| s.at < t).map(|s| s.at).max() else {
        return CommentHead::Unknown {
            now: current.clone(),
        };
    };
    // Two heads seen at the same instant: which came last is unknown, so the other one counts.
    let then = seen
        .iter()
        .filter(|s| s.at == latest)
        .find(|s| &s.sha != current)
        .map(|s| s.sha.clone());
    match then {
        None => CommentHead::Current,
        Some(then) => CommentHead::Moved {
            then,
            now: current.clone(),
        },
    }
}

/// Whether a plan recorded at `plan_at_ms` (Sluice's clock) is newer than a comment written at
/// `comment_at_ms` (GitHub's): the commenter cannot have read it, so the comment must not apply
/// or override it, even on the same head (a re-plan can differ: state and providers change).
/// An undated comment counts as older than every plan.
pub fn plan_after_comment(comment_at_ms: Option<UnixMs>, plan_at_ms: UnixMs) -> bool {
    comment_at_ms.is_none_or(|t| plan_at_ms >= t)
}

/// The reason given for a plan newer than the comment.
pub fn plan_after_comment_reason(command: &str, bot_name: &str) -> String {
    format!(
        "this plan was made after the comment was written, so it is not the plan that was read: \
         review it and comment `{bot_name} {command}` again"
    )
}

/// Whether `current` needs a sighting of its own: the latest one known is of another commit (or
/// there is none), so Sluice missed the delivery that announced it.
pub fn needs_sighting(current: &CommitSha, seen: &[HeadSeen]) -> bool {
    seen.iter()
        .max_by_key(|s| s.at)
        .is_none_or(|s| &s.sha != current)
}

impl CommentHead {
    /// The reply to a refused command (`None` when it may go ahead), naming both commits.
    pub fn refusal(&self, command: &str, bot_name: &str) -> Option<String> {
        let again = format!(
            "Review what the pull request shows now and comment `{bot_name} {command}` again."
        );
        match self {
            CommentHead::Current => None,
            CommentHead::Moved { then, now } => Some(format!(
                "🚫 `{command}` was not run: this comment was written when the head commit was `{}`, \
                 and the head is now `{}` — new commits arrived after the comment, and a command acts \
                 only on the commit it was written on. {again}",
                then.short(),
                now.short()
            )),
            CommentHead::Unknown { now } => Some(format!(
                "🚫 `{command}` was not run: Sluice cannot tell that the head commit `{}` was already \
                 there when this comment was written (it first saw that commit afterwards), and a \
                 command acts only on the commit it was written on. {again}",
                now.short()
            )),
            CommentHead::Undated => Some(format!(
                "🚫 `{command}` was not run: the comment's delivery carries no creation time, so \
                 Sluice cannot tell which commit it was written on. {again}"
            )),
        }
    }

    /// The one-line reason recorded in the audit log.
    pub fn audit_reason(&self) -> Option<String> {
        match self {
            CommentHead::Current => None,
            CommentHead::Moved { then, now } => {
                Some(format!("comment written on head {then}; head is now {now}"))
            }
            CommentHead::Unknown { now } => Some(format!(
                "head {now} first seen after the comment was written"
            )),
            CommentHead::Undated => Some("comment has no creation time".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(c: char) -> CommitSha {
        CommitSha::new(&c.to_string().repeat(40)).unwrap()
    }

    fn seen(list: &[(char, i64)]) -> Vec<HeadSeen> {
        list.iter()
            .map(|(c, at)| HeadSeen {
                sha: sha(*c),
                at: UnixMs::new(*at),
            })
            .collect()
    }

    #[test]
    fn the_head_at_the_comment_is_the_latest_sighting_before_it() {
        use CommentHead::*;
        let (a, b) = (sha('a'), sha('b'));
        // (name, comment time, current head, sightings, expected)
        type Case = (
            &'static str,
            Option<i64>,
            char,
            &'static [(char, i64)],
            CommentHead,
        );
        let cases: &[Case] = &[
            (
                "one head, seen before",
                Some(100),
                'a',
                &[('a', 10)],
                Current,
            ),
            (
                "pushed after the comment",
                Some(100),
                'b',
                &[('a', 10), ('b', 150)],
                Moved {
                    then: a.clone(),
                    now: b.clone(),
                },
            ),
            (
                "pushed before the comment",
                Some(100),
                'b',
                &[('a', 10), ('b', 50)],
                Current,
            ),
            (
                "same instant is not before",
                Some(100),
                'b',
                &[('a', 10), ('b', 100)],
                Moved {
                    then: a.clone(),
                    now: b.clone(),
                },
            ),
            (
                "forced back to an older head after the comment",
                Some(100),
                'a',
                &[('a', 10), ('b', 50), ('a', 150)],
                Moved {
                    then: b.clone(),
                    now: a.clone(),
                },
            ),
            (
                "forced back before the comment",
                Some(100),
                'a',
                &[('a', 10), ('b', 50), ('a', 60)],
                Current,
            ),
            (
                "sightings in any order",
                Some(100),
                'a',
                &[('a', 60), ('b', 50), ('a', 10)],
                Current,
            ),
            (
                "a tie between two heads fails closed",
                Some(100),
                'a',
                &[('a', 50), ('b', 50)],
                Moved {
                    then: b.clone(),
                    now: a.clone(),
                },
            ),
            (
                "nothing seen before the comment",
                Some(100),
                'a',
                &[('a', 150)],
                Unknown { now: a.clone() },
            ),
            (
                "nothing seen at all",
                Some(100),
                'a',
                &[],
                Unknown { now: a.clone() },
            ),
            ("no comment time", None, 'a', &[('a', 10)], Undated),
        ];
        for (name, at, current, list, want) in cases {
            assert_eq!(
                &head_at_comment(at.map(UnixMs::new), &sha(*current), &seen(list)),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn a_sighting_is_needed_only_when_the_latest_is_another_commit() {
        assert!(needs_sighting(&sha('a'), &[]));
        assert!(!needs_sighting(&sha('a'), &seen(&[('b', 1), ('a', 2)])));
        assert!(needs_sighting(&sha('a'), &seen(&[('a', 1), ('b', 2)])));
    }

    #[test]
    fn plans_newer_than_the_comment_are_not_acted_upon() {
        assert!(!plan_after_comment(Some(UnixMs::new(100)), UnixMs::new(99)));
        assert!(
            plan_after_comment(Some(UnixMs::new(100)), UnixMs::new(100)),
            "same instant: not before"
        );
        assert!(plan_after_comment(Some(UnixMs::new(100)), UnixMs::new(101)));
        assert!(
            plan_after_comment(None, UnixMs::new(0)),
            "undated comments fail closed"
        );
        insta::assert_snapshot!(plan_after_comment_reason("apply", "sluice"), @"this plan was made after the comment was written, so it is not the plan that was read: review it and comment `sluice apply` again");
    }

    #[test]
    fn refusals_name_both_commits() {
        let moved = CommentHead::Moved {
            then: sha('a'),
            now: sha('b'),
        };
        insta::assert_snapshot!(moved.refusal("apply", "sluice").unwrap(), @"🚫 `apply` was not run: this comment was written when the head commit was `aaaaaaa`, and the head is now `bbbbbbb` — new commits arrived after the comment, and a command acts only on the commit it was written on. Review what the pull request shows now and comment `sluice apply` again.");
        insta::assert_snapshot!(CommentHead::Unknown { now: sha('b') }.refusal("approve_policies", "atlantis").unwrap(), @"🚫 `approve_policies` was not run: Sluice cannot tell that the head commit `bbbbbbb` was already there when this comment was written (it first saw that commit afterwards), and a command acts only on the commit it was written on. Review what the pull request shows now and comment `atlantis approve_policies` again.");
        assert_eq!(CommentHead::Current.refusal("apply", "sluice"), None);
        assert!(
            moved
                .audit_reason()
                .unwrap()
                .contains(&format!("head {};", sha('a')))
        );
    }
}
