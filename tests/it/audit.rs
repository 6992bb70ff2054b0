//! The audit log: the whole story of a commit through the real server, tampering caught by
//! `sluice audit verify` on the real SQLite file, exports that round-trip, the API, and the rule
//! that an action whose audit entry cannot be written does not happen.

use std::collections::BTreeMap;
use std::path::Path;

use sluice::adapters::store::SqliteStore;
use sluice::app::ports::store::{AuditQuery, Effects, NewJob, NewRun, Opening, Store, Trigger};
use sluice::core::audit::{AuditAction, AuditActor, AuditEntry, AuditRecord, AuditResult};
use sluice::core::event::{Actor, ActorKind};
use sluice::core::job::JobKind;
use sluice::core::projects::Project;
use sluice::core::types::{CommitSha, PrNumber, ProjectDir, RepoName, UnixMs, Workspace};

use crate::server::{API_TOKEN, Harness, REPO};
use crate::support::{null_project, sluice, text};

fn cli(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = sluice(
        args,
        &BTreeMap::from([("SLUICE_DATA_DIR".to_string(), data.display().to_string())]),
        Path::new("."),
    );
    let (o, e) = text(&out);
    (out.status.code().unwrap_or(-1), o, e)
}

fn record(i: u64, reason: &str) -> AuditRecord {
    AuditRecord {
        event_id: Some(format!("delivery-{i}")),
        actor: AuditActor {
            login: "alice".into(),
            id: Some(1001),
            kind: "human".into(),
        },
        action: Some(if i % 2 == 0 {
            AuditAction::Plan
        } else {
            AuditAction::ApplyRefused
        }),
        repo: Some("acme/infra".into()),
        pr: Some(7),
        head_sha: Some("a".repeat(40)),
        project: Some("envs/a".into()),
        result: Some(AuditResult::Refused),
        details: BTreeMap::from([("reason".to_string(), reason.to_string())]),
        ..AuditRecord::default()
    }
}

/// A store with `n` entries, one second apart from 2026-03-01.
async fn log_with(n: u64) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("sluice.db"))
        .await
        .unwrap();
    let start = 1_772_323_200_000; // 2026-03-01T00:00:00Z
    for i in 1..=n {
        store
            .append_audit(
                vec![record(
                    i,
                    &format!("reason {i}, with \"quotes\",\ncommas and a newline"),
                )],
                UnixMs::new(start + i as i64 * 1000),
            )
            .await
            .unwrap();
    }
    (dir, store)
}

/// Runs SQL on the store file directly, bypassing the append-only triggers (an attacker with
/// write access to the file).
async fn tamper(store: &SqliteStore, sql: &str) {
    sqlx::query("DROP TRIGGER IF EXISTS audit_log_no_update")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER IF EXISTS audit_log_no_delete")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
}

#[tokio::test]
async fn verify_passes_a_clean_log_and_pinpoints_every_kind_of_tampering() {
    let (dir, _store) = log_with(5).await;
    let (code, out, _) = cli(dir.path(), &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("OK: 5 entries verified; last entry #5"),
        "{out}"
    );

    let cases: &[(&str, &str, &str)] = &[
        (
            "modified",
            "UPDATE audit_log SET entry_json = replace(entry_json, '\"login\":\"alice\"', '\"login\":\"mallory\"') WHERE seq = 3",
            "FAILED at entry #3: entry 3 was modified: its content does not match its hash",
        ),
        (
            "deleted",
            "DELETE FROM audit_log WHERE seq = 2",
            "FAILED at entry #3: entry 2 is missing: the next entry is 3 (entries deleted)",
        ),
        (
            "reordered",
            "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -2;",
            "FAILED at entry #2: entry 2 was edited: its stored `seq` is \"2\" but the entry says \"3\"",
        ),
        (
            "hash column rewritten",
            "UPDATE audit_log SET hash = 'ff' || substr(hash, 3) WHERE seq = 4",
            "FAILED at entry #4: entry 4 was edited: its stored `hash` is \"ff",
        ),
    ];
    for (name, sql, expect) in cases {
        let (dir, store) = log_with(5).await;
        tamper(&store, sql).await;
        let (code, out, _) = cli(dir.path(), &["audit", "verify"]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.starts_with(expect), "{name}:\n{out}");
    }

    // A forged entry that is internally consistent (re-sealed with a made-up predecessor).
    let (dir, store) = log_with(5).await;
    let fake = sluice::core::audit::seal(
        Some((2, &"f".repeat(64))),
        "2026-03-01T00:00:03.000Z".into(),
        record(3, "forged"),
    );
    let json = serde_json::to_string(&fake).unwrap().replace('\'', "''");
    tamper(
        &store,
        &format!(
            "UPDATE audit_log SET entry_json = '{json}', prev_hash = '{}', hash = '{}' WHERE seq = 3",
            fake.prev_hash, fake.hash
        ),
    )
    .await;
    let (code, out, _) = cli(dir.path(), &["audit", "verify"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("FAILED at entry #3: entry 3 does not follow its predecessor"),
        "{out}"
    );

    // Truncation is invisible to the chain alone, but not to an anchor.
    let (dir, store) = log_with(5).await;
    let (_, out, _) = cli(dir.path(), &["audit", "verify"]);
    let anchor = out
        .lines()
        .nth(1)
        .unwrap()
        .split('`')
        .nth(1)
        .unwrap()
        .to_string();
    tamper(&store, "DELETE FROM audit_log WHERE seq = 5").await;
    let (code, out, _) = cli(dir.path(), &["audit", "verify"]);
    assert_eq!(code, 0, "a truncated chain is still a valid chain: {out}");
    let (code, out, _) = cli(dir.path(), &["audit", "verify", "--anchor", &anchor]);
    assert_eq!(code, 1);
    assert!(out.contains("the anchored entry 5 is missing"), "{out}");
}

/// The class of "a column stored beside the entry is edited, so a filtered query hides or
/// misplaces the entry while the chain still verifies": every column that `audit export`,
/// `audit show` or `GET /api/audit` filters or orders on, edited directly in SQLite, makes
/// `sluice audit verify` fail naming the entry and the column; a query that would answer from
/// an edited row fails instead of answering.
#[tokio::test]
async fn verify_covers_every_column_queries_filter_on() {
    let sha = "a".repeat(40);
    let cases: &[(&str, &str, &str)] = &[
        // Hides entry 3 from `export --since 2026-03-01T00:00:02Z`.
        (
            "time",
            "time_text = '2026-02-01T00:00:03.000Z'",
            "\"2026-02-01T00:00:03.000Z\" but the entry says \"2026-03-01T00:00:03.000Z\"",
        ),
        // Hides entry 3 from `audit show --commit aaaa…` and `?commit=`.
        (
            "head_sha",
            &format!("head_sha = '{}'", "b".repeat(40)),
            &format!("\"{}\" but the entry says \"{sha}\"", "b".repeat(40)),
        ),
        ("head_sha", "head_sha = NULL", "\"NULL\""),
        // Hides entry 3 from `export --repo acme/infra`.
        (
            "repo",
            "repo = 'acme/other'",
            "\"acme/other\" but the entry says \"acme/infra\"",
        ),
        ("pr", "pr = 8", "\"8\" but the entry says \"7\""),
        (
            "action",
            "action = 'plan'",
            "\"plan\" but the entry says \"apply_refused\"",
        ),
    ];
    for (column, set, says) in cases {
        let (dir, store) = log_with(5).await;
        // Entry 3 before: in range, of commit aaaa…, of acme/infra.
        let (_, before, _) = cli(dir.path(), &["audit", "show", "--commit", &sha]);
        assert!(before.lines().any(|l| l.starts_with("#3 ")), "{before}");
        tamper(&store, &format!("UPDATE audit_log SET {set} WHERE seq = 3")).await;
        let (code, out, _) = cli(dir.path(), &["audit", "verify"]);
        assert_eq!(
            code, 1,
            "{column} edited ({set}) must fail verification: {out}"
        );
        assert!(
            out.starts_with(&format!(
                "FAILED at entry #3: entry 3 was edited: its stored `{column}` is "
            )),
            "{column}:\n{out}"
        );
        assert!(out.contains(says), "{column}:\n{out}");
        assert!(out.contains("(2 entries before it verified)"), "{out}");
    }

    // A query that reads an edited row fails loudly rather than answering from the column.
    let (dir, store) = log_with(5).await;
    tamper(
        &store,
        "UPDATE audit_log SET time_text = '2026-03-02T00:00:00.000Z' WHERE seq = 2",
    )
    .await;
    let (code, out, err) = cli(dir.path(), &["audit", "export", "--since", "2026-03-02"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("entry 2 was edited: its stored `time` is \"2026-03-02T00:00:00.000Z\""),
        "{err}"
    );
    let mut seen = Vec::new();
    let res = store
        .scan_audit(&AuditQuery::default(), &mut |e| {
            seen.push(e.seq);
            Ok(true)
        })
        .await;
    let e = res.expect_err("the store refuses the edited row");
    let edited = e
        .downcast_ref::<sluice::core::audit::ColumnEdited>()
        .expect("typed");
    assert_eq!((edited.seq, edited.column), (2, "time"));
    assert_eq!(seen, vec![1], "entries before it were read");

    // The copies of seq and hashes inside entry_json count too.
    let (dir, store) = log_with(3).await;
    tamper(
        &store,
        "UPDATE audit_log SET entry_json = json_set(entry_json, '$.seq', 9) WHERE seq = 2",
    )
    .await;
    let (code, out, _) = cli(dir.path(), &["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAILED at entry #2: entry 2 was edited: its stored `seq` is \"2\" but the entry says \"9\""), "{out}");
}

#[tokio::test]
async fn exports_round_trip_in_jsonl_and_csv() {
    let (dir, store) = log_with(6).await;
    let mut stored: Vec<AuditEntry> = Vec::new();
    store
        .scan_audit(&AuditQuery::default(), &mut |e| {
            stored.push(e);
            Ok(true)
        })
        .await
        .unwrap();

    let (code, out, err) = cli(dir.path(), &["audit", "export", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    let parsed: Vec<AuditEntry> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        parsed, stored,
        "JSONL parses back to exactly what the store holds"
    );
    assert!(err.contains("exported 6 audit entries"));

    let file = dir.path().join("out.csv");
    let (code, _, _) = cli(
        dir.path(),
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    let mut rdr = csv::Reader::from_path(&file).unwrap();
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(&headers[0], "seq");
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    for (row, e) in rows.iter().zip(&stored) {
        let got: Vec<&str> = row.iter().collect();
        let want = sluice::app::audit::csv_row(e);
        assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>());
        let details: BTreeMap<String, String> =
            serde_json::from_str(&row[headers.iter().position(|h| h == "details").unwrap()])
                .unwrap();
        assert!(
            details["reason"].contains("\"quotes\",\ncommas"),
            "quoting survives: {details:?}"
        );
    }

    // Filters.
    let (_, out, _) = cli(
        dir.path(),
        &[
            "audit",
            "export",
            "--since",
            "2026-03-01T00:00:03Z",
            "--until",
            "2026-03-01T00:00:05Z",
        ],
    );
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| serde_json::from_str::<AuditEntry>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    let (_, out, _) = cli(dir.path(), &["audit", "export", "--repo", "other/repo"]);
    assert!(out.is_empty());
    let (code, _, err) = cli(dir.path(), &["audit", "export", "--since", "last tuesday"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a date"), "{err}");
}

#[tokio::test]
async fn an_action_whose_audit_entry_cannot_be_written_does_not_happen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("sluice.db"))
        .await
        .unwrap();
    // The audit table refuses writes, as a full disk would.
    sqlx::query("CREATE TRIGGER audit_full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        .execute(store.pool())
        .await
        .unwrap();
    let run = NewRun {
        repo: RepoName::parse("acme/infra").unwrap(),
        pr: PrNumber::new(1).unwrap(),
        kind: JobKind::Plan,
        trigger: Trigger::Autoplan,
        head_sha: CommitSha::new(&"a".repeat(40)).unwrap(),
        base_sha: CommitSha::new(&"b".repeat(40)).unwrap(),
        base_ref: "main".into(),
        clone_url: "file:///x".into(),
        installation_id: None,
        actor: Actor {
            login: "alice".into(),
            id: 1,
            kind: ActorKind::Human,
        },
        comment_id: None,
        event_id: None,
        extra_args: vec![],
        verbose: false,
        jobs: vec![NewJob::plan(&Project::detected(
            ProjectDir::new("a").unwrap(),
            Workspace::default(),
        ))],
        locks: vec![],
    };
    let announce = |_: Opening<'_>| Effects::new(vec![], vec![record(1, "x")]);
    let err = store
        .create_run(run, &announce, UnixMs::new(1))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("database or disk is full"),
        "{err:#}"
    );
    assert!(
        store
            .claim_job("w", UnixMs::new(2), UnixMs::new(10))
            .await
            .unwrap()
            .is_none(),
        "no job exists: nothing runs unrecorded"
    );
    assert!(
        store.locks(None).await.unwrap().is_empty(),
        "and no lock was taken"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_show_tells_the_whole_story_of_a_commit() {
    let files = [("envs/a/main.tf", null_project("a", "1"))];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut h = Harness::new(&refs).await;
    h.start();
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_comment(1, "refusal", |c| c.contains("Apply refused"))
        .await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait_status(&head, "sluice/apply", "success").await;

    let (code, show, err) = cli(&h.data_dir(), &["audit", "show", "--commit", &head[..10]]);
    assert_eq!(code, 0, "{err}");
    let actions: Vec<&str> = show
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["lock_acquired", "plan", "apply_refused", "apply"],
        "{show}"
    );
    assert!(show.contains("approved by bob (id 1002"), "{show}");

    // The apply names the plan hash it applied and the plan entry it came from; they match.
    let (_, jsonl, _) = cli(&h.data_dir(), &["audit", "export"]);
    let entries: Vec<AuditEntry> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let plan = entries
        .iter()
        .find(|e| e.record.action == Some(AuditAction::Plan))
        .unwrap();
    let apply = entries
        .iter()
        .find(|e| e.record.action == Some(AuditAction::Apply))
        .unwrap();
    assert_eq!(apply.record.plan_entry_seq, Some(plan.seq));
    assert_eq!(apply.record.plan_sha256, plan.record.plan_sha256);
    assert!(
        plan.record
            .plan_sha256
            .as_deref()
            .is_some_and(|h| h.len() == 64)
    );
    assert_eq!(apply.record.result, Some(AuditResult::Success));
    assert_eq!(apply.record.approvals.len(), 1);
    assert_eq!(apply.record.approvals[0].login, "bob");
    assert_eq!(apply.record.head_sha.as_deref(), Some(head.as_str()));
    assert_eq!(plan.record.changes.as_ref().map(|c| c.add), Some(1));
    assert_eq!(apply.record.engine.as_deref(), Some("terraform"));

    let (code, out, _) = cli(&h.data_dir(), &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");

    // The SIEM API: paginated, token-protected.
    let page: serde_json::Value = h
        .http
        .get(format!("{}/api/audit?limit=2", h.url()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_u64().expect("more pages");
    let rest: serde_json::Value = h
        .http
        .get(format!("{}/api/audit?cursor={cursor}&limit=1000", h.url()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["entries"].as_array().unwrap().len() + 2, entries.len());
    assert!(rest.get("next_cursor").is_none());
    let r = h
        .http
        .get(format!("{}/api/audit", h.url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_is_disabled_without_a_token() {
    let files = [("envs/a/main.tf", null_project("a", "1"))];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut h = Harness::new(&refs).await;
    h.env.remove("SLUICE_API_TOKEN");
    h.start();
    let r = h
        .http
        .get(format!("{}/api/audit", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("the API is disabled"));
}
