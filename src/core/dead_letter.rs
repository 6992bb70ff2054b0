//! Webhook events that are set aside (dead-lettered) after their attempts are used up: what the
//! pull request is told and what the audit log records. Attempts are counted when an attempt
//! starts, so an event whose handling keeps stopping the server ends here too, instead of being
//! picked first after every restart. Pure: the caller hands in the facts.

use std::collections::BTreeMap;

use super::audit::{AuditAction, AuditActor, AuditRecord, AuditResult, ErrorClass};
use super::types::{PrNumber, RepoName};

/// Why an event was set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    /// Its last attempt never finished: the process stopped (crashed, was killed) while
    /// handling it, as often as it was tried.
    Unfinished,
    /// Every attempt ended with an error that could pass (a fetch, a GitHub call); the last one.
    Failed(String),
}

/// One set-aside event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside<'a> {
    pub delivery_id: &'a str,
    /// The webhook's kind (`pull_request`, `issue_comment`, …).
    pub kind: &'a str,
    pub attempts: u32,
    pub why: DeadLetter,
    /// The PR it is about, when it is about one.
    pub target: Option<(RepoName, PrNumber)>,
}

impl SetAside<'_> {
    /// The error recorded for operators.
    pub fn reason(&self) -> String {
        match &self.why {
            DeadLetter::Unfinished => format!(
                "set aside after {} attempts: none finished (the server stopped while handling it)",
                self.attempts
            ),
            DeadLetter::Failed(e) => format!("set aside after {} attempts: {e}", self.attempts),
        }
    }

    /// The PR comment. The error text must already be redacted (secrets, host paths).
    pub fn comment(&self) -> String {
        let what = format!(
            "the `{}` event (delivery `{}`)",
            self.kind, self.delivery_id
        );
        match &self.why {
            DeadLetter::Unfinished => format!(
                "❌ **Sluice could not process this event**: {what} was tried {} times, and each \
                 attempt stopped the server before it finished. It has been set aside so the \
                 server keeps serving everyone else; nothing of it was run.\n\n\
                 An operator can see it with `sluice events list --dead`.",
                self.attempts
            ),
            DeadLetter::Failed(e) => format!(
                "❌ **Sluice could not act on this pull request**: {what} failed {} times; the \
                 last error:\n\n```\n{e}\n```\n\nIt has been set aside. Push again or comment a \
                 command to try anew; an operator can see it with `sluice events list --dead`.",
                self.attempts
            ),
        }
    }

    /// The audit entry: a system action with the result `failure`.
    pub fn audit(&self) -> AuditRecord {
        let mut details = BTreeMap::new();
        details.insert("kind".to_string(), self.kind.to_string());
        details.insert("attempts".to_string(), self.attempts.to_string());
        details.insert("reason".to_string(), self.reason());
        AuditRecord {
            event_id: Some(self.delivery_id.to_string()),
            actor: AuditActor {
                login: "sluice".into(),
                id: None,
                kind: "system".into(),
            },
            action: Some(AuditAction::EventDeadLettered),
            repo: self.target.as_ref().map(|(r, _)| r.full()),
            pr: self.target.as_ref().map(|(_, p)| p.get()),
            result: Some(AuditResult::Failure),
            error_class: Some(match self.why {
                DeadLetter::Unfinished => ErrorClass::Unfinished,
                DeadLetter::Failed(_) => ErrorClass::RetriesExhausted,
            }),
            details,
            ..AuditRecord::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(why: DeadLetter) -> SetAside<'static> {
        SetAside {
            delivery_id: "d-42",
            kind: "pull_request",
            attempts: 3,
            why,
            target: Some((
                RepoName::parse("acme/infra").unwrap(),
                PrNumber::new(7).unwrap(),
            )),
        }
    }

    #[test]
    fn what_the_pr_and_the_audit_log_are_told() {
        let crashed = event(DeadLetter::Unfinished);
        insta::assert_snapshot!(crashed.comment(), @r"
        ❌ **Sluice could not process this event**: the `pull_request` event (delivery `d-42`) was tried 3 times, and each attempt stopped the server before it finished. It has been set aside so the server keeps serving everyone else; nothing of it was run.

        An operator can see it with `sluice events list --dead`.
        ");
        let a = crashed.audit();
        assert_eq!(a.action, Some(AuditAction::EventDeadLettered));
        assert_eq!(
            a.error_class.as_ref().map(ErrorClass::as_str),
            Some("unfinished")
        );
        assert_eq!((a.repo.as_deref(), a.pr), (Some("acme/infra"), Some(7)));
        assert_eq!(
            a.details.get("reason").map(String::as_str),
            Some(
                "set aside after 3 attempts: none finished (the server stopped while handling it)"
            )
        );

        let failed = event(DeadLetter::Failed(
            "fetching from https://github.com/acme/infra: timed out".into(),
        ));
        insta::assert_snapshot!(failed.comment(), @r"
        ❌ **Sluice could not act on this pull request**: the `pull_request` event (delivery `d-42`) failed 3 times; the last error:

        ```
        fetching from https://github.com/acme/infra: timed out
        ```

        It has been set aside. Push again or comment a command to try anew; an operator can see it with `sluice events list --dead`.
        ");
        assert_eq!(
            failed.audit().error_class.as_ref().map(ErrorClass::as_str),
            Some("retries_exhausted")
        );
    }
}
