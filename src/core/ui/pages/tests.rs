//! Tests of the pages: a snapshot of each (indented at block tags for reading), escaping of
//! hostile names everywhere a name lands (text, attributes, URLs), and the filters.

use chrono::TimeZone;

use super::*;
use crate::core::ui::job_log::LogStep;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0).unwrap()
}

fn chrome() -> Chrome {
    let keys = UiKeys::derive(&[7u8; 32]).unwrap();
    Chrome {
        viewer: "ana".into(),
        admin: false,
        can_logout: true,
        forms: Forms::new(&keys, &SessionId::from_bytes([1; 16])),
        github_web: "https://github.example".into(),
        insecure_no_auth: false,
    }
}

/// Names as a fixture writes them: `plain` gives them as they are, `hostile` wraps each in
/// markup, quotes and URL syntax that would break out of text, attributes and links.
type Namer = fn(&str) -> String;

fn plain(s: &str) -> String {
    s.to_string()
}

fn hostile(s: &str) -> String {
    format!(
        "{s}\"'><script>alert(1)</script><img src=x onerror=alert(2)>&amp;/../?x=1#frag %2F\u{202e}"
    )
}

fn env_rows(n: Namer) -> Vec<EnvironmentRow> {
    let row = |repo: &str, project: &str, dir: &str, env: Option<&str>, status| EnvironmentRow {
        repo: n(repo),
        project: n(project),
        dir: n(dir),
        workspace: n("default"),
        environment: env.map(n),
        status,
        last_check_at: Some(at(11, 0)),
        last_applied: None,
        drift_age_seconds: None,
        lock: None,
    };
    let mut a = row(
        "acme/infra",
        "network-prod",
        "envs/prod/network",
        Some("prod"),
        SyncStatus::Synced,
    );
    a.last_applied = Some(AppliedView {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        pr: Some(12),
        by: n("bo"),
        at: at(9, 30),
    });
    let mut b = row(
        "acme/infra",
        "db-prod",
        "envs/prod/db",
        Some("prod"),
        SyncStatus::Drifted,
    );
    b.drift_age_seconds = Some(3 * 86_400 + 5);
    b.lock = Some(LockHolder {
        pr: 31,
        by: n("cy"),
        since: at(10, 0),
    });
    let c = row(
        "acme/infra",
        "network-staging",
        "envs/staging/network",
        Some("staging"),
        SyncStatus::OutOfSync,
    );
    let mut d = row("acme/tools", "ci", "ci", None, SyncStatus::Unknown);
    d.last_check_at = None;
    vec![a, b, c, d]
}

fn run(n: Namer) -> RunView {
    RunView {
        id: 7,
        repo: n("acme/infra"),
        pr: 31,
        kind: "plan".into(),
        actor: n("cy"),
        trigger: "comment".into(),
        head_sha: "89abcdef0123456789abcdef0123456789abcdef".into(),
        branch: n("feature/db-size"),
        created_at: at(10, 0),
        job_states: vec![JobState::Succeeded, JobState::Running],
    }
}

fn jobs(n: Namer) -> Vec<JobView> {
    vec![
        JobView {
            id: 70,
            project: n("db-prod"),
            dir: n("envs/prod/db"),
            workspace: n("default"),
            state: JobState::Succeeded,
            durations: StepDurations {
                queue_wait_ms: Some(850),
                init_ms: Some(12_300),
                plan_ms: Some(65_000),
                show_ms: Some(900),
                apply_ms: None,
            },
            summary: Some(n("Plan: 0 to add, 1 to change, 0 to destroy.")),
            policies: vec![PolicyLine {
                policy: n("no-db-deletes"),
                outcome: "allow".into(),
                reasons: vec![n("no aws_db_instance is deleted")],
            }],
        },
        JobView {
            id: 71,
            project: n("network-prod"),
            dir: n("envs/prod/network"),
            workspace: n("default"),
            state: JobState::Running,
            durations: StepDurations {
                queue_wait_ms: Some(2_000),
                ..StepDurations::default()
            },
            summary: None,
            policies: vec![],
        },
    ]
}

fn log(n: Namer, ended: bool) -> JobLogView {
    let c = |seq, step, stream, kind, text: String| LogChunk {
        seq,
        step,
        stream,
        kind,
        text,
    };
    let mut chunks = vec![
        c(1, LogStep::Init, LogStream::Stdout, ChunkKind::Output, n("Initializing the backend...\n")),
        c(2, LogStep::Init, LogStream::Stderr, ChunkKind::Output, n("Warning: </pre> version constraint\n")),
        c(3, LogStep::Plan, LogStream::Stdout, ChunkKind::Output, n("password = \"***\"\n")),
        c(
            4,
            LogStep::Plan,
            LogStream::Stdout,
            ChunkKind::CapReached,
            "[Output exceeded the log's cap of 4194304 bytes: the rest is not streamed. The last 262144 bytes are kept and shown when the job ends.]\n".into(),
        ),
    ];
    if ended {
        chunks.push(c(
            5,
            LogStep::Plan,
            LogStream::Stdout,
            ChunkKind::Omitted,
            "[100 bytes of output omitted here.]\n".into(),
        ));
        chunks.push(c(
            6,
            LogStep::Plan,
            LogStream::Stdout,
            ChunkKind::Output,
            n("Plan: 0 to add, 1 to change, 0 to destroy.\n"),
        ));
        chunks.push(c(
            7,
            LogStep::Plan,
            LogStream::Stdout,
            ChunkKind::StepEnd,
            "[plan: 12.3 s, ok]\n".into(),
        ));
        chunks.push(c(
            8,
            LogStep::Plan,
            LogStream::Stdout,
            ChunkKind::End,
            String::new(),
        ));
    }
    let mut job = jobs(n).remove(if ended { 0 } else { 1 });
    if !ended {
        job.state = JobState::Running;
    }
    JobLogView {
        job,
        run_id: 7,
        repo: n("acme/infra"),
        pr: 31,
        chunks,
        expired: false,
    }
}

fn locks(n: Namer) -> Vec<LockView> {
    vec![
        LockView {
            repo: n("acme/infra"),
            dir: n("envs/prod/db"),
            workspace: n("default"),
            project: n("db-prod"),
            pr: 31,
            by: n("cy"),
            since: at(10, 0),
            can_release: true,
        },
        LockView {
            repo: n("acme/other"),
            dir: n("."),
            workspace: n("staging"),
            project: n("root"),
            pr: 4,
            by: n("dee"),
            since: at(8, 0),
            can_release: false,
        },
    ]
}

fn drift(n: Namer) -> Vec<DriftRow> {
    vec![
        DriftRow {
            repo: n("acme/infra"),
            project: n("db-prod"),
            dir: n("envs/prod/db"),
            workspace: n("default"),
            phase: DriftPhase::Open,
            fingerprint: "a1b2c3d4e5f6".into(),
            changed_outside: 2,
            unapplied: 0,
            opened_at: at(9, 0),
            age_seconds: 2 * 3600,
            issue: Some(44),
            history: vec![DriftHistoryLine {
                at: at(9, 0),
                what: n("opened"),
                by: None,
            }],
            can_act: true,
        },
        DriftRow {
            repo: n("acme/infra"),
            project: n("network-staging"),
            dir: n("envs/staging/network"),
            workspace: n("default"),
            phase: DriftPhase::Accepted,
            fingerprint: "0f0f0f0f0f0f".into(),
            changed_outside: 0,
            unapplied: 3,
            opened_at: at(1, 0),
            age_seconds: 10 * 3600,
            issue: None,
            history: vec![
                DriftHistoryLine {
                    at: at(1, 0),
                    what: n("opened"),
                    by: None,
                },
                DriftHistoryLine {
                    at: at(2, 0),
                    what: n("accepted until 2026-12-31"),
                    by: Some(n("bo")),
                },
            ],
            can_act: false,
        },
    ]
}

fn audit_rows(n: Namer) -> Vec<AuditRow> {
    vec![
        AuditRow {
            seq: 101,
            time: at(10, 1),
            actor: n("cy"),
            action: "plan".into(),
            result: "succeeded".into(),
            repo: Some(n("acme/infra")),
            pr: Some(31),
            head_sha: Some(n("89abcdef0123456789abcdef0123456789abcdef")),
            project: Some(n("db-prod")),
        },
        AuditRow {
            seq: 102,
            time: at(10, 2),
            actor: n("ana"),
            action: "lock_released".into(),
            result: "ok".into(),
            repo: None,
            pr: None,
            head_sha: None,
            project: None,
        },
    ]
}

/// Every page, rendered from the fixture with `n`'s names.
fn all_pages(n: Namer) -> Vec<(&'static str, String)> {
    let ch = Chrome {
        viewer: n("ana"),
        ..chrome()
    };
    let now = at(12, 0);
    let rows = env_rows(n);
    let audit_filter = AuditFilter {
        repo: n("acme/infra"),
        actor: n("cy"),
        ..AuditFilter::default()
    };
    let chain = ChainStatus::Verified {
        entries: 102,
        last_seq: 102,
        last_hash: "9f".repeat(32),
        at: at(11, 0),
    };
    vec![
        (
            "environments",
            environments_page(&ch, &rows, &EnvironmentFilter::default(), now),
        ),
        (
            "runs",
            runs_page(
                &ch,
                None,
                &RunFilter {
                    repo: n("acme/infra"),
                    pr: "31".into(),
                    state: "running".into(),
                },
                &[run(n)],
                Some(40),
            ),
        ),
        (
            "pull_runs",
            runs_page(
                &ch,
                Some((&n("acme/infra"), 31)),
                &RunFilter::default(),
                &[run(n)],
                None,
            ),
        ),
        ("run", run_page(&ch, &run(n), &jobs(n))),
        ("job_log_running", job_log_page(&ch, &log(n, false))),
        ("job_log_ended", job_log_page(&ch, &log(n, true))),
        ("locks", locks_page(&ch, &locks(n), now)),
        (
            "lock_release_confirm",
            lock_release_confirm_page(&ch, &locks(n)[0]),
        ),
        ("drift", drift_page(&ch, &drift(n))),
        (
            "audit",
            audit_page(&ch, &audit_filter, &audit_rows(n), Some(&chain), Some(101)),
        ),
        (
            "login",
            login_page(
                &login_start_href(&n("/runs/7")),
                Some(&n("Your session expired.")),
            ),
        ),
        ("error_404", error_page(404, &n("No such page."))),
    ]
}

/// The page with a line break before each block-level tag, so a snapshot reads as a tree.
fn pretty(html: &str) -> String {
    const BLOCKS: &[&str] = &[
        "<head",
        "<body",
        "<header",
        "<nav",
        "<main",
        "<section",
        "<h1",
        "<h2",
        "<p",
        "<ul",
        "<ol",
        "<li",
        "<table",
        "<thead",
        "<tbody",
        "<tr",
        "<form",
        "<label",
        "<dl",
        "<dt",
        "<pre",
        "<details",
        "<div",
        "<meta",
        "<link",
        "<script",
        "<title",
        "<span class=\"step",
    ];
    let mut out = String::new();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if i > 0
            && BLOCKS
                .iter()
                .any(|b| rest.starts_with(b) && rest[b.len()..].starts_with([' ', '>', '"']))
        {
            out.push('\n');
        }
        let ch = rest.chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[test]
fn page_snapshots() {
    for (name, html) in all_pages(plain) {
        insta::assert_snapshot!(name, pretty(&html));
    }
    insta::assert_snapshot!("not_configured", pretty(&not_configured_page()));
    let insecure = Chrome {
        viewer: "no-auth".into(),
        admin: true,
        can_logout: false,
        insecure_no_auth: true,
        ..chrome()
    };
    insta::assert_snapshot!(
        "environments_empty_insecure",
        pretty(&environments_page(
            &insecure,
            &[],
            &EnvironmentFilter::default(),
            at(12, 0)
        ))
    );
}

/// The tags and attribute names of a page, in order: what hostile data must not change.
fn structure(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let tag_and_more = &rest[start + 1..];
        let end = tag_and_more.find('>').expect("tags close");
        let tag = &tag_and_more[..end];
        // Attribute values are double-quoted and never contain a raw `"` (escaped as &quot;).
        let mut names = String::new();
        let mut in_quotes = false;
        for c in tag.chars() {
            match c {
                '"' => in_quotes = !in_quotes,
                _ if in_quotes => {}
                _ => names.push(c),
            }
        }
        out.push(names);
        rest = &tag_and_more[end + 1..];
    }
    out
}

/// Hostile repository, project, dir, workspace, branch, login, environment, policy and log
/// text leave every page's tags and attributes as they are with plain names; they show up
/// escaped; links stay on this server or GitHub and stay one URL.
#[test]
fn hostile_names_are_escaped_everywhere() {
    let plain_pages = all_pages(plain);
    let hostile_pages = all_pages(hostile);
    for ((name, p), (_, h)) in plain_pages.iter().zip(&hostile_pages) {
        assert_eq!(
            structure(p),
            structure(h),
            "{name}: hostile names changed the markup"
        );
        assert_eq!(h.matches("<script").count(), 1, "{name}");
        assert!(!h.contains("<img"), "{name}");
        assert!(
            h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{name}: the name is shown, escaped"
        );
        assert!(h.contains("&amp;amp;"), "{name}: & is escaped");
        for href in h
            .split("href=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
        {
            if href == "#main" {
                continue;
            }
            assert!(
                href.starts_with('/') && !href.starts_with("//")
                    || href.starts_with("https://github.example/"),
                "{name}: {href}"
            );
            assert!(
                !href.contains(['<', '>', ' ', '\'', '#']) || href.starts_with("/login/start"),
                "{name}: {href}"
            );
            // A hostile name never adds a query or a path step to a link it is a segment of.
            if let Some(path) = href.strip_prefix("/repos/") {
                assert_eq!(path.matches('/').count(), 3, "{name}: {href}");
                assert!(!path.contains('?'), "{name}: {href}");
            }
        }
    }
}

#[test]
fn environment_filters() {
    let rows = env_rows(plain);
    let f = |q: &str, status: &str, env: &str| EnvironmentFilter {
        q: q.into(),
        status: status.into(),
        env: env.into(),
    };
    let cases: &[(EnvironmentFilter, &[&str])] = &[
        (
            f("", "", ""),
            &["network-prod", "db-prod", "network-staging", "ci"],
        ),
        (f("NETWORK", "", ""), &["network-prod", "network-staging"]),
        (f("envs/prod", "", ""), &["network-prod", "db-prod"]),
        (f("acme/tools", "", ""), &["ci"]),
        (f("", "drifted", ""), &["db-prod"]),
        (f("", "", "PROD"), &["network-prod", "db-prod"]),
        (f("", "", "-"), &["ci"]),
        (f("network", "synced", "prod"), &["network-prod"]),
        (f("nothing", "", ""), &[]),
        (f("", "no-such-status", ""), &[]),
    ];
    for (filter, want) in cases {
        let got: Vec<&str> = rows
            .iter()
            .filter(|r| filter.matches(r))
            .map(|r| r.project.as_str())
            .collect();
        assert_eq!(&got, want, "{filter:?}");
    }
    let refs: Vec<&EnvironmentRow> = rows.iter().collect();
    let groups: Vec<(Option<&str>, usize)> = group_by_environment(&refs)
        .iter()
        .map(|(e, v)| (*e, v.len()))
        .collect();
    assert_eq!(
        groups,
        vec![(Some("prod"), 2), (Some("staging"), 1), (None, 1)]
    );
}

#[test]
fn run_states_and_formats() {
    use JobState::*;
    let cases: &[(&[JobState], JobState)] = &[
        (&[], Succeeded),
        (&[Succeeded, Succeeded], Succeeded),
        (&[Succeeded, Running, Failed], Running),
        (&[Queued, Failed], Queued),
        (&[Waiting, Succeeded], Waiting),
        (&[Succeeded, Interrupted, Cancelled], Interrupted),
        (&[Cancelled, Succeeded], Cancelled),
    ];
    for (jobs, want) in cases {
        assert_eq!(run_state(jobs), *want, "{jobs:?}");
    }
    let durations = [
        (0, "0 ms"),
        (999, "999 ms"),
        (1_000, "1.0 s"),
        (12_345, "12.3 s"),
        (65_000, "1m 05s"),
        (3_600_000, "1h 00m"),
        (7_380_000, "2h 03m"),
    ];
    for (ms, want) in durations {
        assert_eq!(duration(ms), want);
    }
    let ages = [
        (-5, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3_599, "59m"),
        (3_600, "1h"),
        (86_400, "1d"),
        (10 * 86_400, "10d"),
    ];
    for (s, want) in ages {
        assert_eq!(age(s), want);
    }
}

#[test]
fn urls() {
    assert_eq!(seg("a b/c?d#e%f"), "a%20b%2Fc%3Fd%23e%25f");
    assert_eq!(seg("ok-._~AZ09"), "ok-._~AZ09");
    assert_eq!(seg("é"), "%C3%A9");
    assert_eq!(routes::pull("acme/infra", 3), "/repos/acme/infra/pulls/3");
    assert_eq!(routes::pull("a/b/c", 3), "/repos/a/b%2Fc/pulls/3");
    assert_eq!(
        routes::full_log_url("https://sluice.example.com/", 9),
        "https://sluice.example.com/jobs/9/log"
    );
    assert_eq!(
        login_start_href("/runs/7?x=1&y"),
        "/login/start?return_to=%2Fruns%2F7%3Fx%3D1%26y"
    );
    assert_eq!(login_start_href(""), "/login/start");
    let lock = &locks(plain)[0];
    assert_eq!(
        lock.confirm_href(),
        "/locks/release?repo=acme%2Finfra&dir=envs%2Fprod%2Fdb&workspace=default"
    );
    let f = AuditFilter {
        commit: "abc".into(),
        since: "2026-01-01".into(),
        ..AuditFilter::default()
    };
    assert_eq!(
        f.export_href("csv"),
        "/audit/export?format=csv&commit=abc&since=2026-01-01"
    );
}

/// The forms carry the token for their own action and session.
#[test]
fn forms_carry_their_csrf_tokens() {
    use crate::core::ui::session::check_csrf;
    let keys = UiKeys::derive(&[7u8; 32]).unwrap();
    let id = SessionId::from_bytes([1; 16]);
    let f = Forms::new(&keys, &id);
    for (action, token) in [
        (routes::LOGOUT, &f.logout),
        (routes::LOCK_RELEASE, &f.release_lock),
        (routes::DRIFT_ACK, &f.drift_ack),
        (routes::DRIFT_ACCEPT, &f.drift_accept),
    ] {
        assert_eq!(
            check_csrf(&keys, &id, action, Some(token)),
            Ok(()),
            "{action}"
        );
    }
    let page = lock_release_confirm_page(&chrome(), &locks(plain)[0]);
    assert!(page.contains(&format!("name=\"csrf\" value=\"{}\"", f.release_lock)));
    let drift = drift_page(&chrome(), &drift(plain));
    assert!(drift.contains(&format!("value=\"{}\"", f.drift_ack)));
    assert!(drift.contains(&format!("value=\"{}\"", f.drift_accept)));
    // The accepted drift is not open: no acknowledge form for it; the viewer may not act on it.
    assert_eq!(drift.matches("action=\"/drift/ack\"").count(), 1);
    assert_eq!(drift.matches("action=\"/drift/accept\"").count(), 1);
    // Only releasable locks get the link.
    let list = locks_page(&chrome(), &locks(plain), at(12, 0));
    assert_eq!(list.matches("Release…").count(), 1);
}

/// Pages shown before login name nothing of repositories or the host.
#[test]
fn pages_before_login_name_nothing() {
    for page in [
        login_page(&login_start_href("/"), None),
        not_configured_page(),
        error_page(401, "Sign in again."),
    ] {
        for word in ["acme", "envs/", "/srv", "/var", "Environments"] {
            assert!(!page.contains(word), "{word} in {page}");
        }
    }
}

/// The templates never opt out of escaping: `PreEscaped` appears in `pages.rs` only in the
/// sentence that says so.
#[test]
fn no_unescaped_output() {
    let src = include_str!("../pages.rs");
    assert_eq!(src.matches("PreEscaped").count(), 1);
    assert!(src.contains("never uses `PreEscaped`"));
}
