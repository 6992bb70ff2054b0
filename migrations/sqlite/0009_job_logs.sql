-- A job's terraform output as the web UI shows it: redacted before it is stored, capped per job
-- (core::ui::job_log), numbered from 1 without gaps. `seq` is also the live view's SSE event id,
-- so a viewer resumes after a restart from the store. Removed after `ui.log_retention_days`.
CREATE TABLE job_log_chunks (
    job_id     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    step       TEXT    NOT NULL,
    stream     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE INDEX job_log_chunks_created ON job_log_chunks (created_at);
