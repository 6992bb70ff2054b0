-- Owners' overrides of failing policies (`approve_policies`). Keyed by the head commit: a new
-- commit needs a new override.
CREATE TABLE policy_overrides (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repo        TEXT NOT NULL,
    pr          INTEGER NOT NULL,
    head_sha    TEXT NOT NULL,
    project     TEXT NOT NULL,
    policy      TEXT NOT NULL,
    by_login    TEXT NOT NULL,
    by_id       INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX policy_overrides_pr ON policy_overrides (repo, pr, head_sha);
