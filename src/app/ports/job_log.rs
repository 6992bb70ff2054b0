//! The job log port: a job's output as stored chunks (`core::ui::job_log`), appended while the
//! job runs and read by the log page and its live stream — from the store, so both work after
//! a restart and for finished jobs.

use async_trait::async_trait;

use super::store::StoreResult;
use crate::core::types::UnixMs;
use crate::core::ui::job_log::LogChunk;

/// Where job logs are kept. Chunks of one job are appended in `seq` order by one writer.
#[async_trait]
pub trait JobLogStore: Send + Sync {
    /// Appends `chunks` of job `job_id` (an existing `(job_id, seq)` is kept as it is).
    async fn append_log_chunks(
        &self,
        job_id: i64,
        chunks: &[LogChunk],
        now: UnixMs,
    ) -> StoreResult<()>;

    /// Up to `limit` chunks of job `job_id` after `after`, in `seq` order.
    async fn log_chunks(&self, job_id: i64, after: u64, limit: u32) -> StoreResult<Vec<LogChunk>>;

    /// What each step of job `job_id` took, from its `StepEnd` chunks, in `seq` order: the
    /// chunk's text without brackets and newline (`init: 2.3 s, ok`). Empty for a job whose
    /// log was removed by retention or that ran no step yet.
    async fn step_ends(&self, job_id: i64) -> StoreResult<Vec<String>>;

    /// Removes the chunks written before `before` (the log retention); returns how many.
    async fn remove_logs_before(&self, before: UnixMs) -> StoreResult<u64>;
}
