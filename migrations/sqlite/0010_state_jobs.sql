-- `import` and `state rm` runs (`kind = 'state'`, core::state_command). SQLite cannot change a
-- CHECK constraint in place: `runs` and `jobs` are rebuilt with the same columns, rows, ids and
-- indexes. Migrations run in one transaction with foreign keys on, so the checks are deferred
-- to the commit: dropping the old tables leaves `plans`, `deliveries` and the new `jobs`
-- pointing at ids that the copies put back under the same table names before the commit.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE runs_copy AS SELECT * FROM runs;
CREATE TEMP TABLE jobs_copy AS SELECT * FROM jobs;
DROP TABLE jobs;
DROP TABLE runs;

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    repo            TEXT NOT NULL,
    pr              INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('plan', 'apply', 'state')),
    trigger         TEXT NOT NULL,
    head_sha        TEXT NOT NULL,
    base_sha        TEXT NOT NULL,
    base_ref        TEXT NOT NULL,
    clone_url       TEXT NOT NULL,
    installation_id INTEGER,
    actor_json      TEXT NOT NULL,
    comment_id      INTEGER,
    event_id        TEXT UNIQUE,
    extra_args_json TEXT NOT NULL DEFAULT '[]',
    verbose         INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL CHECK (state IN ('waiting', 'active', 'finished', 'reported', 'cancelled')),
    waiting_on_pr   INTEGER,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
INSERT INTO runs SELECT id, repo, pr, kind, trigger, head_sha, base_sha, base_ref, clone_url,
    installation_id, actor_json, comment_id, event_id, extra_args_json, verbose, state,
    waiting_on_pr, created_at, finished_at FROM runs_copy;

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    position     INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('plan', 'apply', 'state')),
    project_name TEXT NOT NULL,
    project_dir  TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    project_json TEXT NOT NULL,
    plan_id      INTEGER REFERENCES plans (id),
    state        TEXT NOT NULL CHECK (state IN ('waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER,
    report_json  TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
);
INSERT INTO jobs SELECT id, run_id, position, kind, project_name, project_dir, workspace,
    project_json, plan_id, state, attempts, lease_owner, lease_until, report_json, created_at,
    started_at, finished_at FROM jobs_copy;

DROP TABLE jobs_copy;
DROP TABLE runs_copy;
CREATE INDEX runs_pr ON runs (repo, pr);
CREATE INDEX runs_state ON runs (state);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_run ON jobs (run_id);
