//! `sluice audit export | verify | show`: the auditor's view of the log. Everything streams from
//! the store one entry at a time, so a log of millions of entries is exported or verified in
//! constant memory.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::ports::store::{AuditQuery, Store};
use crate::adapters::store::SqliteStore;
use crate::config::Settings;
use crate::core::audit::{AuditEntry, ColumnEdited, Verifier};
use crate::core::types::UnixMs;

/// What `sluice audit` was asked to do (the CLI lowers its arguments into this).
#[derive(Debug, Clone)]
pub enum AuditTask {
    /// Stream entries (`since`/`until`: dates or RFC 3339 times), to `output` or stdout.
    Export {
        since: Option<String>,
        until: Option<String>,
        repo: Option<String>,
        format: ExportFormat,
        output: Option<std::path::PathBuf>,
    },
    /// Recompute the chain; `anchor` is a recorded `SEQ:HASH` that must still be there.
    Verify { anchor: Option<String> },
    /// Everything recorded for one commit.
    Show {
        commit: String,
        repo: Option<String>,
    },
}

/// How `export` writes entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One entry per line, as stored (the canonical fields plus `prev_hash` and `hash`).
    Jsonl,
    /// A header and one row per entry (see [`CSV_HEADER`]).
    Csv,
}

/// `2026-01-01` or an RFC 3339 time, as a bound on the log's time.
fn parse_time_bound(s: &str) -> anyhow::Result<UnixMs> {
    crate::core::audit::parse_time_bound(s).map_err(anyhow::Error::msg)
}

/// Opens the store of an existing data dir (never creates one by accident).
pub async fn open_existing(settings: &Settings) -> anyhow::Result<SqliteStore> {
    let path = settings.db_path();
    if !path.is_file() {
        bail!(
            "no Sluice store at {} (set SLUICE_DATA_DIR or --config to the server's data dir)",
            path.display()
        );
    }
    SqliteStore::open(&path).await
}

pub const CSV_HEADER: &[&str] = &[
    "seq",
    "time",
    "event_id",
    "actor_login",
    "actor_id",
    "actor_kind",
    "action",
    "repo",
    "pr",
    "base_sha",
    "head_sha",
    "project",
    "dir",
    "workspace",
    "engine",
    "engine_version",
    "result",
    "error_class",
    "duration_ms",
    "plan_sha256",
    "plan_entry_seq",
    "add",
    "change",
    "destroy",
    "replace",
    "import",
    "destroyed",
    "replaced",
    "policy",
    "approvals",
    "job_id",
    "log_url",
    "details",
    "prev_hash",
    "hash",
];

/// One CSV row. Lists are `;`-separated; structured fields (policy, approvals, details) are JSON.
pub fn csv_row(e: &AuditEntry) -> Vec<String> {
    let r = &e.record;
    let opt = |v: Option<String>| v.unwrap_or_default();
    let n = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    let c = r.changes.clone().unwrap_or_default();
    let has_changes = r.changes.is_some();
    let count = |x: u64| {
        if has_changes {
            x.to_string()
        } else {
            String::new()
        }
    };
    vec![
        e.seq.to_string(),
        e.time.clone(),
        opt(r.event_id.clone()),
        r.actor.login.clone(),
        n(r.actor.id),
        r.actor.kind.clone(),
        r.action.map(|a| a.as_str().to_string()).unwrap_or_default(),
        opt(r.repo.clone()),
        n(r.pr),
        opt(r.base_sha.clone()),
        opt(r.head_sha.clone()),
        opt(r.project.clone()),
        opt(r.dir.clone()),
        opt(r.workspace.clone()),
        opt(r.engine.clone()),
        opt(r.engine_version.clone()),
        r.result.map(|x| x.as_str().to_string()).unwrap_or_default(),
        opt(r.error_class.as_ref().map(|c| c.to_string())),
        n(r.duration_ms),
        opt(r.plan_sha256.clone()),
        n(r.plan_entry_seq),
        count(c.add),
        count(c.change),
        count(c.destroy),
        count(c.replace),
        count(c.import),
        r.destroyed.join(";"),
        r.replaced.join(";"),
        if r.policy.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.policy).unwrap_or_default()
        },
        if r.approvals.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.approvals).unwrap_or_default()
        },
        r.job_id.map(|x| x.to_string()).unwrap_or_default(),
        opt(r.log_url.clone()),
        if r.details.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.details).unwrap_or_default()
        },
        e.prev_hash.clone(),
        e.hash.clone(),
    ]
}

/// Streams entries matching `q` to `out` in `format`; returns how many were written.
pub async fn export(
    store: &dyn Store,
    q: &AuditQuery,
    format: ExportFormat,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u64> {
    export_matching(store, q, format, out, &|_| true).await
}

/// [`export`] of the entries matching `q` that `keep` also keeps (the web UI's filters the
/// store does not index: PR, actor, action, an abbreviated commit, the viewer's repositories).
pub async fn export_matching(
    store: &dyn Store,
    q: &AuditQuery,
    format: ExportFormat,
    out: &mut (dyn Write + Send),
    keep: &(dyn Fn(&AuditEntry) -> bool + Sync),
) -> anyhow::Result<u64> {
    let mut count = 0u64;
    match format {
        ExportFormat::Jsonl => {
            store
                .scan_audit(q, &mut |e| {
                    if !keep(&e) {
                        return Ok(true);
                    }
                    serde_json::to_writer(&mut *out, &e)?;
                    out.write_all(b"\n")?;
                    count += 1;
                    Ok(true)
                })
                .await?;
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(CSV_HEADER)?;
            store
                .scan_audit(q, &mut |e| {
                    if !keep(&e) {
                        return Ok(true);
                    }
                    w.write_record(csv_row(&e))?;
                    count += 1;
                    Ok(true)
                })
                .await?;
            w.flush()?;
        }
    }
    out.flush()?;
    Ok(count)
}

/// The outcome of `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok {
        count: u64,
        last_seq: u64,
        last_hash: String,
    },
    Broken {
        seq: u64,
        why: String,
        checked: u64,
    },
}

/// Recomputes the chain over the whole log; with `anchor` (`SEQ:HASH`), also checks that this
/// entry is still there unchanged (a truncated or rewritten log cannot hide behind a valid
/// chain).
pub async fn verify(store: &dyn Store, anchor: Option<&str>) -> anyhow::Result<Verdict> {
    let anchor = match anchor {
        Some(a) => {
            let (seq, hash) = a.split_once(':').context("--anchor must be SEQ:HASH")?;
            Some((
                seq.parse::<u64>()
                    .context("--anchor SEQ must be a number")?,
                hash.to_ascii_lowercase(),
            ))
        }
        None => None,
    };
    let mut v = Verifier::default();
    let mut broken: Option<(u64, String)> = None;
    let mut last_seq = 0;
    let mut anchor_seen = false;
    let scanned = store
        .scan_audit(&AuditQuery::default(), &mut |e| {
            if let Err(b) = v.check(&e) {
                broken = Some((e.seq, b.to_string()));
                return Ok(false);
            }
            if let Some((seq, hash)) = &anchor
                && e.seq == *seq
            {
                anchor_seen = true;
                if &e.hash != hash {
                    broken = Some((e.seq, format!("entry {seq} does not have the anchored hash {hash} (the log was rewritten)")));
                    return Ok(false);
                }
            }
            last_seq = e.seq;
            Ok(true)
        })
        .await;
    // A row whose filter columns disagree with its entry is refused by the store as it is read.
    if let Err(e) = scanned {
        match e.downcast_ref::<ColumnEdited>() {
            Some(edited) => broken = Some((edited.seq, edited.to_string())),
            None => return Err(e),
        }
    }
    if let Some((seq, why)) = broken {
        return Ok(Verdict::Broken {
            seq,
            why,
            checked: v.checked,
        });
    }
    if let Some((seq, _)) = &anchor
        && !anchor_seen
    {
        return Ok(Verdict::Broken {
            seq: *seq,
            why: format!(
                "the anchored entry {seq} is missing: the log ends at {last_seq} (entries were truncated)"
            ),
            checked: v.checked,
        });
    }
    Ok(Verdict::Ok {
        count: v.checked,
        last_seq,
        last_hash: v.last_hash().to_string(),
    })
}

/// A human timeline of one commit.
pub async fn show(
    store: &dyn Store,
    commit: &str,
    repo: Option<&str>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u64> {
    let commit = commit.trim().to_ascii_lowercase();
    if commit.len() < 7 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("`{commit}` is not a commit SHA");
    }
    let q = AuditQuery {
        // Full SHAs match exactly; abbreviated ones are matched while scanning.
        head_sha: (commit.len() == 40 || commit.len() == 64).then(|| commit.clone()),
        repo: repo.map(str::to_string),
        ..AuditQuery::default()
    };
    let mut n = 0u64;
    store
        .scan_audit(&q, &mut |e| {
            let r = &e.record;
            if !r
                .head_sha
                .as_deref()
                .is_some_and(|h| h.starts_with(&commit))
            {
                return Ok(true);
            }
            n += 1;
            let mut line = format!(
                "#{:<6} {}  {:<14} {:<10}",
                e.seq,
                e.time,
                r.action.map(|a| a.as_str()).unwrap_or("?"),
                r.result.map(|x| x.as_str()).unwrap_or("-"),
            );
            if let (Some(repo), Some(pr)) = (&r.repo, r.pr) {
                line.push_str(&format!(" {repo}#{pr}"));
            }
            if let Some(p) = &r.project {
                line.push_str(&format!(" project={p}"));
            }
            if let Some(ws) = &r.workspace {
                line.push_str(&format!(" workspace={ws}"));
            }
            line.push_str(&format!(" by={}({})", r.actor.login, r.actor.kind));
            writeln!(out, "{line}")?;
            if let Some(h) = &r.plan_sha256 {
                write!(out, "        plan sha256 {h}")?;
                if let Some(seq) = r.plan_entry_seq {
                    write!(out, " (planned in entry #{seq})")?;
                }
                writeln!(out)?;
            }
            if let Some(c) = &r.changes {
                writeln!(
                    out,
                    "        changes: +{} ~{} -{} (replace {}, import {})",
                    c.add, c.change, c.destroy, c.replace, c.import
                )?;
            }
            for a in &r.approvals {
                writeln!(
                    out,
                    "        approved by {} (id {}, review {}) at {}",
                    a.login,
                    a.user_id,
                    a.review_id,
                    a.submitted_at.as_deref().unwrap_or("?")
                )?;
            }
            for p in &r.policy {
                writeln!(
                    out,
                    "        policy {}: {} {}",
                    p.policy,
                    p.outcome,
                    p.reasons.join("; ")
                )?;
            }
            if let Some(ec) = &r.error_class {
                writeln!(out, "        error: {ec}")?;
            }
            for (k, v) in &r.details {
                writeln!(out, "        {k}: {v}")?;
            }
            Ok(true)
        })
        .await?;
    Ok(n)
}

pub async fn run(settings: &Settings, task: AuditTask) -> anyhow::Result<ExitCode> {
    let store = open_existing(settings).await?;
    match task {
        AuditTask::Export {
            since,
            until,
            repo,
            format,
            output,
        } => {
            let q = AuditQuery {
                since: since.as_deref().map(parse_time_bound).transpose()?,
                until: until.as_deref().map(parse_time_bound).transpose()?,
                repo,
                ..AuditQuery::default()
            };
            let n = match &output {
                Some(path) => {
                    let tmp = path.with_extension("partial");
                    let file = std::fs::File::create(&tmp)
                        .with_context(|| format!("creating {}", tmp.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = export(&store, &q, format, &mut w).await?;
                    w.into_inner()
                        .map_err(|e| e.into_error())?
                        .sync_all()
                        .with_context(|| format!("writing {}", tmp.display()))?;
                    std::fs::rename(&tmp, path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::new(std::io::stdout());
                    let n = export(&store, &q, format, &mut w).await?;
                    w.flush()?;
                    n
                }
            };
            eprintln!(
                "sluice: exported {n} audit entries{}",
                output
                    .as_deref()
                    .map(|p| format!(" to {}", p.display()))
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditTask::Verify { anchor } => match verify(&store, anchor.as_deref()).await? {
            Verdict::Ok {
                count,
                last_seq,
                last_hash,
            } => {
                println!("OK: {count} entries verified; last entry #{last_seq}, hash {last_hash}");
                println!(
                    "(record `{last_seq}:{last_hash}` and pass it as --anchor later to detect truncation)"
                );
                Ok(ExitCode::SUCCESS)
            }
            Verdict::Broken { seq, why, checked } => {
                println!("FAILED at entry #{seq}: {why}");
                println!("({checked} entries before it verified)");
                Ok(ExitCode::from(1))
            }
        },
        AuditTask::Show { commit, repo } => {
            let mut out = std::io::stdout();
            let n = show(&store, &commit, repo.as_deref(), &mut out).await?;
            if n == 0 {
                eprintln!("sluice: no audit entries for commit {commit}");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Used by tests and the benchmark: the path of a data dir's store.
pub fn db_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("sluice.db")
}
