//! The SQLite implementation of the store port (`app::ports::Store`), with sqlx.
//!
//! One file under the data dir, WAL mode. Every write is a `BEGIN IMMEDIATE` transaction, so
//! concurrent writers queue instead of failing halfway; lock and state rules come from `core`
//! and are applied here inside those transactions. The audit table refuses updates and deletes
//! through triggers (see the migration). How the port's types are laid out in columns and JSON
//! is [`rows`]'s business alone.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

mod delivery;
mod drift;
mod job_log;
mod rows;

use rows::*;

use crate::adapters::known_secrets;
use crate::app::ports::github::StatusState;
use crate::app::ports::store::*;
use crate::core::audit::{self, AuditAction, AuditActor, AuditEntry, AuditRecord, AuditResult};
use crate::core::freshness::HeadSeen;
use crate::core::job::{JobKind, JobState, after_lost_lease};
use crate::core::lock::{Lock, LockDecision, LockKey, decide};
use crate::core::plan::Redactor;
use crate::core::types::{CommitSha, PrNumber, RepoName, UnixMs};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The one connection that writes. Writers queue for it in-process (first come, first
    /// served) instead of meeting in SQLite's busy handler, which sleeps in steps of up to
    /// 100 ms and wrecks tail latency under load.
    writer: SqlitePool,
    /// Readers never wait for the writer (WAL).
    reader: SqlitePool,
    /// One connection for background WAL checkpoints.
    upkeep: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .with_context(|| format!("opening the store {}", path.display()))?;
        MIGRATOR
            .run(&writer)
            .await
            .with_context(|| format!("migrating the store {}", path.display()))?;
        // Checkpoints (copying the WAL into the database file, with an fsync) are taken by
        // `checkpoint`, called in the background, instead of inside whichever write happens to
        // cross the WAL size threshold and stalling every writer queued behind it.
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&writer)
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone().read_only(true))
            .await
            .with_context(|| format!("opening the store {}", path.display()))?;
        let upkeep = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening the store {}", path.display()))?;
        Ok(SqliteStore {
            writer,
            reader,
            upkeep,
        })
    }

    /// The writing pool (tests use it to tamper with the file as an attacker would).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    async fn write_tx(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Runs one statement on the writer with `synchronous = NORMAL`: durable across crashes of
    /// Sluice, but not fsynced by itself — the next ordinary (FULL) commit, moments later, makes
    /// it durable against power loss too, since the WAL is written in order. Used only for
    /// webhook-delivery bookkeeping, the hot path at hundreds of deliveries a second; never for
    /// runs, locks, plans, the outbox or the audit log.
    async fn relaxed<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> anyhow::Result<u64> {
        let mut conn = self.writer.acquire().await?;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        let res = q.execute(&mut *conn).await;
        if sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
            .is_err()
        {
            // Never hand a relaxed connection back to the pool.
            conn.detach();
        }
        Ok(res?.rows_affected())
    }
}

/// The body of [`Store::insert_event_once`]: one `BEGIN IMMEDIATE` transaction, committed only
/// when the event is new. The common case (a new event) costs two inserts; which key is known
/// is looked up only when one is.
async fn insert_event_tx(
    conn: &mut SqliteConnection,
    event: &NewEvent<'_>,
    now: UnixMs,
) -> anyhow::Result<EventIntake> {
    let json = event_json(event.event)?;
    let now = now.get();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (delivery_id, kind, received_at, event_json, next_attempt_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(event.delivery_id)
    .bind(event.kind)
    .bind(now)
    .bind(&json)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        sqlx::query("ROLLBACK").execute(&mut *conn).await?;
        return Ok(EventIntake::Redelivery);
    }
    let keys: std::collections::BTreeSet<&String> = event.keys.iter().collect();
    if !keys.is_empty() {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO event_keys (key, delivery_id, created_at) ",
        );
        q.push_values(&keys, |mut row, key| {
            row.push_bind(key)
                .push_bind(event.delivery_id)
                .push_bind(now);
        });
        q.push(" ON CONFLICT (key) DO NOTHING");
        let new_keys = q.build().execute(&mut *conn).await?.rows_affected();
        if new_keys < keys.len() as u64 {
            // A key is known: this is an event stored before. Say which, and store nothing.
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT key, delivery_id FROM event_keys WHERE delivery_id <> ",
            );
            q.push_bind(event.delivery_id).push(" AND key IN (");
            let mut listed = q.separated(", ");
            for key in &keys {
                listed.push_bind(*key);
            }
            listed.push_unseparated(") LIMIT 1");
            let first = q.build().fetch_optional(&mut *conn).await?;
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            let row = first.context("a known event key vanished during the transaction")?;
            return Ok(EventIntake::SameEvent {
                first_delivery: row.try_get("delivery_id")?,
                key: row.try_get("key")?,
            });
        }
    }
    if let Some(head) = &event.head {
        insert_pr_head(conn, head).await?;
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(EventIntake::New)
}

async fn insert_pr_head(conn: &mut SqliteConnection, head: &PrHeadSeen) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO pr_heads (repo, pr, head_sha, seen_at, source) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(head.repo.full().to_ascii_lowercase())
    .bind(head.pr.get() as i64)
    .bind(head.sha.as_str())
    .bind(head.at.get())
    .bind(head.source.as_str())
    .execute(&mut *conn)
    .await
    .context("recording a pull request's head")?;
    Ok(())
}

// ---- helpers inside transactions ------------------------------------------------------------------

/// Writes `effects`: the outbox items, then the audit records (chained after the last entry).
async fn insert_effects(
    conn: &mut SqliteConnection,
    effects: Effects,
    now: UnixMs,
) -> anyhow::Result<Vec<AuditEntry>> {
    insert_outbox(conn, &effects.outbox, now).await?;
    insert_audit(conn, effects.audit, now).await
}

/// Only the latest body of a write is sent: pending writes to the same object (same PR and
/// key) that `w` makes pointless (`WriteKind::replaces`) are settled as sent, with a note. One
/// already handed to the deliverer is still sent; `w` follows it.
async fn coalesce_pending(
    conn: &mut SqliteConnection,
    item: &OutboxItem,
    w: &Write<GitHubWrite>,
    now: i64,
) -> anyhow::Result<()> {
    for kind in w.kind.replaces() {
        sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = ?, \
             last_error = 'coalesced: a later write to the same object replaced it' \
             WHERE state = 'pending' AND kind = 'write' AND repo = ? AND pr IS ? \
             AND json_extract(payload_json, '$.key') = ? \
             AND json_extract(payload_json, '$.write_kind') = ?",
        )
        .bind(now)
        .bind(item.repo.full())
        .bind(item.pr.map(|p| p.get() as i64))
        .bind(&w.key)
        .bind(kind.as_str())
        .execute(&mut *conn)
        .await
        .context("coalescing pending writes")?;
    }
    Ok(())
}

/// `message` with every known secret in its text (comment body, status description) redacted.
fn redacted<'m>(message: &'m Outgoing, redactor: &Redactor) -> anyhow::Result<Cow<'m, Outgoing>> {
    let mut out = Cow::Borrowed(message);
    match message {
        Outgoing::Comment { body } => {
            if let Cow::Owned(clean) = redactor.redact(body) {
                out = Cow::Owned(Outgoing::Comment { body: clean });
            }
        }
        Outgoing::Status { description, .. } => {
            if let Cow::Owned(clean) = redactor.redact(description)
                && let Outgoing::Status { description, .. } = out.to_mut()
            {
                *description = clean;
            }
        }
        Outgoing::Reaction { .. } => {}
        Outgoing::Write(write) => {
            if let Some(clean) = redacted_write(write, redactor)? {
                out = Cow::Owned(Outgoing::Write(Box::new(clean)));
            }
        }
    }
    Ok(out)
}

/// `write` with every string in it (review and comment bodies, check run output, annotation
/// messages, status descriptions) redacted, or `None` when it held no known secret. An error
/// (the write does not round-trip through JSON) stops the insert: nothing unredacted is queued.
fn redacted_write(
    write: &Write<GitHubWrite>,
    redactor: &Redactor,
) -> anyhow::Result<Option<Write<GitHubWrite>>> {
    fn walk(value: &mut serde_json::Value, redactor: &Redactor) -> bool {
        match value {
            serde_json::Value::String(s) => match redactor.redact(s) {
                Cow::Owned(clean) => {
                    *s = clean;
                    true
                }
                Cow::Borrowed(_) => false,
            },
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| walk(v, redactor) | changed),
            serde_json::Value::Object(fields) => fields
                .values_mut()
                .fold(false, |changed, v| walk(v, redactor) | changed),
            _ => false,
        }
    }
    let mut value = serde_json::to_value(&write.payload).context("a GitHub write as JSON")?;
    if !walk(&mut value, redactor) {
        return Ok(None);
    }
    Ok(Some(Write {
        key: write.key.clone(),
        kind: write.kind,
        payload: serde_json::from_value(value).context("a redacted GitHub write")?,
    }))
}

async fn insert_outbox(
    conn: &mut SqliteConnection,
    items: &[OutboxItem],
    now: UnixMs,
) -> anyhow::Result<()> {
    let now = now.get();
    // The last point before GitHub: no known secret is posted, whatever text carried it.
    let redactor = known_secrets::process().redactor();
    for item in items {
        if let Outgoing::Write(w) = &item.message {
            coalesce_pending(conn, item, w, now).await?;
        }
        let message = redacted(&item.message, &redactor)?;
        sqlx::query("INSERT INTO outbox (repo, pr, kind, payload_json, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(item.repo.full())
            .bind(item.pr.map(|p| p.get() as i64))
            .bind(message.kind())
            .bind(outgoing_json(&message)?)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_audit(
    conn: &mut SqliteConnection,
    records: Vec<AuditRecord>,
    now: UnixMs,
) -> anyhow::Result<Vec<AuditEntry>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let mut prev: Option<(u64, String)> = match last {
        Some(r) => Some((r.try_get::<i64, _>("seq")? as u64, r.try_get("hash")?)),
        None => None,
    };
    let mut out = Vec::with_capacity(records.len());
    // The last point before the log: no known secret is stored, whatever text carried it.
    let redactor = known_secrets::process().redactor();
    for mut record in records {
        record.redact(&redactor);
        let entry = audit::seal(
            prev.as_ref().map(|(s, h)| (*s, h.as_str())),
            audit::format_time(now),
            record,
        );
        // The columns are derived by the same function that checks them on every read.
        let columns = audit::StoredColumns::of(&entry);
        sqlx::query(
            "INSERT INTO audit_log (seq, time_text, repo, pr, head_sha, action, entry_json, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(columns.seq as i64)
        .bind(&columns.time)
        .bind(&columns.repo)
        .bind(columns.pr.map(|p| p as i64))
        .bind(&columns.head_sha)
        .bind(&columns.action)
        .bind(serde_json::to_string(&entry)?)
        .bind(&columns.prev_hash)
        .bind(&columns.hash)
        .execute(&mut *conn)
        .await
        .context("appending to the audit log")?;
        prev = Some((entry.seq, entry.hash.clone()));
        out.push(entry);
    }
    Ok(out)
}

async fn repo_locks(conn: &mut SqliteConnection, repo: &RepoName) -> anyhow::Result<Vec<Lock>> {
    let rows = sqlx::query("SELECT * FROM locks WHERE repo = ? COLLATE NOCASE")
        .bind(repo.full())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(lock_from_row).collect()
}

async fn take_locks(
    conn: &mut SqliteConnection,
    repo: &RepoName,
    pr: PrNumber,
    run_id: i64,
    login: &str,
    keys: &[LockKey],
    now: UnixMs,
) -> anyhow::Result<()> {
    for k in keys {
        sqlx::query(
            "INSERT INTO locks (repo, project_dir, workspace, pr, run_id, holder_login, acquired_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(repo.full())
        .bind(k.dir.as_str())
        .bind(k.workspace.as_str())
        .bind(pr.get() as i64)
        .bind(run_id)
        .bind(login)
        .bind(now.get())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The lock keys a run needs: those of its plan jobs.
async fn run_lock_keys(conn: &mut SqliteConnection, run_id: i64) -> anyhow::Result<Vec<LockKey>> {
    let rows =
        sqlx::query("SELECT project_dir, workspace FROM jobs WHERE run_id = ? AND kind = 'plan'")
            .bind(run_id)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(LockKey {
                dir: project_dir(r.try_get("project_dir")?)?,
                workspace: workspace(r.try_get("workspace")?)?,
            })
        })
        .collect()
}

/// After locks were freed: start waiting runs of `repo`, oldest first, whose locks are now all
/// free. Returns the ids of the runs started.
async fn wake_waiting(
    conn: &mut SqliteConnection,
    repo: &RepoName,
    now: UnixMs,
) -> anyhow::Result<Vec<i64>> {
    let waiting = sqlx::query(
        "SELECT * FROM runs WHERE repo = ? COLLATE NOCASE AND state = 'waiting' ORDER BY id",
    )
    .bind(repo.full())
    .fetch_all(&mut *conn)
    .await?;
    let mut started = Vec::new();
    for row in &waiting {
        let run = run_from_row(row)?;
        let keys = run_lock_keys(conn, run.id).await?;
        let locks = repo_locks(conn, repo).await?;
        match decide(run.pr, &keys, &locks) {
            LockDecision::Acquire(take) => {
                take_locks(conn, repo, run.pr, run.id, &run.actor.login, &take, now).await?;
                let effects = started_effects(&run, &keys, conn).await?;
                insert_effects(conn, effects, now).await?;
                sqlx::query("UPDATE runs SET state = 'active', waiting_on_pr = NULL WHERE id = ?")
                    .bind(run.id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "UPDATE jobs SET state = 'queued' WHERE run_id = ? AND state = 'waiting'",
                )
                .bind(run.id)
                .execute(&mut *conn)
                .await?;
                crate::adapters::metrics::observe(
                    "sluice_lock_wait_seconds",
                    &[],
                    (now.get() - run.created_at.get()).max(0) as f64 / 1000.0,
                );
                started.push(run.id);
            }
            LockDecision::Conflict { held } => {
                let holder = held.first().map(|l| l.pr.get() as i64);
                sqlx::query("UPDATE runs SET waiting_on_pr = ? WHERE id = ?")
                    .bind(holder)
                    .bind(run.id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(started)
}

/// What a run that waited says when its locks are released and it starts: the locks acquired
/// (audited only now, not when it began to wait) and, for a plan, "planning N projects".
async fn started_effects(
    run: &RunRow,
    keys: &[LockKey],
    conn: &mut SqliteConnection,
) -> anyhow::Result<Effects> {
    let mut acquired = AuditRecord::new(
        AuditAction::LockAcquired,
        AuditActor::of(&run.actor),
        AuditResult::Success,
    )
    .pr(&run.repo, run.pr)
    .base(&run.base_sha)
    .head(&run.head_sha)
    .numbered("lock", keys);
    if let Some(event) = &run.event_id {
        acquired = acquired.event(event.clone());
    }
    let mut outbox = Vec::new();
    if run.kind == JobKind::Plan {
        let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE run_id = ?")
            .bind(run.id)
            .fetch_one(&mut *conn)
            .await?;
        outbox.push(OutboxItem::status(
            &run.repo,
            run.pr,
            &run.head_sha,
            StatusContext::Plan,
            StatusState::Pending,
            crate::core::reply::status::planning(usize::try_from(jobs).unwrap_or(0)),
        ));
    }
    Ok(Effects::new(outbox, vec![acquired]))
}

/// Marks the run finished when none of its jobs is left to run. Returns whether it did.
async fn maybe_finish_run(
    conn: &mut SqliteConnection,
    run_id: i64,
    now: UnixMs,
) -> anyhow::Result<bool> {
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE run_id = ? AND state IN ('waiting', 'queued', 'running')",
    )
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    if open > 0 {
        return Ok(false);
    }
    let changed = sqlx::query("UPDATE runs SET state = 'finished', finished_at = ? WHERE id = ? AND state IN ('active', 'waiting')")
        .bind(now.get())
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(changed.rows_affected() > 0)
}

/// The apply run's plans must be current and not taken by another apply: why not, if not.
async fn apply_refusal(
    conn: &mut SqliteConnection,
    run: &NewRun,
) -> anyhow::Result<Option<String>> {
    for job in &run.jobs {
        let Some(plan_id) = job.plan_id else { continue };
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM plans WHERE id = ? AND applied_at IS NULL AND discarded_at IS NULL",
        )
        .bind(plan_id)
        .fetch_optional(&mut *conn)
        .await?;
        if current.is_none() {
            return Ok(Some(format!(
                "the plan of `{}` was applied or discarded meanwhile",
                job.project_name
            )));
        }
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE plan_id = ? AND kind = 'apply' AND state IN ('waiting', 'queued', 'running', 'succeeded')",
        )
        .bind(plan_id)
        .fetch_optional(&mut *conn)
        .await?;
        if taken.is_some() {
            return Ok(Some(format!(
                "the plan of `{}` is already being applied",
                job.project_name
            )));
        }
    }
    Ok(None)
}

/// Inserts the run and its jobs in the given states; returns the run's id.
async fn insert_run(
    conn: &mut SqliteConnection,
    run: &NewRun,
    state: RunState,
    job_state: JobState,
    waiting_on: Option<PrNumber>,
    now: UnixMs,
) -> anyhow::Result<i64> {
    let run_id: i64 = sqlx::query_scalar(
        "INSERT INTO runs (repo, pr, kind, trigger, head_sha, base_sha, base_ref, clone_url, installation_id, actor_json, \
         comment_id, event_id, extra_args_json, verbose, state, waiting_on_pr, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(run.repo.full())
    .bind(run.pr.get() as i64)
    .bind(run.kind.as_str())
    .bind(run.trigger.as_str())
    .bind(run.head_sha.as_str())
    .bind(run.base_sha.as_str())
    .bind(&run.base_ref)
    .bind(&run.clone_url)
    .bind(run.installation_id.map(|v| v as i64))
    .bind(serde_json::to_string(&run.actor)?)
    .bind(run.comment_id.map(|v| v as i64))
    .bind(&run.event_id)
    .bind(serde_json::to_string(&run.extra_args)?)
    .bind(run.verbose as i64)
    .bind(state.as_str())
    .bind(waiting_on.map(|p| p.get() as i64))
    .bind(now.get())
    .fetch_one(&mut *conn)
    .await?;
    for (position, job) in run.jobs.iter().enumerate() {
        if job.kind() != run.kind {
            bail!(
                "a {} run cannot hold a {} job ({})",
                run.kind,
                job.kind(),
                job.project_name
            );
        }
        sqlx::query(
            "INSERT INTO jobs (run_id, position, kind, project_name, project_dir, workspace, project_json, plan_id, state, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(position as i64)
        .bind(job.kind().as_str())
        .bind(job.project_name.as_str())
        .bind(job.project_dir.as_str())
        .bind(job.workspace.as_str())
        .bind(payload_json(&job.payload)?)
        .bind(job.plan_id)
        .bind(job_state.as_str())
        .bind(now.get())
        .execute(&mut *conn)
        .await?;
    }
    Ok(run_id)
}

/// After a plan job ended: earlier plans of its project are superseded (whatever this job's
/// outcome: a failed re-plan must not leave an older plan applicable), and a new saved plan is
/// recorded with the sequence number of its audit entry.
async fn record_plan(
    conn: &mut SqliteConnection,
    run: &RunRow,
    job: &JobRow,
    plan: Option<&NewPlan>,
    entries: &[AuditEntry],
    now: UnixMs,
) -> anyhow::Result<()> {
    // A merge queue commit's plan is a check, not a plan of the pull request: it neither
    // replaces the reviewed plan nor is ever applied.
    if run.trigger == Trigger::MergeQueue {
        return Ok(());
    }
    sqlx::query(
        "UPDATE plans SET discarded_at = ? WHERE repo = ? COLLATE NOCASE AND pr = ? AND project_name = ? \
         AND job_id < ? AND discarded_at IS NULL AND applied_at IS NULL",
    )
    .bind(now.get())
    .bind(run.repo.full())
    .bind(run.pr.get() as i64)
    .bind(job.project_name.as_str())
    .bind(job.id)
    .execute(&mut *conn)
    .await?;
    let Some(plan) = plan else {
        return Ok(());
    };
    let seq = entries
        .iter()
        .find(|e| e.record.action == Some(crate::core::audit::AuditAction::Plan))
        .map(|e| e.seq as i64);
    sqlx::query(
        "INSERT INTO plans (repo, pr, project_name, project_dir, workspace, head_sha, job_id, plan_file, plan_sha256, \
         summary_json, audit_seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(run.repo.full())
    .bind(run.pr.get() as i64)
    .bind(job.project_name.as_str())
    .bind(job.project_dir.as_str())
    .bind(job.workspace.as_str())
    .bind(plan.head_sha.as_str())
    .bind(job.id)
    .bind(plan.plan_file.to_string_lossy().into_owned())
    .bind(&plan.plan_sha256)
    .bind(summary_json(&plan.summary)?)
    .bind(seq)
    .bind(now.get())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// After an apply job ended: a success marks its plan applied. A failure stops nothing here:
/// only the projects that depend on it stop (the apply job checks `depends_on` when it starts).
async fn record_apply(
    conn: &mut SqliteConnection,
    job: &JobRow,
    state: JobState,
    now: UnixMs,
) -> anyhow::Result<()> {
    if state == JobState::Succeeded
        && let Some(plan_id) = job.plan_id
    {
        sqlx::query("UPDATE plans SET applied_at = ? WHERE id = ?")
            .bind(now.get())
            .bind(plan_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// After a successful `import` / `state rm`, the pull request's plans of the project were made
/// against the old state: they are discarded, in the transaction that records the change.
async fn record_state_change(
    conn: &mut SqliteConnection,
    run: &RunRow,
    job: &JobRow,
    state: JobState,
    now: UnixMs,
) -> anyhow::Result<()> {
    if state != JobState::Succeeded {
        return Ok(());
    }
    sqlx::query(
        "UPDATE plans SET discarded_at = ? WHERE repo = ? COLLATE NOCASE AND pr = ? \
         AND project_dir = ? AND workspace = ? AND discarded_at IS NULL AND applied_at IS NULL",
    )
    .bind(now.get())
    .bind(run.repo.full())
    .bind(run.pr.get() as i64)
    .bind(job.project_dir.as_str())
    .bind(job.workspace.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn run_by_id(conn: &mut SqliteConnection, run_id: i64) -> anyhow::Result<RunRow> {
    run_from_row(
        &sqlx::query("SELECT * FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

// ---- the port -----------------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn upkeep(&self) -> StoreResult<()> {
        // PASSIVE: copy what can be copied without waiting for readers or the writer, from a
        // connection of its own, so no write ever queues behind the checkpoint's fsync.
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.upkeep)
            .await?;
        Ok(())
    }

    async fn insert_event_once(
        &self,
        event: NewEvent<'_>,
        now: UnixMs,
    ) -> StoreResult<EventIntake> {
        // Relaxed durability (see `relaxed`): this is the hot path of the intake.
        let mut conn = self.writer.acquire().await?;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        let result = insert_event_tx(&mut conn, &event, now).await;
        if result.is_err() {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        }
        if sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
            .is_err()
        {
            // Never hand a relaxed connection back to the pool.
            conn.detach();
        }
        result.context("persisting the webhook delivery")
    }

    async fn record_pr_head(&self, head: PrHeadSeen) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await?;
        insert_pr_head(&mut conn, &head).await?;
        Ok(())
    }

    async fn pr_heads(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<HeadSeen>> {
        let rows = sqlx::query(
            "SELECT head_sha, seen_at FROM pr_heads WHERE repo = ? AND pr = ? ORDER BY seen_at",
        )
        .bind(repo.full().to_ascii_lowercase())
        .bind(pr.get() as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeadSeen {
                    sha: sha(r.try_get("head_sha")?)?,
                    at: UnixMs::new(r.try_get("seen_at")?),
                })
            })
            .collect()
    }

    async fn claim_event(&self, now: UnixMs, max_attempts: u32) -> StoreResult<Option<Claimed>> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT delivery_id, kind, event_json, attempts, error FROM webhook_events \
             WHERE state = 'pending' AND (next_attempt_at <= ? OR attempts >= ?) \
             ORDER BY received_at LIMIT 1",
        )
        .bind(now.get())
        .bind(max_attempts as i64)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let mut ev = stored_event_from_row(&r)?;
        if ev.attempts >= max_attempts {
            return Ok(Some(Claimed::Exhausted(ev)));
        }
        ev.attempts += 1;
        sqlx::query(
            "UPDATE webhook_events SET attempts = ?, next_attempt_at = ?, claimed_at = ?, error = ? \
             WHERE delivery_id = ?",
        )
        .bind(ev.attempts as i64)
        .bind(now.plus_ms(event_retry_delay_ms(ev.attempts)).get())
        .bind(now.get())
        .bind(UNFINISHED_ATTEMPT)
        .bind(&ev.delivery_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Claimed::Attempt(ev)))
    }

    async fn finish_event(&self, delivery_id: &str, error: Option<&str>) -> StoreResult<()> {
        // Relaxed: if a power loss undoes this, the event is handled again, and handling is
        // idempotent (runs are keyed by the delivery).
        self.relaxed(
            sqlx::query(
                "UPDATE webhook_events SET state = 'done', error = ? WHERE delivery_id = ?",
            )
            .bind(error)
            .bind(delivery_id),
        )
        .await?;
        Ok(())
    }

    async fn retry_event(
        &self,
        delivery_id: &str,
        error: &str,
        retry_at: UnixMs,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_events SET error = ?, next_attempt_at = ? \
             WHERE delivery_id = ? AND state = 'pending'",
        )
        .bind(error)
        .bind(retry_at.get())
        .bind(delivery_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn dead_letter_event(
        &self,
        delivery_id: &str,
        reason: &str,
        effects: Effects,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE webhook_events SET state = ?, error = ?, dead_at = ? \
             WHERE delivery_id = ? AND state = 'pending'",
        )
        .bind(event_state_column(EventState::Dead))
        .bind(reason)
        .bind(now.get())
        .bind(delivery_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        insert_effects(&mut tx, effects, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_events(
        &self,
        state: Option<EventState>,
        limit: u32,
    ) -> StoreResult<Vec<EventRow>> {
        let db_state = state.map(event_state_column);
        let rows = sqlx::query(
            "SELECT delivery_id, kind, state, attempts, received_at, claimed_at, dead_at, error, \
             event_json FROM webhook_events WHERE (? IS NULL OR state = ?) \
             ORDER BY received_at DESC, delivery_id LIMIT ?",
        )
        .bind(db_state)
        .bind(db_state)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_row_from_row).collect()
    }

    async fn create_run(
        &self,
        run: NewRun,
        announce: Announce<'_>,
        now: UnixMs,
    ) -> StoreResult<RunStart> {
        let mut tx = self.write_tx().await?;
        if let Some(event_id) = &run.event_id {
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT id FROM runs WHERE event_id = ?")
                    .bind(event_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(run_id) = existing {
                return Ok(RunStart::AlreadyExists { run_id });
            }
        }
        if run.kind == JobKind::Apply
            && let Some(reason) = apply_refusal(&mut tx, &run).await?
        {
            return Ok(RunStart::Refused { reason });
        }
        let locks = repo_locks(&mut tx, &run.repo).await?;
        let decision = decide(run.pr, &run.locks, &locks);
        let (run_state, job_state, held) = match &decision {
            LockDecision::Acquire(_) => (RunState::Active, JobState::Queued, Vec::new()),
            LockDecision::Conflict { held } => (RunState::Waiting, JobState::Waiting, held.clone()),
        };
        let waiting_on = held.first().map(|l| l.pr);
        let run_id = insert_run(&mut tx, &run, run_state, job_state, waiting_on, now).await?;
        if let LockDecision::Acquire(take) = &decision {
            take_locks(
                &mut tx,
                &run.repo,
                run.pr,
                run_id,
                &run.actor.login,
                take,
                now,
            )
            .await?;
        }
        let opening = if held.is_empty() {
            Opening::Starts
        } else {
            Opening::Waits { held: &held }
        };
        insert_effects(&mut tx, announce(opening), now).await?;
        if run.jobs.is_empty() {
            maybe_finish_run(&mut tx, run_id, now).await?;
        }
        tx.commit().await?;
        if matches!(decision, LockDecision::Acquire(_)) && !run.jobs.is_empty() {
            // The run got its locks at once.
            crate::adapters::metrics::observe("sluice_lock_wait_seconds", &[], 0.0);
        }
        Ok(match decision {
            LockDecision::Acquire(_) => RunStart::Queued { run_id },
            LockDecision::Conflict { held } => RunStart::Waiting { run_id, held },
        })
    }

    async fn claim_job(
        &self,
        worker: &str,
        now: UnixMs,
        lease_until: UnixMs,
    ) -> StoreResult<Option<ClaimedJob>> {
        let mut tx = self.write_tx().await?;
        // Apply jobs of one run go one after the other, in position order.
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT j.id FROM jobs j WHERE j.state = 'queued' AND NOT (j.kind = 'apply' AND EXISTS ( \
                 SELECT 1 FROM jobs p WHERE p.run_id = j.run_id AND p.position < j.position \
                 AND p.state IN ('waiting', 'queued', 'running'))) \
             ORDER BY j.id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, attempts = attempts + 1, started_at = ? \
             WHERE id = ? AND state = 'queued'",
        )
        .bind(worker)
        .bind(lease_until.get())
        .bind(now.get())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let job = job_from_row(
            &sqlx::query("SELECT * FROM jobs WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?,
        )?;
        let run = run_by_id(&mut tx, job.run_id).await?;
        tx.commit().await?;
        Ok(Some(ClaimedJob { job, run }))
    }

    async fn renew_lease(
        &self,
        job_id: i64,
        worker: &str,
        lease_until: UnixMs,
    ) -> StoreResult<bool> {
        let res = sqlx::query("UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'")
            .bind(lease_until.get())
            .bind(job_id)
            .bind(worker)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn finish_job(
        &self,
        job_id: i64,
        worker: &str,
        finish: JobFinish,
        now: UnixMs,
    ) -> StoreResult<bool> {
        if !finish.state.is_terminal() {
            bail!("finish_job needs a terminal state, got {}", finish.state);
        }
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?
            .with_context(|| format!("job {job_id} does not exist"))?;
        let job = job_from_row(&row)?;
        let owner: Option<String> = row.try_get("lease_owner")?;
        if job.state != JobState::Running || owner.as_deref() != Some(worker) {
            // The job was recovered or cancelled meanwhile; this worker's result is stale.
            tx.rollback().await?;
            return Ok(false);
        }
        let run = run_by_id(&mut tx, job.run_id).await?;
        let entries = insert_audit(&mut tx, finish.audit, now).await?;
        sqlx::query(
            "UPDATE jobs SET state = ?, report_json = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
        )
        .bind(finish.state.as_str())
        .bind(report_json(&finish.report)?)
        .bind(now.get())
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        match job.kind {
            JobKind::Plan => {
                record_plan(&mut tx, &run, &job, finish.plan.as_ref(), &entries, now).await?
            }
            JobKind::Apply => record_apply(&mut tx, &job, finish.state, now).await?,
            JobKind::State => record_state_change(&mut tx, &run, &job, finish.state, now).await?,
        }
        let finished = maybe_finish_run(&mut tx, job.run_id, now).await?;
        tx.commit().await?;
        Ok(finished)
    }

    async fn finished_runs(&self) -> StoreResult<Vec<RunRow>> {
        let rows = sqlx::query("SELECT * FROM runs WHERE state = 'finished' ORDER BY id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn report_run(&self, run_id: i64, effects: Effects, now: UnixMs) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let res =
            sqlx::query("UPDATE runs SET state = 'reported' WHERE id = ? AND state = 'finished'")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        if res.rows_affected() == 0 {
            // Already reported (two reporters raced, or a retry): write nothing twice.
            tx.rollback().await?;
            return Ok(());
        }
        insert_effects(&mut tx, effects, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn run(&self, run_id: i64) -> StoreResult<Option<RunRow>> {
        sqlx::query("SELECT * FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(run_from_row)
            .transpose()
    }

    async fn jobs_of_run(&self, run_id: i64) -> StoreResult<Vec<JobRow>> {
        let rows = sqlx::query("SELECT * FROM jobs WHERE run_id = ? ORDER BY position")
            .bind(run_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn job(&self, job_id: i64) -> StoreResult<Option<JobRow>> {
        sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(job_from_row)
            .transpose()
    }

    async fn recover_expired(&self, now: UnixMs) -> StoreResult<Vec<Recovered>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE state = 'running' AND lease_until < ? ORDER BY id",
        )
        .bind(now.get())
        .fetch_all(&mut *tx)
        .await?;
        let interrupted = report_json(&JobReport::Interrupted(
            "the worker running this job stopped (crash or restart) before it finished".into(),
        ))?;
        let mut out = Vec::new();
        for row in &rows {
            let job = job_from_row(row)?;
            let next = after_lost_lease(job.kind, job.attempts);
            let report = (next == JobState::Interrupted).then_some(interrupted.as_str());
            sqlx::query(
                "UPDATE jobs SET state = ?, lease_owner = NULL, lease_until = NULL, report_json = COALESCE(?, report_json), \
                 finished_at = CASE WHEN ? = 'interrupted' THEN ? ELSE finished_at END WHERE id = ?",
            )
            .bind(next.as_str())
            .bind(report)
            .bind(next.as_str())
            .bind(now.get())
            .bind(job.id)
            .execute(&mut *tx)
            .await?;
            if next == JobState::Interrupted {
                maybe_finish_run(&mut tx, job.run_id, now).await?;
            }
            let run = run_by_id(&mut tx, job.run_id).await?;
            out.push(Recovered {
                job,
                run,
                now: next,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn interrupt_worker_jobs(&self, worker: &str, now: UnixMs) -> StoreResult<Vec<i64>> {
        let mut tx = self.write_tx().await?;
        let rows =
            sqlx::query("SELECT id, run_id FROM jobs WHERE state = 'running' AND lease_owner = ?")
                .bind(worker)
                .fetch_all(&mut *tx)
                .await?;
        let report = report_json(&JobReport::Interrupted(
            "Sluice was shut down before this job finished".into(),
        ))?;
        let mut ids = Vec::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let run_id: i64 = r.try_get("run_id")?;
            sqlx::query(
                "UPDATE jobs SET state = 'interrupted', report_json = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
            )
            .bind(&report)
            .bind(now.get())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            maybe_finish_run(&mut tx, run_id, now).await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn cancel_pending_jobs(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        reason: &str,
        now: UnixMs,
    ) -> StoreResult<Vec<i64>> {
        let report = report_json(&JobReport::Cancelled(reason.to_string()))?;
        let mut tx = self.write_tx().await?;
        let runs: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT r.id FROM runs r JOIN jobs j ON j.run_id = r.id \
             WHERE r.repo = ? COLLATE NOCASE AND r.pr = ? AND j.state IN ('waiting', 'queued')",
        )
        .bind(repo.full())
        .bind(pr.get() as i64)
        .fetch_all(&mut *tx)
        .await?;
        for run_id in &runs {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', report_json = ?, finished_at = ? WHERE run_id = ? AND state IN ('waiting', 'queued')",
            )
            .bind(&report)
            .bind(now.get())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            maybe_finish_run(&mut tx, *run_id, now).await?;
        }
        tx.commit().await?;
        Ok(runs)
    }

    async fn open_runs(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE repo = ? COLLATE NOCASE AND pr = ? AND state IN ('waiting', 'active', 'finished') ORDER BY id",
        )
        .bind(repo.full())
        .bind(pr.get() as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn job_counts(&self) -> StoreResult<Vec<(String, String, u64)>> {
        let rows = sqlx::query("SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("kind")?,
                    r.try_get::<String, _>("state")?,
                    u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn audit_counts(&self, after_seq: u64) -> StoreResult<(Vec<(String, u64)>, u64)> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT COALESCE(action, '') AS action, COUNT(*) AS n, MAX(seq) AS last \
             FROM audit_log WHERE seq > ? GROUP BY action",
        )
        .bind(after)
        .fetch_all(&self.reader)
        .await?;
        let mut last = after_seq;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
            last = last.max(u64::try_from(r.try_get::<i64, _>("last")?).unwrap_or(0));
            out.push((r.try_get::<String, _>("action")?, n));
        }
        Ok((out, last))
    }

    async fn recent_runs(
        &self,
        repo: Option<&RepoName>,
        pr: Option<PrNumber>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE (?1 IS NULL OR repo = ?1 COLLATE NOCASE) \
             AND (?2 IS NULL OR pr = ?2) AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
        )
        .bind(repo.map(RepoName::full))
        .bind(pr.map(|p| p.get() as i64))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn current_plans(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<PlanRow>> {
        let rows = sqlx::query(
            "SELECT * FROM plans p WHERE p.repo = ? COLLATE NOCASE AND p.pr = ? AND p.discarded_at IS NULL AND p.applied_at IS NULL \
             AND p.job_id = (SELECT MAX(q.job_id) FROM plans q WHERE q.repo = p.repo AND q.pr = p.pr \
                             AND q.project_name = p.project_name AND q.discarded_at IS NULL) \
             ORDER BY p.id",
        )
        .bind(repo.full())
        .bind(pr.get() as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    async fn applied_plans(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<Vec<PlanRow>> {
        let rows = sqlx::query(
            "SELECT * FROM plans WHERE repo = ? COLLATE NOCASE AND pr = ? AND applied_at IS NOT NULL \
             ORDER BY id",
        )
        .bind(repo.full())
        .bind(pr.get() as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    async fn plan(&self, plan_id: i64) -> StoreResult<Option<PlanRow>> {
        sqlx::query("SELECT * FROM plans WHERE id = ?")
            .bind(plan_id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(plan_from_row)
            .transpose()
    }

    async fn discard_plans(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        now: UnixMs,
    ) -> StoreResult<Vec<PlanRow>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "SELECT * FROM plans WHERE repo = ? COLLATE NOCASE AND pr = ? AND discarded_at IS NULL AND applied_at IS NULL",
        )
        .bind(repo.full())
        .bind(pr.get() as i64)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE plans SET discarded_at = ? WHERE repo = ? COLLATE NOCASE AND pr = ? AND discarded_at IS NULL AND applied_at IS NULL")
            .bind(now.get())
            .bind(repo.full())
            .bind(pr.get() as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(plan_from_row).collect()
    }

    async fn add_policy_overrides(
        &self,
        rows: Vec<PolicyOverrideRow>,
        effects: Effects,
        now: UnixMs,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for r in &rows {
            sqlx::query(
                "INSERT INTO policy_overrides (repo, pr, head_sha, project, policy, by_login, by_id, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.repo.full())
            .bind(r.pr.get() as i64)
            .bind(r.head_sha.as_str())
            .bind(r.project.as_str())
            .bind(&r.policy)
            .bind(&r.by_login)
            .bind(r.by_id.map(|v| v as i64))
            .bind(now.get())
            .execute(&mut *tx)
            .await?;
        }
        insert_effects(&mut tx, effects, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn policy_overrides(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        head_sha: &CommitSha,
    ) -> StoreResult<Vec<PolicyOverrideRow>> {
        let rows = sqlx::query(
            "SELECT * FROM policy_overrides WHERE repo = ? COLLATE NOCASE AND pr = ? AND head_sha = ? ORDER BY id",
        )
        .bind(repo.full())
        .bind(pr.get() as i64)
        .bind(head_sha.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(override_from_row).collect()
    }

    async fn locks(&self, repo: Option<&RepoName>) -> StoreResult<Vec<Lock>> {
        let rows = match repo {
            Some(r) => {
                sqlx::query("SELECT * FROM locks WHERE repo = ? COLLATE NOCASE ORDER BY repo, project_dir, workspace")
                    .bind(r.full())
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM locks ORDER BY repo, project_dir, workspace")
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        rows.iter().map(lock_from_row).collect()
    }

    async fn release_pr_locks(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        effects: Effects,
        now: UnixMs,
    ) -> StoreResult<(Vec<Lock>, Vec<i64>)> {
        let mut tx = self.write_tx().await?;
        let released: Vec<Lock> = repo_locks(&mut tx, repo)
            .await?
            .into_iter()
            .filter(|l| l.pr == pr)
            .collect();
        sqlx::query("DELETE FROM locks WHERE repo = ? COLLATE NOCASE AND pr = ?")
            .bind(repo.full())
            .bind(pr.get() as i64)
            .execute(&mut *tx)
            .await?;
        insert_effects(&mut tx, effects, now).await?;
        let started = wake_waiting(&mut tx, repo, now).await?;
        tx.commit().await?;
        Ok((released, started))
    }

    async fn release_lock(
        &self,
        repo: &RepoName,
        key: &LockKey,
        effects: Effects,
        now: UnixMs,
    ) -> StoreResult<(Option<Lock>, Vec<i64>)> {
        let mut tx = self.write_tx().await?;
        let existing = repo_locks(&mut tx, repo)
            .await?
            .into_iter()
            .find(|l| &l.key == key);
        sqlx::query(
            "DELETE FROM locks WHERE repo = ? COLLATE NOCASE AND project_dir = ? AND workspace = ?",
        )
        .bind(repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .execute(&mut *tx)
        .await?;
        insert_effects(&mut tx, effects, now).await?;
        let started = wake_waiting(&mut tx, repo, now).await?;
        tx.commit().await?;
        Ok((existing, started))
    }

    async fn enqueue(&self, effects: Effects, now: UnixMs) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_effects(&mut tx, effects, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pr_objects(&self, repo: &RepoName, pr: PrNumber) -> StoreResult<PrObjects> {
        let row = sqlx::query("SELECT objects_json FROM pr_objects WHERE repo = ? AND pr = ?")
            .bind(repo.full().to_ascii_lowercase())
            .bind(pr.get() as i64)
            .fetch_optional(&self.reader)
            .await?;
        match row {
            Some(r) => Ok(pr_objects_from_json(r.try_get("objects_json")?)?),
            None => Ok(PrObjects::default()),
        }
    }

    async fn save_pr_objects(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        objects: &PrObjects,
        now: UnixMs,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO pr_objects (repo, pr, objects_json, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (repo, pr) DO UPDATE SET objects_json = json_set(excluded.objects_json, \
             '$.history', json(COALESCE(json_extract(pr_objects.objects_json, '$.history'), '[]'))), \
             updated_at = excluded.updated_at",
        )
        .bind(repo.full().to_ascii_lowercase())
        .bind(pr.get() as i64)
        .bind(pr_objects_json(objects)?)
        .bind(now.get())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn update_pr_history(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        history: &[crate::core::review::sticky::PastRun],
        now: UnixMs,
    ) -> StoreResult<()> {
        let history = serde_json::to_string(history).context("a PR's run history as JSON")?;
        sqlx::query(
            "INSERT INTO pr_objects (repo, pr, objects_json, updated_at) \
             VALUES (?, ?, json_object('history', json(?)), ?) \
             ON CONFLICT (repo, pr) DO UPDATE SET objects_json = json_set(pr_objects.objects_json, \
             '$.history', json(json_extract(excluded.objects_json, '$.history'))), updated_at = excluded.updated_at",
        )
        .bind(repo.full().to_ascii_lowercase())
        .bind(pr.get() as i64)
        .bind(history)
        .bind(now.get())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn check_run_id(&self, repo: &RepoName, key: &str) -> StoreResult<Option<u64>> {
        let row = sqlx::query("SELECT check_run_id FROM check_runs WHERE repo = ? AND key = ?")
            .bind(repo.full().to_ascii_lowercase())
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("check_run_id"))
            .transpose()?
            .map(|id| id as u64))
    }

    async fn save_check_run_id(
        &self,
        repo: &RepoName,
        key: &str,
        check_run_id: u64,
        now: UnixMs,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO check_runs (repo, key, check_run_id, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (repo, key) DO UPDATE SET check_run_id = excluded.check_run_id",
        )
        .bind(repo.full().to_ascii_lowercase())
        .bind(key)
        .bind(check_run_id as i64)
        .bind(now.get())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn due_outbox(&self, now: UnixMs, limit: u32) -> StoreResult<Vec<OutboxRow>> {
        // The oldest pending item of each PR (or of each repo, for items without a PR), if due.
        let rows = sqlx::query(
            "SELECT * FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= ? AND o.id = ( \
                 SELECT MIN(p.id) FROM outbox p WHERE p.state = 'pending' AND p.repo = o.repo AND p.pr IS o.pr) \
             ORDER BY o.id LIMIT ?",
        )
        .bind(now.get())
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    async fn outbox_sent(&self, id: i64, now: UnixMs) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
        )
        .bind(now.get())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn outbox_retry(&self, id: i64, error: &str, retry_at: UnixMs) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?")
            .bind(error)
            .bind(retry_at.get())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn outbox_failed(&self, id: i64, error: &str) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn pending_outbox(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            .fetch_one(&self.reader)
            .await?;
        Ok(n as u64)
    }

    async fn append_audit(
        &self,
        audit: Vec<AuditRecord>,
        now: UnixMs,
    ) -> StoreResult<Vec<AuditEntry>> {
        let mut tx = self.write_tx().await?;
        let entries = insert_audit(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(entries)
    }

    async fn scan_audit(
        &self,
        q: &AuditQuery,
        each: &mut (dyn FnMut(AuditEntry) -> anyhow::Result<bool> + Send),
    ) -> StoreResult<()> {
        use futures_util::TryStreamExt;
        let sql = audit_select(
            "SELECT seq, time_text, repo, pr, head_sha, action, entry_json, prev_hash, hash \
             FROM audit_log WHERE 1 = 1",
            q,
            " ORDER BY seq",
        );
        let query = bind_audit_query(sqlx::query(&sql), q);
        let mut conn = self.reader.acquire().await?;
        let mut rows = query.fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            if !each(audit_from_row(&row)?)? {
                break;
            }
        }
        Ok(())
    }

    async fn audit_repos(&self, q: &AuditQuery) -> StoreResult<Vec<String>> {
        let sql = audit_select(
            "SELECT DISTINCT repo FROM audit_log WHERE repo IS NOT NULL",
            q,
            "",
        );
        let rows = bind_audit_query(sqlx::query(&sql), q)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("repo").map_err(Into::into))
            .collect()
    }
}

/// `head` followed by the conditions of `q` (each a `?` bound by [`bind_audit_query`] in the
/// same order), `order`, and `LIMIT ?` when `q.limit` is set.
fn audit_select(head: &str, q: &AuditQuery, order: &str) -> String {
    let mut sql = String::from(head);
    if q.since.is_some() {
        sql.push_str(" AND time_text >= ?");
    }
    if q.until.is_some() {
        sql.push_str(" AND time_text < ?");
    }
    if q.repo.is_some() {
        sql.push_str(" AND repo = ? COLLATE NOCASE");
    }
    if q.head_sha.is_some() {
        sql.push_str(" AND head_sha = ?");
    }
    if q.after_seq.is_some() {
        sql.push_str(" AND seq > ?");
    }
    sql.push_str(order);
    if q.limit.is_some() {
        sql.push_str(" LIMIT ?");
    }
    sql
}

/// Binds `q`'s values to a query built by [`audit_select`].
fn bind_audit_query<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    q: &AuditQuery,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    // `time_text` holds the canonical time, whose text order is time order.
    let bounds = [q.since, q.until].map(|b| b.map(audit::format_time));
    for v in bounds.iter().chain([&q.repo, &q.head_sha]).flatten() {
        query = query.bind(v.clone());
    }
    if let Some(a) = q.after_seq {
        query = query.bind(a as i64);
    }
    if let Some(l) = q.limit {
        query = query.bind(l as i64);
    }
    query
}
