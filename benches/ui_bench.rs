//! Web UI benchmarks (`cargo bench --bench ui_bench`):
//!
//! * **environments page**: p50/p99 time to render `/` for 2,000 projects (40 repositories ×
//!   50 projects in environment dirs, a tenth drifted, a tenth locked), the page as served.
//! * **live-log subscribers**: the memory held by 200 viewers of one running job's log — each an
//!   event stream (`http::ui::log_stream`) that has sent the stored log and waits for more —
//!   measured with a counting allocator (bytes allocated and not freed while they are open).
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::too_many_lines,
    reason = "a benchmark program; a failed unwrap is a failed run"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use chrono::{Duration, Utc};
use futures_util::StreamExt;
use sluice::app::ports::job_log::JobLogStore;
use sluice::core::drift::status::SyncStatus;
use sluice::core::types::UnixMs;
use sluice::core::ui::job_log::{ChunkKind, LogChunk, LogStep, LogStream};
use sluice::core::ui::pages::{self, Chrome, EnvironmentFilter, EnvironmentRow, Forms};
use sluice::core::ui::session::{SessionId, UiKeys};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn rows(n: usize) -> Vec<EnvironmentRow> {
    let now = Utc::now();
    let envs = ["prod", "staging", "dev", "qa", "sandbox"];
    (0..n)
        .map(|i| {
            let env = envs[i % envs.len()];
            EnvironmentRow {
                repo: format!("acme/infra-{:02}", i / 50),
                project: format!("svc-{i}-{env}"),
                dir: format!("envs/{env}/svc-{i}"),
                workspace: "default".into(),
                environment: Some(env.into()),
                status: if i % 10 == 0 {
                    SyncStatus::Drifted
                } else {
                    SyncStatus::Synced
                },
                last_check_at: Some(now - Duration::minutes(i as i64 % 90)),
                last_applied: Some(pages::AppliedView {
                    sha: format!("{i:040x}"),
                    pr: Some(i as u64 + 1),
                    by: "ana".into(),
                    at: now - Duration::hours(i as i64 % 48),
                }),
                drift_age_seconds: (i % 10 == 0).then_some(3600),
                lock: (i % 10 == 5).then(|| pages::LockHolder {
                    pr: 7,
                    by: "bob".into(),
                    since: now - Duration::minutes(5),
                }),
            }
        })
        .collect()
}

fn environments() {
    let keys = UiKeys::derive(&[7u8; 32]).unwrap();
    let chrome = Chrome {
        viewer: "ana".into(),
        admin: true,
        can_logout: true,
        forms: Forms::new(&keys, &SessionId::DEV),
        github_web: "https://github.com".into(),
        insecure_no_auth: false,
    };
    let rows = rows(2000);
    let filter = EnvironmentFilter::default();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..200 {
        let t = Instant::now();
        let html = pages::environments_page(&chrome, &rows, &filter, Utc::now());
        times.push(t.elapsed());
        bytes = html.len();
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    println!(
        "environments page, 2,000 projects: p50 {:.1} ms, p99 {:.1} ms ({} KiB of HTML, 200 renders)",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        bytes / 1024
    );
}

/// A job's stored log in memory.
struct MemLog(Vec<LogChunk>);

#[async_trait::async_trait]
impl JobLogStore for MemLog {
    async fn append_log_chunks(&self, _: i64, _: &[LogChunk], _: UnixMs) -> anyhow::Result<()> {
        Ok(())
    }
    async fn log_chunks(&self, _: i64, after: u64, limit: u32) -> anyhow::Result<Vec<LogChunk>> {
        Ok(self
            .0
            .iter()
            .filter(|c| c.seq > after)
            .take(limit as usize)
            .cloned()
            .collect())
    }
    async fn step_ends(&self, _: i64) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }
    async fn remove_logs_before(&self, _: UnixMs) -> anyhow::Result<u64> {
        Ok(0)
    }
}

fn subscribers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A running job with 64 stored chunks of 1 KiB (no end yet).
        let chunks: Vec<LogChunk> = (1..=64)
            .map(|seq| LogChunk {
                seq,
                step: LogStep::Plan,
                stream: LogStream::Stdout,
                kind: ChunkKind::Output,
                text: "x".repeat(1023) + "\n",
            })
            .collect();
        let store: Arc<dyn JobLogStore> = Arc::new(MemLog(chunks));
        let before = LIVE.load(Ordering::Relaxed);
        let mut streams = Vec::new();
        let mut sent = 0usize;
        for _ in 0..200 {
            let mut s = Box::pin(sluice::http::ui::log_stream(store.clone(), 1, 0));
            // The retry line, then the stored log: the viewer is now waiting for more.
            for _ in 0..2 {
                sent += s.next().await.unwrap().unwrap().len();
            }
            streams.push(s);
        }
        let held = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "200 live-log subscribers: {:.1} KiB held in total ({:.0} bytes each) after sending {} KiB each",
            held as f64 / 1024.0,
            held as f64 / 200.0,
            sent / 200 / 1024
        );
        drop(streams);
    });
}

fn main() {
    let which = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if which.as_deref().is_none_or(|w| "environments".contains(w)) {
        environments();
    }
    if which.as_deref().is_none_or(|w| "subscribers".contains(w)) {
        subscribers();
    }
}
