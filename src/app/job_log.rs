//! Writing a running job's log: the lines terraform prints (already redacted line by line by the
//! runner's sink) go through `core::ui::job_log::LogChunker` — redacted again across line
//! boundaries, capped, numbered — and into the store (`JobLogStore`) as they come, so the log
//! page and its live stream read them from there, during the job, after it and after a restart.
//!
//! The sink is synchronous (the process reader calls it) and never blocks: it hands lines to a
//! task that owns the chunker, ticks it every [`TICK`] so a slow line shows up within seconds,
//! and writes each batch of chunks. What the task holds is bounded by the chunker's cap.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ports::job_log::JobLogStore;
use crate::adapters::clock;
use crate::adapters::process::LineSink;
use crate::core::plan::redact::Redactor;
use crate::core::ui::job_log::{LogChunk, LogChunker, LogLimits, LogStep, LogStream};

/// How often pending output is cut into chunks while a job runs.
pub const TICK: Duration = Duration::from_millis(500);

enum Msg {
    Line(String),
    /// What follows is this step's output.
    Begin(LogStep),
    /// The step's process ended after this many ms, ok or not.
    End(LogStep, u64, bool),
}

/// The log of one running job: a [`LineSink`] for the runner, and [`JobLog::finish`] at the end.
/// Each terraform command's output is stored under its own step (`begin_step`), ended by a
/// chunk with its duration (`end_step`).
pub struct JobLog {
    tx: mpsc::UnboundedSender<Msg>,
    task: JoinHandle<()>,
}

impl JobLog {
    /// Starts the writer of job `job_id`'s log; output before the first `begin_step` is
    /// `step`'s.
    pub fn start(
        store: Arc<dyn JobLogStore>,
        job_id: i64,
        step: LogStep,
        redactor: Redactor,
        limits: LogLimits,
    ) -> Arc<JobLog> {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write(
            store,
            job_id,
            step,
            LogChunker::new(redactor, limits),
            rx,
        ));
        Arc::new(JobLog { tx, task })
    }

    /// Ends the log (the last chunks and the end marker are stored) once every sender is gone;
    /// waits for the writer.
    pub async fn finish(self: Arc<Self>) {
        match Arc::try_unwrap(self) {
            Ok(log) => {
                drop(log.tx);
                let _ = log.task.await;
            }
            // The runner still holds the sink (it should not after the job): the writer ends
            // when it lets go.
            Err(_) => tracing::warn!("job log: the sink outlived its job"),
        }
    }
}

impl LineSink for JobLog {
    fn line(&self, line: &str) {
        let _ = self.tx.send(Msg::Line(format!("{line}\n")));
    }

    fn begin_step(&self, step: LogStep) {
        let _ = self.tx.send(Msg::Begin(step));
    }

    fn end_step(&self, step: LogStep, duration: Duration, ok: bool) {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let _ = self.tx.send(Msg::End(step, ms, ok));
    }
}

async fn write(
    store: Arc<dyn JobLogStore>,
    job_id: i64,
    mut step: LogStep,
    mut chunker: LogChunker,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let chunks = tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Line(text)) => chunker.push(step, LogStream::Stdout, text.as_bytes()),
                Some(Msg::Begin(s)) => {
                    step = s;
                    Vec::new()
                }
                Some(Msg::End(s, ms, ok)) => chunker.end_step(s, ms, ok),
                None => break,
            },
            _ = tick.tick() => chunker.tick(),
        };
        store_chunks(&*store, job_id, &chunks).await;
    }
    let mut chunks = chunker.flush();
    let (rest, totals) = chunker.finish();
    chunks.extend(rest);
    store_chunks(&*store, job_id, &chunks).await;
    crate::adapters::metrics::inc_by(
        "sluice_job_log_stored_bytes_total",
        &[],
        totals.stored_bytes,
    );
}

async fn store_chunks(store: &dyn JobLogStore, job_id: i64, chunks: &[LogChunk]) {
    if chunks.is_empty() {
        return;
    }
    if let Err(e) = store.append_log_chunks(job_id, chunks, clock::now()).await {
        tracing::error!(job_id, error = %format!("{e:#}"), "storing a job's log failed");
    }
}
