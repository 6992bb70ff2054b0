-- Reconciliation (PRODUCT.md §14): what Sluice keeps per project of a repository's default
-- branch, keyed like locks by (repo, project dir, workspace). See app::ports::drift.

-- One row per project: its drift record (core::drift::DriftRecord as JSON: drift object,
-- acknowledgement/acceptance with who and until, failure streak, latest check), the latest
-- classification (core::drift::Classification as JSON), the schedule and the next due time (so
-- schedules survive restarts), a pending request, the claim of a running check, its issues.
CREATE TABLE drift_projects (
    repo               TEXT NOT NULL COLLATE NOCASE,
    project_dir        TEXT NOT NULL,
    workspace          TEXT NOT NULL,
    project_name       TEXT NOT NULL,
    record_json        TEXT NOT NULL,
    classification_json TEXT,
    checked_sha        TEXT,
    schedule           TEXT,               -- cron expression; NULL: scheduled checks off
    next_due_at        INTEGER,            -- unix ms
    requested_at       INTEGER,            -- unix ms: a check asked for outside the schedule
    claimed_until      INTEGER,            -- unix ms: a running check's claim
    drift_issue        INTEGER,
    failure_issue      INTEGER,
    active             INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (repo, project_dir, workspace)
);
CREATE INDEX drift_projects_due ON drift_projects (active, next_due_at);

-- The last commit Sluice applied per project: who, when, from which PR, and the versions then
-- (for the engine_or_provider_upgrade rule).
CREATE TABLE drift_last_applied (
    repo            TEXT NOT NULL COLLATE NOCASE,
    project_dir     TEXT NOT NULL,
    workspace       TEXT NOT NULL,
    applied_json    TEXT NOT NULL,         -- core::drift::LastApplied
    versions_json   TEXT NOT NULL,         -- core::drift::VersionSnapshot
    applied_at      INTEGER NOT NULL,
    PRIMARY KEY (repo, project_dir, workspace)
);

-- One row per finished check (metrics: checks per hour, checks failed).
CREATE TABLE drift_checks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    repo         TEXT NOT NULL COLLATE NOCASE,
    project_dir  TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    sha          TEXT NOT NULL,
    result       TEXT NOT NULL CHECK (result IN ('clean', 'drifted', 'failed')),
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    engine_ms    INTEGER NOT NULL
);
CREATE INDEX drift_checks_finished ON drift_checks (finished_at);

-- Drift issues and notifications waiting to be delivered (app::ports::drift::DriftOutgoing).
CREATE TABLE drift_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    repo             TEXT NOT NULL COLLATE NOCASE,
    project_dir      TEXT NOT NULL,
    workspace        TEXT NOT NULL,
    payload_json     TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    sent_at          INTEGER
);
CREATE INDEX drift_outbox_pending ON drift_outbox (state, next_attempt_at);

-- Repositories whose default branch is reconciled: where to fetch it from (learned from their
-- events), so checks after a restart need no new event.
CREATE TABLE drift_repos (
    repo             TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    clone_url        TEXT NOT NULL,
    default_branch   TEXT NOT NULL,
    installation_id  INTEGER,
    updated_at       INTEGER NOT NULL
);
