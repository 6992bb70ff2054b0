//! Rows and JSON columns ↔ the store port's types: the only place the store's stored forms are
//! read or written. The JSON columns hold:
//!
//! * `webhook_events.event_json`: `core::event::Event`;
//! * `runs.actor_json`: `core::event::Actor`; `runs.extra_args_json`: a list of strings;
//! * `jobs.project_json`: for a plan job the `core::projects::Project`; for an apply job
//!   [`StoredApply`] (`{"project", "approvals", "policy"}`);
//! * `jobs.report_json`: [`StoredReport`] — a full report (the fields of
//!   `core::plan::ProjectReport` plus the one-word `"policy"` verdict), or
//!   `{"interrupted": why}`, `{"cancelled": why}`, `{"skipped": why}` for jobs that never ran to
//!   their end;
//! * `plans.summary_json`: `core::plan::PlanSummary`;
//! * `outbox.payload_json`: [`StoredOutgoing`], tagged by `"kind"`;
//! * `audit_log.entry_json`: the whole `core::audit::AuditEntry`.
//!
//! Text columns with a closed vocabulary (states, kinds, triggers, contexts) are written from
//! and read into their enums here; a value this version does not know is an error, not a guess.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::app::ports::StatusState;
use crate::app::ports::store::*;
use crate::core::audit::{self, AuditApproval, AuditEntry, AuditPolicyDecision};
use crate::core::event::{Actor, Event};
use crate::core::job::{JobKind, JobState};
use crate::core::lock::{Lock, LockKey};
use crate::core::plan::{PlanSummary, ProjectReport};
use crate::core::policy::PolicyVerdict;
use crate::core::projects::Project;
use crate::core::removed::Removal;
use crate::core::state_command::StateCommand;
use crate::core::types::{
    CommitSha, PrNumber, ProjectDir, ProjectName, RepoName, UnixMs, Workspace,
};

pub(super) fn pr_num(n: i64) -> anyhow::Result<PrNumber> {
    PrNumber::new(u64::try_from(n).unwrap_or(0)).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(super) fn sha(s: &str) -> anyhow::Result<CommitSha> {
    CommitSha::new(s).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(super) fn repo_name(s: &str) -> anyhow::Result<RepoName> {
    RepoName::parse(s).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(super) fn project_dir(s: &str) -> anyhow::Result<ProjectDir> {
    ProjectDir::new(s).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(super) fn workspace(s: &str) -> anyhow::Result<Workspace> {
    Workspace::new(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn project_name(s: &str) -> anyhow::Result<ProjectName> {
    ProjectName::new(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn ms(r: &SqliteRow, column: &str) -> anyhow::Result<UnixMs> {
    Ok(UnixMs::new(r.try_get(column)?))
}

fn ms_opt(r: &SqliteRow, column: &str) -> anyhow::Result<Option<UnixMs>> {
    Ok(r.try_get::<Option<i64>, _>(column)?.map(UnixMs::new))
}

fn known<T>(column: &str, value: &str, parsed: Option<T>) -> anyhow::Result<T> {
    parsed.with_context(|| format!("unknown {column} {value:?} in the store"))
}

// ---- JSON columns --------------------------------------------------------------------------------

/// `jobs.project_json` of an apply job.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredApply {
    project: Project,
    approvals: Vec<AuditApproval>,
    #[serde(default)]
    policy: Vec<AuditPolicyDecision>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    destroy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_commit: Option<CommitSha>,
}

/// A plan job's payload: the project's own fields (what payloads written before destroy plans
/// hold), and how it is planned when that is not a plain plan at the head.
#[derive(Serialize, Deserialize)]
struct StoredPlan {
    #[serde(flatten)]
    project: Project,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    destroy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_commit: Option<CommitSha>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    removed: Option<Removal>,
}

pub(super) fn payload_json(payload: &JobPayload) -> anyhow::Result<String> {
    Ok(match payload {
        JobPayload::Plan(job) => serde_json::to_string(&StoredPlan {
            project: job.project.clone(),
            destroy: job.destroy,
            config_commit: job.config_commit.clone(),
            removed: job.removed.clone(),
        })?,
        JobPayload::State(job) => serde_json::to_string(&StoredState {
            project: job.project.clone(),
            command: match &job.command {
                StateCommand::Import { .. } => "import".to_string(),
                StateCommand::StateRm { .. } => "state_rm".to_string(),
            },
            args: job.command.comment_args(),
            extra_args: job.extra_args.clone(),
            approvals: job.approvals.clone(),
            policy: job.policy.clone(),
        })?,
        JobPayload::Apply(ctx) => serde_json::to_string(&StoredApply {
            project: ctx.project.clone(),
            approvals: ctx.approvals.clone(),
            policy: ctx.policy.clone(),
            destroy: ctx.destroy,
            config_commit: ctx.config_commit.clone(),
        })?,
    })
}

fn payload_from_json(kind: JobKind, json: &str) -> Result<JobPayload, Unreadable> {
    let unreadable = |e: serde_json::Error| Unreadable(format!("the job's project: {e}"));
    match kind {
        JobKind::Plan => serde_json::from_str::<StoredPlan>(json)
            .map(|p| {
                JobPayload::Plan(PlanJob {
                    project: p.project,
                    destroy: p.destroy,
                    config_commit: p.config_commit,
                    removed: p.removed,
                })
            })
            .map_err(unreadable),
        JobKind::Apply => serde_json::from_str::<StoredApply>(json)
            .map(|a| {
                JobPayload::Apply(ApplyContext {
                    project: a.project,
                    approvals: a.approvals,
                    policy: a.policy,
                    destroy: a.destroy,
                    config_commit: a.config_commit,
                })
            })
            .map_err(unreadable),
        JobKind::State => {
            let s = serde_json::from_str::<StoredState>(json).map_err(unreadable)?;
            let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
            // Checked again: what was stored is what the grammar accepted, or it is refused.
            let command = match s.command.as_str() {
                "import" => StateCommand::import(&args),
                "state_rm" => StateCommand::state_rm(&args),
                other => {
                    return Err(Unreadable(format!("unknown state command {other:?}")));
                }
            }
            .map_err(|e| Unreadable(format!("the state command's arguments: {e}")))?;
            Ok(JobPayload::State(StateJob {
                project: s.project,
                command,
                extra_args: s.extra_args,
                approvals: s.approvals,
                policy: s.policy,
            }))
        }
    }
}

/// `jobs.project_json` of a state job (`import` / `state rm`).
#[derive(Serialize, Deserialize)]
struct StoredState {
    project: Project,
    /// `import` or `state_rm`.
    command: String,
    /// `ADDRESS ID`, or the addresses.
    args: Vec<String>,
    #[serde(default)]
    extra_args: Vec<String>,
    #[serde(default)]
    approvals: Vec<AuditApproval>,
    #[serde(default)]
    policy: Vec<AuditPolicyDecision>,
}

/// `jobs.report_json`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredReport {
    Full(Box<StoredFull>),
    Interrupted { interrupted: String },
    Cancelled { cancelled: String },
    Skipped { skipped: String },
}

#[derive(Serialize, Deserialize)]
struct StoredFull {
    #[serde(flatten)]
    report: ProjectReport,
    /// Absent in reports of jobs whose policies were never evaluated.
    #[serde(default = "no_policy")]
    policy: String,
    /// The policies behind `policy`; absent when none is named and in older reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    policy_names: Vec<String>,
    /// A plan's review input; absent for applies, failures and older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    review: Option<Box<crate::core::review::material::ReviewMaterial>>,
}

fn no_policy() -> String {
    PolicyVerdict::None.as_str().to_string()
}

pub(super) fn report_json(report: &JobReport) -> anyhow::Result<String> {
    let stored = match report {
        JobReport::Full {
            report,
            policy,
            policy_names,
            review,
        } => StoredReport::Full(Box::new(StoredFull {
            report: report.clone(),
            policy: policy.as_str().to_string(),
            policy_names: policy_names.clone(),
            review: review.clone(),
        })),
        JobReport::Interrupted(why) => StoredReport::Interrupted {
            interrupted: why.clone(),
        },
        JobReport::Cancelled(why) => StoredReport::Cancelled {
            cancelled: why.clone(),
        },
        JobReport::Skipped(why) => StoredReport::Skipped {
            skipped: why.clone(),
        },
    };
    Ok(serde_json::to_string(&stored)?)
}

fn report_from_json(json: &str) -> Result<JobReport, Unreadable> {
    match serde_json::from_str::<StoredReport>(json) {
        Ok(StoredReport::Full(f)) => Ok(JobReport::Full {
            report: f.report,
            policy: PolicyVerdict::parse(&f.policy)
                .ok_or_else(|| Unreadable(format!("unknown policy verdict {:?}", f.policy)))?,
            policy_names: f.policy_names,
            review: f.review,
        }),
        Ok(StoredReport::Interrupted { interrupted }) => Ok(JobReport::Interrupted(interrupted)),
        Ok(StoredReport::Cancelled { cancelled }) => Ok(JobReport::Cancelled(cancelled)),
        Ok(StoredReport::Skipped { skipped }) => Ok(JobReport::Skipped(skipped)),
        Err(e) => Err(Unreadable(e.to_string())),
    }
}

/// `outbox.payload_json`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredOutgoing {
    Comment {
        body: String,
    },
    Status {
        sha: CommitSha,
        context: String,
        state: String,
        description: String,
        target_url: Option<String>,
    },
    Reaction {
        comment_id: u64,
        content: String,
    },
    Write {
        key: String,
        write_kind: crate::core::review::budget::WriteKind,
        payload: GitHubWrite,
    },
}

pub(super) fn outgoing_json(message: &Outgoing) -> anyhow::Result<String> {
    let stored = match message {
        Outgoing::Comment { body } => StoredOutgoing::Comment { body: body.clone() },
        Outgoing::Status {
            sha,
            context,
            state,
            description,
            target_url,
        } => StoredOutgoing::Status {
            sha: sha.clone(),
            context: context.as_str().to_string(),
            state: state.as_str().to_string(),
            description: description.clone(),
            target_url: target_url.clone(),
        },
        Outgoing::Reaction {
            comment_id,
            content,
        } => StoredOutgoing::Reaction {
            comment_id: *comment_id,
            content: content.as_str().to_string(),
        },
        Outgoing::Write(w) => StoredOutgoing::Write {
            key: w.key.clone(),
            write_kind: w.kind,
            payload: w.payload.clone(),
        },
    };
    Ok(serde_json::to_string(&stored)?)
}

fn outgoing_from_json(json: &str) -> anyhow::Result<Outgoing> {
    Ok(match serde_json::from_str::<StoredOutgoing>(json)? {
        StoredOutgoing::Comment { body } => Outgoing::Comment { body },
        StoredOutgoing::Status {
            sha,
            context,
            state,
            description,
            target_url,
        } => Outgoing::Status {
            sha,
            context: known("status context", &context, StatusContext::parse(&context))?,
            state: known("status state", &state, StatusState::parse(&state))?,
            description,
            target_url,
        },
        StoredOutgoing::Reaction {
            comment_id,
            content,
        } => Outgoing::Reaction {
            comment_id,
            content: known("reaction", &content, Reaction::parse(&content))?,
        },
        StoredOutgoing::Write {
            key,
            write_kind,
            payload,
        } => Outgoing::Write(Box::new(Write {
            key,
            kind: write_kind,
            payload,
        })),
    })
}

pub(super) fn event_json(event: &Event) -> anyhow::Result<String> {
    serde_json::to_string(event).context("encoding the event")
}

fn event_from_json(json: &str) -> Result<Event, Unreadable> {
    serde_json::from_str(json).map_err(|e| Unreadable(format!("the stored event: {e}")))
}

pub(super) fn summary_json(summary: &PlanSummary) -> anyhow::Result<String> {
    Ok(serde_json::to_string(summary)?)
}

// ---- rows ----------------------------------------------------------------------------------------

pub(super) fn run_from_row(r: &SqliteRow) -> anyhow::Result<RunRow> {
    let actor: Actor = serde_json::from_str(r.try_get::<&str, _>("actor_json")?)?;
    let extra: Vec<String> = serde_json::from_str(r.try_get::<&str, _>("extra_args_json")?)?;
    let trigger: &str = r.try_get("trigger")?;
    let state: &str = r.try_get("state")?;
    Ok(RunRow {
        id: r.try_get("id")?,
        repo: repo_name(r.try_get("repo")?)?,
        pr: pr_num(r.try_get("pr")?)?,
        kind: JobKind::from_str(r.try_get("kind")?).map_err(anyhow::Error::msg)?,
        trigger: known("trigger", trigger, Trigger::parse(trigger))?,
        head_sha: sha(r.try_get("head_sha")?)?,
        base_sha: sha(r.try_get("base_sha")?)?,
        base_ref: r.try_get("base_ref")?,
        clone_url: r.try_get("clone_url")?,
        installation_id: r
            .try_get::<Option<i64>, _>("installation_id")?
            .map(|v| v as u64),
        actor,
        comment_id: r.try_get::<Option<i64>, _>("comment_id")?.map(|v| v as u64),
        event_id: r.try_get("event_id")?,
        extra_args: extra,
        verbose: r.try_get::<i64, _>("verbose")? != 0,
        state: known("run state", state, RunState::parse(state))?,
        waiting_on_pr: r
            .try_get::<Option<i64>, _>("waiting_on_pr")?
            .map(pr_num)
            .transpose()?,
        created_at: ms(r, "created_at")?,
    })
}

pub(super) fn job_from_row(r: &SqliteRow) -> anyhow::Result<JobRow> {
    let kind = JobKind::from_str(r.try_get("kind")?).map_err(anyhow::Error::msg)?;
    Ok(JobRow {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        position: r.try_get("position")?,
        kind,
        project_name: project_name(r.try_get("project_name")?)?,
        project_dir: project_dir(r.try_get("project_dir")?)?,
        workspace: workspace(r.try_get("workspace")?)?,
        payload: payload_from_json(kind, r.try_get("project_json")?),
        plan_id: r.try_get("plan_id")?,
        state: JobState::from_str(r.try_get("state")?).map_err(anyhow::Error::msg)?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        report: r
            .try_get::<Option<&str>, _>("report_json")?
            .map(report_from_json),
        created_at: ms(r, "created_at")?,
        started_at: ms_opt(r, "started_at")?,
        finished_at: ms_opt(r, "finished_at")?,
    })
}

pub(super) fn plan_from_row(r: &SqliteRow) -> anyhow::Result<PlanRow> {
    Ok(PlanRow {
        id: r.try_get("id")?,
        repo: repo_name(r.try_get("repo")?)?,
        pr: pr_num(r.try_get("pr")?)?,
        project_name: project_name(r.try_get("project_name")?)?,
        project_dir: project_dir(r.try_get("project_dir")?)?,
        workspace: workspace(r.try_get("workspace")?)?,
        head_sha: sha(r.try_get("head_sha")?)?,
        job_id: r.try_get("job_id")?,
        plan_file: PathBuf::from(r.try_get::<String, _>("plan_file")?),
        plan_sha256: r.try_get("plan_sha256")?,
        summary: serde_json::from_str(r.try_get::<&str, _>("summary_json")?).ok(),
        audit_seq: r.try_get::<Option<i64>, _>("audit_seq")?.map(|v| v as u64),
        created_at: ms(r, "created_at")?,
        applied_at: ms_opt(r, "applied_at")?,
        discarded_at: ms_opt(r, "discarded_at")?,
    })
}

pub(super) fn lock_from_row(r: &SqliteRow) -> anyhow::Result<Lock> {
    Ok(Lock {
        repo: repo_name(r.try_get("repo")?)?,
        key: LockKey {
            dir: project_dir(r.try_get("project_dir")?)?,
            workspace: workspace(r.try_get("workspace")?)?,
        },
        pr: pr_num(r.try_get("pr")?)?,
        holder_login: r.try_get("holder_login")?,
        acquired_at: ms(r, "acquired_at")?,
    })
}

pub(super) fn override_from_row(r: &SqliteRow) -> anyhow::Result<PolicyOverrideRow> {
    Ok(PolicyOverrideRow {
        repo: repo_name(r.try_get("repo")?)?,
        pr: pr_num(r.try_get("pr")?)?,
        head_sha: sha(r.try_get("head_sha")?)?,
        project: project_name(r.try_get("project")?)?,
        policy: r.try_get("policy")?,
        by_login: r.try_get("by_login")?,
        by_id: r.try_get::<Option<i64>, _>("by_id")?.map(|v| v as u64),
        created_at: ms(r, "created_at")?,
    })
}

pub(super) fn stored_event_from_row(r: &SqliteRow) -> anyhow::Result<StoredEvent> {
    Ok(StoredEvent {
        delivery_id: r.try_get("delivery_id")?,
        kind: r.try_get("kind")?,
        event: event_from_json(r.try_get("event_json")?),
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        last_error: r.try_get("error")?,
    })
}

/// The schema calls a dead letter `failed` (its name since the first version).
pub(super) fn event_state_column(state: EventState) -> &'static str {
    match state {
        EventState::Pending => "pending",
        EventState::Done => "done",
        EventState::Dead => "failed",
    }
}

pub(super) fn event_row_from_row(r: &SqliteRow) -> anyhow::Result<EventRow> {
    let state = match r.try_get::<&str, _>("state")? {
        "pending" => EventState::Pending,
        "done" => EventState::Done,
        _ => EventState::Dead,
    };
    Ok(EventRow {
        delivery_id: r.try_get("delivery_id")?,
        kind: r.try_get("kind")?,
        state,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        received_at: ms(r, "received_at")?,
        claimed_at: ms_opt(r, "claimed_at")?,
        dead_at: ms_opt(r, "dead_at")?,
        error: r.try_get("error")?,
        event: event_from_json(r.try_get("event_json")?).ok(),
    })
}

/// `pr_objects.objects_json`: [`PrObjects`] as serde writes it.
pub(super) fn pr_objects_json(objects: &PrObjects) -> anyhow::Result<String> {
    Ok(serde_json::to_string(objects)?)
}

pub(super) fn pr_objects_from_json(json: &str) -> anyhow::Result<PrObjects> {
    serde_json::from_str(json).context("pr_objects.objects_json is not readable")
}

pub(super) fn outbox_from_row(r: &SqliteRow) -> anyhow::Result<OutboxRow> {
    let pr: Option<i64> = r.try_get("pr")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        item: OutboxItem {
            repo: repo_name(r.try_get("repo")?)?,
            pr: pr.map(pr_num).transpose()?,
            message: outgoing_from_json(r.try_get::<&str, _>("payload_json")?)?,
        },
        attempts: r.try_get::<i64, _>("attempts")? as u32,
    })
}

/// Reads an audit row: the entry as stored in `entry_json`, after checking that every column
/// stored beside it (`seq`, `time_text`, `repo`, `pr`, `head_sha`, `action`, `prev_hash`,
/// `hash`: what queries filter and order on) is the one the entry implies. An edited column is
/// an error ([`audit::ColumnEdited`]), never a silently filtered answer.
pub(super) fn audit_from_row(r: &SqliteRow) -> anyhow::Result<AuditEntry> {
    let seq: i64 = r.try_get("seq")?;
    let json: &str = r.try_get("entry_json")?;
    let e: AuditEntry = serde_json::from_str(json)
        .with_context(|| format!("audit entry {seq} is not valid JSON"))?;
    let stored = audit::StoredColumns {
        seq: seq as u64,
        time: r.try_get("time_text")?,
        repo: r.try_get("repo")?,
        pr: r.try_get::<Option<i64>, _>("pr")?.map(|p| p as u64),
        head_sha: r.try_get("head_sha")?,
        action: r.try_get("action")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    };
    stored.check(&e)?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report keeps the names of the policies behind its verdict; one stored before they were
    /// kept reads with none.
    #[test]
    fn policy_names_round_trip_and_older_reports_have_none() {
        let older = r#"{"project":"net","dir":"net","workspace":"default","outcome":{"outcome":"skipped","reason":"x"},"notes":[],"policy":"fail"}"#;
        match report_from_json(older) {
            Ok(JobReport::Full {
                policy,
                policy_names,
                ..
            }) => {
                assert_eq!(policy, PolicyVerdict::Fail);
                assert!(policy_names.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let Ok(JobReport::Full { report, .. }) = report_from_json(older) else {
            unreachable!()
        };
        let named = JobReport::Full {
            report,
            policy: PolicyVerdict::Pending,
            policy_names: vec!["two-approvals".into(), "prod-owners".into()],
            review: None,
        };
        let json = report_json(&named).unwrap();
        assert!(
            json.contains(r#""policy_names":["two-approvals","prod-owners"]"#),
            "{json}"
        );
        match report_from_json(&json) {
            Ok(JobReport::Full {
                policy,
                policy_names,
                ..
            }) => {
                assert_eq!(policy, PolicyVerdict::Pending);
                assert_eq!(policy_names, ["two-approvals", "prod-owners"]);
            }
            other => panic!("{other:?}"),
        }
    }

    /// What earlier versions stored still reads: the stored forms are the schema's contract.
    #[test]
    fn stored_forms_are_stable() {
        let interrupted = r#"{"interrupted":"the worker stopped"}"#;
        assert!(matches!(
            report_from_json(interrupted),
            Ok(JobReport::Interrupted(w)) if w == "the worker stopped"
        ));
        assert_eq!(
            report_json(&JobReport::Cancelled("closed".into())).unwrap(),
            r#"{"cancelled":"closed"}"#
        );
        let status = Outgoing::Status {
            sha: CommitSha::new(&"a".repeat(40)).unwrap(),
            context: StatusContext::Plan,
            state: StatusState::Pending,
            description: "planning 1 project".into(),
            target_url: None,
        };
        let json = outgoing_json(&status).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"kind":"status","sha":"{}","context":"sluice/plan","state":"pending","description":"planning 1 project","target_url":null}}"#,
                "a".repeat(40)
            )
        );
        assert_eq!(outgoing_from_json(&json).unwrap(), status);
        assert!(report_from_json("{\"outcome\":\"nonsense\"}").is_err());
    }
}
