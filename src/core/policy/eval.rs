//! Evaluating policies for one project and one command: the decision per policy, with reasons
//! that name the rule, the resource address and the `file:line` of the rule.
//!
//! Pure: the caller gathers the facts (PR author and target branch, approvals, the parsed plan,
//! team membership resolved through GitHub, recorded overrides) into a [`PolicyInput`]; nothing
//! here reads files, calls GitHub or looks at the clock. Everything fails closed: a team that
//! does not exist, a team whose membership was not resolved, or a missing plan at apply time
//! fails the check that needed it, with a reason saying so.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::code;
use super::model::{
    Approvals, ChangeKind, Combine, OnFailure, PlanRule, Policy, Principal, Principals, RuleKind,
    Scope, Stage, TeamRef,
};
use crate::core::apply_gate::Approval;
use crate::core::audit::AuditPolicyDecision;
use crate::core::plan::{Action, Plan, ResourceChange, ResourceMode};
use crate::core::projects::Project;
use crate::core::repo_config::Pos;
use crate::core::types::{CommitSha, ProjectName};

/// Per rule, at most this many per-resource reasons; the rest are counted in one last reason,
/// so a 20,000-resource plan cannot produce a 20,000-line comment or audit entry.
pub const MAX_REASONS_PER_RULE: usize = 20;

/// How many addresses a summary reason (caps, providers, approvals) lists before "and N more".
const MAX_LISTED: usize = 5;

/// Team membership as resolved by the caller through the GitHub API. Keys are `org/slug`,
/// lowercase; `None` means GitHub says the team does not exist (or Sluice cannot see it). A
/// team that is absent altogether was not resolved; both fail closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamMembership {
    teams: BTreeMap<String, Option<BTreeSet<String>>>,
}

/// What [`TeamMembership::lookup`] knows about a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamLookup<'a> {
    /// Members' logins, lowercase.
    Members(&'a BTreeSet<String>),
    DoesNotExist,
    /// The caller did not resolve this team (see [`super::teams_referenced`]).
    NotResolved,
}

impl TeamMembership {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the members (logins) of `org/slug`, or `None` when the team does not exist.
    pub fn insert(&mut self, org: &str, slug: &str, members: Option<Vec<String>>) {
        let key = format!("{org}/{slug}").to_ascii_lowercase();
        let members = members.map(|m| m.iter().map(|l| l.to_ascii_lowercase()).collect());
        self.teams.insert(key, members);
    }

    pub fn lookup(&self, team: &TeamRef) -> TeamLookup<'_> {
        match self.teams.get(&team.to_string()) {
            Some(Some(m)) => TeamLookup::Members(m),
            Some(None) => TeamLookup::DoesNotExist,
            None => TeamLookup::NotResolved,
        }
    }
}

/// An override recorded by `approve_policies`: `by` (a policy owner) let `policy` pass for
/// `project` at commit `head_sha`. A new commit needs a new override (the plan changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOverride {
    pub policy: String,
    pub project: ProjectName,
    pub by: String,
    pub head_sha: CommitSha,
}

/// Everything evaluation needs to know about one project of one PR, for one command.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The command being checked.
    pub stage: Stage,
    /// Who asked (for autoplan, the PR author or whoever pushed).
    pub actor: &'a str,
    /// The PR author: never counts as an approver and cannot override.
    pub author: &'a str,
    /// The PR's base branch.
    pub target_branch: &'a str,
    pub head_sha: &'a CommitSha,
    pub project: &'a Project,
    /// Other names the base branch gives the project's dir and workspace (the PR's config may
    /// name it differently): scopes by name match any of them.
    pub base_names: &'a [ProjectName],
    /// The parsed plan of this project at `head_sha`; `None` before planning.
    pub plan: Option<&'a Plan>,
    /// Approvals in force (latest decisive review per reviewer, from `apply_gate::approvals`).
    pub approvals: &'a [Approval],
    pub teams: &'a TeamMembership,
    /// Overrides recorded for this PR (any project, any commit: only matching ones count).
    pub overrides: &'a [PolicyOverride],
}

/// A policy's verdict for one project and one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub policy: String,
    pub file: String,
    pub line: usize,
    pub outcome: Outcome,
    /// Why, in rule order; failures first come from access, then approvals, then plan rules.
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The policy's scope does not cover this project, workspace or target branch.
    NotApplicable,
    Pass,
    /// Only approvals are missing, and this is the plan stage: apply will need them. Shown as
    /// "waiting for approvals"; not a failure yet.
    Pending,
    /// Failed, but `on_failure: warn`: shown, never blocks.
    Warn,
    /// Failed and blocks. `overridable_by` lists the owners who can `approve_policies` (empty
    /// for `on_failure: deny`).
    Fail {
        overridable_by: Vec<Principal>,
    },
    /// Failed, but an owner overrode it for the current head commit.
    Overridden {
        by: String,
    },
}

/// What part of a policy a reason comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    Access,
    Approvals,
    Plan,
    /// Information that does not fail the policy by itself (an override that no longer counts).
    Note,
}

/// One reason, pointing at the rule that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// `access.apply`, `approvals`, or the rule's name or kind (`deny`, `max_destroys`, …).
    pub rule: String,
    pub kind: ReasonKind,
    /// A sentence; names and addresses are in back-ticks.
    pub message: String,
    /// The resource the reason is about, when it is about one.
    pub address: Option<String>,
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Decision {
    pub fn is_blocking(&self) -> bool {
        matches!(self.outcome, Outcome::Fail { .. })
    }

    /// The outcome word for the audit log and statuses: `not_applicable`, `pass`, `pending`,
    /// `warn`, `fail`, `overridden`.
    pub fn outcome_name(&self) -> &'static str {
        match self.outcome {
            Outcome::NotApplicable => "not_applicable",
            Outcome::Pass => "pass",
            Outcome::Pending => "pending",
            Outcome::Warn => "warn",
            Outcome::Fail { .. } => "fail",
            Outcome::Overridden { .. } => "overridden",
        }
    }

    /// The audit log's view of this decision; `source_blob` is the git blob of the policy file.
    pub fn to_audit(&self, source_blob: Option<String>) -> AuditPolicyDecision {
        let mut reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|r| format!("{} ({}:{}): {}", r.rule, r.file, r.line, r.message))
            .collect();
        if let Outcome::Overridden { by } = &self.outcome {
            reasons.push(format!("overridden by @{by}"));
        }
        AuditPolicyDecision {
            policy: self.policy.clone(),
            outcome: self.outcome_name().to_string(),
            reasons,
            source_blob,
        }
    }
}

/// True when any decision blocks the command: a failure that is neither a warning nor
/// overridden. Waiting for approvals at plan time does not block (the plan runs; apply will
/// be evaluated again).
pub fn blocks(decisions: &[Decision]) -> bool {
    decisions.iter().any(Decision::is_blocking)
}

/// Evaluates every policy for one project and command, in policy order (one decision each,
/// `NotApplicable` for policies whose scope does not cover the project).
///
/// What is checked depends on the stage:
///
/// | stage | `access` entry | `approvals` and `require_approval` | other plan rules |
/// |---|---|---|---|
/// | `plan` | `plan` | reported as `Pending` when missing | when `plan` is given |
/// | `apply` | `apply` | must be met | must pass; no plan fails closed |
/// | `unlock` | `unlock` | — | — |
/// | `approve_policies` | `approve_policies` | — | — |
///
/// A failing policy's outcome follows its `on_failure`; for `require_override`, an override by
/// an owner (not the author) for this project at the current head commit turns it into
/// `Overridden`. Access to `approve_policies` itself cannot be overridden.
///
/// How the caller uses it, per command:
///
/// * `plan`: once **before** running terraform, with `plan: None` — if [`blocks`], refuse to
///   plan (only access can fail then). Once **after**, with the plan — the decisions predict
///   apply: show them with [`render_section`](super::render_section) and set `sluice/policy`
///   (a `Fail` → failure, `Pending` → pending, otherwise success); do not act on them.
/// * `apply`, `unlock`: if [`blocks`], refuse with the reasons.
/// * `approve_policies`: [`plan_overrides`] does the checking.
pub fn evaluate(policies: &[Policy], input: &PolicyInput) -> Vec<Decision> {
    policies.iter().map(|p| evaluate_one(p, input)).collect()
}

fn evaluate_one(policy: &Policy, input: &PolicyInput) -> Decision {
    let mut decision = Decision {
        policy: policy.name.clone(),
        file: policy.file.clone(),
        line: policy.pos.line,
        outcome: Outcome::NotApplicable,
        reasons: Vec::new(),
    };
    if !in_scope(&policy.scope, input) {
        return decision;
    }
    if let Some(rego) = &policy.rego {
        return super::rego::decide(policy, rego, input, decision);
    }
    let mut ctx = Ctx {
        policy,
        input,
        reasons: Vec::new(),
    };
    if let Some(rule) = policy.access.iter().find(|a| a.stage == input.stage) {
        ctx.access(&rule.allowed, rule.pos);
    }
    if matches!(input.stage, Stage::Plan | Stage::Apply) {
        if let Some(a) = &policy.approvals {
            ctx.approvals(a, "approvals", a.pos, None);
        }
        if !policy.rules.is_empty() {
            match input.plan {
                Some(plan) => {
                    for rule in &policy.rules {
                        ctx.plan_rule(rule, plan);
                    }
                }
                None if input.stage == Stage::Apply => ctx.reason(
                    "rules",
                    ReasonKind::Plan,
                    policy.rules[0].pos,
                    "there is no plan to check the rules against; run plan first".to_string(),
                    None,
                ),
                None => {}
            }
        }
    }
    decision.reasons = ctx.reasons;
    decision.outcome = outcome(policy, input, &mut decision.reasons);
    decision
}

fn in_scope(scope: &Scope, input: &PolicyInput) -> bool {
    let p = input.project;
    let any = |list: &Option<Vec<super::model::Pattern>>, values: &[&str]| {
        list.as_ref()
            .is_none_or(|ps| ps.iter().any(|pat| values.iter().any(|v| pat.is_match(v))))
    };
    let mut names = vec![p.name.as_str(), p.dir.as_str()];
    names.extend(input.base_names.iter().map(ProjectName::as_str));
    any(&scope.projects, &names)
        && any(&scope.workspaces, &[p.workspace.as_str()])
        && any(&scope.branches, &[input.target_branch])
}

/// The outcome of a policy whose reasons are `reasons` (notes do not fail it): pass, warn,
/// pending, fail, or overridden by enough of its owners ([`Policy::approve_count`]) at the
/// current head commit — with a note for every override that does not count.
pub(super) fn outcome(policy: &Policy, input: &PolicyInput, reasons: &mut Vec<Reason>) -> Outcome {
    let failing: Vec<&Reason> = reasons
        .iter()
        .filter(|r| r.kind != ReasonKind::Note)
        .collect();
    if failing.is_empty() {
        return Outcome::Pass;
    }
    if policy.on_failure == OnFailure::Warn {
        return Outcome::Warn;
    }
    if input.stage == Stage::Plan && failing.iter().all(|r| r.kind == ReasonKind::Approvals) {
        return Outcome::Pending;
    }
    if policy.on_failure == OnFailure::Deny || input.stage == Stage::ApprovePolicies {
        return Outcome::Fail {
            overridable_by: Vec::new(),
        };
    }
    // require_override: look for overrides that count, and say why others do not.
    let needed = policy.approve_count() as usize;
    let mut notes = Vec::new();
    let mut valid: Vec<String> = Vec::new();
    for o in input
        .overrides
        .iter()
        .filter(|o| o.policy == policy.name && o.project == input.project.name)
    {
        if &o.head_sha != input.head_sha {
            notes.push(format!(
                "the override by `@{}` was for commit {}; the head is now {}, so it must be overridden again",
                o.by,
                o.head_sha.short(),
                input.head_sha.short()
            ));
            continue;
        }
        if valid.iter().any(|v| v.eq_ignore_ascii_case(&o.by)) {
            continue;
        }
        match may_override(policy, &o.by, input.author, input.teams) {
            Ok(()) => {
                valid.push(o.by.clone());
                if valid.len() >= needed {
                    break;
                }
            }
            Err(why) => notes.push(format!("the override by `@{}` does not count: {why}", o.by)),
        }
    }
    if valid.len() >= needed {
        return Outcome::Overridden {
            by: valid.join(", @"),
        };
    }
    if !valid.is_empty() {
        notes.push(format!(
            "{} of the {needed} owner overrides needed so far: {}",
            valid.len(),
            valid
                .iter()
                .map(|v| format!("`@{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for n in notes {
        reasons.push(Reason {
            rule: "override".to_string(),
            kind: ReasonKind::Note,
            message: n,
            address: None,
            file: policy.file.clone(),
            line: policy.pos.line,
            column: policy.pos.column,
        });
    }
    Outcome::Fail {
        overridable_by: policy.owners.to_list(),
    }
}

/// Whether `actor` may override `policy` with `approve_policies`; the error is a sentence for
/// the reply. Only `require_override` policies can be overridden, only by their owners (listed
/// users, or members of listed teams that exist), and never by the PR's author: a PR must not
/// be able to wave its own changes through.
pub fn may_override(
    policy: &Policy,
    actor: &str,
    author: &str,
    teams: &TeamMembership,
) -> Result<(), String> {
    if policy.on_failure != OnFailure::RequireOverride {
        return Err(format!(
            "policy `{}` cannot be overridden (`on_failure: {}`); change the policy on the base branch instead",
            policy.name,
            policy.on_failure.name()
        ));
    }
    if actor.eq_ignore_ascii_case(author) {
        return Err(format!(
            "`@{actor}` opened this pull request, and authors cannot override policies on their own pull requests"
        ));
    }
    if is_member(&policy.owners, actor, teams) {
        return Ok(());
    }
    let mut why = format!(
        "only the owners of policy `{}` may override it: {}",
        policy.name,
        who(&policy.owners)
    );
    for (team, _, broken) in broken_teams(&policy.owners, teams) {
        why.push_str(&format!(
            "; {}, so it counts for nobody",
            broken_team(&team, broken)
        ));
    }
    Err(why)
}

/// What `approve_policies` should record for one project: which overrides to grant, which
/// requested policies cannot be overridden by this actor (with why), and which `--policy-set`
/// names are not policies of this repository. `requested` empty means every failing policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverridePlan {
    pub granted: Vec<PolicyOverride>,
    /// `(policy, why not)`.
    pub refused: Vec<(String, String)>,
    pub unknown: Vec<String>,
}

/// Decides what `approve_policies` by `input.actor` does for `input.project` (whatever
/// `input.stage` says): first the actor must pass the `access.approve_policies` entries in
/// scope; then every policy that fails at apply (and is requested) is overridden if the actor
/// may override it.
pub fn plan_overrides(
    policies: &[Policy],
    input: &PolicyInput,
    requested: &[String],
) -> OverridePlan {
    let mut out = OverridePlan {
        unknown: requested
            .iter()
            .filter(|r| !policies.iter().any(|p| &p.name == *r))
            .cloned()
            .collect(),
        ..OverridePlan::default()
    };
    let access = evaluate(
        policies,
        &PolicyInput {
            stage: Stage::ApprovePolicies,
            ..*input
        },
    );
    let denied: Vec<&Decision> = access.iter().filter(|d| d.is_blocking()).collect();
    if !denied.is_empty() {
        for d in denied {
            let why = d
                .reasons
                .iter()
                .filter(|r| r.kind != ReasonKind::Note)
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            out.refused.push((d.policy.clone(), why));
        }
        return out;
    }
    let decisions = evaluate(
        policies,
        &PolicyInput {
            stage: Stage::Apply,
            ..*input
        },
    );
    for (policy, d) in policies.iter().zip(&decisions) {
        let wanted = requested.is_empty() || requested.contains(&policy.name);
        if !wanted {
            continue;
        }
        if !d.is_blocking() {
            if !requested.is_empty() {
                out.refused.push((
                    policy.name.clone(),
                    format!("it does not fail for project `{}`", input.project.name),
                ));
            }
            continue;
        }
        match may_override(policy, input.actor, input.author, input.teams) {
            Ok(()) => out.granted.push(PolicyOverride {
                policy: policy.name.clone(),
                project: input.project.name.clone(),
                by: input.actor.to_ascii_lowercase(),
                head_sha: input.head_sha.clone(),
            }),
            Err(why) => out.refused.push((policy.name.clone(), why)),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

/// Why a referenced team grants nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    DoesNotExist,
    NotResolved,
}

/// Teams of `p` that do not exist or were not resolved, with where they are written.
fn broken_teams(p: &Principals, teams: &TeamMembership) -> Vec<(TeamRef, Pos, Broken)> {
    p.teams
        .iter()
        .filter_map(|t| match teams.lookup(&t.value) {
            TeamLookup::Members(_) => None,
            TeamLookup::DoesNotExist => Some((t.value.clone(), t.pos, Broken::DoesNotExist)),
            TeamLookup::NotResolved => Some((t.value.clone(), t.pos, Broken::NotResolved)),
        })
        .collect()
}

/// Whether `login` is one of the users, or a member of one of the (existing) teams.
fn is_member(p: &Principals, login: &str, teams: &TeamMembership) -> bool {
    let login = login.to_ascii_lowercase();
    p.users.iter().any(|u| u.value == login)
        || p.teams
            .iter()
            .any(|t| matches!(teams.lookup(&t.value), TeamLookup::Members(m) if m.contains(&login)))
}

fn broken_team(team: &TeamRef, why: Broken) -> String {
    match why {
        Broken::NotResolved => format!(
            "the members of team {} could not be looked up",
            code(&team.to_string())
        ),
        Broken::DoesNotExist => format!(
            "team {} does not exist (or Sluice cannot see it)",
            code(&team.to_string())
        ),
    }
}

/// "`@alice`, `@bob` or members of team `acme/infra`".
fn who(p: &Principals) -> String {
    let mut items: Vec<String> = p
        .users
        .iter()
        .map(|u| code(&format!("@{}", u.value)))
        .collect();
    items.extend(
        p.teams
            .iter()
            .map(|t| format!("members of team {}", code(&t.value.to_string()))),
    );
    match items.len() {
        0 => "nobody".to_string(),
        1 => items.remove(0),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "`a`, `b`, `c` and 4 more".
fn listed(items: &[String]) -> String {
    let shown: Vec<String> = items.iter().take(MAX_LISTED).map(|s| code(s)).collect();
    let mut s = shown.join(", ");
    if items.len() > MAX_LISTED {
        s.push_str(&format!(" and {} more", items.len() - MAX_LISTED));
    }
    s
}

/// What a resource change is, for rules; `None` for no-ops, reads, forgets and data sources
/// (dropping a data source from state is not destroying anything).
fn change_kind(rc: &ResourceChange) -> Option<ChangeKind> {
    if rc.mode == ResourceMode::Data {
        return None;
    }
    match rc.change.actions {
        Action::Create => Some(ChangeKind::Create),
        Action::Update => Some(ChangeKind::Update),
        Action::Delete => Some(ChangeKind::Delete),
        Action::DeleteThenCreate | Action::CreateThenDelete => Some(ChangeKind::Replace),
        Action::NoOp | Action::Read | Action::Forget => None,
    }
}

/// One approval group that is not satisfied.
struct Shortfall {
    pos: Pos,
    /// "2 approvals from members of team `acme/platform` (has 1: `@pat`)".
    what: String,
    /// Approvals that did not count, and why.
    not_counted: Vec<String>,
}

struct Ctx<'p, 'i, 'a> {
    policy: &'p Policy,
    input: &'i PolicyInput<'a>,
    reasons: Vec<Reason>,
}

impl Ctx<'_, '_, '_> {
    fn reason(
        &mut self,
        rule: &str,
        kind: ReasonKind,
        at: Pos,
        message: String,
        address: Option<String>,
    ) {
        self.reasons.push(Reason {
            rule: rule.to_string(),
            kind,
            message,
            address,
            file: self.policy.file.clone(),
            line: at.line,
            column: at.column,
        });
    }

    fn access(&mut self, allowed: &Principals, at: Pos) {
        let stage = self.input.stage;
        let rule = format!("access.{stage}");
        let actor = self.input.actor;
        let broken = broken_teams(allowed, self.input.teams);
        if !broken.is_empty() {
            // Fail closed even when the actor is listed another way: a misspelt team must be
            // noticed and fixed, not silently grant or deny depending on who asks.
            for (team, pos, why) in broken {
                let msg = format!(
                    "{}, so `{stage}` is refused until that is fixed",
                    broken_team(&team, why)
                );
                self.reason(&rule, ReasonKind::Access, pos, msg, None);
            }
            return;
        }
        if !is_member(allowed, actor, self.input.teams) {
            let msg = format!(
                "{} may not run `{stage}` here: allowed are {}",
                code(&format!("@{actor}")),
                who(allowed)
            );
            self.reason(&rule, ReasonKind::Access, at, msg, None);
        }
    }

    /// Checks an approvals requirement; `subject` (the changes a `require_approval` rule is
    /// about, and their address when there is one) prefixes the messages.
    fn approvals(
        &mut self,
        a: &Approvals,
        rule: &str,
        at: Pos,
        subject: Option<(&str, Option<String>)>,
    ) {
        let input = self.input;
        // Latest approval per login (the caller already reduced reviews; be safe), never the
        // author's.
        let author = input.author.to_ascii_lowercase();
        let mut by_login: BTreeMap<String, &Approval> = BTreeMap::new();
        let mut author_approved = false;
        for ap in input.approvals {
            let login = ap.login.to_ascii_lowercase();
            if login == author {
                author_approved = true;
            } else {
                by_login.insert(login, ap);
            }
        }
        let fresh =
            |ap: &Approval| !a.ignore_stale || ap.commit_id.as_ref() == Some(input.head_sha);

        let mut shortfalls: Vec<Shortfall> = Vec::new();
        for g in &a.groups {
            let counts = |login: &str| {
                g.from
                    .as_ref()
                    .is_none_or(|p| is_member(p, login, input.teams))
            };
            let from = match &g.from {
                None => "anyone but the author".to_string(),
                Some(p) => who(p),
            };
            let need = g.minimum as usize;
            // A team that does not exist fails the group closed, whoever approved.
            let broken: Vec<String> = g
                .from
                .as_ref()
                .map(|p| broken_teams(p, input.teams))
                .unwrap_or_default()
                .into_iter()
                .map(|(t, _, why)| broken_team(&t, why))
                .collect();
            if !broken.is_empty() {
                shortfalls.push(Shortfall {
                    pos: g.pos,
                    what: format!(
                        "{} from {from}, but {}: the requirement fails until that is fixed",
                        plural(need, "approval", "approvals"),
                        broken.join(" and ")
                    ),
                    not_counted: Vec::new(),
                });
                continue;
            }
            let mut counted = Vec::new();
            let mut not_counted = Vec::new();
            for (login, ap) in &by_login {
                let name = code(&format!("@{login}"));
                match (counts(login), fresh(ap)) {
                    (true, true) => counted.push(name),
                    (true, false) => {
                        let when = ap.commit_id.as_ref().map_or_else(
                            || "an unknown commit".to_string(),
                            |c| c.short().to_string(),
                        );
                        not_counted.push(format!(
                            "{name} (approved {when}, not the head {})",
                            input.head_sha.short()
                        ));
                    }
                    (false, _) => not_counted.push(format!("{name} (not one of them)")),
                }
            }
            if author_approved {
                not_counted.push(format!("{} (the author)", code(&format!("@{author}"))));
            }
            if counted.len() >= need {
                continue;
            }
            let has = if counted.is_empty() {
                "has none".to_string()
            } else {
                format!("has {}: {}", counted.len(), counted.join(", "))
            };
            shortfalls.push(Shortfall {
                pos: g.pos,
                what: format!(
                    "{} from {from} ({has})",
                    plural(need, "approval", "approvals")
                ),
                not_counted,
            });
        }
        let satisfied = a.groups.len() - shortfalls.len();
        let ok = match a.combine {
            Combine::AllOf => shortfalls.is_empty(),
            Combine::AnyOf => satisfied > 0,
        };
        if ok {
            return;
        }
        let (prefix, address) = match subject {
            Some((s, addr)) => (format!("{s}: "), addr),
            None => (String::new(), None),
        };
        let with_not_counted = |mut msg: String, not_counted: &[String]| {
            if !not_counted.is_empty() {
                msg.push_str(&format!("; not counted: {}", not_counted.join(", ")));
            }
            msg
        };
        match a.combine {
            Combine::AllOf => {
                for sf in shortfalls {
                    // A policy's own approvals point at the group that is short; a
                    // `require_approval` rule points at the rule (the changes it is about).
                    let pos = if prefix.is_empty() { sf.pos } else { at };
                    let msg =
                        with_not_counted(format!("{prefix}needs {}", sf.what), &sf.not_counted);
                    self.reason(rule, ReasonKind::Approvals, pos, msg, address.clone());
                }
            }
            Combine::AnyOf => {
                let each: Vec<&str> = shortfalls.iter().map(|sf| sf.what.as_str()).collect();
                let mut not_counted: Vec<String> = Vec::new();
                for sf in &shortfalls {
                    for n in &sf.not_counted {
                        if !not_counted.contains(n) {
                            not_counted.push(n.clone());
                        }
                    }
                }
                let msg = if each.len() == 1 {
                    format!("{prefix}needs {}", each[0])
                } else {
                    format!("{prefix}needs one of: {}", each.join("; or "))
                };
                let msg = with_not_counted(msg, &not_counted);
                self.reason(rule, ReasonKind::Approvals, at, msg, address);
            }
        }
    }

    fn plan_rule(&mut self, rule: &PlanRule, plan: &Plan) {
        let label = rule.label();
        let changes: Vec<(ChangeKind, &ResourceChange)> = plan
            .resource_changes
            .iter()
            .filter_map(|rc| change_kind(rc).map(|k| (k, rc)))
            .filter(|(_, rc)| rule.filter.matches(&rc.resource_type, &rc.address))
            .collect();
        match &rule.kind {
            RuleKind::Deny { actions } => {
                let hits: Vec<(String, Option<String>)> = changes
                    .iter()
                    .filter(|(k, _)| actions.iter().any(|a| a.matches(*k)))
                    .map(|(k, rc)| {
                        let addr = rc.display_address();
                        (format!("{} {}", k.verb(), code(&addr)), Some(addr))
                    })
                    .collect();
                self.capped(&label, ReasonKind::Plan, rule.pos, hits);
            }
            RuleKind::RequireApproval { actions, approvals } => {
                let hits: Vec<(ChangeKind, String)> = changes
                    .iter()
                    .filter(|(k, _)| actions.iter().any(|a| a.matches(*k)))
                    .map(|(k, rc)| (*k, rc.display_address()))
                    .collect();
                if hits.is_empty() {
                    return;
                }
                let shown: Vec<String> = hits
                    .iter()
                    .take(MAX_LISTED)
                    .map(|(k, a)| format!("{} {}", k.verb(), code(a)))
                    .collect();
                let mut subject = shown.join(", ");
                if hits.len() > MAX_LISTED {
                    subject.push_str(&format!(" and {} more", hits.len() - MAX_LISTED));
                }
                let address = (hits.len() == 1).then(|| hits[0].1.clone());
                self.approvals(approvals, &label, rule.pos, Some((&subject, address)));
            }
            RuleKind::MaxDestroys(max) => {
                let destroyed: Vec<String> = changes
                    .iter()
                    .filter(|(k, _)| matches!(k, ChangeKind::Delete | ChangeKind::Replace))
                    .map(|(_, rc)| rc.display_address())
                    .collect();
                self.cap(&label, rule.pos, "destroys", *max, &destroyed);
            }
            RuleKind::MaxChanges(max) => {
                let changed: Vec<String> =
                    changes.iter().map(|(_, rc)| rc.display_address()).collect();
                self.cap(&label, rule.pos, "changes", *max, &changed);
            }
            RuleKind::DenyProviders(patterns) => {
                // Every resource and data source the apply will touch, whatever its action,
                // except deletes and forgets: removing a forbidden provider must stay possible.
                let mut by_provider: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for rc in &plan.resource_changes {
                    if matches!(rc.change.actions, Action::Delete | Action::Forget) {
                        continue;
                    }
                    let names = provider_names(&rc.provider_name);
                    if patterns.iter().any(|p| names.iter().any(|n| p.is_match(n))) {
                        by_provider
                            .entry(rc.provider_name.as_str())
                            .or_default()
                            .push(rc.display_address());
                    }
                }
                for (provider, addrs) in by_provider {
                    let address = (addrs.len() == 1).then(|| addrs[0].clone());
                    let msg = format!(
                        "uses provider {}, which is not allowed ({}: {})",
                        code(provider),
                        plural(addrs.len(), "resource", "resources"),
                        listed(&addrs)
                    );
                    self.reason(&label, ReasonKind::Plan, rule.pos, msg, address);
                }
            }
            RuleKind::RequireTags { tags, attributes } => {
                let mut hits = Vec::new();
                for (k, rc) in &changes {
                    if !matches!(k, ChangeKind::Create | ChangeKind::Replace) {
                        continue;
                    }
                    if let Some(msg) = missing_tags(rc, tags, attributes) {
                        let addr = rc.display_address();
                        hits.push((format!("{} {}: {msg}", k.verb(), code(&addr)), Some(addr)));
                    }
                }
                self.capped(&label, ReasonKind::Plan, rule.pos, hits);
            }
        }
    }

    /// One reason per hit, at most [`MAX_REASONS_PER_RULE`], then one that counts the rest.
    fn capped(
        &mut self,
        rule: &str,
        kind: ReasonKind,
        at: Pos,
        hits: Vec<(String, Option<String>)>,
    ) {
        let total = hits.len();
        for (msg, addr) in hits.into_iter().take(MAX_REASONS_PER_RULE) {
            self.reason(rule, kind, at, msg, addr);
        }
        if total > MAX_REASONS_PER_RULE {
            let rest = total - MAX_REASONS_PER_RULE;
            self.reason(
                rule,
                kind,
                at,
                format!(
                    "… and {rest} more {}",
                    if rest == 1 { "resource" } else { "resources" }
                ),
                None,
            );
        }
    }

    fn cap(&mut self, rule: &str, at: Pos, verb: &str, max: u32, addrs: &[String]) {
        let n = addrs.len();
        if n <= max as usize {
            return;
        }
        let allowed = if max == 0 {
            "this rule allows none".to_string()
        } else {
            format!("more than the {max} allowed")
        };
        let address = (n == 1).then(|| addrs[0].clone());
        let msg = format!(
            "{verb} {}, {allowed}: {}",
            plural(n, "object", "objects"),
            listed(addrs)
        );
        self.reason(rule, ReasonKind::Plan, at, msg, address);
    }
}

/// The names a provider pattern is matched against: the full source address, `namespace/type`
/// and `type` (`registry.terraform.io/hashicorp/null`, `hashicorp/null`, `null`), so people can
/// write the short form they know.
fn provider_names(full: &str) -> Vec<String> {
    let bare = full.strip_prefix("provider.").unwrap_or(full);
    let parts: Vec<&str> = bare.split('/').collect();
    let mut names = vec![full.to_string()];
    if parts.len() >= 2 {
        names.push(parts[parts.len() - 2..].join("/"));
    }
    if let Some(last) = parts.last() {
        names.push((*last).to_string());
    }
    names.dedup();
    names
}

/// Why a created resource fails `require_tags`, or `None` when it passes or has none of the tag
/// attributes (the resource type does not support tags).
fn missing_tags(rc: &ResourceChange, tags: &[String], attributes: &[String]) -> Option<String> {
    let after = rc.change.after.as_object()?;
    let unknown = rc.change.after_unknown.as_object();
    let mut present_attr = false;
    let mut unknown_attrs: Vec<&str> = Vec::new();
    let mut have: BTreeSet<&str> = BTreeSet::new();
    for attr in attributes {
        let unknown_mark = unknown.and_then(|u| u.get(attr.as_str()));
        if after.contains_key(attr.as_str()) || unknown_mark.is_some() {
            present_attr = true;
        }
        match unknown_mark {
            Some(Value::Bool(true)) => {
                unknown_attrs.push(attr);
                continue;
            }
            // A map with some values unknown: those keys exist, their values come later.
            Some(Value::Object(keys)) => {
                have.extend(
                    keys.iter()
                        .filter(|(_, v)| v.as_bool() == Some(true))
                        .map(|(k, _)| k.as_str()),
                );
            }
            _ => {}
        }
        if let Some(Value::Object(map)) = after.get(attr.as_str()) {
            have.extend(
                map.iter()
                    .filter(|(_, v)| !(v.is_null() || v.as_str() == Some("")))
                    .map(|(k, _)| k.as_str()),
            );
        }
    }
    if !present_attr {
        return None;
    }
    let missing: Vec<&str> = tags
        .iter()
        .map(String::as_str)
        .filter(|t| !have.contains(t))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<String> = missing.iter().map(|t| code(t)).collect();
    let what = if missing.len() == 1 { "tag" } else { "tags" };
    if unknown_attrs.is_empty() {
        Some(format!("missing required {what} {}", names.join(", ")))
    } else {
        // Fail closed: the tags might arrive at apply time, but nobody can check that now.
        let attrs: Vec<String> = unknown_attrs.iter().map(|a| code(a)).collect();
        Some(format!(
            "required {what} {} cannot be checked: {} only known after apply",
            names.join(", "),
            if attrs.len() == 1 {
                format!("{} is", attrs[0])
            } else {
                format!("{} are", attrs.join(" and "))
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diag::has_errors;
    use crate::core::policy::parse::parse_policy_file;
    use crate::core::policy::test_support::*;

    /// Parses a `policies:` list (the file header is added) that must have no error.
    fn pol(list: &str) -> Vec<Policy> {
        let text = format!("version: 1\npolicies:\n{list}");
        let (policies, diags) = parse_policy_file("policies/t.yaml", &text);
        assert!(!has_errors(&diags), "{diags:#?}");
        policies
    }

    /// The facts of one evaluation; defaults: `@ada` asks on her own PR to `main`, project
    /// `prod-db` in `envs/prod/db`, head commit `aaaa…`, no plan, no approvals.
    struct Facts {
        stage: Stage,
        actor: &'static str,
        author: &'static str,
        branch: &'static str,
        project: Project,
        base_names: Vec<ProjectName>,
        plan: Option<Plan>,
        approvals: Vec<Approval>,
        teams: TeamMembership,
        overrides: Vec<PolicyOverride>,
        head: CommitSha,
    }

    fn facts(stage: Stage) -> Facts {
        Facts {
            stage,
            actor: "ada",
            author: "ada",
            branch: "main",
            project: project("prod-db", "envs/prod/db", "default"),
            base_names: Vec::new(),
            plan: None,
            approvals: Vec::new(),
            teams: teams(&[
                ("acme/infra", Some(&["ian", "Ada"])),
                ("acme/platform", Some(&["pat", "paula", "ada"])),
                ("acme/dba", Some(&["dora"])),
                ("acme/gone", None),
            ]),
            overrides: Vec::new(),
            head: sha('a'),
        }
    }

    impl Facts {
        fn plan(mut self, json: &str) -> Self {
            self.plan = Some(plan(json));
            self
        }
        fn approved_by(mut self, list: &[(&str, Option<char>)]) -> Self {
            self.approvals = list.iter().map(|(l, c)| approval(l, *c)).collect();
            self
        }
        fn overridden(mut self, policy: &str, by: &str, project: &str, at: char) -> Self {
            self.overrides.push(PolicyOverride {
                policy: policy.to_string(),
                project: ProjectName::new(project).unwrap(),
                by: by.to_string(),
                head_sha: sha(at),
            });
            self
        }
        fn input(&self) -> PolicyInput<'_> {
            PolicyInput {
                stage: self.stage,
                actor: self.actor,
                author: self.author,
                target_branch: self.branch,
                head_sha: &self.head,
                project: &self.project,
                base_names: &self.base_names,
                plan: self.plan.as_ref(),
                approvals: &self.approvals,
                teams: &self.teams,
                overrides: &self.overrides,
            }
        }
        fn eval(&self, policies: &[Policy]) -> Vec<Decision> {
            evaluate(policies, &self.input())
        }
        fn show(&self, policies: &[Policy]) -> String {
            show(&self.eval(policies))
        }
    }

    /// The addresses a one-policy evaluation names, in order.
    fn addresses(d: &[Decision]) -> Vec<String> {
        d[0].reasons
            .iter()
            .filter_map(|r| r.address.clone())
            .collect()
    }

    #[test]
    fn deny_actions_on_a_real_null_provider_plan() {
        // mixed.json (terraform 1.0.3): cbd is create-before-destroy, replace_me is
        // destroy-then-create, old[1] is deleted, new is created; keep/old[0] no-op; one read.
        let cases: &[(&str, &[&str])] = &[
            (
                "[delete]",
                &[
                    "null_resource.cbd",
                    "null_resource.old[1]",
                    "null_resource.replace_me",
                ],
            ),
            (
                "[replace]",
                &["null_resource.cbd", "null_resource.replace_me"],
            ),
            (
                "[create]",
                &[
                    "null_resource.cbd",
                    "null_resource.new",
                    "null_resource.replace_me",
                ],
            ),
            ("[update]", &[]),
            (
                "[create, update, delete, replace]",
                &[
                    "null_resource.cbd",
                    "null_resource.new",
                    "null_resource.old[1]",
                    "null_resource.replace_me",
                ],
            ),
        ];
        let f = facts(Stage::Apply).plan(MIXED);
        for (actions, want) in cases {
            let p = pol(&format!(
                "  - name: d\n    rules:\n      - deny: {actions}\n"
            ));
            let d = f.eval(&p);
            assert_eq!(addresses(&d), *want, "deny: {actions}");
            let outcome = if want.is_empty() { "pass" } else { "fail" };
            assert_eq!(d[0].outcome_name(), outcome, "deny: {actions}");
        }
        insta::assert_snapshot!(f.show(&pol("  - name: no-destroys\n    rules:\n      - deny: [delete]\n        resource_types: [null_*]\n")), @r"
            no-destroys: fail
              - [Plan] deny @ policies/t.yaml:5:9 <null_resource.cbd>: replaces `null_resource.cbd`
              - [Plan] deny @ policies/t.yaml:5:9 <null_resource.old[1]>: deletes `null_resource.old[1]`
              - [Plan] deny @ policies/t.yaml:5:9 <null_resource.replace_me>: replaces `null_resource.replace_me`
        ");
    }

    #[test]
    fn deny_filters_by_type_and_address() {
        let f = facts(Stage::Apply).plan(AWS_DB);
        let cases: &[(&str, &[&str])] = &[
            (
                "deny: [delete]\n        resource_types: [aws_db_instance]",
                &["aws_db_instance.legacy", "aws_db_instance.main"],
            ),
            (
                "deny: [replace]\n        resource_types: [\"aws_db_*\"]",
                &["aws_db_instance.main"],
            ),
            (
                "deny: [create]\n        addresses: [\"module.app.*\"]",
                &["module.app.aws_instance.web[0]"],
            ),
            (
                "deny: [create]\n        addresses: [\"module.app.aws_instance.web[0]\"]",
                &["module.app.aws_instance.web[0]"],
            ),
            (
                "deny: [create]\n        addresses: [\"module.app.aws_instance.web[1]\"]",
                &[],
            ),
            (
                "deny: [update]\n        resource_types: [aws_security_group]\n        addresses: [\"*.db\"]",
                &["aws_security_group.db"],
            ),
            (
                "deny: [update]\n        resource_types: [aws_instance]\n        addresses: [\"*.db\"]",
                &[],
            ),
            // The data source is a no-op; data sources are never "deleted".
            (
                "deny: [delete, update, create]\n        resource_types: [aws_caller_identity]",
                &[],
            ),
        ];
        for (rule, want) in cases {
            let p = pol(&format!("  - name: d\n    rules:\n      - {rule}\n"));
            assert_eq!(addresses(&f.eval(&p)), *want, "{rule}");
        }
    }

    #[test]
    fn caps_on_destroys_and_changes() {
        // (fixture, rule, outcome): mixed destroys 3 (2 replacements + 1 delete) and changes 4;
        // create.json creates 6; nochange.json changes nothing.
        let cases = [
            (MIXED, "max_destroys: 3", "pass"),
            (MIXED, "max_destroys: 2", "fail"),
            (MIXED, "max_changes: 4", "pass"),
            (MIXED, "max_changes: 3", "fail"),
            (CREATE, "max_destroys: 0", "pass"),
            (CREATE, "max_changes: 5", "fail"),
            (NOCHANGE, "max_changes: 0", "pass"),
            (AWS_DB, "max_destroys: 1", "fail"),
            (
                AWS_DB,
                "max_destroys: 1\n        resource_types: [aws_instance]",
                "pass",
            ),
            // `forget` (removed block) is not a destroy; the ephemeral create counts as a change.
            (FUTURE, "max_destroys: 0", "pass"),
            (FUTURE, "max_changes: 0", "fail"),
        ];
        for (json, rule, want) in cases {
            let p = pol(&format!("  - name: cap\n    rules:\n      - {rule}\n"));
            let d = facts(Stage::Apply).plan(json).eval(&p);
            assert_eq!(d[0].outcome_name(), want, "{rule}: {}", show(&d));
        }
        let p = pol(
            "  - name: cap\n    rules:\n      - max_destroys: 2\n      - max_destroys: 0\n        name: no-destroys-at-all\n      - max_changes: 1\n",
        );
        insta::assert_snapshot!(facts(Stage::Apply).plan(MIXED).show(&p), @r"
            cap: fail
              - [Plan] max_destroys @ policies/t.yaml:5:9: destroys 3 objects, more than the 2 allowed: `null_resource.cbd`, `null_resource.old[1]`, `null_resource.replace_me`
              - [Plan] no-destroys-at-all @ policies/t.yaml:6:9: destroys 3 objects, this rule allows none: `null_resource.cbd`, `null_resource.old[1]`, `null_resource.replace_me`
              - [Plan] max_changes @ policies/t.yaml:8:9: changes 4 objects, more than the 1 allowed: `null_resource.cbd`, `null_resource.new`, `null_resource.old[1]`, `null_resource.replace_me`
        ");
    }

    #[test]
    fn forbidden_providers() {
        let cases: &[(&str, &str, &str)] = &[
            (MIXED, "[hashicorp/null]", "fail"),
            (MIXED, "[\"null\"]", "fail"),
            (MIXED, "[registry.terraform.io/hashicorp/null]", "fail"),
            (MIXED, "[\"hashicorp/*\"]", "fail"),
            (MIXED, "[hashicorp/aws]", "pass"),
            // A data source read during apply runs the provider: it counts.
            (BUCKETS, "[hashicorp/external]", "fail"),
            // Only a delete of a local_file: removing a forbidden provider stays possible.
            (BUCKETS, "[hashicorp/local]", "pass"),
            (FUTURE, "[acme/future]", "fail"),
        ];
        for (json, list, want) in cases {
            let p = pol(&format!(
                "  - name: prov\n    rules:\n      - deny_providers: {list}\n"
            ));
            let d = facts(Stage::Apply).plan(json).eval(&p);
            assert_eq!(d[0].outcome_name(), *want, "{list}: {}", show(&d));
        }
        let p = pol(
            "  - name: prov\n    rules:\n      - deny_providers: [hashicorp/null, hashicorp/external]\n",
        );
        insta::assert_snapshot!(facts(Stage::Apply).plan(MIXED).show(&p), @r"
            prov: fail
              - [Plan] deny_providers @ policies/t.yaml:5:9: uses provider `registry.terraform.io/hashicorp/null`, which is not allowed (6 resources: `data.null_data_source.computed`, `null_resource.cbd`, `null_resource.keep`, `null_resource.new`, `null_resource.old[0]` and 1 more)
        ");
    }

    #[test]
    fn required_tags_on_created_resources() {
        let p = pol(
            "  - name: tags\n    rules:\n      - require_tags: [Owner, CostCenter]\n        resource_types: [\"aws_*\"]\n",
        );
        // Passes: tagged, default_tagged (through tags_all). Skipped: the public access block
        // (no tag attribute), the updated instance. Fails: the rest.
        insta::assert_snapshot!(facts(Stage::Apply).plan(BUCKETS).show(&p), @r#"
            tags: fail
              - [Plan] require_tags @ policies/t.yaml:5:9 <aws_s3_bucket.untagged>: creates `aws_s3_bucket.untagged`: missing required tags `Owner`, `CostCenter`
              - [Plan] require_tags @ policies/t.yaml:5:9 <aws_s3_bucket.computed>: creates `aws_s3_bucket.computed`: required tag `CostCenter` cannot be checked: `tags_all` is only known after apply
              - [Plan] require_tags @ policies/t.yaml:5:9 <aws_s3_bucket.empty_value["x`y"]>: creates `` aws_s3_bucket.empty_value["x`y"] ``: missing required tag `Owner`
              - [Plan] require_tags @ policies/t.yaml:5:9 <aws_instance.app>: replaces `aws_instance.app`: missing required tag `CostCenter`
        "#);
        // Only `tags` (not AWS' tags_all): the default tags no longer count.
        let only_tags = pol(
            "  - name: tags\n    rules:\n      - require_tags: Owner\n        tag_attributes: tags\n",
        );
        let d = facts(Stage::Apply).plan(BUCKETS).eval(&only_tags);
        assert_eq!(
            addresses(&d),
            [
                "aws_s3_bucket.untagged",
                "aws_s3_bucket.default_tagged",
                "aws_s3_bucket.empty_value[\"x`y\"]"
            ]
        );
        // Resource types without tags, and plans from a newer terraform, are skipped safely.
        for json in [MIXED, FUTURE, CREATE] {
            let d = facts(Stage::Apply).plan(json).eval(&p);
            assert_eq!(d[0].outcome_name(), "pass", "{}", show(&d));
        }
    }

    #[test]
    fn plans_from_a_newer_terraform() {
        // future.json has unknown top-level and per-resource fields, an `ephemeral` mode, an
        // import, a move and a forget: rules see one create (the ephemeral resource).
        let p = pol(
            "  - name: f\n    rules:\n      - deny: [create, update, delete]\n      - max_destroys: 0\n      - require_tags: [Owner]\n",
        );
        insta::assert_snapshot!(facts(Stage::Apply).plan(FUTURE).show(&p), @r"
            f: fail
              - [Plan] deny @ policies/t.yaml:5:9 <future_thing.x>: creates `future_thing.x`
        ");
    }

    #[test]
    fn access_fails_closed() {
        let p = pol(
            "  - name: only-infra\n    access:\n      apply: { teams: [acme/infra], users: [ops-bot] }\n",
        );
        // (actor, outcome): team member (case-insensitive), listed user, somebody else.
        for (actor, want) in [
            ("ada", "pass"),
            ("IAN", "pass"),
            ("ops-bot", "pass"),
            ("mallory", "fail"),
        ] {
            let mut f = facts(Stage::Apply);
            f.actor = actor;
            assert_eq!(f.eval(&p)[0].outcome_name(), want, "{actor}");
        }
        // Other commands are not restricted by an `apply` entry.
        let mut f = facts(Stage::Plan);
        f.actor = "mallory";
        assert_eq!(f.eval(&p)[0].outcome_name(), "pass");

        let mut f = facts(Stage::Apply);
        f.actor = "mallory";
        insta::assert_snapshot!(f.show(&p), @r"
            only-infra: fail
              - [Access] access.apply @ policies/t.yaml:5:7: `@mallory` may not run `apply` here: allowed are `@ops-bot` or members of team `acme/infra`
        ");

        // A team that does not exist, or was not resolved, fails the rule for everybody.
        let broken = pol(
            "  - name: typo\n    access:\n      apply: { users: [ada], teams: [acme/gone, acme/unknown] }\n",
        );
        insta::assert_snapshot!(facts(Stage::Apply).show(&broken), @r"
            typo: fail
              - [Access] access.apply @ policies/t.yaml:5:38: team `acme/gone` does not exist (or Sluice cannot see it), so `apply` is refused until that is fixed
              - [Access] access.apply @ policies/t.yaml:5:49: the members of team `acme/unknown` could not be looked up, so `apply` is refused until that is fixed
        ");
    }

    #[test]
    fn approvals_count_only_who_counts() {
        let p = pol(
            "  - name: two\n    approvals:\n      minimum: 2\n      from: { teams: [acme/platform] }\n      ignore_stale: true\n",
        );
        // (approvals, outcome at apply)
        type Approvers<'a> = &'a [(&'a str, Option<char>)];
        let cases: &[(Approvers, &str)] = &[
            (&[("pat", Some('a')), ("paula", Some('a'))], "pass"),
            (&[("pat", Some('a')), ("PAULA", Some('a'))], "pass"),
            // The author (ada is in platform) never counts.
            (&[("pat", Some('a')), ("ada", Some('a'))], "fail"),
            // Stale: approved an older commit, or an unknown one.
            (&[("pat", Some('a')), ("paula", Some('b'))], "fail"),
            (&[("pat", Some('a')), ("paula", None)], "fail"),
            // Not in the team.
            (&[("pat", Some('a')), ("dora", Some('a'))], "fail"),
            (&[], "fail"),
        ];
        for (approvals, want) in cases {
            let f = facts(Stage::Apply).approved_by(approvals);
            assert_eq!(f.eval(&p)[0].outcome_name(), *want, "{approvals:?}");
        }
        // Without ignore_stale, older approvals count.
        let lax = pol(
            "  - name: two\n    approvals:\n      minimum: 2\n      from: { teams: [acme/platform] }\n",
        );
        let f = facts(Stage::Apply).approved_by(&[("pat", Some('a')), ("paula", Some('b'))]);
        assert_eq!(f.eval(&lax)[0].outcome_name(), "pass");

        let f = facts(Stage::Apply).approved_by(&[
            ("pat", Some('a')),
            ("paula", Some('b')),
            ("dora", Some('a')),
            ("ada", Some('a')),
        ]);
        insta::assert_snapshot!(f.show(&p), @r"
            two: fail
              - [Approvals] approvals @ policies/t.yaml:5:7: needs 2 approvals from members of team `acme/platform` (has 1: `@pat`); not counted: `@dora` (not one of them), `@paula` (approved bbbbbbb, not the head aaaaaaa), `@ada` (the author)
        ");
        // At plan time, missing approvals are pending, not a failure.
        let f = facts(Stage::Plan).approved_by(&[("pat", Some('a'))]);
        insta::assert_snapshot!(f.show(&p), @r"
            two: pending
              - [Approvals] approvals @ policies/t.yaml:5:7: needs 2 approvals from members of team `acme/platform` (has 1: `@pat`)
        ");
    }

    #[test]
    fn approval_groups() {
        let all = pol(
            "  - name: all\n    approvals:\n      all_of:\n        - { minimum: 1, from: { teams: [acme/dba] } }\n        - { minimum: 1, from: { teams: [acme/platform] } }\n",
        );
        let any = pol(
            "  - name: any\n    approvals:\n      any_of:\n        - { minimum: 1, from: { teams: [acme/dba] } }\n        - { minimum: 2, from: { teams: [acme/platform] } }\n",
        );
        // (approvers, all_of outcome, any_of outcome)
        let cases: &[(&[&str], &str, &str)] = &[
            (&["dora", "pat"], "pass", "pass"),
            (&["dora"], "fail", "pass"),
            (&["pat", "paula"], "fail", "pass"),
            (&["pat"], "fail", "fail"),
            (&[], "fail", "fail"),
        ];
        for (who, want_all, want_any) in cases {
            let list: Vec<(&str, Option<char>)> = who.iter().map(|w| (*w, Some('a'))).collect();
            let f = facts(Stage::Apply).approved_by(&list);
            assert_eq!(f.eval(&all)[0].outcome_name(), *want_all, "all_of {who:?}");
            assert_eq!(f.eval(&any)[0].outcome_name(), *want_any, "any_of {who:?}");
        }
        let f = facts(Stage::Apply).approved_by(&[("pat", Some('a'))]);
        insta::assert_snapshot!(f.show(&all) + &f.show(&any), @r"
            all: fail
              - [Approvals] approvals @ policies/t.yaml:6:13: needs 1 approval from members of team `acme/dba` (has none); not counted: `@pat` (not one of them)
            any: fail
              - [Approvals] approvals @ policies/t.yaml:5:7: needs one of: 1 approval from members of team `acme/dba` (has none); or 2 approvals from members of team `acme/platform` (has 1: `@pat`); not counted: `@pat` (not one of them)
        ");
        // A group naming a team that does not exist fails closed, whoever approved.
        let gone = pol(
            "  - name: gone\n    approvals:\n      minimum: 1\n      from: { teams: [acme/gone], users: [dora] }\n",
        );
        let f = facts(Stage::Apply).approved_by(&[("dora", Some('a'))]);
        insta::assert_snapshot!(f.show(&gone), @r"
            gone: fail
              - [Approvals] approvals @ policies/t.yaml:5:7: needs 1 approval from `@dora` or members of team `acme/gone`, but team `acme/gone` does not exist (or Sluice cannot see it): the requirement fails until that is fixed
        ");
    }

    #[test]
    fn require_approval_for_matching_changes() {
        let p = pol(
            "  - name: dba\n    rules:\n      - require_approval: [delete]\n        resource_types: [aws_db_instance]\n        approvals: { minimum: 1, from: { teams: [acme/dba] } }\n",
        );
        let f = facts(Stage::Apply).plan(AWS_DB);
        insta::assert_snapshot!(f.show(&p), @r"
            dba: fail
              - [Approvals] require_approval @ policies/t.yaml:5:9: deletes `aws_db_instance.legacy`, replaces `aws_db_instance.main`: needs 1 approval from members of team `acme/dba` (has none)
        ");
        assert_eq!(f.eval(&p)[0].outcome_name(), "fail");
        let f = facts(Stage::Plan).plan(AWS_DB);
        assert_eq!(f.eval(&p)[0].outcome_name(), "pending");
        let f = facts(Stage::Apply)
            .plan(AWS_DB)
            .approved_by(&[("dora", None)]);
        assert_eq!(f.eval(&p)[0].outcome_name(), "pass");
        // No matching change: nothing to approve.
        let f = facts(Stage::Apply).plan(MIXED);
        assert_eq!(f.eval(&p)[0].outcome_name(), "pass");
    }

    #[test]
    fn scope_selects_projects_workspaces_and_branches() {
        let p = pol(
            "  - name: prod\n    scope:\n      projects: [\"prod-*\", \"envs/prod/**\"]\n      workspaces: [\"default\", \"blue*\"]\n      branches: [main, \"release/*\"]\n    rules: [{ max_changes: 0 }]\n",
        );
        // (project name, dir, workspace, target branch, applies)
        let cases = [
            ("prod-db", "envs/x", "default", "main", true),
            ("db", "envs/prod", "default", "main", true),
            ("db", "envs/prod/db", "blue-1", "release/2.0", true),
            ("db", "envs/production", "default", "main", false),
            ("prod-db", "envs/x", "green", "main", false),
            ("prod-db", "envs/x", "default", "develop", false),
            ("prod-db", "envs/x", "default", "release/2/x", false),
            ("staging", "envs/staging", "default", "main", false),
        ];
        for (name, dir, ws, branch, applies) in cases {
            let mut f = facts(Stage::Apply).plan(CREATE);
            f.project = project(name, dir, ws);
            f.branch = branch;
            let got = f.eval(&p)[0].outcome != Outcome::NotApplicable;
            assert_eq!(got, applies, "{name} {dir} {ws} {branch}");
        }
        // A PR that renames a project out of scope is still judged by the base branch's name.
        let mut f = facts(Stage::Apply).plan(CREATE);
        f.project = project("staging", "envs/x", "default");
        assert_eq!(f.eval(&p)[0].outcome, Outcome::NotApplicable);
        f.base_names = vec![ProjectName::new("prod-db").unwrap()];
        assert_ne!(f.eval(&p)[0].outcome, Outcome::NotApplicable);
        // No scope: every project.
        let all = pol("  - name: all\n    rules: [{ max_changes: 100 }]\n");
        let mut f = facts(Stage::Apply).plan(CREATE);
        f.project = project("anything", ".", "default");
        assert_eq!(f.eval(&all)[0].outcome_name(), "pass");
    }

    #[test]
    fn stages_decide_what_is_checked() {
        let p = pol(
            "  - name: p\n    access: { unlock: { users: [ian] }, approve_policies: { teams: [acme/dba] } }\n    approvals: { minimum: 1 }\n    rules: [{ max_destroys: 0 }]\n",
        );
        // (stage, plan, outcome): plan before planning checks nothing here; after planning the
        // rules run and the missing approval is pending; apply without a plan fails closed.
        let cases = [
            (Stage::Plan, None, "pending"),
            (Stage::Plan, Some(CREATE), "pending"),
            (Stage::Plan, Some(MIXED), "fail"),
            (Stage::Apply, None, "fail"),
            (Stage::Apply, Some(CREATE), "fail"),
            (Stage::Unlock, Some(MIXED), "fail"),
            (Stage::ApprovePolicies, Some(MIXED), "fail"),
        ];
        for (stage, json, want) in cases {
            let mut f = facts(stage);
            if let Some(j) = json {
                f = f.plan(j);
            }
            assert_eq!(
                f.eval(&p)[0].outcome_name(),
                want,
                "{stage:?} {}",
                json.is_some()
            );
        }
        let mut f = facts(Stage::Unlock);
        f.actor = "ian";
        assert_eq!(f.eval(&p)[0].outcome_name(), "pass");
        insta::assert_snapshot!(facts(Stage::Apply).approved_by(&[("pat", None)]).show(&p), @r"
            p: fail
              - [Plan] rules @ policies/t.yaml:6:15: there is no plan to check the rules against; run plan first
        ");
    }

    #[test]
    fn outcomes_follow_on_failure_and_overrides() {
        let yaml = |on_failure: &str| {
            pol(&format!(
                "  - name: p\n    rules: [{{ max_destroys: 0 }}]\n    on_failure: {on_failure}\n    owners: {{ teams: [acme/dba], users: [carol] }}\n"
            ))
        };
        let base = || facts(Stage::Apply).plan(MIXED);
        assert_eq!(base().eval(&yaml("deny"))[0].outcome_name(), "fail");
        assert_eq!(base().eval(&yaml("warn"))[0].outcome_name(), "warn");
        let ro = yaml("require_override");
        assert_eq!(
            base().eval(&ro)[0].outcome,
            Outcome::Fail {
                overridable_by: vec![
                    Principal::User("carol".into()),
                    Principal::Team("acme/dba".into())
                ]
            }
        );
        // (override: policy, by, project, commit) → outcome
        let cases = [
            (("p", "dora", "prod-db", 'a'), "overridden"),
            (("p", "Carol", "prod-db", 'a'), "overridden"),
            (("p", "dora", "prod-db", 'b'), "fail"),
            (("p", "dora", "other", 'a'), "fail"),
            (("q", "dora", "prod-db", 'a'), "fail"),
            (("p", "mallory", "prod-db", 'a'), "fail"),
            (("p", "ada", "prod-db", 'a'), "fail"),
        ];
        for ((policy, by, project, at), want) in cases {
            let f = base().overridden(policy, by, project, at);
            assert_eq!(
                f.eval(&ro)[0].outcome_name(),
                want,
                "{policy} {by} {project} {at}"
            );
        }
        // A deny policy cannot be overridden, whatever is recorded.
        let f = base().overridden("p", "dora", "prod-db", 'a');
        assert_eq!(f.eval(&yaml("deny"))[0].outcome_name(), "fail");
        let f = base()
            .overridden("p", "dora", "prod-db", 'b')
            .overridden("p", "mallory", "prod-db", 'a');
        insta::assert_snapshot!(f.show(&ro), @r"
            p: fail (override: @carol, team acme/dba)
              - [Plan] max_destroys @ policies/t.yaml:4:15: destroys 3 objects, this rule allows none: `null_resource.cbd`, `null_resource.old[1]`, `null_resource.replace_me`
              - [Note] override @ policies/t.yaml:3:5: the override by `@dora` was for commit bbbbbbb; the head is now aaaaaaa, so it must be overridden again
              - [Note] override @ policies/t.yaml:3:5: the override by `@mallory` does not count: only the owners of policy `p` may override it: `@carol` or members of team `acme/dba`
        ");
    }

    #[test]
    fn who_may_override() {
        let p = pol(
            "  - name: p\n    rules: [{ max_destroys: 0 }]\n    on_failure: require_override\n    owners: { teams: [acme/dba, acme/gone], users: [carol] }\n",
        );
        let deny = pol("  - name: d\n    rules: [{ max_destroys: 0 }]\n");
        let t = facts(Stage::Apply).teams;
        let check = |policy: &Policy, actor: &str| match may_override(policy, actor, "ada", &t) {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        };
        insta::assert_snapshot!([
            check(&p[0], "dora"),
            check(&p[0], "carol"),
            check(&p[0], "ADA"),
            check(&p[0], "mallory"),
            check(&deny[0], "dora"),
        ].join("\n"), @r"
            ok
            ok
            `@ADA` opened this pull request, and authors cannot override policies on their own pull requests
            only the owners of policy `p` may override it: `@carol`, members of team `acme/dba` or members of team `acme/gone`; team `acme/gone` does not exist (or Sluice cannot see it), so it counts for nobody
            policy `d` cannot be overridden (`on_failure: deny`); change the policy on the base branch instead
        ");
    }

    #[test]
    fn overrides_for_approve_policies() {
        let p = pol(concat!(
            "  - name: gate\n    access: { approve_policies: { teams: [acme/dba, acme/platform] } }\n",
            "  - name: dbs\n    rules: [{ deny: [delete], resource_types: [aws_db_instance] }]\n    on_failure: require_override\n    owners: { teams: [acme/dba] }\n",
            "  - name: caps\n    rules: [{ max_destroys: 0 }]\n",
            "  - name: fine\n    rules: [{ max_changes: 100 }]\n",
        ));
        let run = |actor: &'static str, requested: &[&str]| {
            let mut f = facts(Stage::ApprovePolicies).plan(AWS_DB);
            f.actor = actor;
            let requested: Vec<String> = requested.iter().map(|s| s.to_string()).collect();
            format!("{:?}", plan_overrides(&p, &f.input(), &requested))
        };
        insta::assert_snapshot!([
            run("dora", &[]),
            run("dora", &["dbs", "fine", "nope"]),
            run("pat", &["dbs"]),
            run("mallory", &[]),
        ].join("\n"), @r#"
            OverridePlan { granted: [PolicyOverride { policy: "dbs", project: ProjectName("prod-db"), by: "dora", head_sha: CommitSha("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") }], refused: [("caps", "policy `caps` cannot be overridden (`on_failure: deny`); change the policy on the base branch instead")], unknown: [] }
            OverridePlan { granted: [PolicyOverride { policy: "dbs", project: ProjectName("prod-db"), by: "dora", head_sha: CommitSha("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") }], refused: [("fine", "it does not fail for project `prod-db`")], unknown: ["nope"] }
            OverridePlan { granted: [], refused: [("dbs", "only the owners of policy `dbs` may override it: members of team `acme/dba`")], unknown: [] }
            OverridePlan { granted: [], refused: [("gate", "`@mallory` may not run `approve_policies` here: allowed are members of team `acme/dba` or members of team `acme/platform`")], unknown: [] }
        "#);
    }

    #[test]
    fn reasons_are_capped_per_rule() {
        let changes: Vec<String> = (0..25)
            .map(|i| format!(r#"{{"address":"null_resource.n[{i}]","type":"null_resource","provider_name":"registry.terraform.io/hashicorp/null","change":{{"actions":["create"],"after":{{}}}}}}"#))
            .collect();
        let json = format!(r#"{{"resource_changes":[{}]}}"#, changes.join(","));
        let p = pol("  - name: d\n    rules: [{ deny: [create] }, { max_changes: 3 }]\n");
        let d = facts(Stage::Apply).plan(&json).eval(&p);
        assert_eq!(d[0].reasons.len(), MAX_REASONS_PER_RULE + 2);
        insta::assert_snapshot!(show(&d).lines().skip(19).collect::<Vec<_>>().join("\n"), @r"
            - [Plan] deny @ policies/t.yaml:4:15 <null_resource.n[18]>: creates `null_resource.n[18]`
            - [Plan] deny @ policies/t.yaml:4:15 <null_resource.n[19]>: creates `null_resource.n[19]`
            - [Plan] deny @ policies/t.yaml:4:15: … and 5 more resources
            - [Plan] max_changes @ policies/t.yaml:4:35: changes 25 objects, more than the 3 allowed: `null_resource.n[0]`, `null_resource.n[1]`, `null_resource.n[2]`, `null_resource.n[3]`, `null_resource.n[4]` and 20 more
        ");
    }

    #[test]
    fn decisions_for_the_audit_log() {
        let p = pol(
            "  - name: p\n    rules: [{ max_destroys: 0 }]\n    on_failure: require_override\n    owners: { users: [carol] }\n",
        );
        let f = facts(Stage::Apply).plan(MIXED);
        let failed = f.eval(&p);
        assert!(blocks(&failed));
        let overridden = facts(Stage::Apply)
            .plan(MIXED)
            .overridden("p", "carol", "prod-db", 'a')
            .eval(&p);
        assert!(!blocks(&overridden));
        insta::assert_snapshot!(format!(
            "{:#?}\n{:#?}",
            failed[0].to_audit(Some("b10b".into())),
            overridden[0].to_audit(None)
        ), @r#"
            AuditPolicyDecision {
                policy: "p",
                outcome: "fail",
                reasons: [
                    "max_destroys (policies/t.yaml:4): destroys 3 objects, this rule allows none: `null_resource.cbd`, `null_resource.old[1]`, `null_resource.replace_me`",
                ],
                source_blob: Some(
                    "b10b",
                ),
            }
            AuditPolicyDecision {
                policy: "p",
                outcome: "overridden",
                reasons: [
                    "max_destroys (policies/t.yaml:4): destroys 3 objects, this rule allows none: `null_resource.cbd`, `null_resource.old[1]`, `null_resource.replace_me`",
                    "overridden by @carol",
                ],
                source_blob: None,
            }
        "#);
        insta::assert_snapshot!(serde_json::to_string_pretty(&failed[0]).unwrap(), @r#"
            {
              "policy": "p",
              "file": "policies/t.yaml",
              "line": 3,
              "outcome": {
                "result": "fail",
                "overridable_by": [
                  {
                    "user": "carol"
                  }
                ]
              },
              "reasons": [
                {
                  "rule": "max_destroys",
                  "kind": "plan",
                  "message": "destroys 3 objects, this rule allows none: `null_resource.cbd`, `null_resource.old[1]`, `null_resource.replace_me`",
                  "address": null,
                  "file": "policies/t.yaml",
                  "line": 4,
                  "column": 15
                }
              ]
            }
        "#);
    }
}
