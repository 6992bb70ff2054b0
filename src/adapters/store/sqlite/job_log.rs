//! `JobLogStore` on SQLite: the `job_log_chunks` table (migration 0009).

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::app::ports::job_log::JobLogStore;
use crate::app::ports::store::StoreResult;
use crate::core::types::UnixMs;
use crate::core::ui::job_log::{ChunkKind, LogChunk, LogStep, LogStream};

#[async_trait]
impl JobLogStore for SqliteStore {
    async fn append_log_chunks(
        &self,
        job_id: i64,
        chunks: &[LogChunk],
        now: UnixMs,
    ) -> StoreResult<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for c in chunks {
            sqlx::query(
                "INSERT INTO job_log_chunks (job_id, seq, step, stream, kind, text, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, seq) DO NOTHING",
            )
            .bind(job_id)
            .bind(i64::try_from(c.seq)?)
            .bind(c.step.as_str())
            .bind(c.stream.as_str())
            .bind(c.kind.as_str())
            .bind(&c.text)
            .bind(now.get())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn log_chunks(&self, job_id: i64, after: u64, limit: u32) -> StoreResult<Vec<LogChunk>> {
        let rows = sqlx::query(
            "SELECT seq, step, stream, kind, text FROM job_log_chunks \
             WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(job_id)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let step: String = r.try_get("step")?;
                let stream: String = r.try_get("stream")?;
                let kind: String = r.try_get("kind")?;
                Ok(LogChunk {
                    seq: u64::try_from(r.try_get::<i64, _>("seq")?)?,
                    step: LogStep::parse(&step)
                        .ok_or_else(|| anyhow::anyhow!("job log: unknown step {step:?}"))?,
                    stream: LogStream::parse(&stream)
                        .ok_or_else(|| anyhow::anyhow!("job log: unknown stream {stream:?}"))?,
                    kind: ChunkKind::parse(&kind)
                        .ok_or_else(|| anyhow::anyhow!("job log: unknown kind {kind:?}"))?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }

    async fn step_ends(&self, job_id: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT text FROM job_log_chunks WHERE job_id = ? AND kind = ? ORDER BY seq",
        )
        .bind(job_id)
        .bind(ChunkKind::StepEnd.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("text")?;
                let t = text.trim_end();
                let t = t.strip_prefix('[').unwrap_or(t);
                Ok(t.strip_suffix(']').unwrap_or(t).to_string())
            })
            .collect()
    }

    async fn remove_logs_before(&self, before: UnixMs) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM job_log_chunks WHERE created_at < ?")
            .bind(before.get())
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected())
    }
}
