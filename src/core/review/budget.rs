//! The GitHub write budget: one scheduler state that every write to GitHub goes through, so
//! Sluice stays within GitHub's secondary rate limits however many projects and PRs are busy.
//!
//! GitHub documents (REST API, "Rate limits for the REST API", secondary rate limits): at most
//! 100 concurrent requests; at most 900 points per minute per REST endpoint (a write costs 5,
//! so 180 writes); and "in general, no more than 80 content-generating requests per minute and
//! no more than 500 content-generating requests per hour". Its best practices add: make
//! requests serially, and wait at least one second between requests that create content. When
//! a limit is hit, the answer is 403 or 429, with `retry-after` (or wait a minute).
//!
//! GitHub does not list which requests are "content-generating", so every write counts here
//! (the safe reading). The scheduler keeps, per target object ([`Write::key`]), a FIFO of
//! pending writes: a write never overtakes an earlier one to the same object (an annotation
//! batch waits for the check run's creation), and a body update replaces a pending update of
//! the same object (only the latest body is ever sent: coalescing). Among objects, edits go
//! before new objects. Time is an argument; the scheduler never reads a clock. Pure.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

/// GitHub's documented secondary limit for content-generating requests per minute.
pub const GITHUB_CONTENT_PER_MINUTE: u32 = 80;
/// ... and per hour.
pub const GITHUB_CONTENT_PER_HOUR: u32 = 500;
/// GitHub's documented limit for concurrent requests.
pub const GITHUB_MAX_CONCURRENT: u32 = 100;

/// What the scheduler allows. The defaults keep a tenth of GitHub's limits in reserve for
/// other writers of the same installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    /// Writes per rolling minute.
    pub per_minute: u32,
    /// Writes per rolling hour.
    pub per_hour: u32,
    /// Writes in flight at once.
    pub max_in_flight: u32,
    /// Least time between the starts of two writes.
    pub min_gap: TimeDelta,
    /// Pause after a secondary-limit answer without `retry-after`.
    pub default_backoff: TimeDelta,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            per_minute: 72,
            per_hour: 450,
            max_in_flight: 1,
            min_gap: TimeDelta::seconds(1),
            default_backoff: TimeDelta::seconds(60),
        }
    }
}

/// The kinds of write Sluice makes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// `POST /repos/{o}/{r}/issues/{n}/comments`
    CreateIssueComment,
    /// `PATCH /repos/{o}/{r}/issues/comments/{id}`
    EditIssueComment,
    /// `POST /repos/{o}/{r}/pulls/{n}/reviews`
    CreateReview,
    /// `PUT /repos/{o}/{r}/pulls/{n}/reviews/{id}`
    UpdateReview,
    /// `POST /repos/{o}/{r}/pulls/{n}/comments`
    CreateReviewComment,
    /// `PATCH /repos/{o}/{r}/pulls/comments/{id}`
    EditReviewComment,
    /// `POST /repos/{o}/{r}/check-runs`
    CreateCheckRun,
    /// `PATCH /repos/{o}/{r}/check-runs/{id}` replacing status/output.
    UpdateCheckRun,
    /// `PATCH /repos/{o}/{r}/check-runs/{id}` appending annotations: never coalesced.
    AppendAnnotations,
    /// `POST /repos/{o}/{r}/statuses/{sha}`
    CreateStatus,
}

impl WriteKind {
    /// Whether the write makes a new GitHub object (a comment, review, check run, status).
    pub fn creates_object(self) -> bool {
        matches!(
            self,
            WriteKind::CreateIssueComment
                | WriteKind::CreateReview
                | WriteKind::CreateReviewComment
                | WriteKind::CreateCheckRun
                | WriteKind::CreateStatus
        )
    }

    /// Which writes go first when several may: 0 keeps live objects current (edits of the
    /// summary, check run updates), 1 creates new objects, 2 retires old ones (superseding a
    /// previous review and its comments), which nobody waits for.
    pub fn priority(self) -> u8 {
        match self {
            WriteKind::EditIssueComment
            | WriteKind::UpdateCheckRun
            | WriteKind::AppendAnnotations => 0,
            WriteKind::CreateIssueComment
            | WriteKind::CreateReview
            | WriteKind::CreateReviewComment
            | WriteKind::CreateCheckRun
            | WriteKind::CreateStatus => 1,
            WriteKind::UpdateReview | WriteKind::EditReviewComment => 2,
        }
    }

    /// The kinds of pending write to the same object that a new write of this kind makes
    /// pointless (the store drops them when it queues this one): a later body of the same kind
    /// (coalescing), and for a new check run also the annotation batches of the one it replaces
    /// (they would land on the new one).
    pub fn replaces(self) -> &'static [WriteKind] {
        use WriteKind::*;
        match self {
            CreateIssueComment => &[CreateIssueComment],
            EditIssueComment => &[EditIssueComment],
            CreateReview => &[CreateReview],
            UpdateReview => &[UpdateReview],
            CreateReviewComment => &[CreateReviewComment],
            EditReviewComment => &[EditReviewComment],
            CreateCheckRun => &[CreateCheckRun, AppendAnnotations],
            UpdateCheckRun => &[UpdateCheckRun],
            AppendAnnotations => &[],
            CreateStatus => &[CreateStatus],
        }
    }

    /// Its name in stored writes (`create_check_run`).
    pub fn as_str(self) -> &'static str {
        use WriteKind::*;
        match self {
            CreateIssueComment => "create_issue_comment",
            EditIssueComment => "edit_issue_comment",
            CreateReview => "create_review",
            UpdateReview => "update_review",
            CreateReviewComment => "create_review_comment",
            EditReviewComment => "edit_review_comment",
            CreateCheckRun => "create_check_run",
            UpdateCheckRun => "update_check_run",
            AppendAnnotations => "append_annotations",
            CreateStatus => "create_status",
        }
    }

    /// Whether a later write of the same kind to the same object makes this one pointless.
    /// Everything but appended annotations: their batches add up.
    pub fn coalesces(self) -> bool {
        self != WriteKind::AppendAnnotations
    }
}

/// One write: `key` names the target object (`pr/12/sticky`, `check/<sha>/sluice:plan:prod`),
/// `payload` is whatever the sender needs (the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<P> {
    pub key: String,
    pub kind: WriteKind,
    pub payload: P,
}

/// Names a write handed out by [`WriteBudget::next`], for [`WriteBudget::finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// What [`WriteBudget::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// Replaced the payload of a pending write to the same object.
    Coalesced,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<P> {
    /// Send this write, then report with [`WriteBudget::finished`].
    Send { ticket: Ticket, write: Write<P> },
    /// Nothing may be sent before this time.
    WaitUntil(DateTime<Utc>),
    /// Writes are pending but all wait for one in flight.
    Busy,
    /// Nothing to send.
    Idle,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// GitHub answered with a secondary rate limit (403/429); `retry_after` from its header.
    /// The write is queued again and everything pauses.
    RateLimited {
        retry_after: Option<TimeDelta>,
    },
    /// Failed for another reason; dropped (the caller's retry policy decides).
    Failed,
}

/// The budget, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetMetrics {
    pub queued: usize,
    pub in_flight: usize,
    pub sent_last_minute: u32,
    pub sent_last_hour: u32,
    pub remaining_minute: u32,
    pub remaining_hour: u32,
    /// Totals since the scheduler started.
    pub created: u64,
    pub updated: u64,
    pub coalesced: u64,
    pub rate_limited: u64,
    pub failed: u64,
    pub paused_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Pending<P> {
    seq: u64,
    write: Write<P>,
}

/// The scheduler state. `P` is the request the sender needs.
///
/// The app keeps one per GitHub installation (the limits are per installation), in memory:
/// the writes themselves are durable in the outbox, so a restart loses only the pacing history.
#[derive(Debug, Clone)]
pub struct WriteBudget<P> {
    limits: BudgetLimits,
    next_seq: u64,
    /// Pending writes by key, each key's in order.
    pending: BTreeMap<String, VecDeque<Pending<P>>>,
    in_flight: BTreeMap<Ticket, Pending<P>>,
    /// Start times of the writes of the last hour, oldest first.
    sent: VecDeque<DateTime<Utc>>,
    paused_until: Option<DateTime<Utc>>,
    metrics: BudgetMetrics,
}

/// `P: Clone`: a write handed out stays in flight until it is reported, so one that hit the
/// limit can be queued again.
impl<P: Clone> WriteBudget<P> {
    pub fn new(limits: BudgetLimits) -> Self {
        WriteBudget {
            limits,
            next_seq: 0,
            pending: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            sent: VecDeque::new(),
            paused_until: None,
            metrics: BudgetMetrics::default(),
        }
    }

    /// Queues `write`, or folds it into a pending write to the same object.
    pub fn enqueue(&mut self, write: Write<P>) -> Enqueued {
        let queue = self.pending.entry(write.key.clone()).or_default();
        if let Some(last) = queue.back_mut() {
            if last.write.kind == write.kind && write.kind.coalesces() {
                last.write.payload = write.payload;
                self.metrics.coalesced += 1;
                return Enqueued::Coalesced;
            }
        }
        queue.push_back(Pending {
            seq: self.next_seq,
            write,
        });
        self.next_seq += 1;
        Enqueued::Queued
    }

    /// The next write to send at `now`, or why not.
    pub fn next(&mut self, now: DateTime<Utc>) -> Next<P> {
        self.forget_before(now);
        if self.pending.is_empty() {
            return Next::Idle;
        }
        if let Some(until) = self.paused_until {
            if until > now {
                return Next::WaitUntil(until);
            }
            self.paused_until = None;
        }
        if self.in_flight.len() >= self.limits.max_in_flight.max(1) as usize {
            return Next::Busy;
        }
        let earliest = self.earliest_start();
        if earliest > now {
            return Next::WaitUntil(earliest);
        }
        // The head of each key's queue whose object has nothing in flight; by priority, then
        // in the order they were queued.
        let busy: Vec<&str> = self
            .in_flight
            .values()
            .map(|p| p.write.key.as_str())
            .collect();
        let pick = self
            .pending
            .iter()
            .filter(|(key, _)| !busy.contains(&key.as_str()))
            .filter_map(|(key, q)| q.front().map(|p| (key, p)))
            .min_by_key(|(_, p)| (p.write.kind.priority(), p.seq))
            .map(|(key, _)| key.clone());
        let Some(key) = pick else {
            return Next::Busy;
        };
        let queue = self.pending.get_mut(&key).expect("picked from the map");
        let p = queue.pop_front().expect("picked a non-empty queue");
        if queue.is_empty() {
            self.pending.remove(&key);
        }
        let ticket = Ticket(p.seq);
        self.sent.push_back(now);
        let write = p.write.clone();
        self.in_flight.insert(ticket, p);
        Next::Send { ticket, write }
    }

    /// Reports how a write handed out by [`WriteBudget::next`] ended.
    pub fn finished(&mut self, ticket: Ticket, outcome: Outcome, now: DateTime<Utc>) {
        let Some(p) = self.in_flight.remove(&ticket) else {
            return;
        };
        match outcome {
            Outcome::Done => {
                if p.write.kind.creates_object() {
                    self.metrics.created += 1;
                } else {
                    self.metrics.updated += 1;
                }
            }
            Outcome::Failed => self.metrics.failed += 1,
            Outcome::RateLimited { retry_after } => {
                self.metrics.rate_limited += 1;
                let until = now + retry_after.unwrap_or(self.limits.default_backoff);
                self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
                // Back at the front of its object's queue, unless a newer body of the same
                // kind is already waiting there.
                let queue = self.pending.entry(p.write.key.clone()).or_default();
                let superseded = p.write.kind.coalesces()
                    && queue.front().is_some_and(|q| q.write.kind == p.write.kind);
                if superseded {
                    self.metrics.coalesced += 1;
                } else {
                    queue.push_front(p);
                }
            }
        }
    }

    /// The budget at `now`.
    pub fn metrics(&mut self, now: DateTime<Utc>) -> BudgetMetrics {
        self.forget_before(now);
        let minute = self.in_last(now, TimeDelta::minutes(1));
        let hour = self.sent.len() as u32;
        BudgetMetrics {
            queued: self.pending.values().map(VecDeque::len).sum(),
            in_flight: self.in_flight.len(),
            sent_last_minute: minute,
            sent_last_hour: hour,
            remaining_minute: self.limits.per_minute.saturating_sub(minute),
            remaining_hour: self.limits.per_hour.saturating_sub(hour),
            paused_until: self.paused_until.filter(|u| *u > now),
            ..self.metrics.clone()
        }
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let hour_ago = now - TimeDelta::hours(1);
        while self.sent.front().is_some_and(|t| *t <= hour_ago) {
            self.sent.pop_front();
        }
    }

    fn in_last(&self, now: DateTime<Utc>, window: TimeDelta) -> u32 {
        let from = now - window;
        self.sent.iter().rev().take_while(|t| **t > from).count() as u32
    }

    /// When the windows and the gap allow the next start.
    fn earliest_start(&self) -> DateTime<Utc> {
        let mut at = DateTime::<Utc>::MIN_UTC;
        if let Some(last) = self.sent.back() {
            at = at.max(*last + self.limits.min_gap);
        }
        // A window of `len` allows `limit` starts: the next one waits until the start
        // `limit` places back leaves the window.
        for (limit, len) in [
            (self.limits.per_minute, TimeDelta::minutes(1)),
            (self.limits.per_hour, TimeDelta::hours(1)),
        ] {
            let limit = limit.max(1) as usize;
            if self.sent.len() >= limit {
                let oldest_counted = self.sent[self.sent.len() - limit];
                at = at.max(oldest_counted + len);
            }
        }
        at
    }
}

#[cfg(test)]
mod tests;
