//! The SQLite implementation of the delivery store port (`app::ports::delivery::DeliveryStore`):
//! `deliveries` (one per merge, what was reviewed as JSON) and `delivery_projects` (where each
//! project stands). The JSON shape of `reviewed_json` is `Vec<Reviewed>` as serde writes it.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::rows::{pr_num, repo_name, sha};
use crate::app::ports::delivery::*;
use crate::app::ports::store::StoreResult;
use crate::core::delivery::MergePlanCheck;
use crate::core::job::JobKind;
use crate::core::types::{ProjectDir, RepoName, UnixMs, Workspace};

fn row_of(r: &SqliteRow) -> anyhow::Result<DeliveryRow> {
    let check: String = r.try_get("merge_plan_check")?;
    let reviewed: String = r.try_get("reviewed_json")?;
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        repo: repo_name(&r.try_get::<String, _>("repo")?)?,
        pr: pr_num(r.try_get("pr")?)?,
        merge_sha: sha(&r.try_get::<String, _>("merge_sha")?)?,
        reviewed_head: sha(&r.try_get::<String, _>("reviewed_head")?)?,
        check: MergePlanCheck::parse(&check)
            .ok_or_else(|| anyhow::anyhow!("unknown merge_plan_check `{check}`"))?,
        reviewed: serde_json::from_str(&reviewed)?,
        plan_run_id: r.try_get("plan_run_id")?,
        apply_run_id: r.try_get("apply_run_id")?,
        created_at: UnixMs::new(r.try_get("created_at")?),
    })
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn insert_delivery(&self, d: NewDelivery, now: UnixMs) -> StoreResult<DeliveryRow> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT * FROM deliveries WHERE event_id = ?")
            .bind(&d.event_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            return row_of(&row);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deliveries (repo, pr, merge_sha, reviewed_head, event_id, merge_plan_check, reviewed_json, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(d.repo.full())
        .bind(d.pr.get() as i64)
        .bind(d.merge_sha.as_str())
        .bind(d.reviewed_head.as_str())
        .bind(&d.event_id)
        .bind(d.check.as_str())
        .bind(serde_json::to_string(&d.reviewed)?)
        .bind(now.get())
        .fetch_one(&mut *tx)
        .await?;
        for r in &d.reviewed {
            sqlx::query(
                "INSERT INTO delivery_projects (delivery_id, repo, project_name, project_dir, workspace, state, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(d.repo.full())
            .bind(r.project.as_str())
            .bind(r.dir.as_str())
            .bind(r.workspace.as_str())
            .bind(DeliveryState::Planning.as_str())
            .bind(now.get())
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query("SELECT * FROM deliveries WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row_of(&row)
    }

    async fn set_delivery_run(&self, id: i64, kind: JobKind, run_id: i64) -> StoreResult<()> {
        let sql = match kind {
            JobKind::Plan => "UPDATE deliveries SET plan_run_id = ? WHERE id = ?",
            JobKind::Apply => "UPDATE deliveries SET apply_run_id = ? WHERE id = ?",
            JobKind::State => anyhow::bail!("a delivery has no state run"),
        };
        sqlx::query(sql)
            .bind(run_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delivery_of_run(&self, run_id: i64) -> StoreResult<Option<DeliveryRow>> {
        let row = sqlx::query("SELECT * FROM deliveries WHERE plan_run_id = ? OR apply_run_id = ?")
            .bind(run_id)
            .bind(run_id)
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref().map(row_of).transpose()
    }

    async fn set_delivery_states(
        &self,
        id: i64,
        states: &[(ProjectDir, Workspace, DeliveryState)],
        now: UnixMs,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for (dir, workspace, state) in states {
            sqlx::query(
                "UPDATE delivery_projects SET state = ?, updated_at = ? \
                 WHERE delivery_id = ? AND project_dir = ? AND workspace = ?",
            )
            .bind(state.as_str())
            .bind(now.get())
            .bind(id)
            .bind(dir.as_str())
            .bind(workspace.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn project_delivery(
        &self,
        repo: &RepoName,
        dir: &ProjectDir,
        workspace: &Workspace,
    ) -> StoreResult<Option<ProjectDelivery>> {
        let row = sqlx::query(
            "SELECT d.pr, d.merge_sha, p.state, p.updated_at FROM delivery_projects p \
             JOIN deliveries d ON d.id = p.delivery_id \
             WHERE p.repo = ? AND p.project_dir = ? AND p.workspace = ? \
             ORDER BY p.delivery_id DESC LIMIT 1",
        )
        .bind(repo.full())
        .bind(dir.as_str())
        .bind(workspace.as_str())
        .fetch_optional(&self.reader)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let state: String = r.try_get("state")?;
        Ok(Some(ProjectDelivery {
            pr: pr_num(r.try_get("pr")?)?,
            merge_sha: sha(&r.try_get::<String, _>("merge_sha")?)?,
            state: DeliveryState::parse(&state)
                .ok_or_else(|| anyhow::anyhow!("unknown delivery state `{state}`"))?,
            at: UnixMs::new(r.try_get("updated_at")?),
        }))
    }
}
