-- The GitHub objects Sluice keeps editing instead of posting again (PRODUCT.md §17): per pull
-- request, the sticky summary comment, its follow-up comments and the last plan review
-- (`core::review::surface::PrObjects`, as JSON); per check run key
-- (`core::review::surface::check_key`), the check run's id, so annotation batches reach it.
CREATE TABLE pr_objects (
    repo          TEXT NOT NULL,          -- lowercased owner/name
    pr            INTEGER NOT NULL,
    objects_json  TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (repo, pr)
);

CREATE TABLE check_runs (
    repo          TEXT NOT NULL,          -- lowercased owner/name
    key           TEXT NOT NULL,
    check_run_id  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (repo, key)
);

-- Review, summary comment and check run writes wait in the outbox too (`kind = 'write'`,
-- `core::review::surface::GitHubWrite` in `payload_json`). SQLite cannot change a CHECK
-- constraint in place: the table is rebuilt with the same columns, rows and index.
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    repo            TEXT NOT NULL,
    pr              INTEGER,
    kind            TEXT NOT NULL CHECK (kind IN ('comment', 'status', 'reaction', 'write')),
    payload_json    TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
INSERT INTO outbox_new (id, repo, pr, kind, payload_json, state, attempts, next_attempt_at,
                        last_error, created_at, sent_at)
    SELECT id, repo, pr, kind, payload_json, state, attempts, next_attempt_at, last_error,
           created_at, sent_at
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (state, id);
