//! The audit log's entries, their canonical encoding and the hash chain (PRODUCT.md §11).
//!
//! `hash(n) = SHA-256( hex(hash(n-1)) || canonical(entry n) )`, where `hex` is 64 lowercase
//! hexadecimal ASCII characters, the genesis predecessor is 64 `0` characters, and `canonical`
//! is the compact JSON object of the entry's fields in the order declared in [`AuditEntry`]
//! (absent values as `null`, integers only, times as RFC 3339 UTC with milliseconds and `Z`,
//! maps with sorted keys, strings escaped as `serde_json` does). ARCHITECTURE.md spells this out
//! for auditors who recompute the chain with other tools.
//!
//! Pure: appending (and the database's refusal of updates and deletes) is the store's job.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::plan::Redactor;
use crate::core::event::Actor;
use crate::core::lock::LockKey;
use crate::core::plan::FailedStage;
use crate::core::types::{
    CommitSha, PrNumber, ProjectDir, ProjectName, RepoName, UnixMs, Workspace,
};

/// The predecessor hash of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Plan,
    Apply,
    ApplyRefused,
    PolicyCheck,
    PolicyOverride,
    LockAcquired,
    LockReleased,
    LockConflict,
    Unlock,
    AdminLockRelease,
    WebhookRejected,
    ConfigRejected,
    CommandRejected,
    PullRequestClosed,
    /// A webhook event set aside after its attempts were used up.
    EventDeadLettered,
    /// A plan not run because it was over a limit (e.g. too many projects at once).
    PlanRefused,
    /// A drift check ran (refresh-only plan + plan of the default branch).
    DriftCheck,
    /// Drift lifecycle transitions (`core::drift::Transition::audit_action`).
    DriftOpened,
    DriftChanged,
    DriftReopened,
    DriftAcknowledged,
    DriftAccepted,
    DriftAcceptanceExpired,
    DriftResolved,
    DriftCheckFailed,
    DriftCheckRecovered,
    /// `sluice drift remediate`: a pull request re-applying Git's state was asked for.
    DriftRemediate,
    /// The required checks of a GitHub merge queue commit were set (`merge_group`).
    MergeQueueCheck,
    /// Sluice merged a pull request after applying all of it (`automerge`), or GitHub refused.
    Automerge,
    /// `sluice rollback`: a revert pull request of a merged pull request was asked for; the
    /// result says whether it was opened (or already open), refused, or failed (a conflict).
    Rollback,
    /// An engine version downloaded from a release mirror (`engine_mirrors`): installed after
    /// its signature and checksum verified, or refused. Recorded on the job that asked for it.
    EngineDownload,
    /// `import` / `state rm` ran (detail `command`, the addresses, the import ID); the result
    /// says whether the engine succeeded.
    StateCommand,
    /// `import` / `state rm` was not run: another PR's lock, an unapplied plan, the apply gate,
    /// or its arguments.
    StateCommandRefused,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Plan => "plan",
            AuditAction::Apply => "apply",
            AuditAction::ApplyRefused => "apply_refused",
            AuditAction::PolicyCheck => "policy_check",
            AuditAction::PolicyOverride => "policy_override",
            AuditAction::LockAcquired => "lock_acquired",
            AuditAction::LockReleased => "lock_released",
            AuditAction::LockConflict => "lock_conflict",
            AuditAction::Unlock => "unlock",
            AuditAction::AdminLockRelease => "admin_lock_release",
            AuditAction::WebhookRejected => "webhook_rejected",
            AuditAction::ConfigRejected => "config_rejected",
            AuditAction::CommandRejected => "command_rejected",
            AuditAction::PullRequestClosed => "pull_request_closed",
            AuditAction::EventDeadLettered => "event_dead_lettered",
            AuditAction::PlanRefused => "plan_refused",
            AuditAction::DriftCheck => "drift_check",
            AuditAction::DriftOpened => "drift_opened",
            AuditAction::DriftChanged => "drift_changed",
            AuditAction::DriftReopened => "drift_reopened",
            AuditAction::DriftAcknowledged => "drift_acknowledged",
            AuditAction::DriftAccepted => "drift_accepted",
            AuditAction::DriftAcceptanceExpired => "drift_acceptance_expired",
            AuditAction::DriftResolved => "drift_resolved",
            AuditAction::DriftCheckFailed => "drift_check_failed",
            AuditAction::DriftCheckRecovered => "drift_check_recovered",
            AuditAction::DriftRemediate => "drift_remediate",
            AuditAction::MergeQueueCheck => "merge_queue_check",
            AuditAction::Automerge => "automerge",
            AuditAction::Rollback => "rollback",
            AuditAction::EngineDownload => "engine_download",
            AuditAction::StateCommand => "state_command",
            AuditAction::StateCommandRefused => "state_command_refused",
        }
    }
}

impl AuditAction {
    /// The action of a drift lifecycle transition (its
    /// [`audit_action`](crate::core::drift::Transition::audit_action)).
    pub fn of_transition(t: &crate::core::drift::Transition) -> AuditAction {
        use crate::core::drift::TransitionKind as K;
        match &t.kind {
            K::Opened { .. } => AuditAction::DriftOpened,
            K::Changed { .. } => AuditAction::DriftChanged,
            K::Reopened(_) => AuditAction::DriftReopened,
            K::Acknowledged => AuditAction::DriftAcknowledged,
            K::Accepted { .. } => AuditAction::DriftAccepted,
            K::AcceptanceExpired { .. } => AuditAction::DriftAcceptanceExpired,
            K::Resolved(_) => AuditAction::DriftResolved,
            K::CheckFailed { .. } => AuditAction::DriftCheckFailed,
            K::CheckRecovered { .. } => AuditAction::DriftCheckRecovered,
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    Success,
    Failure,
    Refused,
    Interrupted,
    Cancelled,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Failure => "failure",
            AuditResult::Refused => "refused",
            AuditResult::Interrupted => "interrupted",
            AuditResult::Cancelled => "cancelled",
        }
    }
}

/// Why an action failed or was refused, in one word: the `error_class` of an audit entry, for
/// auditors to filter on. Stored as its snake_case name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Over a configured limit (`limits.*`).
    Limit,
    /// A fault in Sluice itself (a panic, an unreadable job).
    Internal,
    /// The step of a project job that failed (`core::plan::FailedStage`).
    Stage(FailedStage),
    /// The plan to apply no longer exists.
    PlanMissing,
    /// The plan to apply is not the current one (discarded, applied, another commit).
    StalePlan,
    /// The pull request no longer holds the project's lock.
    LockLost,
    /// GitHub could not be asked.
    GitHub,
    /// The pull request was closed.
    PrClosed,
    /// An event whose attempts never finished (each stopped the process).
    Unfinished,
    /// An event whose attempts all failed.
    RetriesExhausted,
    /// A downloaded engine release that does not verify (signature, checksum, version).
    EngineRelease,
    /// An engine download that did not complete (the mirror, the network, the disk).
    EngineDownload,
    /// A class written by another version, kept verbatim so its entry still verifies.
    Other(String),
}

impl ErrorClass {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorClass::Limit => "limit",
            ErrorClass::Internal => "internal",
            ErrorClass::Stage(s) => s.as_str(),
            ErrorClass::PlanMissing => "plan_missing",
            ErrorClass::StalePlan => "stale_plan",
            ErrorClass::LockLost => "lock_lost",
            ErrorClass::GitHub => "github",
            ErrorClass::PrClosed => "pr_closed",
            ErrorClass::Unfinished => "unfinished",
            ErrorClass::RetriesExhausted => "retries_exhausted",
            ErrorClass::EngineRelease => "engine_release",
            ErrorClass::EngineDownload => "engine_download",
            ErrorClass::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> ErrorClass {
        const NAMED: [ErrorClass; 11] = [
            ErrorClass::Limit,
            ErrorClass::Internal,
            ErrorClass::PlanMissing,
            ErrorClass::StalePlan,
            ErrorClass::LockLost,
            ErrorClass::GitHub,
            ErrorClass::PrClosed,
            ErrorClass::Unfinished,
            ErrorClass::RetriesExhausted,
            ErrorClass::EngineRelease,
            ErrorClass::EngineDownload,
        ];
        if let Some(c) = NAMED.into_iter().find(|c| c.as_str() == s) {
            return c;
        }
        match FailedStage::ALL.into_iter().find(|f| f.as_str() == s) {
            Some(stage) => ErrorClass::Stage(stage),
            None => ErrorClass::Other(s.to_string()),
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorClass {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorClass::parse(&String::deserialize(d)?))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    pub login: String,
    pub id: Option<u64>,
    /// `human`, `bot`, `admin` or `system`.
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    pub replace: u64,
    pub import: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditApproval {
    pub login: String,
    pub user_id: u64,
    pub review_id: u64,
    pub submitted_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPolicyDecision {
    pub policy: String,
    /// `pass`, `warn`, `fail`, `overridden`.
    pub outcome: String,
    pub reasons: Vec<String>,
    /// Git blob SHA of the policy file the decision came from.
    pub source_blob: Option<String>,
}

/// What a flow records; the store adds sequence, time and hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub event_id: Option<String>,
    pub actor: AuditActor,
    pub action: Option<AuditAction>,
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub base_sha: Option<String>,
    pub head_sha: Option<String>,
    pub project: Option<String>,
    pub dir: Option<String>,
    pub workspace: Option<String>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub result: Option<AuditResult>,
    pub error_class: Option<ErrorClass>,
    pub duration_ms: Option<u64>,
    pub plan_sha256: Option<String>,
    /// For an apply: the sequence number of the plan entry whose plan was applied.
    pub plan_entry_seq: Option<u64>,
    pub changes: Option<ChangeCounts>,
    pub destroyed: Vec<String>,
    pub replaced: Vec<String>,
    pub policy: Vec<AuditPolicyDecision>,
    pub approvals: Vec<AuditApproval>,
    pub job_id: Option<i64>,
    pub log_url: Option<String>,
    /// Free-form facts (e.g. lock keys, reasons for a refusal), sorted by key.
    pub details: BTreeMap<String, String>,
}

impl AuditRecord {
    /// Replaces every known secret (in any form `redactor` matches) in every text of the
    /// record. The store calls it before sealing, so the hash covers the redacted record and
    /// the log never holds a secret, whatever reason or error text carried it there.
    pub fn redact(&mut self, redactor: &Redactor) {
        if redactor.is_empty() {
            return;
        }
        let r = |s: &mut String| {
            if let std::borrow::Cow::Owned(clean) = redactor.redact(s) {
                *s = clean;
            }
        };
        let ro = |s: &mut Option<String>| {
            if let Some(s) = s {
                r(s);
            }
        };
        let AuditRecord {
            event_id,
            actor,
            action: _,
            repo,
            pr: _,
            base_sha,
            head_sha,
            project,
            dir,
            workspace,
            engine,
            engine_version,
            result: _,
            error_class: _,
            duration_ms: _,
            plan_sha256,
            plan_entry_seq: _,
            changes: _,
            destroyed,
            replaced,
            policy,
            approvals,
            job_id: _,
            log_url,
            details,
        } = self;
        for s in [
            event_id,
            repo,
            base_sha,
            head_sha,
            project,
            dir,
            workspace,
            engine,
            engine_version,
            plan_sha256,
            log_url,
        ] {
            ro(s);
        }
        r(&mut actor.login);
        r(&mut actor.kind);
        destroyed.iter_mut().chain(replaced.iter_mut()).for_each(r);
        for p in policy {
            r(&mut p.policy);
            r(&mut p.outcome);
            p.reasons.iter_mut().for_each(r);
            ro(&mut p.source_blob);
        }
        for a in approvals {
            r(&mut a.login);
            ro(&mut a.submitted_at);
        }
        // Keys are names Sluice chose, but a value may have been put in a key too.
        *details = std::mem::take(details)
            .into_iter()
            .map(|(mut k, mut v)| {
                r(&mut k);
                r(&mut v);
                (k, v)
            })
            .collect();
    }
}

impl AuditActor {
    /// A GitHub user or bot, as the event names them.
    pub fn of(actor: &Actor) -> AuditActor {
        AuditActor {
            login: actor.login.clone(),
            id: Some(actor.id),
            kind: actor.kind.as_str().to_string(),
        }
    }

    /// Sluice itself (`login`: the name it acts under).
    pub fn system(login: &str) -> AuditActor {
        AuditActor {
            login: login.to_string(),
            id: None,
            kind: "system".into(),
        }
    }

    /// An operator using Sluice's CLI.
    pub fn admin(login: &str) -> AuditActor {
        AuditActor {
            login: login.to_string(),
            id: None,
            kind: "admin".into(),
        }
    }
}

/// Builders: a record is made with [`AuditRecord::new`] and the few facts that differ from one
/// call site to the next are added by name, so no flow spells out the other two dozen fields.
impl AuditRecord {
    /// `actor` did `action`, with `result`.
    pub fn new(action: AuditAction, actor: AuditActor, result: AuditResult) -> AuditRecord {
        AuditRecord {
            actor,
            action: Some(action),
            result: Some(result),
            ..AuditRecord::default()
        }
    }

    /// The webhook delivery (or CLI invocation) that caused it.
    pub fn event(mut self, id: impl Into<String>) -> AuditRecord {
        self.event_id = Some(id.into());
        self
    }

    pub fn repo(mut self, repo: &RepoName) -> AuditRecord {
        self.repo = Some(repo.full());
        self
    }

    pub fn pr(mut self, repo: &RepoName, pr: PrNumber) -> AuditRecord {
        self.pr = Some(pr.get());
        self.repo(repo)
    }

    pub fn head(mut self, sha: &CommitSha) -> AuditRecord {
        self.head_sha = Some(sha.to_string());
        self
    }

    pub fn base(mut self, sha: &CommitSha) -> AuditRecord {
        self.base_sha = Some(sha.to_string());
        self
    }

    /// The project's name, dir and workspace.
    pub fn project(mut self, name: &ProjectName, dir: &ProjectDir, ws: &Workspace) -> AuditRecord {
        self.project = Some(name.to_string());
        self.dir = Some(dir.to_string());
        self.workspace = Some(ws.to_string());
        self
    }

    /// A dir and workspace without a project name (a lock).
    pub fn lock(mut self, key: &LockKey) -> AuditRecord {
        self.dir = Some(key.dir.to_string());
        self.workspace = Some(key.workspace.to_string());
        self
    }

    pub fn result(mut self, result: AuditResult) -> AuditRecord {
        self.result = Some(result);
        self
    }

    pub fn error(mut self, class: ErrorClass) -> AuditRecord {
        self.error_class = Some(class);
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<String>) -> AuditRecord {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// `values` as numbered details: `<prefix>_000`, `<prefix>_001`, … (ordered by key).
    pub fn numbered<T: fmt::Display>(
        mut self,
        prefix: &str,
        values: impl IntoIterator<Item = T>,
    ) -> AuditRecord {
        for (i, v) in values.into_iter().enumerate() {
            self.details
                .insert(format!("{prefix}_{i:03}"), v.to_string());
        }
        self
    }

    pub fn policy(mut self, decisions: Vec<AuditPolicyDecision>) -> AuditRecord {
        self.policy = decisions;
        self
    }
}

/// A stored entry: the record plus its place in the chain. Field order is the canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T15:03:00.123Z`.
    pub time: String,
    #[serde(flatten)]
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// The canonical bytes of an entry (everything but `prev_hash` and `hash`).
pub fn canonical(seq: u64, time: &str, record: &AuditRecord) -> Vec<u8> {
    #[derive(Serialize)]
    struct Canon<'a> {
        seq: u64,
        time: &'a str,
        #[serde(flatten)]
        record: &'a AuditRecord,
    }
    serde_json::to_vec(&Canon { seq, time, record }).expect("audit records always serialize")
}

/// The chain hash of an entry given its predecessor's hash.
pub fn chain_hash(prev_hash: &str, seq: u64, time: &str, record: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(seq, time, record));
    hex::encode(h.finalize())
}

/// Builds the stored entry that follows `prev` (or genesis).
pub fn seal(prev: Option<(u64, &str)>, time: String, record: AuditRecord) -> AuditEntry {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (seq + 1, hash.to_string()),
        None => (1, GENESIS_HASH.to_string()),
    };
    let hash = chain_hash(&prev_hash, seq, &time, &record);
    AuditEntry {
        seq,
        time,
        record,
        prev_hash,
        hash,
    }
}

/// A bound on the audit log's time given as a date (`2026-01-31`, midnight UTC) or an RFC 3339
/// time (any offset), in unix milliseconds; the error names the value and both forms.
pub fn parse_time_bound(s: &str) -> Result<UnixMs, String> {
    let not_a_time =
        || format!("`{s}` is not a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)");
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0).ok_or_else(not_a_time)?;
        return Ok(UnixMs::new(midnight.and_utc().timestamp_millis()));
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| not_a_time())?;
    Ok(UnixMs::new(t.timestamp_millis()))
}

/// Formats unix milliseconds as the canonical time.
pub fn format_time(at: UnixMs) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at.get())
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The values a store keeps in columns of their own beside an entry, so queries, exports and
/// pages can filter without reading every entry (`audit export --since/--until/--repo`,
/// `audit show --commit`, `GET /api/audit?commit=…`), plus the stored copies of the chain fields.
/// They are derived from the entry when it is written ([`StoredColumns::of`]) and checked
/// against the entry when it is read ([`StoredColumns::check`]): an edited column would
/// otherwise hide an entry from a filtered query (or show it under another commit, time or
/// repository) while the hash chain, computed from the entry, still verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredColumns {
    pub seq: u64,
    /// The canonical time ([`format_time`]); range filters compare it as text.
    pub time: String,
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub head_sha: Option<String>,
    /// [`AuditAction::as_str`], or `unknown` for an entry without one.
    pub action: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredColumns {
    /// The columns as a store writes them for `e`.
    pub fn of(e: &AuditEntry) -> StoredColumns {
        StoredColumns {
            seq: e.seq,
            time: e.time.clone(),
            repo: e.record.repo.clone(),
            pr: e.record.pr,
            head_sha: e.record.head_sha.clone(),
            action: e
                .record
                .action
                .map(|a| a.as_str())
                .unwrap_or("unknown")
                .to_string(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }

    /// Whether these stored columns are the ones `e` (as stored in the same row) implies; the
    /// first that differs, in declaration order, otherwise.
    pub fn check(&self, e: &AuditEntry) -> Result<(), ColumnEdited> {
        let want = StoredColumns::of(e);
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
        let show_n = |v: Option<u64>| v.map_or_else(|| "NULL".into(), |n| n.to_string());
        let differs: [(&'static str, bool, String, String); 8] = [
            (
                "seq",
                self.seq != want.seq,
                self.seq.to_string(),
                want.seq.to_string(),
            ),
            (
                "time",
                self.time != want.time,
                self.time.clone(),
                want.time.clone(),
            ),
            (
                "repo",
                self.repo != want.repo,
                show(&self.repo),
                show(&want.repo),
            ),
            ("pr", self.pr != want.pr, show_n(self.pr), show_n(want.pr)),
            (
                "head_sha",
                self.head_sha != want.head_sha,
                show(&self.head_sha),
                show(&want.head_sha),
            ),
            (
                "action",
                self.action != want.action,
                self.action.clone(),
                want.action.clone(),
            ),
            (
                "prev_hash",
                self.prev_hash != want.prev_hash,
                self.prev_hash.clone(),
                want.prev_hash.clone(),
            ),
            (
                "hash",
                self.hash != want.hash,
                self.hash.clone(),
                want.hash.clone(),
            ),
        ];
        match differs.into_iter().find(|(_, d, _, _)| *d) {
            None => Ok(()),
            Some((column, _, stored, entry)) => Err(ColumnEdited {
                seq: self.seq,
                column,
                stored,
                entry,
            }),
        }
    }
}

/// A stored column that disagrees with the entry in the same row: the log was edited outside
/// Sluice. Readers fail with it rather than answer a filtered query from edited columns;
/// `sluice audit verify` reports it like a broken chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "entry {seq} was edited: its stored `{column}` is {stored:?} but the entry says {entry:?} \
     (queries that filter on it would hide or misplace the entry)"
)]
pub struct ColumnEdited {
    /// The row's sequence number (its `seq` column).
    pub seq: u64,
    /// Which column: `seq`, `time`, `repo`, `pr`, `head_sha`, `action`, `prev_hash` or `hash`.
    pub column: &'static str,
    pub stored: String,
    pub entry: String,
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The sequence jumps: entries are missing (deleted) or out of order.
    Sequence { expected: u64, found: u64 },
    /// The entry's `prev_hash` is not its predecessor's hash (an entry before it was removed,
    /// replaced or reordered).
    Link { seq: u64 },
    /// The entry's content does not match its hash (it was modified).
    Content { seq: u64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::Sequence { expected, found } if found > expected => write!(
                f,
                "entry {expected} is missing: the next entry is {found} (entries deleted)"
            ),
            ChainBreak::Sequence { expected, found } => write!(
                f,
                "entry {found} appears where {expected} was expected (entries reordered or duplicated)"
            ),
            ChainBreak::Link { seq } => write!(
                f,
                "entry {seq} does not follow its predecessor: its prev_hash differs (an earlier entry was removed, replaced or reordered)"
            ),
            ChainBreak::Content { seq } => write!(
                f,
                "entry {seq} was modified: its content does not match its hash"
            ),
        }
    }
}

/// Checks entries one at a time, in storage order, in constant memory.
#[derive(Debug, Clone)]
pub struct Verifier {
    expected_seq: u64,
    prev_hash: String,
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            checked: 0,
        }
    }
}

impl Verifier {
    pub fn check(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        if e.seq != self.expected_seq {
            return Err(ChainBreak::Sequence {
                expected: self.expected_seq,
                found: e.seq,
            });
        }
        if chain_hash(&e.prev_hash, e.seq, &e.time, &e.record) != e.hash {
            return Err(ChainBreak::Content { seq: e.seq });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainBreak::Link { seq: e.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = e.hash.clone();
        self.checked += 1;
        Ok(())
    }

    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds() {
        let show = |s: &str| match parse_time_bound(s) {
            Ok(t) => format_time(t),
            Err(e) => e,
        };
        let cases = [
            "2026-01-31",
            "2026-01-31T12:00:00Z",
            "2026-01-31T12:00:00.5+02:00",
            "2026-02-30",
            "yesterday",
        ];
        let shown: Vec<String> = cases
            .iter()
            .map(|c| format!("{c} => {}", show(c)))
            .collect();
        insta::assert_snapshot!(shown.join("\n"), @r"
        2026-01-31 => 2026-01-31T00:00:00.000Z
        2026-01-31T12:00:00Z => 2026-01-31T12:00:00.000Z
        2026-01-31T12:00:00.5+02:00 => 2026-01-31T10:00:00.500Z
        2026-02-30 => `2026-02-30` is not a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)
        yesterday => `yesterday` is not a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)
        ");
    }

    fn record(action: AuditAction) -> AuditRecord {
        AuditRecord {
            actor: AuditActor {
                login: "alice".into(),
                id: Some(1),
                kind: "human".into(),
            },
            action: Some(action),
            repo: Some("acme/infra".into()),
            pr: Some(7),
            ..AuditRecord::default()
        }
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            let e = seal(
                prev,
                format_time(UnixMs::new(1_700_000_000_000 + i as i64)),
                record(AuditAction::Plan),
            );
            out.push(e);
        }
        out
    }

    fn verify(entries: &[AuditEntry]) -> Result<u64, ChainBreak> {
        let mut v = Verifier::default();
        for e in entries {
            v.check(e)?;
        }
        Ok(v.checked)
    }

    #[test]
    fn canonical_encoding_is_stable() {
        let bytes = canonical(1, "2026-11-22T15:03:00.123Z", &record(AuditAction::Apply));
        insta::assert_snapshot!(String::from_utf8(bytes).unwrap(), @r#"{"seq":1,"time":"2026-11-22T15:03:00.123Z","event_id":null,"actor":{"login":"alice","id":1,"kind":"human"},"action":"apply","repo":"acme/infra","pr":7,"base_sha":null,"head_sha":null,"project":null,"dir":null,"workspace":null,"engine":null,"engine_version":null,"result":null,"error_class":null,"duration_ms":null,"plan_sha256":null,"plan_entry_seq":null,"changes":null,"destroyed":[],"replaced":[],"policy":[],"approvals":[],"job_id":null,"log_url":null,"details":{}}"#);
        assert_eq!(format_time(UnixMs::new(0)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn genesis_and_chain() {
        let c = chain(3);
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
        assert_eq!(c[1].prev_hash, c[0].hash);
        assert_eq!(verify(&c), Ok(3));
    }

    #[test]
    fn stored_columns_are_checked_against_their_entry() {
        let e = &chain(2)[1];
        let good = StoredColumns::of(e);
        assert_eq!(good.check(e), Ok(()));
        assert_eq!(good.action, "plan");
        type Edit = Box<dyn Fn(&mut StoredColumns)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("seq", Box::new(|c| c.seq = 9)),
            (
                "time",
                Box::new(|c| c.time = "2020-01-01T00:00:00.000Z".into()),
            ),
            ("repo", Box::new(|c| c.repo = Some("acme/other".into()))),
            ("repo", Box::new(|c| c.repo = None)),
            ("pr", Box::new(|c| c.pr = Some(8))),
            ("head_sha", Box::new(|c| c.head_sha = Some("b".repeat(40)))),
            ("action", Box::new(|c| c.action = "apply".into())),
            ("prev_hash", Box::new(|c| c.prev_hash = "f".repeat(64))),
            ("hash", Box::new(|c| c.hash = "f".repeat(64))),
        ];
        for (column, edit) in edits {
            let mut c = good.clone();
            edit(&mut c);
            let err = c.check(e).expect_err(column);
            assert_eq!(err.column, column, "{err}");
            assert!(err.to_string().starts_with("entry "), "{err}");
        }
        let mut none = e.clone();
        none.record.action = None;
        assert_eq!(StoredColumns::of(&none).action, "unknown");
        insta::assert_snapshot!(
            StoredColumns { pr: None, ..good.clone() }.check(e).unwrap_err(),
            @r#"entry 2 was edited: its stored `pr` is "NULL" but the entry says "7" (queries that filter on it would hide or misplace the entry)"#
        );
    }

    /// Every text of a record is redacted, in the encoded forms too; the hash is computed
    /// after, so the redacted entry verifies.
    #[test]
    fn records_are_redacted_in_every_text() {
        use base64::Engine as _;
        let secret = "audit-secret-0042";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let hex = hex::encode(secret);
        let mut rec = record(AuditAction::Plan);
        rec.engine_version = Some(format!("failed: {secret}"));
        rec.destroyed = vec![format!("null_resource.x[\"{b64}\"]")];
        rec.policy = vec![AuditPolicyDecision {
            policy: "p".into(),
            outcome: "fail".into(),
            reasons: vec![format!("token {hex} is not allowed")],
            source_blob: None,
        }];
        rec.details = [
            ("reason".to_string(), format!("url https://x/?t={secret}")),
            (format!("k-{b64}"), "v".to_string()),
        ]
        .into();
        rec.redact(&Redactor::new([secret.to_string()]));
        let e = seal(None, format_time(UnixMs::new(0)), rec);
        let text = String::from_utf8(canonical(e.seq, &e.time, &e.record)).unwrap();
        for form in [secret, b64.as_str(), hex.as_str()] {
            assert!(!text.contains(form), "{form} in {text}");
        }
        assert_eq!(text.matches("***").count(), 5, "{text}");
        assert_eq!(e.record.repo.as_deref(), Some("acme/infra"));
        assert_eq!(verify(&[e]), Ok(1));
    }

    #[test]
    fn tampering_is_pinpointed() {
        let mut modified = chain(4);
        modified[2].record.actor.login = "mallory".into();
        assert_eq!(verify(&modified), Err(ChainBreak::Content { seq: 3 }));

        let mut deleted = chain(4);
        deleted.remove(1);
        assert_eq!(
            verify(&deleted),
            Err(ChainBreak::Sequence {
                expected: 2,
                found: 3
            })
        );

        let mut reordered = chain(4);
        reordered.swap(1, 2);
        assert_eq!(
            verify(&reordered),
            Err(ChainBreak::Sequence {
                expected: 2,
                found: 3
            })
        );

        // A forged replacement that is internally consistent still breaks the link.
        let mut forged = chain(4);
        let fake = seal(
            Some((1, &"f".repeat(64))),
            forged[1].time.clone(),
            record(AuditAction::Unlock),
        );
        forged[1] = fake;
        assert_eq!(verify(&forged), Err(ChainBreak::Link { seq: 2 }));
    }
}
