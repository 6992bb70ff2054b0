-- Delivery after merge (PRODUCT.md §15, `apply_mode: on_merge`): one row per merged pull request
-- whose projects apply after the merge, and the outcome per project. See app::ports::delivery.

-- The merge, what was reviewed (per project: the reviewed plan's changes, the approvals and
-- policy decisions the gate found, as JSON — app::ports::delivery::Reviewed), and the runs that
-- plan and apply the merge commit.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    repo            TEXT NOT NULL COLLATE NOCASE,
    pr              INTEGER NOT NULL,
    merge_sha       TEXT NOT NULL,
    reviewed_head   TEXT NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    merge_plan_check TEXT NOT NULL CHECK (merge_plan_check IN ('strict', 'replan')),
    reviewed_json   TEXT NOT NULL,
    plan_run_id     INTEGER UNIQUE REFERENCES runs (id),
    apply_run_id    INTEGER UNIQUE REFERENCES runs (id),
    created_at      INTEGER NOT NULL
);

-- Where each project of a delivery stands; the newest row per project decides whether it is
-- `applying` or `out_of_sync` in the sync status.
CREATE TABLE delivery_projects (
    delivery_id     INTEGER NOT NULL REFERENCES deliveries (id),
    repo            TEXT NOT NULL COLLATE NOCASE,
    project_name    TEXT NOT NULL,
    project_dir     TEXT NOT NULL,
    workspace       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('planning', 'applying', 'applied', 'nothing', 'failed', 'refused', 'blocked', 'interrupted')),
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, project_dir, workspace)
);
CREATE INDEX delivery_projects_by_project ON delivery_projects (repo, project_dir, workspace, updated_at);
