//! The SQLite implementation of the drift store port (`app::ports::drift::DriftStore`): the
//! tables of `0006_drift.sql`. Records, classifications and outbox payloads are JSON columns
//! written and read only here; audit entries go through the same hash chain as every other.

use anyhow::Context;
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use super::insert_audit;
use super::rows::{project_dir, repo_name, sha, workspace};
use crate::app::ports::drift::*;
use crate::app::ports::store::StoreResult;
use crate::core::audit::AuditRecord;
use crate::core::drift::{DriftRecord, IssueKind, LastApplied, VersionSnapshot};
use crate::core::event::RepoRef;
use crate::core::types::{ProjectName, RepoName, UnixMs};

fn row_of(r: &SqliteRow) -> anyhow::Result<DriftRow> {
    let record: String = r.try_get("record_json")?;
    let classification: Option<String> = r.try_get("classification_json")?;
    let checked: Option<String> = r.try_get("checked_sha")?;
    let ms = |col: &str| -> anyhow::Result<Option<UnixMs>> {
        Ok(r.try_get::<Option<i64>, _>(col)?.map(UnixMs::new))
    };
    let issue = |col: &str| -> anyhow::Result<Option<u64>> {
        Ok(r.try_get::<Option<i64>, _>(col)?.map(|n| n as u64))
    };
    Ok(DriftRow {
        key: key_of(r)?,
        name: ProjectName::new(&r.try_get::<String, _>("project_name")?)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        record: serde_json::from_str(&record).context("drift record")?,
        classification: classification
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .context("drift classification")?,
        checked_sha: checked.map(|s| sha(&s)).transpose()?,
        schedule: r.try_get("schedule")?,
        next_due_at: ms("next_due_at")?,
        requested_at: ms("requested_at")?,
        claimed_until: ms("claimed_until")?,
        drift_issue: issue("drift_issue")?,
        failure_issue: issue("failure_issue")?,
        active: r.try_get::<i64, _>("active")? != 0,
    })
}

fn key_of(r: &SqliteRow) -> anyhow::Result<DriftKey> {
    Ok(DriftKey {
        repo: repo_name(&r.try_get::<String, _>("repo")?)?,
        dir: project_dir(&r.try_get::<String, _>("project_dir")?)?,
        workspace: workspace(&r.try_get::<String, _>("workspace")?)?,
    })
}

const WHERE_KEY: &str = "repo = ? AND project_dir = ? AND workspace = ?";

async fn insert_drift_outbox(
    conn: &mut SqliteConnection,
    key: &DriftKey,
    items: &[DriftOutgoing],
    now: UnixMs,
) -> anyhow::Result<()> {
    for item in items {
        sqlx::query(
            "INSERT INTO drift_outbox (repo, project_dir, workspace, payload_json, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .bind(serde_json::to_string(item)?)
        .bind(now.get())
        .bind(now.get())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn write_record(
    conn: &mut SqliteConnection,
    key: &DriftKey,
    record: &DriftRecord,
    now: UnixMs,
) -> anyhow::Result<()> {
    let n = sqlx::query(&format!(
        "UPDATE drift_projects SET record_json = ?, updated_at = ? WHERE {WHERE_KEY}"
    ))
    .bind(serde_json::to_string(record)?)
    .bind(now.get())
    .bind(key.repo.full())
    .bind(key.dir.as_str())
    .bind(key.workspace.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    anyhow::ensure!(
        n == 1,
        "no drift record for {} {} ({})",
        key.repo,
        key.dir,
        key.workspace
    );
    Ok(())
}

#[async_trait]
impl DriftStore for SqliteStore {
    async fn apply_running(&self, key: &DriftKey) -> StoreResult<bool> {
        let running: Option<i64> = sqlx::query_scalar(
            "SELECT j.id FROM jobs j JOIN runs r ON r.id = j.run_id \
             WHERE r.repo = ? AND j.kind = 'apply' AND j.state = 'running' \
               AND j.project_dir = ? AND j.workspace = ? LIMIT 1",
        )
        .bind(key.repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(running.is_some())
    }

    async fn remember_repo(&self, repo: &RepoRef, now: UnixMs) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO drift_repos (repo, clone_url, default_branch, installation_id, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (repo) DO UPDATE SET clone_url = excluded.clone_url, default_branch = excluded.default_branch, \
               installation_id = excluded.installation_id, updated_at = excluded.updated_at",
        )
        .bind(repo.name.full())
        .bind(&repo.clone_url)
        .bind(&repo.default_branch)
        .bind(repo.installation_id.map(|i| i as i64))
        .bind(now.get())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn repo(&self, repo: &RepoName) -> StoreResult<Option<RepoRef>> {
        let r = sqlx::query("SELECT * FROM drift_repos WHERE repo = ?")
            .bind(repo.full())
            .fetch_optional(&self.reader)
            .await?;
        let Some(r) = r else { return Ok(None) };
        Ok(Some(RepoRef {
            name: repo_name(&r.try_get::<String, _>("repo")?)?,
            clone_url: r.try_get("clone_url")?,
            default_branch: r.try_get("default_branch")?,
            installation_id: r
                .try_get::<Option<i64>, _>("installation_id")?
                .map(|i| i as u64),
        }))
    }

    async fn release_claims(&self) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE drift_projects SET claimed_until = NULL WHERE claimed_until IS NOT NULL",
        )
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    async fn sync_projects(
        &self,
        repo: &RepoName,
        projects: &[DriftProject],
        now: UnixMs,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE drift_projects SET active = 0 WHERE repo = ?")
            .bind(repo.full())
            .execute(&mut *tx)
            .await?;
        let empty = serde_json::to_string(&DriftRecord::default())?;
        for p in projects {
            // A changed schedule takes its new due time; an unchanged one keeps its own.
            sqlx::query(
                "INSERT INTO drift_projects (repo, project_dir, workspace, project_name, record_json, schedule, next_due_at, active, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?) \
                 ON CONFLICT (repo, project_dir, workspace) DO UPDATE SET \
                   project_name = excluded.project_name, active = 1, updated_at = excluded.updated_at, \
                   next_due_at = CASE WHEN drift_projects.schedule IS excluded.schedule AND drift_projects.next_due_at IS NOT NULL \
                                      THEN drift_projects.next_due_at ELSE excluded.next_due_at END, \
                   schedule = excluded.schedule",
            )
            .bind(p.key.repo.full())
            .bind(p.key.dir.as_str())
            .bind(p.key.workspace.as_str())
            .bind(p.name.as_str())
            .bind(&empty)
            .bind(&p.schedule)
            .bind(p.next_due_at.map(|t| t.get()))
            .bind(now.get())
            .bind(now.get())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn request_check(
        &self,
        repo: &RepoName,
        keys: &[DriftKey],
        now: UnixMs,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        if keys.is_empty() {
            sqlx::query(
                "UPDATE drift_projects SET requested_at = COALESCE(requested_at, ?) WHERE repo = ? AND active = 1",
            )
            .bind(now.get())
            .bind(repo.full())
            .execute(&mut *tx)
            .await?;
        }
        for k in keys {
            sqlx::query(&format!(
                "UPDATE drift_projects SET requested_at = COALESCE(requested_at, ?) WHERE {WHERE_KEY}"
            ))
            .bind(now.get())
            .bind(k.repo.full())
            .bind(k.dir.as_str())
            .bind(k.workspace.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        now: UnixMs,
        claim_until: UnixMs,
        limit: u32,
    ) -> StoreResult<Vec<DriftRow>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "SELECT * FROM drift_projects WHERE active = 1 \
               AND (claimed_until IS NULL OR claimed_until < ?1) \
               AND (requested_at <= ?1 OR next_due_at <= ?1) \
             ORDER BY MIN(COALESCE(requested_at, next_due_at), COALESCE(next_due_at, requested_at)) \
             LIMIT ?2",
        )
        .bind(now.get())
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut row = row_of(r)?;
            sqlx::query(&format!(
                "UPDATE drift_projects SET claimed_until = ? WHERE {WHERE_KEY}"
            ))
            .bind(claim_until.get())
            .bind(row.key.repo.full())
            .bind(row.key.dir.as_str())
            .bind(row.key.workspace.as_str())
            .execute(&mut *tx)
            .await?;
            row.claimed_until = Some(claim_until);
            out.push(row);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn renew_claim(&self, key: &DriftKey, claim_until: UnixMs) -> StoreResult<bool> {
        let n = sqlx::query(&format!(
            "UPDATE drift_projects SET claimed_until = ? WHERE {WHERE_KEY} AND claimed_until IS NOT NULL"
        ))
        .bind(claim_until.get())
        .bind(key.repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn finish_check(
        &self,
        key: &DriftKey,
        finish: CheckFinish,
        now: UnixMs,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        write_record(&mut tx, key, &finish.record, now).await?;
        let classification = finish
            .classification
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        sqlx::query(&format!(
            "UPDATE drift_projects SET classification_json = COALESCE(?, classification_json), checked_sha = ?, \
               next_due_at = ?, claimed_until = NULL, \
               requested_at = CASE WHEN requested_at > ? THEN requested_at ELSE NULL END \
             WHERE {WHERE_KEY}"
        ))
        .bind(classification)
        .bind(finish.checked_sha.as_str())
        .bind(finish.next_due_at.map(|t| t.get()))
        .bind(finish.started_at.get())
        .bind(key.repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO drift_checks (repo, project_dir, workspace, sha, result, started_at, finished_at, engine_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .bind(finish.checked_sha.as_str())
        .bind(finish.result.as_str())
        .bind(finish.started_at.get())
        .bind(now.get())
        .bind(finish.engine_ms as i64)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, finish.audit, now).await?;
        insert_drift_outbox(&mut tx, key, &finish.outbox, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_event(
        &self,
        key: &DriftKey,
        record: DriftRecord,
        audit: Vec<AuditRecord>,
        outbox: Vec<DriftOutgoing>,
        now: UnixMs,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        write_record(&mut tx, key, &record, now).await?;
        insert_audit(&mut tx, audit, now).await?;
        insert_drift_outbox(&mut tx, key, &outbox, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn project(&self, key: &DriftKey) -> StoreResult<Option<DriftRow>> {
        let r = sqlx::query(&format!("SELECT * FROM drift_projects WHERE {WHERE_KEY}"))
            .bind(key.repo.full())
            .bind(key.dir.as_str())
            .bind(key.workspace.as_str())
            .fetch_optional(&self.reader)
            .await?;
        r.as_ref().map(row_of).transpose()
    }

    async fn project_by_issue(
        &self,
        repo: &RepoName,
        number: u64,
    ) -> StoreResult<Option<DriftRow>> {
        let r = sqlx::query(
            "SELECT * FROM drift_projects WHERE repo = ? AND (drift_issue = ? OR failure_issue = ?) LIMIT 1",
        )
        .bind(repo.full())
        .bind(number as i64)
        .bind(number as i64)
        .fetch_optional(&self.reader)
        .await?;
        r.as_ref().map(row_of).transpose()
    }

    async fn projects(&self, repo: Option<&RepoName>) -> StoreResult<Vec<DriftRow>> {
        let rows = match repo {
            Some(repo) => {
                sqlx::query(
                    "SELECT * FROM drift_projects WHERE active = 1 AND repo = ? ORDER BY repo, project_dir, workspace",
                )
                .bind(repo.full())
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT * FROM drift_projects WHERE active = 1 ORDER BY repo, project_dir, workspace",
                )
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter().map(row_of).collect()
    }

    async fn accepted_projects(&self) -> StoreResult<Vec<DriftRow>> {
        let rows = sqlx::query(
            "SELECT * FROM drift_projects WHERE active = 1 AND record_json LIKE '%\"phase\":\"accepted\"%'",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(row_of).collect()
    }

    async fn record_applied(
        &self,
        key: &DriftKey,
        applied: &LastApplied,
        versions: &VersionSnapshot,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO drift_last_applied (repo, project_dir, workspace, applied_json, versions_json, applied_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (repo, project_dir, workspace) DO UPDATE SET applied_json = excluded.applied_json, \
               versions_json = excluded.versions_json, applied_at = excluded.applied_at",
        )
        .bind(key.repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .bind(serde_json::to_string(applied)?)
        .bind(serde_json::to_string(versions)?)
        .bind(applied.at.timestamp_millis())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn last_applied(
        &self,
        key: &DriftKey,
    ) -> StoreResult<Option<(LastApplied, VersionSnapshot)>> {
        let r = sqlx::query(&format!(
            "SELECT applied_json, versions_json FROM drift_last_applied WHERE {WHERE_KEY}"
        ))
        .bind(key.repo.full())
        .bind(key.dir.as_str())
        .bind(key.workspace.as_str())
        .fetch_optional(&self.reader)
        .await?;
        let Some(r) = r else { return Ok(None) };
        let a: String = r.try_get("applied_json")?;
        let v: String = r.try_get("versions_json")?;
        Ok(Some((serde_json::from_str(&a)?, serde_json::from_str(&v)?)))
    }

    async fn checks_since(&self, since: UnixMs) -> StoreResult<Vec<CheckRow>> {
        let rows = sqlx::query("SELECT * FROM drift_checks WHERE finished_at >= ? ORDER BY id")
            .bind(since.get())
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let result: String = r.try_get("result")?;
                Ok(CheckRow {
                    key: key_of(r)?,
                    sha: sha(&r.try_get::<String, _>("sha")?)?,
                    result: CheckResult::parse(&result)
                        .with_context(|| format!("check result {result:?}"))?,
                    started_at: UnixMs::new(r.try_get("started_at")?),
                    finished_at: UnixMs::new(r.try_get("finished_at")?),
                    engine_ms: r.try_get::<i64, _>("engine_ms")? as u64,
                })
            })
            .collect()
    }

    async fn due_drift_outbox(&self, now: UnixMs, limit: u32) -> StoreResult<Vec<DriftOutboxRow>> {
        let rows = sqlx::query(
            "SELECT * FROM drift_outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= ? AND o.id = ( \
                 SELECT MIN(p.id) FROM drift_outbox p WHERE p.state = 'pending' AND p.repo = o.repo \
                   AND p.project_dir = o.project_dir AND p.workspace = o.workspace) \
             ORDER BY o.id LIMIT ?",
        )
        .bind(now.get())
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("payload_json")?;
                Ok(DriftOutboxRow {
                    id: r.try_get("id")?,
                    key: key_of(r)?,
                    item: serde_json::from_str(&payload).context("drift outbox payload")?,
                    attempts: r.try_get::<i64, _>("attempts")? as u32,
                })
            })
            .collect()
    }

    async fn drift_outbox_sent(
        &self,
        id: i64,
        issue: Option<(IssueKind, Option<u64>)>,
        now: UnixMs,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(
            "UPDATE drift_outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ? \
             RETURNING repo, project_dir, workspace",
        )
        .bind(now.get())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if let Some((kind, number)) = issue {
            let key = key_of(&r)?;
            let col = match kind {
                IssueKind::Drift => "drift_issue",
                IssueKind::CheckFailed => "failure_issue",
            };
            sqlx::query(&format!(
                "UPDATE drift_projects SET {col} = ? WHERE {WHERE_KEY}"
            ))
            .bind(number.map(|n| n as i64))
            .bind(key.repo.full())
            .bind(key.dir.as_str())
            .bind(key.workspace.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn drift_outbox_retry(&self, id: i64, error: &str, retry_at: UnixMs) -> StoreResult<()> {
        sqlx::query("UPDATE drift_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?")
            .bind(error)
            .bind(retry_at.get())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn drift_outbox_failed(&self, id: i64, error: &str) -> StoreResult<()> {
        sqlx::query("UPDATE drift_outbox SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::core::drift::{DriftEvent, apply};
    use crate::core::types::{CommitSha, ProjectDir, Workspace};

    fn key(dir: &str) -> DriftKey {
        DriftKey {
            repo: RepoName::parse("acme/infra").unwrap(),
            dir: ProjectDir::new(dir).unwrap(),
            workspace: Workspace::default(),
        }
    }

    fn project(dir: &str, due: Option<i64>) -> DriftProject {
        DriftProject {
            key: key(dir),
            name: ProjectName::new(&dir.replace('/', "-")).unwrap(),
            schedule: due.map(|_| "0 */6 * * *".to_string()),
            next_due_at: due.map(UnixMs::new),
        }
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("sluice.db"))
            .await
            .unwrap();
        (dir, s)
    }

    fn finish(record: DriftRecord, next: Option<i64>, started: i64) -> CheckFinish {
        CheckFinish {
            record,
            classification: None,
            checked_sha: CommitSha::new(&"a".repeat(40)).unwrap(),
            next_due_at: next.map(UnixMs::new),
            result: CheckResult::Clean,
            started_at: UnixMs::new(started),
            engine_ms: 5,
            audit: Vec::new(),
            outbox: Vec::new(),
        }
    }

    #[tokio::test]
    async fn due_checks_are_claimed_once_and_come_back_when_a_claim_runs_out() {
        let (_d, s) = store().await;
        let repo = RepoName::parse("acme/infra").unwrap();
        s.sync_projects(
            &repo,
            &[project("a", Some(100)), project("b", Some(500))],
            UnixMs::new(0),
        )
        .await
        .unwrap();
        // Only what is due, once.
        let got = s
            .claim_due(UnixMs::new(200), UnixMs::new(1_000), 10)
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|r| r.key.dir.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert!(
            s.claim_due(UnixMs::new(300), UnixMs::new(1_000), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // The claim of a server that died runs out: the check is claimed again.
        let again = s
            .claim_due(UnixMs::new(1_001), UnixMs::new(2_000), 10)
            .await
            .unwrap();
        let dirs: Vec<&str> = again.iter().map(|r| r.key.dir.as_str()).collect();
        assert_eq!(dirs, ["a", "b"]);
        // A finished check is due at its next time; a request makes it due now.
        let at = Utc.timestamp_millis_opt(1_500).unwrap();
        let step = apply(&DriftRecord::default(), &DriftEvent::CheckClean { at }).unwrap();
        s.finish_check(
            &key("a"),
            finish(step.record.clone(), Some(9_000), 1_001),
            UnixMs::new(1_500),
        )
        .await
        .unwrap();
        assert!(
            s.claim_due(UnixMs::new(2_001), UnixMs::new(3_000), 10)
                .await
                .unwrap()
                .iter()
                .all(|r| r.key.dir.as_str() != "a")
        );
        s.request_check(&repo, &[key("a")], UnixMs::new(2_500))
            .await
            .unwrap();
        let got = s
            .claim_due(UnixMs::new(2_600), UnixMs::new(3_000), 10)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].record, step.record);
        // A schedule that did not change keeps its due time; a project that left is inactive.
        s.sync_projects(&repo, &[project("a", Some(1))], UnixMs::new(3_000))
            .await
            .unwrap();
        let rows = s.projects(Some(&repo)).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].next_due_at, Some(UnixMs::new(9_000)));
    }

    #[tokio::test]
    async fn the_drift_outbox_goes_in_order_per_project_and_records_issue_numbers() {
        let (_d, s) = store().await;
        let repo = RepoName::parse("acme/infra").unwrap();
        s.sync_projects(&repo, &[project("a", None)], UnixMs::new(0))
            .await
            .unwrap();
        let open = DriftOutgoing::OpenIssue {
            issue: IssueKind::Drift,
            title: "t".into(),
            body: "b".into(),
            labels: vec![],
        };
        let slack = DriftOutgoing::Slack { body: "{}".into() };
        s.record_event(
            &key("a"),
            DriftRecord::default(),
            Vec::new(),
            vec![open.clone(), slack.clone()],
            UnixMs::new(1),
        )
        .await
        .unwrap();
        let due = s.due_drift_outbox(UnixMs::new(2), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].item, open);
        s.drift_outbox_sent(due[0].id, Some((IssueKind::Drift, Some(7))), UnixMs::new(3))
            .await
            .unwrap();
        assert_eq!(
            s.project(&key("a")).await.unwrap().unwrap().drift_issue,
            Some(7)
        );
        assert_eq!(
            s.project_by_issue(&repo, 7).await.unwrap().unwrap().key,
            key("a")
        );
        let due = s.due_drift_outbox(UnixMs::new(4), 10).await.unwrap();
        assert_eq!(due[0].item, slack);
        s.drift_outbox_retry(due[0].id, "503", UnixMs::new(100))
            .await
            .unwrap();
        assert!(
            s.due_drift_outbox(UnixMs::new(50), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.due_drift_outbox(UnixMs::new(100), 10).await.unwrap()[0].attempts,
            1
        );
    }
}
