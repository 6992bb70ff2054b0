//! The web UI's pages, rendered to HTML from plain view values (PRODUCT.md §16, issue 14):
//! environments and sync status, runs (a list and one run), a job's log, locks (and the
//! release confirmation), drift, audit, and the pages shown before anyone is let in (login,
//! login not configured, errors).
//!
//! Every page is a `maud` template: Rust checked at compile time, where every interpolated
//! value is HTML-escaped (this module never uses `PreEscaped`). Values inside URLs are percent-encoded on top
//! ([`seg`] for path segments, `form_urlencoded` for query strings), so a hostile project,
//! branch or repository name stays text wherever it lands.
//!
//! What this module does not do: decide who may see what (`access`; the caller passes only
//! rows the viewer may read, and `can_act` flags for write actions), read the store or the clock
//! (rows and `now` come in), or sign anything (CSRF tokens come in through [`Forms`]).
//! Pages work without JavaScript; [`UI_JS`] only shows times in the viewer's zone and streams
//! a running job's log (`EventSource`, see `live_log`).

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, html};

use super::job_log::{ChunkKind, LogChunk, LogStream};
use super::session::{SessionId, UiKeys, csrf_token};
use crate::core::drift::lifecycle::DriftPhase;
use crate::core::drift::status::SyncStatus;
use crate::core::job::JobState;

/// The UI's routes: the one place that says where each page and form lives, for the pages'
/// links and for the router. Every path is a constant or built by a function here.
pub mod routes {
    use super::seg;

    pub const ROOT: &str = "/";
    pub const LOGIN: &str = "/login";
    pub const LOGIN_START: &str = "/login/start";
    pub const LOGIN_CALLBACK: &str = "/login/callback";
    pub const LOGOUT: &str = "/logout";
    pub const ENVIRONMENTS: &str = "/environments";
    pub const RUNS: &str = "/runs";
    pub const LOCKS: &str = "/locks";
    /// `GET`: the confirmation page (query `repo`, `dir`, `workspace`); `POST`: the release.
    pub const LOCK_RELEASE: &str = "/locks/release";
    pub const DRIFT: &str = "/drift";
    pub const DRIFT_ACK: &str = "/drift/ack";
    pub const DRIFT_ACCEPT: &str = "/drift/accept";
    pub const AUDIT: &str = "/audit";
    /// The streaming export (`format=jsonl|csv` plus the audit filters).
    pub const AUDIT_EXPORT: &str = "/audit/export";
    pub const CSS: &str = "/static/sluice.css";
    pub const JS: &str = "/static/sluice.js";

    /// `/runs/{id}`.
    pub fn run(id: i64) -> String {
        format!("/runs/{id}")
    }

    /// `/jobs/{id}/log`: the "Full log" page.
    pub fn job_log(id: i64) -> String {
        format!("/jobs/{id}/log")
    }

    /// `/jobs/{id}/log/events`: the log's Server-Sent Events stream.
    pub fn job_log_events(id: i64) -> String {
        format!("/jobs/{id}/log/events")
    }

    /// `/repos/{owner}/{name}/pulls/{pr}`: a pull request's runs.
    pub fn pull(repo: &str, pr: u64) -> String {
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        format!("/repos/{}/{}/pulls/{pr}", seg(owner), seg(name))
    }

    /// The absolute "Full log" URL that comments link to: `{public_url}/jobs/{id}/log`.
    pub fn full_log_url(public_url: &str, job_id: i64) -> String {
        format!("{}{}", public_url.trim_end_matches('/'), job_log(job_id))
    }
}

/// A path segment, percent-encoded: everything but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) is written `%XX`, so a segment never adds a `/`, `?` or `#`.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    let q = s.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

/// The CSRF tokens of the forms a page may show, for one session (see `session::csrf_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forms {
    pub logout: String,
    pub release_lock: String,
    pub drift_ack: String,
    pub drift_accept: String,
}

impl Forms {
    /// The tokens for session `id`. Requests without a session (the API token, the dev flag)
    /// use [`SessionId::DEV`].
    pub fn new(keys: &UiKeys, id: &SessionId) -> Forms {
        Forms {
            logout: csrf_token(keys, id, routes::LOGOUT),
            release_lock: csrf_token(keys, id, routes::LOCK_RELEASE),
            drift_ack: csrf_token(keys, id, routes::DRIFT_ACK),
            drift_accept: csrf_token(keys, id, routes::DRIFT_ACCEPT),
        }
    }
}

/// What every page around its content needs.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Shown in the header: the GitHub login, `api-token` or `no-auth`
    /// (`Principal::display_login`).
    pub viewer: String,
    /// Whether the viewer is an admin (shown next to the login).
    pub admin: bool,
    /// Whether a logout form is shown (sessions only).
    pub can_logout: bool,
    pub forms: Forms,
    /// GitHub's web host for links (`oauth::web_url_from_api_url`), e.g. `https://github.com`.
    pub github_web: String,
    /// Shown on every page while `--insecure-ui-no-auth` is on.
    pub insecure_no_auth: bool,
}

/// The top navigation's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Environments,
    Runs,
    Locks,
    Drift,
    Audit,
}

/// The top navigation: every list page, so each page is reachable from `/`.
const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Environments, "Environments", routes::ENVIRONMENTS),
    (Section::Runs, "Runs", routes::RUNS),
    (Section::Locks, "Locks", routes::LOCKS),
    (Section::Drift, "Drift", routes::DRIFT),
    (Section::Audit, "Audit", routes::AUDIT),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · Sluice" }
            link rel="stylesheet" href=(routes::CSS);
            script src=(routes::JS) defer {}
        }
    }
}

/// A page of the signed-in UI.
fn page(chrome: &Chrome, section: Option<Section>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Sections" {
                        a.brand href=(routes::ROOT) { "Sluice" }
                        ul {
                            @for (s, label, href) in SECTIONS {
                                li {
                                    @if section == Some(s) {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.viewer {
                        span { (chrome.viewer) }
                        @if chrome.admin { " " span.badge { "admin" } }
                        @if chrome.can_logout {
                            form method="post" action=(routes::LOGOUT) {
                                input type="hidden" name="csrf" value=(chrome.forms.logout);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                @if chrome.insecure_no_auth {
                    p.warning role="alert" {
                        "Login is off (--insecure-ui-no-auth): anyone who can reach this server sees and does everything. For development only."
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page shown before anyone is let in: names nothing of repositories, projects, commits or
/// the host.
fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main #main { h1 { (title) } (body) } }
        }
    }
}

/// `/` and `/login` without a session: one button to log in with GitHub.
/// `start_href` is `/login/start?return_to=…` ([`login_start_href`]); `message` is why the
/// viewer is here again (an expired session, a refused login), shown as text.
pub fn login_page(start_href: &str, message: Option<&str>) -> String {
    bare(
        "Log in",
        html! {
            @if let Some(m) = message { p.notice role="alert" { (m) } }
            p { "Sluice shows the repositories you can read on GitHub." }
            p { a.button href=(start_href) { "Log in with GitHub" } }
        },
    )
    .into_string()
}

/// The link that starts a login returning to `return_to` (made safe again at the callback).
pub fn login_start_href(return_to: &str) -> String {
    format!(
        "{}{}",
        routes::LOGIN_START,
        query(&[("return_to", return_to)])
    )
}

/// Every page while neither login with GitHub nor `--insecure-ui-no-auth` is configured: how
/// to turn it on. Names settings only.
pub fn not_configured_page() -> String {
    bare(
        "Log in is not configured",
        html! {
            p { "This server has no login configured, so the web UI is off. To turn it on, set:" }
            ul {
                li { code { "SLUICE_UI__OAUTH_CLIENT_ID" } " and " code { "SLUICE_UI__OAUTH_CLIENT_SECRET" }
                     ": the client of the GitHub App (or of an OAuth app) whose callback URL is "
                     code { "<public_url>/login/callback" } ";" }
                li { code { "SLUICE_UI__SESSION_SECRET" } ": at least 32 random bytes (e.g. "
                     code { "openssl rand -hex 32" } ");" }
                li { code { "SLUICE_PUBLIC_URL" } ": the address users reach Sluice at." }
            }
            p { "Scripts can use " code { "Authorization: Bearer <api_token>" } " instead (" code { "SLUICE_API_TOKEN" } ")." }
        },
    )
    .into_string()
}

/// An error page (401, 403, 404, 400…): `message` is shown as text. 404 says the same for a
/// page that does not exist and one the viewer may not see.
pub fn error_page(status: u16, message: &str) -> String {
    let title = match status {
        400 => "Bad request",
        401 => "Not signed in",
        403 => "Not allowed",
        404 => "Not found",
        _ => "Something went wrong",
    };
    bare(
        title,
        html! {
            p { (message) }
            p { a href=(routes::ROOT) { "Back to the start page" } }
        },
    )
    .into_string()
}

/// A `<time>` showing `t` in UTC; the script rewrites the text to the viewer's zone and keeps
/// UTC in the tooltip.
fn time(t: DateTime<Utc>) -> Markup {
    let utc = t.format("%Y-%m-%d %H:%M UTC").to_string();
    html! { time datetime=(t.to_rfc3339_opts(SecondsFormat::Secs, true)) title=(utc) { (utc) } }
}

/// `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// `45s`, `12m`, `3h`, `5d` (ages of drift, of locks).
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn sync_label(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::Synced => "Synced",
        SyncStatus::Drifted => "Drifted",
        SyncStatus::OutOfSync => "Out of sync",
        SyncStatus::Applying => "Applying",
        SyncStatus::CheckFailed => "Check failed",
        SyncStatus::Unknown => "Unknown",
        SyncStatus::Stale => "Stale",
    }
}

fn job_label(s: JobState) -> &'static str {
    match s {
        JobState::Waiting => "Waiting for locks",
        JobState::Queued => "Queued",
        JobState::Running => "Running",
        JobState::Succeeded => "Succeeded",
        JobState::Failed => "Failed",
        JobState::Cancelled => "Cancelled",
        JobState::Interrupted => "Interrupted",
    }
}

fn job_class(s: JobState) -> &'static str {
    match s {
        JobState::Waiting | JobState::Queued => "status pending",
        JobState::Running => "status running",
        JobState::Succeeded => "status ok",
        JobState::Failed | JobState::Interrupted => "status bad",
        JobState::Cancelled => "status muted",
    }
}

/// Status is text first; the class only adds colour.
fn sync_badge(s: SyncStatus) -> Markup {
    let class = match s {
        SyncStatus::Synced => "status ok",
        SyncStatus::Drifted | SyncStatus::CheckFailed => "status bad",
        SyncStatus::OutOfSync | SyncStatus::Stale => "status warn",
        SyncStatus::Applying => "status running",
        SyncStatus::Unknown => "status muted",
    };
    html! { span class=(class) { (sync_label(s)) } }
}

fn github_pr(chrome: &Chrome, repo: &str, pr: u64) -> String {
    format!(
        "{}/{}/pull/{pr}",
        chrome.github_web.trim_end_matches('/'),
        repo_path(repo)
    )
}

fn github_commit(chrome: &Chrome, repo: &str, sha: &str) -> String {
    format!(
        "{}/{}/commit/{}",
        chrome.github_web.trim_end_matches('/'),
        repo_path(repo),
        seg(sha)
    )
}

fn repo_path(repo: &str) -> String {
    let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
    format!("{}/{}", seg(owner), seg(name))
}

// ---------------------------------------------------------------------------------------------
// Environments

/// The last commit Sluice applied for a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedView {
    pub sha: String,
    pub pr: Option<u64>,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Who holds a project's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pr: u64,
    pub by: String,
    pub since: DateTime<Utc>,
}

/// One project on the environments page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRow {
    /// `owner/name`.
    pub repo: String,
    pub project: String,
    pub dir: String,
    pub workspace: String,
    /// `environments::environment_of`; `None`: listed under "No environment".
    pub environment: Option<String>,
    pub status: SyncStatus,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_applied: Option<AppliedView>,
    /// Seconds since the live drift opened.
    pub drift_age_seconds: Option<i64>,
    pub lock: Option<LockHolder>,
}

/// The environments page's filter (query `q`, `status`, `env`); empty values filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentFilter {
    /// Case-insensitive substring of the repository, project, dir or workspace.
    pub q: String,
    /// `SyncStatus::as_str`.
    pub status: String,
    /// An environment's name (case-insensitive); `-` for projects without one.
    pub env: String,
}

impl EnvironmentFilter {
    /// Whether `row` passes the filter.
    pub fn matches(&self, row: &EnvironmentRow) -> bool {
        let q = self.q.trim().to_lowercase();
        let text_ok = q.is_empty()
            || [&row.repo, &row.project, &row.dir, &row.workspace]
                .iter()
                .any(|f| f.to_lowercase().contains(&q));
        let status_ok = self.status.is_empty() || row.status.as_str() == self.status;
        let env_ok = match (self.env.as_str(), &row.environment) {
            ("", _) => true,
            ("-", e) => e.is_none(),
            (want, Some(e)) => e.eq_ignore_ascii_case(want),
            (_, None) => false,
        };
        text_ok && status_ok && env_ok
    }
}

/// Rows grouped by environment: named environments in the order of first appearance in
/// `rows` (the caller sorts), projects without one last; each group keeps `rows`' order.
pub fn group_by_environment<'r>(
    rows: &[&'r EnvironmentRow],
) -> Vec<(Option<&'r str>, Vec<&'r EnvironmentRow>)> {
    let mut groups: Vec<(Option<&'r str>, Vec<&'r EnvironmentRow>)> = Vec::new();
    let mut none = Vec::new();
    for &r in rows {
        match r.environment.as_deref() {
            None => none.push(r),
            Some(e) => match groups
                .iter_mut()
                .find(|(g, _)| g.is_some_and(|g| g.eq_ignore_ascii_case(e)))
            {
                Some((_, v)) => v.push(r),
                None => groups.push((Some(e), vec![r])),
            },
        }
    }
    if !none.is_empty() {
        groups.push((None, none));
    }
    groups
}

/// `/` and `/environments`: repositories × projects by environment, with sync status, the last
/// applied commit, drift age and lock holder. `rows` are the projects the viewer may read.
pub fn environments_page(
    chrome: &Chrome,
    rows: &[EnvironmentRow],
    filter: &EnvironmentFilter,
    now: DateTime<Utc>,
) -> String {
    let shown: Vec<&EnvironmentRow> = rows.iter().filter(|r| filter.matches(r)).collect();
    let groups = group_by_environment(&shown);
    let mut envs: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.environment.as_deref())
        .collect();
    envs.sort_by_key(|e| e.to_lowercase());
    envs.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let body = html! {
        form.filters method="get" action=(routes::ENVIRONMENTS) role="search" {
            label { "Search " input type="search" name="q" value=(filter.q); }
            label { "Status "
                select name="status" {
                    option value="" selected[filter.status.is_empty()] { "Any" }
                    @for s in SyncStatus::ALL {
                        option value=(s.as_str()) selected[filter.status == s.as_str()] { (sync_label(s)) }
                    }
                }
            }
            label { "Environment "
                select name="env" {
                    option value="" selected[filter.env.is_empty()] { "Any" }
                    @for e in &envs {
                        option value=(e) selected[filter.env.eq_ignore_ascii_case(e)] { (e) }
                    }
                    option value="-" selected[filter.env == "-"] { "No environment" }
                }
            }
            button type="submit" { "Filter" }
        }
        p { (shown.len()) " of " (rows.len()) " projects" }
        @if rows.is_empty() {
            p { "No projects yet: they appear here once Sluice has planned or checked them in a repository you can read." }
        }
        @for (env, group) in &groups {
            section {
                h2 {
                    @match env { Some(e) => { (e) }, None => { "No environment" } }
                    " " span.count { "(" (group.len()) ")" }
                }
                div.scroll {
                    table {
                        thead { tr {
                            th scope="col" { "Repository" } th scope="col" { "Project" }
                            th scope="col" { "Dir" } th scope="col" { "Workspace" }
                            th scope="col" { "Status" } th scope="col" { "Last applied" }
                            th scope="col" { "Drift age" } th scope="col" { "Lock" }
                        } }
                        tbody {
                            @for r in group {
                                tr {
                                    td { (r.repo) }
                                    td { (r.project) }
                                    td { code { (r.dir) } }
                                    td { (r.workspace) }
                                    td { (sync_badge(r.status))
                                        @if let Some(t) = r.last_check_at { br; small { "checked " (time(t)) } } }
                                    td {
                                        @if let Some(a) = &r.last_applied {
                                            a href=(github_commit(chrome, &r.repo, &a.sha)) { code { (short_sha(&a.sha)) } }
                                            @if let Some(pr) = a.pr {
                                                " from " a href=(routes::pull(&r.repo, pr)) { "#" (pr) }
                                            }
                                            " by " (a.by) ", " (time(a.at))
                                        } @else { "never" }
                                    }
                                    td { @if let Some(s) = r.drift_age_seconds { (age(s)) } @else { "–" } }
                                    td {
                                        @if let Some(l) = &r.lock {
                                            a href=(routes::pull(&r.repo, l.pr)) { "#" (l.pr) } " (" (l.by) ", "
                                            (age((now - l.since).num_seconds())) ")"
                                        } @else { "free" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(chrome, Some(Section::Environments), "Environments", body).into_string()
}

// ---------------------------------------------------------------------------------------------
// Runs

/// How long each part of a job took, in milliseconds (`None`: did not happen or not yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepDurations {
    /// From queued to started.
    pub queue_wait_ms: Option<u64>,
    pub init_ms: Option<u64>,
    pub plan_ms: Option<u64>,
    pub show_ms: Option<u64>,
    pub apply_ms: Option<u64>,
}

/// One policy's decision for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLine {
    pub policy: String,
    /// `allow`, `deny`, `overridden`…
    pub outcome: String,
    pub reasons: Vec<String>,
}

/// One job of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub id: i64,
    pub project: String,
    pub dir: String,
    pub workspace: String,
    pub state: JobState,
    pub durations: StepDurations,
    /// The plan's summary line (`Plan: 1 to add, 0 to change, 0 to destroy.`), redacted.
    pub summary: Option<String>,
    pub policies: Vec<PolicyLine>,
}

/// A run in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    pub id: i64,
    pub repo: String,
    pub pr: u64,
    /// `plan`, `apply`, `drift check`…
    pub kind: String,
    /// Who asked (a login) and how (`autoplan`, `comment`).
    pub actor: String,
    pub trigger: String,
    pub head_sha: String,
    /// The PR's head branch, as the PR names it.
    pub branch: String,
    pub created_at: DateTime<Utc>,
    /// The run's jobs' states, in order.
    pub job_states: Vec<JobState>,
}

/// The state of a run from its jobs: the first of running, waiting/queued, failed/interrupted,
/// cancelled, succeeded that any job is in.
pub fn run_state(jobs: &[JobState]) -> JobState {
    use JobState::*;
    for group in [
        &[Running][..],
        &[Waiting, Queued],
        &[Failed, Interrupted],
        &[Cancelled],
    ] {
        if let Some(s) = jobs.iter().find(|s| group.contains(s)) {
            return *s;
        }
    }
    Succeeded
}

fn run_row(chrome: &Chrome, r: &RunView) -> Markup {
    let state = run_state(&r.job_states);
    html! {
        tr {
            td { a href=(routes::run(r.id)) { "Run " (r.id) } }
            td { (r.repo) }
            td { a href=(routes::pull(&r.repo, r.pr)) { "#" (r.pr) } " "
                 a href=(github_pr(chrome, &r.repo, r.pr)) aria-label={ "#" (r.pr) " on GitHub" } { "↗" } }
            td { code { (r.branch) } }
            td { (r.kind) }
            td { (r.actor) " (" (r.trigger) ")" }
            td { span class=(job_class(state)) { (job_label(state)) } " "
                 small { (r.job_states.len()) @if r.job_states.len() == 1 { " job" } @else { " jobs" } } }
            td { (time(r.created_at)) }
        }
    }
}

fn runs_table(chrome: &Chrome, runs: &[RunView]) -> Markup {
    html! {
        @if runs.is_empty() { p { "No runs." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Run" } th scope="col" { "Repository" } th scope="col" { "PR" }
                    th scope="col" { "Branch" } th scope="col" { "Command" } th scope="col" { "By" }
                    th scope="col" { "State" } th scope="col" { "Started" }
                } }
                tbody { @for r in runs { (run_row(chrome, r)) } }
            } }
        }
    }
}

/// The runs list's filter (query `repo`, `pr`, `state`); empty values filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// `owner/name`, case-insensitively.
    pub repo: String,
    /// A pull request number.
    pub pr: String,
    /// A run's state ([`run_state`]) as `JobState::as_str`.
    pub state: String,
}

impl RunFilter {
    /// Whether a run passes the state filter (repository and PR are the store's query).
    pub fn state_matches(&self, r: &RunView) -> bool {
        self.state.is_empty() || run_state(&r.job_states).as_str() == self.state
    }

    /// The link to the next (older) page of runs: runs with an id below `before`.
    pub fn older_href(&self, before: i64) -> String {
        let b = before.to_string();
        format!(
            "{}{}",
            routes::RUNS,
            query(&[
                ("repo", &self.repo),
                ("pr", &self.pr),
                ("state", &self.state),
                ("before", &b)
            ])
        )
    }
}

/// `/runs` (the latest runs the viewer may read, newest first, `filter` shown as a form) and
/// `/repos/{owner}/{name}/pulls/{n}` (one PR's runs: pass `pr`). `older`: the id to pass as
/// `before` for the next page, when there are more.
pub fn runs_page(
    chrome: &Chrome,
    pr: Option<(&str, u64)>,
    filter: &RunFilter,
    runs: &[RunView],
    older: Option<i64>,
) -> String {
    let title = match pr {
        Some((repo, n)) => format!("{repo} #{n}"),
        None => "Runs".to_string(),
    };
    let body = html! {
        @if let Some((repo, n)) = pr {
            p { a href=(github_pr(chrome, repo, n)) { "Open the pull request on GitHub" } }
        } @else {
            form.filters method="get" action=(routes::RUNS) role="search" {
                label { "Repository " input type="text" name="repo" value=(filter.repo) placeholder="owner/name"; }
                label { "PR " input type="text" name="pr" value=(filter.pr) inputmode="numeric" size="6"; }
                label { "State "
                    select name="state" {
                        option value="" selected[filter.state.is_empty()] { "Any" }
                        @for s in JobState::ALL {
                            option value=(s.as_str()) selected[filter.state == s.as_str()] { (job_label(s)) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
        }
        (runs_table(chrome, runs))
        @if let Some(b) = older {
            p { a href=(filter.older_href(b)) rel="next" { "Older runs" } }
        }
    };
    page(chrome, Some(Section::Runs), &title, body).into_string()
}

/// `/runs/{id}`: each job with its state, durations, plan summary and policy decisions, and
/// its log.
pub fn run_page(chrome: &Chrome, run: &RunView, jobs: &[JobView]) -> String {
    let state = run_state(&run.job_states);
    let title = format!("Run {} · {} #{}", run.id, run.repo, run.pr);
    let body = html! {
        dl.facts {
            dt { "State" } dd { span class=(job_class(state)) { (job_label(state)) } }
            dt { "Command" } dd { (run.kind) }
            dt { "By" } dd { (run.actor) " (" (run.trigger) ")" }
            dt { "Pull request" } dd { a href=(routes::pull(&run.repo, run.pr)) { "#" (run.pr) } " · "
                a href=(github_pr(chrome, &run.repo, run.pr)) { "on GitHub" } }
            dt { "Branch" } dd { code { (run.branch) } }
            dt { "Commit" } dd { a href=(github_commit(chrome, &run.repo, &run.head_sha)) { code { (short_sha(&run.head_sha)) } } }
            dt { "Started" } dd { (time(run.created_at)) }
        }
        @for j in jobs {
            section.job {
                h2 { (j.project) " " small { code { (j.dir) } " · " (j.workspace) } }
                p { span class=(job_class(j.state)) { (job_label(j.state)) } " · "
                    a href=(routes::job_log(j.id)) { "Full log" } }
                @if let Some(s) = &j.summary { p.summary { (s) } }
                @let d = j.durations;
                @let parts = [("Queue wait", d.queue_wait_ms), ("init", d.init_ms), ("plan", d.plan_ms), ("show", d.show_ms), ("apply", d.apply_ms)];
                dl.durations {
                    @for (name, ms) in parts {
                        @if let Some(ms) = ms { dt { (name) } dd { (duration(ms)) } }
                    }
                }
                @if !j.policies.is_empty() {
                    table {
                        caption { "Policies" }
                        thead { tr { th scope="col" { "Policy" } th scope="col" { "Decision" } th scope="col" { "Reasons" } } }
                        tbody { @for p in &j.policies { tr {
                            td { (p.policy) } td { (p.outcome) }
                            td { @if p.reasons.is_empty() { "–" } @else { ul { @for r in &p.reasons { li { (r) } } } } }
                        } } }
                    }
                }
            }
        }
    };
    page(chrome, Some(Section::Runs), &title, body).into_string()
}

// ---------------------------------------------------------------------------------------------
// Job log

/// What the log page shows about its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLogView {
    pub job: JobView,
    pub run_id: i64,
    pub repo: String,
    pub pr: u64,
    /// The stored chunks (already redacted when stored), in `seq` order.
    pub chunks: Vec<LogChunk>,
    /// The log was removed by retention (`log_retention`): only its totals remain.
    pub expired: bool,
}

/// `/jobs/{id}/log`: the stored log, and, while the job runs, the `EventSource` that streams
/// the rest from the last chunk shown (`data-after`; the browser's `Last-Event-ID` takes over
/// on reconnects, see `live_log::resume_after`). Without JavaScript the page shows what is
/// stored and says to reload.
pub fn job_log_page(chrome: &Chrome, log: &JobLogView) -> String {
    let j = &log.job;
    let last = log.chunks.last().map_or(0, |c| c.seq);
    let ended = log.chunks.iter().any(|c| c.kind == ChunkKind::End);
    let title = format!("Log · {} ({})", j.project, j.workspace);
    // A heading before the first chunk of each step.
    let mut step = None;
    let items: Vec<(bool, &LogChunk)> = log
        .chunks
        .iter()
        .map(|c| {
            let new = c.kind != ChunkKind::End && step != Some(c.step);
            if new {
                step = Some(c.step);
            }
            (new, c)
        })
        .collect();
    let last_step = log
        .chunks
        .iter()
        .rev()
        .find(|c| c.kind != ChunkKind::End)
        .map_or("", |c| c.step.as_str());
    let body = html! {
        p {
            a href=(routes::run(log.run_id)) { "Run " (log.run_id) } " · "
            (log.repo) " " a href=(routes::pull(&log.repo, log.pr)) { "#" (log.pr) } " · "
            code { (j.dir) } " · " span #job-state class=(job_class(j.state)) { (job_label(j.state)) }
        }
        @if log.expired {
            p.notice { "This log is older than the log retention and was removed." }
        }
        @if !ended && !log.expired {
            p.live #live-status aria-live="polite" { "This job is still running. "
                noscript { "Reload the page to see new output." } }
        }
        @let capped = log.chunks.iter().find(|c| c.kind == ChunkKind::CapReached);
        @if let Some(c) = capped { p.notice role="note" { (c.text) } }
        pre.log #log data-events=(routes::job_log_events(j.id)) data-after=(last) data-step=(last_step) data-ended[ended] tabindex="0" aria-label="Job output" {
            @for (new_step, c) in &items {
                @if *new_step {
                    span.step { "── " (c.step.as_str()) " ──\n" }
                }
                @match c.kind {
                    ChunkKind::Output => {
                        @if c.stream == LogStream::Stderr { span.stderr { (c.text) } } @else { (c.text) }
                    },
                    ChunkKind::CapReached | ChunkKind::Omitted => { span.notice { (c.text) } },
                    ChunkKind::StepEnd => { span."step-end" { (c.text) } },
                    ChunkKind::End => { span.end { "── end of log ──\n" } },
                }
            }
        }
    };
    page(chrome, Some(Section::Runs), &title, body).into_string()
}

// ---------------------------------------------------------------------------------------------
// Locks

/// One lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockView {
    pub repo: String,
    pub dir: String,
    pub workspace: String,
    /// The projects of the holder's run in this dir and workspace.
    pub project: String,
    pub pr: u64,
    /// Who ran the command that took it.
    pub by: String,
    pub since: DateTime<Utc>,
    /// Whether the viewer may release it (`access::authorize` with `ReleaseLock`).
    pub can_release: bool,
}

impl LockView {
    /// The confirmation page's address for this lock.
    pub fn confirm_href(&self) -> String {
        format!(
            "{}{}",
            routes::LOCK_RELEASE,
            query(&[
                ("repo", &self.repo),
                ("dir", &self.dir),
                ("workspace", &self.workspace)
            ])
        )
    }
}

/// `/locks`: who holds what, with a "Release…" link to the confirmation for locks the viewer
/// may release.
pub fn locks_page(chrome: &Chrome, locks: &[LockView], now: DateTime<Utc>) -> String {
    let body = html! {
        @if locks.is_empty() { p { "No locks are held." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Repository" } th scope="col" { "Dir" } th scope="col" { "Workspace" }
                    th scope="col" { "Project" } th scope="col" { "Held by" } th scope="col" { "Since" }
                    th scope="col" { span class="visually-hidden" { "Actions" } }
                } }
                tbody { @for l in locks { tr {
                    td { (l.repo) } td { code { (l.dir) } } td { (l.workspace) } td { (l.project) }
                    td { a href=(routes::pull(&l.repo, l.pr)) { "#" (l.pr) } " (" (l.by) ")" }
                    td { (time(l.since)) " (" (age((now - l.since).num_seconds())) ")" }
                    td { @if l.can_release { a href=(l.confirm_href()) { "Release…" } } }
                } } }
            } }
        }
    };
    page(chrome, Some(Section::Locks), "Locks", body).into_string()
}

/// `GET /locks/release?…`: what releasing does, and the form that does it (`POST`, with the
/// CSRF token). The same rules as `sluice locks release`: audited, the PR told.
pub fn lock_release_confirm_page(chrome: &Chrome, lock: &LockView) -> String {
    let body = html! {
        p { "Release the lock on " code { (lock.dir) } " (workspace " (lock.workspace) ") of " (lock.repo)
            ", held by " a href=(routes::pull(&lock.repo, lock.pr)) { "#" (lock.pr) } "?" }
        p { "The pull request's plans for it are discarded and the pull request is told; the release is written to the audit log with your login." }
        form method="post" action=(routes::LOCK_RELEASE) {
            input type="hidden" name="csrf" value=(chrome.forms.release_lock);
            input type="hidden" name="repo" value=(lock.repo);
            input type="hidden" name="dir" value=(lock.dir);
            input type="hidden" name="workspace" value=(lock.workspace);
            input type="hidden" name="pr" value=(lock.pr);
            button.danger type="submit" { "Release the lock" } " "
            a href=(routes::LOCKS) { "Cancel" }
        }
    };
    page(chrome, Some(Section::Locks), "Release a lock", body).into_string()
}

// ---------------------------------------------------------------------------------------------
// Drift

/// One transition in a drift's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftHistoryLine {
    pub at: DateTime<Utc>,
    /// What happened (`opened`, `acknowledged`, `accepted until 2026-12-31`…).
    pub what: String,
    pub by: Option<String>,
}

/// One open drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRow {
    pub repo: String,
    pub project: String,
    pub dir: String,
    pub workspace: String,
    pub phase: DriftPhase,
    /// 12 hex digits.
    pub fingerprint: String,
    /// Resources changed outside Git, and changes merged but not applied.
    pub changed_outside: u32,
    pub unapplied: u32,
    pub opened_at: DateTime<Utc>,
    pub age_seconds: i64,
    /// The drift issue on GitHub.
    pub issue: Option<u64>,
    pub history: Vec<DriftHistoryLine>,
    /// Whether the viewer may acknowledge or accept it.
    pub can_act: bool,
}

/// A drift transition as the history shows it.
pub fn drift_history_line(t: &crate::core::drift::Transition) -> DriftHistoryLine {
    use crate::core::drift::{ReopenReason, Resolution, TransitionKind as K};
    let what = match &t.kind {
        K::Opened { .. } => "opened".to_string(),
        K::Changed { .. } => "changed (other resources or attributes)".to_string(),
        K::Reopened(ReopenReason::DifferentDrift { .. }) => {
            "re-opened: a different drift".to_string()
        }
        K::Reopened(ReopenReason::ValuesChanged) => "re-opened: the values changed".to_string(),
        K::Acknowledged => "acknowledged".to_string(),
        K::Accepted { until, reason } => match reason {
            Some(r) => format!("accepted until {until} ({r})"),
            None => format!("accepted until {until}"),
        },
        K::AcceptanceExpired { until } => format!("acceptance until {until} ran out"),
        K::Resolved(Resolution::CheckClean) => "resolved: a check found it in sync".to_string(),
        K::Resolved(Resolution::Applied { pr, sha, .. }) => match pr {
            Some(pr) => format!(
                "resolved: #{} applied {}",
                pr.get(),
                short_sha(sha.as_str())
            ),
            None => format!("resolved: {} applied", short_sha(sha.as_str())),
        },
        K::CheckFailed { .. } => "a check failed".to_string(),
        K::CheckRecovered { failures, .. } => {
            format!("checks work again after {failures} failures")
        }
    };
    DriftHistoryLine {
        at: t.at,
        what,
        by: t.actor.as_ref().map(|a| a.login.clone()),
    }
}

fn drift_hidden(r: &DriftRow, token: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(token);
        input type="hidden" name="repo" value=(r.repo);
        input type="hidden" name="dir" value=(r.dir);
        input type="hidden" name="workspace" value=(r.workspace);
        input type="hidden" name="fingerprint" value=(r.fingerprint);
    }
}

/// `/drift`: open drift with its lifecycle and history; acknowledge and accept (until a date,
/// with a reason) where the viewer may.
pub fn drift_page(chrome: &Chrome, rows: &[DriftRow]) -> String {
    let body = html! {
        @if rows.is_empty() { p { "No open drift." } }
        @for r in rows {
            section.drift {
                h2 { (r.repo) " · " (r.project) " " small { code { (r.dir) } " · " (r.workspace) } }
                p {
                    span.status.bad { (r.phase.as_str()) } " · "
                    (r.changed_outside) " changed outside Git, " (r.unapplied) " not applied · open for "
                    (age(r.age_seconds)) " (since " (time(r.opened_at)) ") · fingerprint " code { (r.fingerprint) }
                    @if let Some(i) = r.issue {
                        " · " a href={ (chrome.github_web.trim_end_matches('/')) "/" (repo_path(&r.repo)) "/issues/" (i) } { "issue #" (i) }
                    }
                }
                @if !r.history.is_empty() {
                    details { summary { "History (" (r.history.len()) ")" }
                        ol { @for h in &r.history { li { (time(h.at)) " " (h.what)
                            @if let Some(b) = &h.by { " by " (b) } } } }
                    }
                }
                @if r.can_act {
                    div.actions {
                        @if r.phase == DriftPhase::Open {
                            form method="post" action=(routes::DRIFT_ACK) {
                                (drift_hidden(r, &chrome.forms.drift_ack))
                                button type="submit" { "Acknowledge" }
                            }
                        }
                        form method="post" action=(routes::DRIFT_ACCEPT) {
                            (drift_hidden(r, &chrome.forms.drift_accept))
                            label { "Accept until " input type="date" name="until" required; }
                            label { " because " input type="text" name="reason" required maxlength="500"; }
                            button type="submit" { "Accept" }
                        }
                    }
                }
            }
        }
    };
    page(chrome, Some(Section::Drift), "Drift", body).into_string()
}

// ---------------------------------------------------------------------------------------------
// Audit

/// The audit page's filter (query fields of the same names; empty filters nothing). The same
/// fields go to the export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub repo: String,
    pub pr: String,
    pub commit: String,
    pub actor: String,
    pub action: String,
    /// RFC 3339 or `YYYY-MM-DD`.
    pub since: String,
    pub until: String,
}

impl AuditFilter {
    fn pairs(&self) -> [(&str, &str); 7] {
        [
            ("repo", &self.repo),
            ("pr", &self.pr),
            ("commit", &self.commit),
            ("actor", &self.actor),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
        ]
    }

    /// The export link for `format` (`jsonl` or `csv`) with this filter.
    pub fn export_href(&self, format: &str) -> String {
        let mut pairs = vec![("format", format)];
        pairs.extend(self.pairs());
        format!("{}{}", routes::AUDIT_EXPORT, query(&pairs))
    }
}

/// One audit entry in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub result: String,
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub head_sha: Option<String>,
    pub project: Option<String>,
}

/// What the last chain verification found (the caller runs `audit::Verifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// Every entry up to `last_seq` checks out.
    Verified {
        entries: u64,
        last_seq: u64,
        last_hash: String,
        at: DateTime<Utc>,
    },
    /// The first entry that does not: which, and why.
    Broken {
        seq: u64,
        reason: String,
        at: DateTime<Utc>,
    },
    /// Not verified yet (admins only see this; members see no chain status).
    NotChecked,
}

/// `/audit`: entries filtered, the chain's status (admins), and export links.
/// `next_cursor`: the last shown `seq` when there are more entries.
pub fn audit_page(
    chrome: &Chrome,
    filter: &AuditFilter,
    rows: &[AuditRow],
    chain: Option<&ChainStatus>,
    next_cursor: Option<u64>,
) -> String {
    let next_href = next_cursor.map(|c| {
        let c = c.to_string();
        let mut pairs = filter.pairs().to_vec();
        pairs.push(("cursor", &c));
        format!("{}{}", routes::AUDIT, query(&pairs))
    });
    let field = |name: &str, label: &str, value: &str| {
        html! { label { (label) " " input type="text" name=(name) value=(value); } }
    };
    let body = html! {
        @if let Some(c) = chain {
            @match c {
                ChainStatus::Verified { entries, last_seq, last_hash, at } => {
                    p.status.ok { "Chain verified: " (entries) " entries up to " (last_seq) ":" code { (last_hash) } " (" (time(*at)) ")" }
                },
                ChainStatus::Broken { seq, reason, at } => {
                    p.status.bad role="alert" { "Chain broken at entry " (seq) ": " (reason) " (" (time(*at)) ")" }
                },
                ChainStatus::NotChecked => { p.status.muted { "Chain not verified yet." } },
            }
        }
        form.filters method="get" action=(routes::AUDIT) role="search" {
            (field("repo", "Repository", &filter.repo)) (field("pr", "PR", &filter.pr))
            (field("commit", "Commit", &filter.commit)) (field("actor", "Actor", &filter.actor))
            (field("action", "Action", &filter.action)) (field("since", "Since", &filter.since))
            (field("until", "Until", &filter.until))
            button type="submit" { "Filter" }
        }
        p { "Export: " a href=(filter.export_href("jsonl")) { "JSON Lines" } " · " a href=(filter.export_href("csv")) { "CSV" } }
        @if rows.is_empty() { p { "No entries." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" }
                    th scope="col" { "Action" } th scope="col" { "Result" } th scope="col" { "Repository" }
                    th scope="col" { "PR" } th scope="col" { "Commit" } th scope="col" { "Project" }
                } }
                tbody { @for e in rows { tr {
                    td { (e.seq) } td { (time(e.time)) } td { (e.actor) } td { (e.action) } td { (e.result) }
                    td { @if let Some(r) = &e.repo { (r) } }
                    td { @if let (Some(r), Some(pr)) = (&e.repo, e.pr) { a href=(routes::pull(r, pr)) { "#" (pr) } } }
                    td { @if let Some(sha) = &e.head_sha {
                        a href={ (routes::AUDIT) (query(&[("commit", sha)])) } title="The story of this commit" { code { (short_sha(sha)) } } } }
                    td { @if let Some(p) = &e.project { (p) } }
                } } }
            } }
        }
        @if let Some(next) = &next_href {
            p { a href=(next) rel="next" { "Older entries" } }
        }
    };
    page(chrome, Some(Section::Audit), "Audit", body).into_string()
}

// ---------------------------------------------------------------------------------------------
// Static assets

/// `Content-Security-Policy` for every UI answer: only this server's own CSS, script and
/// event streams; no inline script, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Served at [`routes::CSS`]. Readable on a laptop and a phone; status colours only add to
/// the text.
pub const UI_CSS: &str = include_str!("assets/sluice.css");

/// Served at [`routes::JS`]: times in the viewer's zone (UTC stays in the tooltip) and the
/// live log. Writes text with `textContent` only.
pub const UI_JS: &str = include_str!("assets/sluice.js");

#[cfg(test)]
mod tests;
