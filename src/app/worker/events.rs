//! The event processor: claims stored webhook events one at a time (the claim counts the
//! attempt), hands each to `Bot::handle`, and records how it ended — done, tried again later,
//! or set aside (a dead letter) with its PR told and the audit log written.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Workers;
use crate::adapters::clock;
use crate::app::bot::EventError;
use crate::app::ports::store::{
    Claimed, Effects, OutboxItem, StoredEvent, UNFINISHED_ATTEMPT, event_retry_delay_ms,
};
use crate::core::dead_letter::{DeadLetter, SetAside};
use crate::core::event::Event;
use crate::core::reply;
use crate::core::types::{PrNumber, RepoName};

impl Workers {
    pub async fn event_loop(self: Arc<Self>, stop: CancellationToken) {
        // A few quick tries: a transient fetch or API failure usually clears in seconds; after that
        // the PR is told, rather than left waiting. Attempts are counted as they start, so an
        // event that stops the process is set aside too.
        let max_attempts = self.settings.limits.event_attempts;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let next = match self.store.claim_event(clock::now(), max_attempts).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reading pending events failed");
                    None
                }
            };
            let ev = match next {
                Some(Claimed::Attempt(ev)) => ev,
                Some(Claimed::Exhausted(ev)) => {
                    let why = match ev.last_error.as_deref() {
                        None | Some(UNFINISHED_ATTEMPT) => DeadLetter::Unfinished,
                        Some(e) => DeadLetter::Failed(e.to_string()),
                    };
                    self.dead_letter(&ev, why).await;
                    continue;
                }
                None => {
                    tokio::select! {
                        _ = self.events_ready.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.cancelled() => return,
                    }
                    continue;
                }
            };
            let span = tracing::info_span!("event", delivery = %ev.delivery_id, kind = %ev.kind, attempt = ev.attempts);
            self.attempt(ev, max_attempts).instrument(span).await;
        }
    }

    /// One attempt at one event, and what it leaves in the store.
    async fn attempt(&self, ev: StoredEvent, max_attempts: u32) {
        self.crash_for_tests(&ev.delivery_id);
        let event = match &ev.event {
            Ok(e) => e.clone(),
            Err(e) => {
                tracing::error!(error = %e, "stored event cannot be read; dropping it");
                let why = format!("the stored event cannot be read: {e}");
                let _ = self.store.finish_event(&ev.delivery_id, Some(&why)).await;
                return;
            }
        };
        let pr_of = pr_target(&event);
        match self.bot.handle(&ev.delivery_id, event).await {
            Ok(()) => {
                let _ = self.store.finish_event(&ev.delivery_id, None).await;
            }
            Err(EventError::Retry(e)) => {
                let last = ev.attempts >= max_attempts;
                tracing::warn!(error = %format!("{e:#}"), attempt = ev.attempts, last, "event failed");
                if last {
                    self.dead_letter(&ev, DeadLetter::Failed(format!("{e:#}")))
                        .await;
                } else {
                    let retry_at = clock::now().plus_ms(event_retry_delay_ms(ev.attempts));
                    let _ = self
                        .store
                        .retry_event(&ev.delivery_id, &format!("{e:#}"), retry_at)
                        .await;
                }
            }
            Err(EventError::Permanent(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "event could not be handled");
                let why = self
                    .runner
                    .redactor()
                    .redact(&self.hide_host_paths(&format!("{e:#}")))
                    .into_owned();
                let _ = self.store.finish_event(&ev.delivery_id, Some(&why)).await;
                self.tell_failure(pr_of, &e).await;
            }
        }
    }

    /// Sets an event aside for good: the PR is told (when there is one) and the audit log
    /// records it, in the same transaction.
    async fn dead_letter(&self, ev: &StoredEvent, why: DeadLetter) {
        let why = match why {
            DeadLetter::Failed(e) => DeadLetter::Failed(
                self.runner
                    .redactor()
                    .redact(&self.hide_host_paths(&e))
                    .into_owned(),
            ),
            other => other,
        };
        let target = ev.event.as_ref().ok().and_then(pr_target);
        let set_aside = SetAside {
            delivery_id: &ev.delivery_id,
            kind: &ev.kind,
            attempts: ev.attempts,
            why,
            target: target.clone(),
        };
        tracing::error!(delivery = %ev.delivery_id, kind = %ev.kind, attempts = ev.attempts, reason = %set_aside.reason(), "event set aside (dead letter)");
        let outbox = target
            .map(|(repo, pr)| OutboxItem::comment(&repo, pr, set_aside.comment()))
            .into_iter()
            .collect();
        let effects = Effects::new(outbox, vec![set_aside.audit()]);
        match self
            .store
            .dead_letter_event(&ev.delivery_id, &set_aside.reason(), effects, clock::now())
            .await
        {
            Ok(_) => self.outbox_ready.notify_one(),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recording the dead letter failed")
            }
        }
    }

    /// Test builds only: abort the process when handling the delivery the tests named (see
    /// `Settings::test_crash_on_delivery`). Release builds have no such code path at all: the
    /// end-to-end test of poison events needs an event that reliably kills the server, and every
    /// real input that did (a stack overflow in a parser) is now bounded.
    fn crash_for_tests(&self, delivery_id: &str) {
        #[cfg(debug_assertions)]
        if self.settings.test_crash_on_delivery.as_deref() == Some(delivery_id) {
            tracing::error!(
                delivery = delivery_id,
                "SLUICE_TEST_CRASH_ON_DELIVERY: aborting"
            );
            std::process::abort();
        }
        let _ = delivery_id;
    }

    /// Tells the PR that Sluice could not act on its event (e.g. the repository cannot be
    /// fetched) — never silence.
    async fn tell_failure(&self, target: Option<(RepoName, PrNumber)>, e: &anyhow::Error) {
        let Some((repo, pr)) = target else { return };
        let redactor = self.runner.redactor();
        let shown = self.hide_host_paths(&format!("{e:#}"));
        let error = redactor.redact(&shown);
        let item = OutboxItem::comment(&repo, pr, reply::comment::could_not_act(&error));
        if let Err(err) = self
            .store
            .enqueue(Effects::new(vec![item], vec![]), clock::now())
            .await
        {
            tracing::error!(error = %format!("{err:#}"), "could not record the failure comment");
        }
        self.outbox_ready.notify_one();
    }
}

/// The pull request an event is about, if any.
fn pr_target(e: &Event) -> Option<(RepoName, PrNumber)> {
    match e {
        Event::PullRequest { repo, pr, .. } => Some((repo.name.clone(), pr.number)),
        Event::Comment { repo, pr, .. } | Event::Review { repo, pr, .. } => {
            Some((repo.name.clone(), *pr))
        }
        _ => None,
    }
}
