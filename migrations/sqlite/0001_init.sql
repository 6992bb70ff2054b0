-- Sluice store, SQLite. Times are unix milliseconds (UTC) unless named *_text.

-- Verified webhook deliveries, persisted before GitHub gets its 202. A redelivery (same
-- X-GitHub-Delivery) hits the primary key and does no new work.
CREATE TABLE webhook_events (
    delivery_id   TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    event_json    TEXT NOT NULL,          -- core::event::Event, parsed at intake
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    error         TEXT
);
CREATE INDEX webhook_events_pending ON webhook_events (state, next_attempt_at);

-- One command on one PR (an autoplan, a comment's plan or apply).
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    repo            TEXT NOT NULL,
    pr              INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('plan', 'apply')),
    trigger         TEXT NOT NULL,
    head_sha        TEXT NOT NULL,
    base_sha        TEXT NOT NULL,
    base_ref        TEXT NOT NULL,
    clone_url       TEXT NOT NULL,
    installation_id INTEGER,
    actor_json      TEXT NOT NULL,
    comment_id      INTEGER,
    event_id        TEXT UNIQUE,          -- the delivery that created it: creating twice is a no-op
    extra_args_json TEXT NOT NULL DEFAULT '[]',
    verbose         INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL CHECK (state IN ('waiting', 'active', 'finished', 'reported', 'cancelled')),
    waiting_on_pr   INTEGER,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX runs_pr ON runs (repo, pr);
CREATE INDEX runs_state ON runs (state);

-- One project of a run.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    position     INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('plan', 'apply')),
    project_name TEXT NOT NULL,
    project_dir  TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    project_json TEXT NOT NULL,
    plan_id      INTEGER REFERENCES plans (id),
    state        TEXT NOT NULL CHECK (state IN ('waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER,
    report_json  TEXT,                    -- core::plan::ProjectReport once terminal
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_run ON jobs (run_id);

-- Saved plans. The current plan of a project on a PR is the latest one neither discarded nor
-- applied.
CREATE TABLE plans (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    repo          TEXT NOT NULL,
    pr            INTEGER NOT NULL,
    project_name  TEXT NOT NULL,
    project_dir   TEXT NOT NULL,
    workspace     TEXT NOT NULL,
    head_sha      TEXT NOT NULL,
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    plan_file     TEXT NOT NULL,
    plan_sha256   TEXT NOT NULL,
    summary_json  TEXT NOT NULL,
    audit_seq     INTEGER,                -- the audit entry that recorded this plan
    created_at    INTEGER NOT NULL,
    applied_at    INTEGER,
    discarded_at  INTEGER
);
CREATE INDEX plans_pr ON plans (repo, pr, project_name);

-- Locks per (repo, project dir, workspace), held by one PR.
CREATE TABLE locks (
    repo          TEXT NOT NULL,
    project_dir   TEXT NOT NULL,
    workspace     TEXT NOT NULL,
    pr            INTEGER NOT NULL,
    run_id        INTEGER,
    holder_login  TEXT NOT NULL,
    acquired_at   INTEGER NOT NULL,
    PRIMARY KEY (repo, project_dir, workspace)
);
CREATE INDEX locks_pr ON locks (repo, pr);

-- GitHub side effects (comments, statuses, reactions), delivered with retries. Written in the
-- same transaction as the state change they report, so a crash loses neither.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    repo            TEXT NOT NULL,
    pr              INTEGER,
    kind            TEXT NOT NULL CHECK (kind IN ('comment', 'status', 'reaction')),
    payload_json    TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_pending ON outbox (state, id);

-- The audit log: append-only, hash-chained (see core::audit and ARCHITECTURE.md).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY NOT NULL,
    time_text  TEXT NOT NULL,
    repo       TEXT,
    pr         INTEGER,
    head_sha   TEXT,
    action     TEXT NOT NULL,
    entry_json TEXT NOT NULL,             -- the whole core::audit::AuditEntry
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time_text);
CREATE INDEX audit_log_commit ON audit_log (head_sha);
CREATE INDEX audit_log_repo ON audit_log (repo, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: updates are not allowed');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: deletes are not allowed');
END;
