//! Test helpers shared by the policy tests: fixtures (projects, approvals, plans, teams) and
//! compact, stable text views of policies and decisions for snapshots. Test-only.

use std::fmt::Write as _;

use super::eval::{Decision, Outcome, TeamMembership};
use super::model::{Approvals, Combine, Pattern, Policy, Principals, RuleKind, Scope};
use crate::core::apply_gate::Approval;
use crate::core::plan::{Plan, parse_plan_json};
use crate::core::projects::Project;
use crate::core::types::{CommitSha, Engine, ProjectDir, ProjectName, Workspace};

pub const CREATE: &str = include_str!("../../../tests/fixtures/plans/create.json");
pub const MIXED: &str = include_str!("../../../tests/fixtures/plans/mixed.json");
pub const NOCHANGE: &str = include_str!("../../../tests/fixtures/plans/nochange.json");
pub const AWS_DB: &str = include_str!("../../../tests/fixtures/plans/aws_db.json");
pub const FUTURE: &str = include_str!("../../../tests/fixtures/plans/future.json");
pub const BUCKETS: &str = include_str!("../../../tests/fixtures/plans/buckets.json");

pub fn plan(json: &str) -> Plan {
    parse_plan_json(json.as_bytes()).expect("fixture plan parses")
}

pub fn sha(c: char) -> CommitSha {
    CommitSha::new(&c.to_string().repeat(40)).expect("valid sha")
}

pub fn project(name: &str, dir: &str, workspace: &str) -> Project {
    Project {
        name: ProjectName::new(name).expect("valid name"),
        dir: ProjectDir::new(dir).expect("valid dir"),
        workspace: Workspace::new(workspace).expect("valid workspace"),
        engine: Engine::Terraform,
        terraform_version: None,
        autoplan: true,
        when_modified: Vec::new(),
        apply_requirements: Vec::new(),
        depends_on: Vec::new(),
        env: Default::default(),
        config_pos: None,
        drift: Default::default(),
    }
}

/// An approval of commit `commit` (`None`: unknown commit).
pub fn approval(login: &str, commit: Option<char>) -> Approval {
    Approval {
        login: login.to_string(),
        user_id: login.len() as u64,
        review_id: 1000 + login.len() as u64,
        submitted_at: Some("2026-11-22T10:00:00Z".to_string()),
        commit_id: commit.map(sha),
    }
}

/// `[("acme/dba", Some(&["carol"])), ("acme/gone", None)]`.
pub fn teams(list: &[(&str, Option<&[&str]>)]) -> TeamMembership {
    let mut t = TeamMembership::new();
    for (team, members) in list {
        let (org, slug) = team.split_once('/').expect("org/slug");
        t.insert(
            org,
            slug,
            members.map(|m| m.iter().map(|s| s.to_string()).collect()),
        );
    }
    t
}

fn patterns(list: &Option<Vec<Pattern>>) -> String {
    match list {
        None => "*".to_string(),
        Some(ps) => ps.iter().map(Pattern::as_str).collect::<Vec<_>>().join("|"),
    }
}

fn principals(p: &Principals) -> String {
    let mut items: Vec<String> = p.users.iter().map(|u| format!("@{}", u.value)).collect();
    items.extend(p.teams.iter().map(|t| t.value.to_string()));
    format!("[{}]", items.join(" "))
}

fn approvals(a: &Approvals) -> String {
    let groups: Vec<String> = a
        .groups
        .iter()
        .map(|g| {
            format!(
                "{}×{}",
                g.minimum,
                g.from.as_ref().map_or("anyone".to_string(), principals)
            )
        })
        .collect();
    let combine = match a.combine {
        Combine::AllOf => "all_of",
        Combine::AnyOf => "any_of",
    };
    format!(
        "{combine}({}){}",
        groups.join(", "),
        if a.ignore_stale { " fresh-only" } else { "" }
    )
}

fn scope(s: &Scope) -> String {
    format!(
        "projects={} workspaces={} branches={}",
        patterns(&s.projects),
        patterns(&s.workspaces),
        patterns(&s.branches)
    )
}

/// A compact, stable view of a policy for snapshots.
pub fn summary(p: &Policy) -> String {
    let mut s = format!(
        "{} @ {}:{}:{} on_failure={} owners={}\n  scope: {}\n",
        p.name,
        p.file,
        p.pos.line,
        p.pos.column,
        p.on_failure.name(),
        principals(&p.owners),
        scope(&p.scope)
    );
    for a in &p.access {
        let _ = writeln!(s, "  access {} {}", a.stage, principals(&a.allowed));
    }
    if let Some(a) = &p.approvals {
        let _ = writeln!(s, "  approvals {}", approvals(a));
    }
    for r in &p.rules {
        let what = match &r.kind {
            RuleKind::Deny { actions } => format!(
                "deny {}",
                actions
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            RuleKind::RequireApproval {
                actions,
                approvals: a,
            } => format!(
                "require_approval {} {}",
                actions
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(","),
                approvals(a)
            ),
            RuleKind::MaxDestroys(n) => format!("max_destroys {n}"),
            RuleKind::MaxChanges(n) => format!("max_changes {n}"),
            RuleKind::DenyProviders(ps) => format!(
                "deny_providers {}",
                ps.iter().map(Pattern::as_str).collect::<Vec<_>>().join("|")
            ),
            RuleKind::RequireTags { tags, attributes } => {
                format!(
                    "require_tags {} in {}",
                    tags.join(","),
                    attributes.join(",")
                )
            }
        };
        let _ = writeln!(
            s,
            "  rule {}:{} {} [{what}] types={} addresses={}",
            r.pos.line,
            r.pos.column,
            r.label(),
            patterns(&r.filter.resource_types),
            patterns(&r.filter.addresses)
        );
    }
    s
}

/// A compact, stable view of decisions for snapshots (not-applicable ones in one word).
pub fn show(decisions: &[Decision]) -> String {
    let mut s = String::new();
    for d in decisions {
        let outcome = match &d.outcome {
            Outcome::Fail { overridable_by } if !overridable_by.is_empty() => format!(
                "fail (override: {})",
                overridable_by
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Outcome::Overridden { by } => format!("overridden by @{by}"),
            _ => d.outcome_name().to_string(),
        };
        let _ = writeln!(s, "{}: {outcome}", d.policy);
        for r in &d.reasons {
            let _ = writeln!(
                s,
                "  - [{:?}] {} @ {}:{}:{}{}: {}",
                r.kind,
                r.rule,
                r.file,
                r.line,
                r.column,
                r.address
                    .as_ref()
                    .map_or_else(String::new, |a| format!(" <{a}>")),
                r.message
            );
        }
    }
    s
}
