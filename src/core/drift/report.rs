//! The drift issue (title, body, labels) and the check-failed issue, as markdown.
//!
//! One issue per drifted project, edited in place on every check: the state (and who
//! acknowledged or accepted it, until when), the lock holder when an open PR holds the
//! project's lock, the resources per class with before → after of each changed attribute
//! (values arrive redacted from `classify`; sensitive ones are never there), what to comment
//! next, and the history of transitions. The body always fits GitHub's 65,536-character limit
//! for an issue body (counted in UTF-8 bytes here, never fewer than characters): when it would
//! not, attribute tables shrink first, then resources are listed by address only, then the
//! list is cut with a count of what is left out; the state, the commands and the latest
//! history always stay. Each body starts with a hidden marker naming the repository, project
//! and kind, so the app can find its issue again after a crash instead of opening a second one.
//!
//! Pure: no I/O; logins are written in code spans so that edits never @-mention anyone.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::classify::{Classification, DriftClass, Finding, ShownValue};
use super::lifecycle::{
    Drift, DriftRecord, DriftState, FailureStreak, Resolution, Transition, TransitionKind,
};
use super::status::LastApplied;
use super::text::{cell, code, count, link, plain};
use crate::core::lock::Lock;
use crate::core::types::{CommitSha, ProjectDir, ProjectName, RepoName, Workspace};

/// GitHub's limit for an issue body.
pub const MAX_ISSUE_BODY: usize = 65_536;
/// GitHub's limit for an issue title.
pub const MAX_ISSUE_TITLE: usize = 256;
/// Every drift issue has this label.
pub const LABEL: &str = "sluice-drift";
/// Every check-failed issue has this label.
pub const FAILURE_LABEL: &str = "sluice-drift-check-failed";
/// How much of a failed check's error output the check-failed issue shows (its end).
const MAX_ERROR_BYTES: usize = 20_000;

/// What a report needs to know besides the drift itself.
#[derive(Debug, Clone)]
pub struct IssueContext {
    /// The word users type (`sluice`).
    pub bot_name: String,
    pub repo: RepoName,
    pub project: ProjectName,
    pub dir: ProjectDir,
    pub workspace: Workspace,
    /// The default-branch commit the latest check ran on.
    pub checked_sha: Option<CommitSha>,
    /// The project's lock, when an open PR holds it.
    pub lock: Option<Lock>,
    pub last_applied: Option<LastApplied>,
    /// Where the full report can be read (Sluice's UI).
    pub details_url: Option<String>,
    /// The body limit in bytes ([`MAX_ISSUE_BODY`] on GitHub).
    pub max_body: usize,
}

/// The hidden first line of a drift issue body: `<!-- sluice:drift repo=… project=… -->`.
/// The app can search for it to find an issue it opened before a crash.
pub fn issue_marker(repo: &RepoName, project: &ProjectName, kind: IssueKind) -> String {
    format!(
        "<!-- sluice:{} repo={} project={} -->",
        kind.as_str(),
        repo.full().to_ascii_lowercase(),
        project.as_str()
    )
}

/// Which of a project's issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    Drift,
    CheckFailed,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Drift => "drift",
            IssueKind::CheckFailed => "check-failed",
        }
    }
}

/// The issue title, at most [`MAX_ISSUE_TITLE`] characters.
pub fn issue_title(ctx: &IssueContext, drift: &Drift) -> String {
    let c = drift.counts;
    let mut parts = Vec::new();
    if c.changed_outside > 0 {
        parts.push(format!("{} changed outside Git", c.changed_outside));
    }
    if c.unapplied > 0 {
        parts.push(format!("{} unapplied", c.unapplied));
    }
    if c.engine_or_provider_upgrade > 0 {
        parts.push(format!("{} from an upgrade", c.engine_or_provider_upgrade));
    }
    let prefix = match &drift.state {
        DriftState::Open | DriftState::Acknowledged(_) => "Drift".to_string(),
        DriftState::Accepted(a) => format!("Drift (accepted until {})", a.until),
        DriftState::Resolved { .. } => "Resolved drift".to_string(),
    };
    let title = format!(
        "{prefix} in {} ({}): {}",
        ctx.project.as_str(),
        ctx.repo,
        parts.join(", ")
    );
    cut_chars(&title, MAX_ISSUE_TITLE)
}

/// The labels the drift issue should carry now: [`LABEL`], `drift:<phase>`, and one per
/// class present (`drift:changed-outside`, `drift:unapplied`, `drift:upgrade`).
pub fn issue_labels(drift: &Drift) -> Vec<String> {
    let mut out = vec![
        LABEL.to_string(),
        format!("drift:{}", drift.state.phase().as_str()),
    ];
    let c = drift.counts;
    for (n, label) in [
        (c.changed_outside, "drift:changed-outside"),
        (c.unapplied, "drift:unapplied"),
        (c.engine_or_provider_upgrade, "drift:upgrade"),
    ] {
        if n > 0 {
            out.push(label.to_string());
        }
    }
    out
}

/// How much detail a body shows; bodies that are too long are rendered again with less.
#[derive(Debug, Clone, Copy)]
struct Detail {
    /// Attribute rows per resource; `0` lists resources by address only.
    attrs: usize,
    /// Resources listed; the rest are counted.
    resources: usize,
    /// History rows (the latest).
    history: usize,
}

/// The drift issue body. `classification` is the latest successful check's; `drift` the
/// project's (live or just resolved) drift object.
pub fn issue_body(
    ctx: &IssueContext,
    drift: &Drift,
    classification: &Classification,
    record: &DriftRecord,
) -> String {
    let max = ctx.max_body.max(2_000);
    let total = classification.findings.len();
    for (attrs, history) in [(usize::MAX, 50), (20, 30), (5, 20), (0, 10)] {
        let body = render_body(
            ctx,
            drift,
            classification,
            record,
            Detail {
                attrs,
                resources: total,
                history,
            },
        );
        if body.len() <= max {
            return body;
        }
    }
    // Addresses only, and still too long: list as many as fit (binary search on the count).
    let (mut lo, mut hi) = (0usize, total);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let d = Detail {
            attrs: 0,
            resources: mid,
            history: 10,
        };
        if render_body(ctx, drift, classification, record, d).len() <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut body = render_body(
        ctx,
        drift,
        classification,
        record,
        Detail {
            attrs: 0,
            resources: lo,
            history: 10,
        },
    );
    // Last resort, for limits too small for even the fixed parts.
    cut_bytes(&mut body, max);
    body
}

fn render_body(
    ctx: &IssueContext,
    drift: &Drift,
    c: &Classification,
    record: &DriftRecord,
    d: Detail,
) -> String {
    let bot = &ctx.bot_name;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        issue_marker(&ctx.repo, &ctx.project, IssueKind::Drift)
    );
    let _ = writeln!(
        s,
        "## Drift in {} · dir {} · workspace {}\n",
        code(ctx.project.as_str()),
        code(ctx.dir.as_str()),
        code(ctx.workspace.as_str())
    );

    // State.
    let state = match &drift.state {
        DriftState::Open => "**Open.** Nobody has acknowledged it yet.".to_string(),
        DriftState::Acknowledged(a) => format!(
            "**Acknowledged** by {} on {}.",
            code(&a.by.login),
            when(a.at)
        ),
        DriftState::Accepted(a) => {
            let mut t = format!(
                "**Accepted** by {} on {} **until {}** (end of day, UTC); it re-opens then, or \
                 earlier if the drift changes.",
                code(&a.by.login),
                when(a.at),
                a.until
            );
            if let Some(r) = &a.reason {
                let _ = write!(t, " Reason: {}", plain(r));
            }
            t
        }
        DriftState::Resolved { at, how } => match how {
            Resolution::CheckClean => format!(
                "**Resolved** on {}: a check found the project in sync again.",
                when(*at)
            ),
            Resolution::Applied { actor, pr, sha } => {
                let mut t = format!(
                    "**Resolved** on {}: Sluice applied {}",
                    when(*at),
                    code(sha.short())
                );
                if let Some(pr) = pr {
                    let _ = write!(t, " from {pr}");
                }
                if let Some(a) = actor {
                    let _ = write!(t, " (by {})", code(&a.login));
                }
                t.push('.');
                t
            }
        },
    };
    let _ = writeln!(s, "{state}\n");
    let mut facts = vec![format!("first seen {}", when(drift.opened_at))];
    if let Some(last) = &record.last_check {
        let mut f = format!("last checked {}", when(last.at));
        if let Some(sha) = &ctx.checked_sha {
            let _ = write!(f, " on {}", code(sha.short()));
        }
        facts.push(f);
    }
    facts.push(format!("fingerprint {}", code(drift.fingerprint.short())));
    let _ = writeln!(s, "<sub>{}</sub>\n", facts.join(" · "));

    if let Some(streak) = &record.failure {
        let latest = match streak.failures {
            1 => "The latest check".to_string(),
            n => format!("The latest {n} checks"),
        };
        let _ = writeln!(
            s,
            "> [!CAUTION]\n> {latest} failed (since {}); this shows the last successful check.\n",
            when(streak.since)
        );
    }
    if let Some(lock) = &ctx.lock {
        let _ = writeln!(
            s,
            "> [!NOTE]\n> This project is locked by pull request {} (taken by {}). The check \
             ran read-only against the default branch; that pull request may change these \
             resources when it is applied.\n",
            lock.pr,
            code(&lock.holder_login)
        );
    }
    if let Some(la) = &ctx.last_applied {
        let mut t = format!(
            "Last applied by Sluice: {} by {} on {}",
            code(la.sha.short()),
            code(&la.by.login),
            when(la.at)
        );
        if let Some(pr) = la.pr {
            let _ = write!(t, " from {pr}");
        }
        let _ = writeln!(s, "{t}.\n");
    }

    // Resources.
    let counts = c.counts();
    let summary: Vec<String> = DriftClass::ALL
        .iter()
        .filter(|k| counts.get(**k) > 0)
        .map(|k| format!("{} {}", counts.get(*k), k.label()))
        .collect();
    if summary.is_empty() {
        let _ = writeln!(s, "**The latest check found no drift.**\n");
    } else {
        let _ = writeln!(s, "**{}**\n", summary.join(" · "));
    }
    let mut listed = 0usize;
    for class in DriftClass::ALL {
        let findings: Vec<&Finding> = c.of_class(class).collect();
        if findings.is_empty() {
            continue;
        }
        let _ = writeln!(s, "### {}\n", heading(class));
        let _ = writeln!(s, "{}\n", explain(class));
        let (before, after) = columns(class);
        let mut left_out = 0usize;
        for f in findings {
            if listed >= d.resources {
                left_out += 1;
                continue;
            }
            listed += 1;
            finding_markdown(&mut s, f, d.attrs, before, after);
        }
        if left_out > 0 {
            let _ = writeln!(
                s,
                "… and {} more not listed here (the issue body has a size limit){}.\n",
                count(left_out, "resource", "resources"),
                ctx.details_url
                    .as_deref()
                    .map(|u| format!("; full list: {}", link(u)))
                    .unwrap_or_default()
            );
        }
    }

    // Commands.
    if drift.state.phase().is_live() {
        let _ = writeln!(s, "### What to do\n\nComment on this issue:\n");
        let _ = writeln!(
            s,
            "* `{bot} drift ack` — acknowledge: someone is looking into it"
        );
        let _ = writeln!(
            s,
            "* `{bot} drift accept --until YYYY-MM-DD --reason \"…\"` — accept it as an exception until that day; a different drift re-opens it"
        );
        let _ = writeln!(s, "* `{bot} drift check` — check again now");
        let _ = writeln!(
            s,
            "* `{bot} drift remediate` — open a pull request that applies Git's state again (planned and gated like any pull request)\n"
        );
    }

    // History.
    if !drift.history.is_empty() {
        let _ = writeln!(
            s,
            "### History\n\n| When (UTC) | What | By |\n|---|---|---|"
        );
        let skip = drift.history.len().saturating_sub(d.history);
        if skip > 0 {
            let _ = writeln!(
                s,
                "| … | {} not shown | |",
                count(skip, "earlier entry", "earlier entries")
            );
        }
        for t in &drift.history[skip..] {
            let by = t
                .actor
                .as_ref()
                .map_or("Sluice".to_string(), |a| code(&a.login));
            let _ = writeln!(s, "| {} | {} | {by} |", when(t.at), cell(&describe(t)));
        }
        s.push('\n');
    }
    if let Some(url) = &ctx.details_url {
        let _ = writeln!(s, "Full details: {}", link(url));
    }
    s
}

fn heading(class: DriftClass) -> &'static str {
    match class {
        DriftClass::ChangedOutside => "Changed outside Git",
        DriftClass::EngineOrProviderUpgrade => "Changed by an engine or provider upgrade",
        DriftClass::Unapplied => "Unapplied: Git is ahead",
    }
}

fn explain(class: DriftClass) -> &'static str {
    match class {
        DriftClass::ChangedOutside => {
            "These objects no longer match what was last applied: someone (or something) \
             changed or deleted them outside Git."
        }
        DriftClass::EngineOrProviderUpgrade => {
            "The default branch changed nothing here but the engine or provider version since \
             the last apply, and the new version wants these changes."
        }
        DriftClass::Unapplied => {
            "The default branch wants these changes, but they have not been applied."
        }
    }
}

/// Column names for the two sides of an attribute change.
fn columns(class: DriftClass) -> (&'static str, &'static str) {
    match class {
        DriftClass::ChangedOutside => ("Last applied", "Now (live)"),
        DriftClass::EngineOrProviderUpgrade | DriftClass::Unapplied => ("Now (live)", "Git wants"),
    }
}

fn action_word(f: &Finding) -> &'static str {
    use crate::core::plan::model::Action;
    match (f.class, f.action) {
        (DriftClass::ChangedOutside, Action::Delete) => "deleted",
        (DriftClass::ChangedOutside, _) => "changed",
        (_, Action::Create) => "create",
        (_, Action::Update) => "update in place",
        (_, Action::Delete) => "destroy",
        (_, Action::DeleteThenCreate | Action::CreateThenDelete) => "replace",
        (_, Action::Forget) => "forget",
        (_, Action::Read) => "read",
        (_, Action::NoOp) => "no change to the object",
    }
}

fn finding_markdown(s: &mut String, f: &Finding, max_attrs: usize, before: &str, after: &str) {
    let _ = write!(s, "* {} — {}", code(&f.address), action_word(f));
    if let Some(n) = &f.note {
        let _ = write!(s, " ({})", plain(n));
    }
    s.push('\n');
    if !f.upgrades.is_empty() {
        let ups: Vec<String> = f.upgrades.iter().map(|u| u.to_string()).collect();
        let what = if f.class == DriftClass::EngineOrProviderUpgrade {
            "upgraded since the last apply"
        } else {
            "also upgraded since the last apply (may play a part)"
        };
        let _ = writeln!(s, "  <sub>{what}: {}</sub>", plain(&ups.join(", ")));
    }
    if max_attrs == 0 || f.changes.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n  | Attribute | {before} | {after} |\n  |---|---|---|");
    for ch in f.changes.iter().take(max_attrs) {
        let _ = writeln!(
            s,
            "  | {} | {} | {} |",
            cell(&code(&ch.path.to_string())),
            cell(&shown(&ch.before)),
            cell(&shown(&ch.after))
        );
    }
    if f.changes.len() > max_attrs {
        let _ = writeln!(
            s,
            "  | … | {} more | |",
            count(f.changes.len() - max_attrs, "attribute", "attributes")
        );
    }
    s.push('\n');
}

fn shown(v: &ShownValue) -> String {
    match v {
        ShownValue::Value(text) => code(text),
        other => format!("_{other}_"),
    }
}

/// One line for a transition, as the history shows it.
pub fn describe(t: &Transition) -> String {
    match &t.kind {
        TransitionKind::Opened { .. } => "opened".to_string(),
        TransitionKind::Changed { previous } => {
            format!(
                "other resources or attributes drift now (was {})",
                code(previous.short())
            )
        }
        TransitionKind::Reopened(super::lifecycle::ReopenReason::DifferentDrift { .. }) => {
            "re-opened: a different drift than the one acknowledged or accepted".to_string()
        }
        TransitionKind::Reopened(super::lifecycle::ReopenReason::ValuesChanged) => {
            "re-opened: the values changed since they were accepted".to_string()
        }
        TransitionKind::Acknowledged => "acknowledged".to_string(),
        TransitionKind::Accepted { until, reason } => match reason {
            Some(r) => format!("accepted until {until}: {}", plain(r)),
            None => format!("accepted until {until}"),
        },
        TransitionKind::AcceptanceExpired { until } => {
            format!("acceptance until {until} ran out: open again")
        }
        TransitionKind::Resolved(Resolution::CheckClean) => {
            "resolved: a check found it in sync".to_string()
        }
        TransitionKind::Resolved(Resolution::Applied { pr, sha, .. }) => match pr {
            Some(pr) => format!("resolved: applied {} from {pr}", code(sha.short())),
            None => format!("resolved: applied {}", code(sha.short())),
        },
        TransitionKind::CheckFailed { .. } => "checks started failing".to_string(),
        TransitionKind::CheckRecovered { failures, .. } => {
            format!(
                "checks work again after {}",
                count(*failures as usize, "failure", "failures")
            )
        }
    }
}

/// The check-failed issue's title.
pub fn check_failed_title(ctx: &IssueContext) -> String {
    cut_chars(
        &format!(
            "Drift check failing for {} ({})",
            ctx.project.as_str(),
            ctx.repo
        ),
        MAX_ISSUE_TITLE,
    )
}

/// The labels of the check-failed issue.
pub fn check_failed_labels() -> Vec<String> {
    vec![FAILURE_LABEL.to_string()]
}

/// The check-failed issue's body: the streak and the end of the latest error (redacted by the
/// app before it was stored).
pub fn check_failed_body(ctx: &IssueContext, streak: &FailureStreak) -> String {
    let bot = &ctx.bot_name;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        issue_marker(&ctx.repo, &ctx.project, IssueKind::CheckFailed)
    );
    let _ = writeln!(
        s,
        "## Drift check failing for {} · dir {} · workspace {}\n",
        code(ctx.project.as_str()),
        code(ctx.dir.as_str()),
        code(ctx.workspace.as_str())
    );
    let _ = writeln!(
        s,
        "The drift check has failed {} since {} (latest: {}). Until a check succeeds, Sluice \
         cannot tell whether this project matches the default branch.\n",
        if streak.failures == 1 {
            "once".to_string()
        } else {
            format!("{} times", streak.failures)
        },
        when(streak.since),
        when(streak.last_at)
    );
    let _ = writeln!(s, "**Latest error:**\n");
    let (tail, cut) = tail_bytes(&streak.last_error, MAX_ERROR_BYTES);
    if cut {
        s.push_str("_(the beginning of the output is not shown)_\n\n");
    }
    fenced(&mut s, tail);
    let _ = writeln!(
        s,
        "\nThis issue is edited while the checks keep failing and closed when one succeeds. To \
         check again now, comment `{bot} drift check`."
    );
    if let Some(url) = &ctx.details_url {
        let _ = writeln!(s, "\nFull details: {}", link(url));
    }
    let max = ctx.max_body.max(2_000);
    cut_bytes(&mut s, max);
    s
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn cut_chars(s: &str, max: usize) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        out.pop();
        out.push('…');
    }
    out
}

fn cut_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The last whole lines of `text` within `max` bytes, and whether anything was cut.
fn tail_bytes(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut from = text.len() - max;
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let start = text[from..].find('\n').map_or(from, |i| from + i + 1);
    (&text[start..], true)
}

/// A fenced block the text cannot close.
fn fenced(s: &mut String, text: &str) {
    let longest = text
        .lines()
        .map(|l| l.trim_start().bytes().take_while(|&b| b == b'`').count())
        .max()
        .unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let _ = writeln!(s, "{fence}");
    s.push_str(text);
    if !text.ends_with('\n') {
        s.push('\n');
    }
    let _ = writeln!(s, "{fence}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::drift::classify::{CheckPlans, classify};
    use crate::core::drift::lifecycle::{DriftEvent, apply};
    use crate::core::event::{Actor, ActorKind};
    use crate::core::lock::LockKey;
    use crate::core::plan::model::parse_plan_json;
    use crate::core::types::PrNumber;
    use chrono::NaiveDate;

    const REFRESH: &str = include_str!("../../../tests/fixtures/plans/drift.refresh-only.json");
    const NORMAL: &str = include_str!("../../../tests/fixtures/plans/drift.json");

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn actor(login: &str) -> Actor {
        Actor {
            login: login.into(),
            id: 1,
            kind: ActorKind::Human,
        }
    }

    fn ctx() -> IssueContext {
        IssueContext {
            bot_name: "sluice".into(),
            repo: RepoName::parse("acme/infra").unwrap(),
            project: ProjectName::new("prod-db").unwrap(),
            dir: ProjectDir::new("envs/prod").unwrap(),
            workspace: Workspace::default_workspace(),
            checked_sha: Some(CommitSha::new(&"a1b2c3d4".repeat(5)).unwrap()),
            lock: None,
            last_applied: Some(LastApplied {
                sha: CommitSha::new(&"0f".repeat(20)).unwrap(),
                by: actor("ana"),
                at: at("2026-12-31T10:00:00Z"),
                pr: Some(PrNumber::new(12).unwrap()),
                engine_version: Some("1.0.3".into()),
            }),
            details_url: Some("https://sluice.example/projects/acme/infra/prod-db".into()),
            max_body: MAX_ISSUE_BODY,
        }
    }

    fn classification() -> Classification {
        classify(
            CheckPlans {
                refresh_only: &parse_plan_json(REFRESH.as_bytes()).unwrap(),
                plan: &parse_plan_json(NORMAL.as_bytes()).unwrap(),
            },
            None,
            &[],
        )
        .unwrap()
    }

    fn run(events: &[DriftEvent]) -> DriftRecord {
        let mut rec = DriftRecord::default();
        for e in events {
            rec = apply(&rec, e).unwrap().record;
        }
        rec
    }

    #[test]
    fn open_issue_from_a_real_check() {
        let c = classification();
        let rec = run(&[
            DriftEvent::CheckClean {
                at: at("2027-01-01T00:00:00Z"),
            },
            DriftEvent::checked(at("2027-01-01T06:00:00Z"), &c),
        ]);
        let d = rec.drift.as_ref().unwrap();
        insta::assert_snapshot!(issue_title(&ctx(), d), @"Drift in prod-db (acme/infra): 4 changed outside Git, 2 unapplied");
        assert_eq!(
            issue_labels(d),
            [
                "sluice-drift",
                "drift:open",
                "drift:changed-outside",
                "drift:unapplied"
            ]
        );
        let body = issue_body(&ctx(), d, &c, &rec);
        assert!(!body.contains("hunter2"));
        insta::assert_snapshot!(body, @r#"
        <!-- sluice:drift repo=acme/infra project=prod-db -->
        ## Drift in `prod-db` · dir `envs/prod` · workspace `default`

        **Open.** Nobody has acknowledged it yet.

        <sub>first seen 2027-01-01 06:00 UTC · last checked 2027-01-01 06:00 UTC on `a1b2c3d` · fingerprint `8cf4dd2a1173`</sub>

        Last applied by Sluice: `0f0f0f0` by `ana` on 2026-12-31 10:00 UTC from #12.

        **4 changed outside Git · 2 unapplied (Git is ahead)**

        ### Changed outside Git

        These objects no longer match what was last applied: someone (or something) changed or deleted them outside Git.

        * `null_resource.both` — changed

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `triggers["%"]` | `"scaled-by-hand"` | _(none)_ |

        * `null_resource.db` — changed

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `triggers["%"]` | _(sensitive value)_ | _(none)_ |

        * `null_resource.deleted` — deleted (deleted outside Git: the refresh found no object)

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `id` | `""` | _(none)_ |
          | `triggers` | `{"name":"cache"}` | _(none)_ |

        * `null_resource.edited` — changed

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `triggers["%"]` | `"large-by-hand"` | _(none)_ |

        ### Unapplied: Git is ahead

        The default branch wants these changes, but they have not been applied.

        * `null_resource.app` — replace

          | Attribute | Now (live) | Git wants |
          |---|---|---|
          | `id` | `"1251852728458377901"` | _(known after apply)_ |
          | `triggers.image` | `"app:1.0"` | `"app:1.1"` |

        * `null_resource.both` — replace

          | Attribute | Now (live) | Git wants |
          |---|---|---|
          | `id` | `"2005472756150212719"` | _(known after apply)_ |
          | `triggers.replicas` | `"2"` | `"3"` |

        ### What to do

        Comment on this issue:

        * `sluice drift ack` — acknowledge: someone is looking into it
        * `sluice drift accept --until YYYY-MM-DD --reason "…"` — accept it as an exception until that day; a different drift re-opens it
        * `sluice drift check` — check again now
        * `sluice drift remediate` — open a pull request that applies Git's state again (planned and gated like any pull request)

        ### History

        | When (UTC) | What | By |
        |---|---|---|
        | 2027-01-01 06:00 UTC | opened | Sluice |

        Full details: <https://sluice.example/projects/acme/infra/prod-db>
        "#);
    }

    #[test]
    fn accepted_with_lock_holder_and_failing_checks() {
        let c = classification();
        let rec = run(&[
            DriftEvent::checked(at("2027-01-01T06:00:00Z"), &c),
            DriftEvent::Ack {
                at: at("2027-01-01T07:00:00Z"),
                actor: actor("bo"),
            },
            DriftEvent::Accept {
                at: at("2027-01-01T08:00:00Z"),
                actor: actor("bo"),
                until: NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(),
                reason: Some("vendor fix pending, see @ops <b>ticket</b>".into()),
            },
            DriftEvent::CheckFailed {
                at: at("2027-01-01T12:00:00Z"),
                error: "Error: Failed to load state: connection refused".into(),
            },
        ]);
        let mut ctx = ctx();
        ctx.lock = Some(Lock {
            repo: ctx.repo.clone(),
            key: LockKey {
                dir: ctx.dir.clone(),
                workspace: ctx.workspace.clone(),
            },
            pr: PrNumber::new(42).unwrap(),
            holder_login: "cy".into(),
            acquired_at: crate::core::types::UnixMs::new(0),
        });
        let d = rec.drift.as_ref().unwrap();
        insta::assert_snapshot!(issue_title(&ctx, d), @"Drift (accepted until 2027-01-31) in prod-db (acme/infra): 4 changed outside Git, 2 unapplied");
        insta::assert_snapshot!(issue_body(&ctx, d, &c, &rec), @r#"
        <!-- sluice:drift repo=acme/infra project=prod-db -->
        ## Drift in `prod-db` · dir `envs/prod` · workspace `default`

        **Accepted** by `bo` on 2027-01-01 08:00 UTC **until 2027-01-31** (end of day, UTC); it re-opens then, or earlier if the drift changes. Reason: vendor fix pending, see @‍ops &lt;b&gt;ticket&lt;/b&gt;

        <sub>first seen 2027-01-01 06:00 UTC · last checked 2027-01-01 12:00 UTC on `a1b2c3d` · fingerprint `8cf4dd2a1173`</sub>

        > [!CAUTION]
        > The latest check failed (since 2027-01-01 12:00 UTC); this shows the last successful check.

        > [!NOTE]
        > This project is locked by pull request #42 (taken by `cy`). The check ran read-only against the default branch; that pull request may change these resources when it is applied.

        Last applied by Sluice: `0f0f0f0` by `ana` on 2026-12-31 10:00 UTC from #12.

        **4 changed outside Git · 2 unapplied (Git is ahead)**

        ### Changed outside Git

        These objects no longer match what was last applied: someone (or something) changed or deleted them outside Git.

        * `null_resource.both` — changed

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `triggers["%"]` | `"scaled-by-hand"` | _(none)_ |

        * `null_resource.db` — changed

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `triggers["%"]` | _(sensitive value)_ | _(none)_ |

        * `null_resource.deleted` — deleted (deleted outside Git: the refresh found no object)

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `id` | `""` | _(none)_ |
          | `triggers` | `{"name":"cache"}` | _(none)_ |

        * `null_resource.edited` — changed

          | Attribute | Last applied | Now (live) |
          |---|---|---|
          | `triggers["%"]` | `"large-by-hand"` | _(none)_ |

        ### Unapplied: Git is ahead

        The default branch wants these changes, but they have not been applied.

        * `null_resource.app` — replace

          | Attribute | Now (live) | Git wants |
          |---|---|---|
          | `id` | `"1251852728458377901"` | _(known after apply)_ |
          | `triggers.image` | `"app:1.0"` | `"app:1.1"` |

        * `null_resource.both` — replace

          | Attribute | Now (live) | Git wants |
          |---|---|---|
          | `id` | `"2005472756150212719"` | _(known after apply)_ |
          | `triggers.replicas` | `"2"` | `"3"` |

        ### What to do

        Comment on this issue:

        * `sluice drift ack` — acknowledge: someone is looking into it
        * `sluice drift accept --until YYYY-MM-DD --reason "…"` — accept it as an exception until that day; a different drift re-opens it
        * `sluice drift check` — check again now
        * `sluice drift remediate` — open a pull request that applies Git's state again (planned and gated like any pull request)

        ### History

        | When (UTC) | What | By |
        |---|---|---|
        | 2027-01-01 06:00 UTC | opened | Sluice |
        | 2027-01-01 07:00 UTC | acknowledged | `bo` |
        | 2027-01-01 08:00 UTC | accepted until 2027-01-31: vendor fix pending, see @‍ops &lt;b&gt;ticket&lt;/b&gt; | `bo` |
        | 2027-01-01 12:00 UTC | checks started failing | Sluice |

        Full details: <https://sluice.example/projects/acme/infra/prod-db>
        "#);
        let streak = rec.failure.as_ref().unwrap();
        insta::assert_snapshot!(check_failed_title(&ctx), @"Drift check failing for prod-db (acme/infra)");
        insta::assert_snapshot!(check_failed_body(&ctx, streak), @r#"
        <!-- sluice:check-failed repo=acme/infra project=prod-db -->
        ## Drift check failing for `prod-db` · dir `envs/prod` · workspace `default`

        The drift check has failed once since 2027-01-01 12:00 UTC (latest: 2027-01-01 12:00 UTC). Until a check succeeds, Sluice cannot tell whether this project matches the default branch.

        **Latest error:**

        ```
        Error: Failed to load state: connection refused
        ```

        This issue is edited while the checks keep failing and closed when one succeeds. To check again now, comment `sluice drift check`.

        Full details: <https://sluice.example/projects/acme/infra/prod-db>
        "#);
    }

    #[test]
    fn resolved_by_an_apply() {
        let c = classification();
        let rec = run(&[
            DriftEvent::checked(at("2027-01-01T06:00:00Z"), &c),
            DriftEvent::ApplySucceeded {
                at: at("2027-01-02T09:00:00Z"),
                actor: Some(actor("cy")),
                pr: Some(PrNumber::new(43).unwrap()),
                sha: CommitSha::new(&"9e".repeat(20)).unwrap(),
                converges: true,
            },
        ]);
        let d = rec.drift.as_ref().unwrap();
        insta::assert_snapshot!(issue_title(&ctx(), d), @"Resolved drift in prod-db (acme/infra): 4 changed outside Git, 2 unapplied");
        let body = issue_body(&ctx(), d, &c, &rec);
        assert!(
            !body.contains("### What to do"),
            "no commands on a resolved drift"
        );
        assert!(
            body.contains(
                "**Resolved** on 2027-01-02 09:00 UTC: Sluice applied `9e9e9e9` from #43 (by `cy`)."
            ),
            "{body}"
        );
    }

    /// 3,000 resources with long values: the body fits, the state, commands and history stay,
    /// and what is left out is counted.
    #[test]
    fn huge_drift_fits_the_limit() {
        let mut entries = Vec::new();
        for i in 0..3000 {
            entries.push(format!(
                r#"{{"address":"aws_s3_bucket.b[{i}]","mode":"managed","type":"aws_s3_bucket","name":"b","index":{i},
                   "change":{{"actions":["update"],"before":{{"policy":"{}","tags":{{"n":"{i}"}}}},"after":{{"policy":"{}","tags":{{"n":"x{i}"}}}}}}}}"#,
                "p".repeat(400),
                "q".repeat(400)
            ));
        }
        let refresh = format!(r#"{{"resource_drift":[{}]}}"#, entries.join(","));
        let c = classify(
            CheckPlans {
                refresh_only: &parse_plan_json(refresh.as_bytes()).unwrap(),
                plan: &parse_plan_json(b"{}").unwrap(),
            },
            None,
            &[],
        )
        .unwrap();
        let rec = run(&[DriftEvent::checked(at("2027-01-01T06:00:00Z"), &c)]);
        let d = rec.drift.as_ref().unwrap();
        for max in [MAX_ISSUE_BODY, 10_000] {
            let mut ctx = ctx();
            ctx.max_body = max;
            let body = issue_body(&ctx, d, &c, &rec);
            assert!(body.len() <= max, "{} > {max}", body.len());
            assert!(body.starts_with("<!-- sluice:drift repo=acme/infra project=prod-db -->"));
            assert!(body.contains("**Open.**"));
            assert!(body.contains("`sluice drift accept --until YYYY-MM-DD"));
            assert!(body.contains("### History"));
            assert!(
                body.contains("more not listed here"),
                "{}",
                &body[body.len() - 2000..]
            );
            assert!(body.contains("`aws_s3_bucket.b[0]`"));
        }
    }
}
