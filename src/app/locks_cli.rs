//! `sluice locks list | release`: the operator's view of locks. A release is audited as an admin
//! action, tells the holding PR, and starts runs that were waiting for the lock.

use std::process::ExitCode;

use anyhow::Context;

use super::audit::open_existing;
use super::ports::store::{Effects, OutboxItem, Store};
use crate::adapters::clock;
use crate::config::Settings;
use crate::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult};
use crate::core::lock::LockKey;
use crate::core::reply;
use crate::core::types::{ProjectDir, RepoName, Workspace};

/// What `sluice locks` was asked to do (the CLI lowers its arguments into this).
#[derive(Debug, Clone)]
pub enum LocksTask {
    /// List locks, of one repository or all.
    List { repo: Option<String> },
    /// Release one lock; `by` is who does it (recorded), `$USER` when `None`.
    Release {
        repo: String,
        dir: String,
        workspace: String,
        by: Option<String>,
    },
}

pub async fn run(settings: &Settings, task: LocksTask) -> anyhow::Result<ExitCode> {
    let store = open_existing(settings).await?;
    match task {
        LocksTask::List { repo } => {
            let repo = repo
                .as_deref()
                .map(RepoName::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let locks = store.locks(repo.as_ref()).await?;
            if locks.is_empty() {
                eprintln!("sluice: no locks");
            }
            for l in locks {
                println!(
                    "{}\t{}\t{}\t#{}\t{}\t{}",
                    l.repo,
                    l.key.dir,
                    l.key.workspace,
                    l.pr.get(),
                    l.holder_login,
                    crate::core::audit::format_time(l.acquired_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LocksTask::Release {
            repo,
            dir,
            workspace,
            by,
        } => {
            let repo = RepoName::parse(&repo).map_err(|e| anyhow::anyhow!("{e}"))?;
            let key = LockKey {
                dir: ProjectDir::new(&dir).map_err(|e| anyhow::anyhow!("{e}"))?,
                workspace: Workspace::new(&workspace).map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            let admin = by
                .or_else(|| std::env::var("USER").ok())
                .context("say who is releasing the lock with --by")?;
            let Some((pr, started)) = release(&store, &repo, &key, &admin).await? else {
                eprintln!("sluice: {repo} has no lock on {key}");
                return Ok(ExitCode::from(1));
            };
            println!(
                "released {key} of {repo} (held by #{}); {started} waiting run(s) started",
                pr.get(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Releases `repo`'s lock on `key` as `admin` (the CLI's `--by`, the web UI's viewer): the
/// release, its audit entry (an admin action) and the comment telling the holding PR are
/// written in one transaction, and runs waiting for the lock start. Returns the PR that held it
/// and how many waiting runs started; `None` when there is no such lock.
pub async fn release(
    store: &dyn Store,
    repo: &RepoName,
    key: &LockKey,
    admin: &str,
) -> anyhow::Result<Option<(crate::core::types::PrNumber, usize)>> {
    let existing = store
        .locks(Some(repo))
        .await?
        .into_iter()
        .find(|l| l.key == *key);
    let Some(lock) = existing else {
        return Ok(None);
    };
    let record = AuditRecord::new(
        AuditAction::AdminLockRelease,
        AuditActor::admin(admin),
        AuditResult::Success,
    )
    .pr(repo, lock.pr)
    .lock(key);
    let tell = OutboxItem::comment(repo, lock.pr, reply::unlock::admin_released(admin, key));
    let effects = Effects::new(vec![tell], vec![record]);
    let (_, started) = store.release_lock(repo, key, effects, clock::now()).await?;
    Ok(Some((lock.pr, started.len())))
}
