//! Reading pull-request content without risking the server: the blocking work that reads a
//! commit and parses what it holds (git, HCL for module detection, YAML configuration and
//! policies) runs on a thread of its own with a large stack and a wall-clock budget.
//!
//! The inputs are bounded before they are parsed (`limits.*`, `core::hcl_scan`, `core::yaml`), so
//! the stack here is a margin, not the defence: the parsers recurse, and a tokio blocking thread
//! has 2 MiB. The budget keeps an input that is merely slow from holding the event worker: the
//! event fails with a message naming `limits.detection_timeout_secs`, and the thread finishes in
//! the background (threads cannot be stopped; the bounded inputs bound how long it takes, and
//! every git process it started is killed at the deadline: `adapters::git::set_read_deadline`). At
//! most [`MAX_RUNNING`] such threads exist at once; past that, work is refused for a retry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Stack of a reading thread: many times what the deepest input the limits admit needs
/// (`limits.hcl_depth` ≤ 500 levels of ~10 KiB each in a debug build). Only what is touched is
/// ever committed.
pub const STACK_BYTES: usize = 64 * 1024 * 1024;

/// Reading threads alive at once, including ones still finishing after their budget ran out.
pub const MAX_RUNNING: usize = 4;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Why bounded work produced no result.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    #[error(
        "{what} took longer than {secs} s (limits.detection_timeout_secs); Sluice stopped waiting"
    )]
    TimedOut { what: &'static str, secs: u64 },
    #[error("{what} failed inside Sluice (a bug): {panic}")]
    Panicked { what: &'static str, panic: String },
    #[error("{what} is waiting: {MAX_RUNNING} earlier reads of pull requests are still running")]
    Busy { what: &'static str },
}

/// Counts a reading thread from before it starts until it ends.
struct Running;

impl Running {
    fn enter() -> Option<Running> {
        RUNNING
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_RUNNING).then_some(n + 1)
            })
            .ok()
            .map(|_| Running)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `work` on a reading thread and waits at most `budget` for it. `what` names the work in
/// errors ("reading the pull request").
pub async fn run<T: Send + 'static>(
    what: &'static str,
    budget: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BoundedError> {
    let guard = Running::enter().ok_or(BoundedError::Busy { what })?;
    let deadline = std::time::Instant::now() + budget;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("sluice-read".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let _guard = guard;
            // Git started here ends when the caller stops waiting, not later.
            crate::adapters::git::set_read_deadline(Some(deadline));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = tx.send(result.map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into())
            }));
        });
    if let Err(e) = spawned {
        return Err(BoundedError::Panicked {
            what,
            panic: format!("cannot start a thread: {e}"),
        });
    }
    match tokio::time::timeout(budget, rx).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(panic))) => Err(BoundedError::Panicked { what, panic }),
        Ok(Err(_)) => Err(BoundedError::Panicked {
            what,
            panic: "the thread ended without a result".into(),
        }),
        Err(_) => {
            tracing::warn!(what, secs = budget.as_secs(), "bounded work timed out");
            Err(BoundedError::TimedOut {
                what,
                secs: budget.as_secs(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deep_recursion_fits_and_slow_work_times_out() {
        // Recursion that would overflow a 2 MiB blocking thread.
        fn down(n: u64) -> u64 {
            let pad = [n; 512];
            if n == 0 {
                0
            } else {
                std::hint::black_box(pad)[0] + down(n - 1) - n + 1
            }
        }
        let got = run("recursing", Duration::from_secs(30), || down(5000))
            .await
            .unwrap();
        assert_eq!(got, 5000);

        let err = run("sleeping", Duration::from_secs(1), || {
            std::thread::sleep(Duration::from_secs(3))
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sleeping took longer than 1 s (limits.detection_timeout_secs); Sluice stopped waiting"
        );
        let err = run("panicking", Duration::from_secs(5), || panic!("boom"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }
}
