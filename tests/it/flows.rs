//! The bot's flows in process: webhooks go through `router(state).oneshot(..)` into a real
//! SQLite store, `Bot::handle` runs them against the fake GitHub and a real git repository, and
//! what they leave — outbox items and audit entries — is snapshotted. No binary, no terraform,
//! no workers: milliseconds per story. (The end-to-end stories in `bot.rs` run the binary.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use sluice::adapters::git::Mirrors;
use sluice::adapters::store::sqlite::SqliteStore;
use sluice::app::bot::Bot;
use sluice::app::policy::TeamCache;
use sluice::app::ports::Store;
use sluice::app::ports::store::{AuditQuery, Claimed, Outgoing};
use sluice::app::server::{enabled_commands, github_client};
use sluice::config::{Overrides, Settings};
use sluice::core::types::UnixMs;
use sluice::http::{AppState, router};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::server::{Harness, REPO, SECRET};
use crate::support::null_project;
use crate::webhooks::Webhook;

/// A bot over a temporary store, the fake GitHub and the harness's origin repository.
struct Flow {
    h: Harness,
    store: Arc<dyn Store>,
    bot: Bot,
    state: Arc<AppState>,
    /// Audit entries up to this sequence number were shown already.
    seen_seq: u64,
    /// Commits named in what is shown, and the label shown instead.
    shas: Vec<(String, String)>,
}

impl Flow {
    async fn new(env: &[(&str, &str)]) -> Flow {
        let files = [
            ("envs/a/main.tf", null_project("a", "1")),
            ("envs/b/main.tf", null_project("b", "1")),
        ];
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        let mut h = Harness::new(&refs).await;
        for (k, v) in env {
            h.set_env(k, v);
        }
        // As a GitHub App (check runs) when the test names one.
        if h.env.contains_key("SLUICE_GITHUB_APP_ID") {
            let key = h.data.path().join("app.pem");
            std::fs::write(&key, crate::fake_github::app_private_key()).expect("key file");
            h.env.remove("SLUICE_GITHUB_TOKEN");
            h.set_env("SLUICE_GITHUB_APP_KEY_FILE", &key.display().to_string());
            h.fake.install_on_repo(REPO, 77);
        }
        let vars: HashMap<String, String> = h.env.clone().into_iter().collect();
        let settings =
            Arc::new(Settings::load_from(&vars, &Overrides::default()).expect("test settings"));
        let sqlite = Arc::new(
            SqliteStore::open(&settings.db_path())
                .await
                .expect("the store opens"),
        );
        let store: Arc<dyn Store> = sqlite.clone();
        let bot = Bot {
            settings: settings.clone(),
            store: store.clone(),
            github: github_client(&settings).expect("GitHub client"),
            mirrors: Arc::new(Mirrors::new(settings.mirrors_dir()).with_limits(settings.limits)),
            enabled: enabled_commands(&settings).expect("enabled commands"),
            bot_login: Default::default(),
            jobs_ready: Arc::new(Notify::new()),
            outbox_ready: Arc::new(Notify::new()),
            server_policies: Arc::new(Vec::new()),
            teams: Arc::new(TeamCache::new(Duration::from_secs(60))),
            permissions: Default::default(),
            drift: None,
        };
        let state = Arc::new(AppState {
            store: store.clone(),
            webhook_secret: settings.webhook_secret.clone(),
            allowlist: settings.allowlist().clone(),
            api_token: settings.api_token.clone(),
            events_ready: Arc::new(Notify::new()),
            setup_notes: Vec::new(),
            rejections_suppressed: Default::default(),
            rejection_limiter: AppState::rejection_limiter(),
            body_limits: sluice::http::webhook::BodyLimits::from_settings(&settings.http),
            drift: sqlite,
            ui: Arc::new(sluice::http::ui::Ui::disabled()),
            workers_running: Default::default(),
        });
        let base = h.origin.head();
        Flow {
            h,
            store,
            bot,
            state,
            seen_seq: 0,
            shas: vec![(base, "[main]".to_string())],
        }
    }

    /// Opens PR `n` changing `files` (and names its head `[#n]` in what is shown).
    fn open_pr(&mut self, n: u64, files: &[(&str, &str)]) -> String {
        let head = self.h.open_pr(n, &format!("change-{n}"), files);
        self.shas.push((head.clone(), format!("[#{n}]")));
        head
    }

    /// The router's answer to `request`, with its body as text.
    async fn answer(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = router(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a short answer");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Delivers `hook` the way GitHub does (signed, through the router) and, once stored,
    /// handles it as the event processor would.
    async fn deliver(&self, hook: &Webhook) {
        let signed = hook.signed(SECRET);
        let mut request = Request::post("/events");
        for (name, value) in signed.header_map().iter() {
            request = request.header(name, value);
        }
        let request = request
            .body(Body::from(signed.body.clone()))
            .expect("a valid request");
        let (status, body) = self.answer(request).await;
        assert_eq!(status, StatusCode::ACCEPTED, "the webhook is taken: {body}");
        let claimed = self
            .store
            .claim_event(UnixMs::new(i64::MAX / 2), 5)
            .await
            .expect("claim")
            .expect("the stored event is due");
        let Claimed::Attempt(event) = claimed else {
            panic!("a first attempt is not exhausted")
        };
        let delivery = event.delivery_id.clone();
        self.bot
            .handle(&delivery, event.event.expect("the stored event reads back"))
            .await
            .expect("the event is handled");
        self.store
            .finish_event(&delivery, None)
            .await
            .expect("finish");
    }

    /// What the flows wrote since the last call: outbox items (then marked sent) and audit
    /// entries, one line each, commits by label.
    async fn said(&mut self) -> String {
        let mut out = Vec::new();
        let far = UnixMs::new(i64::MAX / 2);
        // Items of one pull request come due one at a time, in order.
        let mut rows = Vec::new();
        loop {
            let due = self.store.due_outbox(far, 100).await.expect("outbox");
            if due.is_empty() {
                break;
            }
            for row in due {
                self.store.outbox_sent(row.id, far).await.expect("sent");
                rows.push(row);
            }
        }
        rows.sort_by_key(|r| r.id);
        for row in rows {
            let pr = row.item.pr.map(|p| p.get()).unwrap_or_default();
            out.push(match &row.item.message {
                Outgoing::Comment { body } => format!("comment #{pr}: {body}"),
                Outgoing::Status {
                    sha,
                    context,
                    state,
                    description,
                    ..
                } => format!(
                    "status {} {}={state:?}: {description}",
                    sha.as_str(),
                    context.as_str()
                ),
                Outgoing::Reaction {
                    content,
                    comment_id,
                } => format!("reaction #{pr} on a comment ({comment_id}): {content:?}"),
                Outgoing::Write(w) => format!("write #{pr} {:?} {}", w.kind, w.key),
            });
        }
        let mut entries = Vec::new();
        let q = AuditQuery {
            after_seq: Some(self.seen_seq),
            ..AuditQuery::default()
        };
        self.store
            .scan_audit(&q, &mut |e| {
                entries.push(e);
                Ok(true)
            })
            .await
            .expect("audit");
        for e in entries {
            self.seen_seq = e.seq;
            let r = &e.record;
            let action = r.action.map(|a| a.as_str()).unwrap_or("?");
            let result = r.result.map(|a| a.as_str()).unwrap_or("?");
            let mut line = format!("audit {action} {result} by {}", r.actor.login);
            for (k, v) in [
                ("pr", r.pr.map(|p| p.to_string())),
                ("head", r.head_sha.clone()),
            ]
            .into_iter()
            .chain([("dir", r.dir.clone()), ("workspace", r.workspace.clone())])
            {
                if let Some(v) = v {
                    line.push_str(&format!(" {k}={v}"));
                }
            }
            for (k, v) in &r.details {
                line.push_str(&format!(" {k}={v:?}"));
            }
            out.push(line);
        }
        let mut text = out.join("\n");
        for (sha, label) in &self.shas {
            text = text.replace(sha.as_str(), label).replace(&sha[..7], label);
        }
        text
    }
}

fn comment(f: &Flow, n: u64, user: &str, body: &str) -> Webhook {
    f.h.comment_event(n, user, body)
}

fn change_a() -> Vec<(&'static str, String)> {
    vec![("envs/a/main.tf", null_project("a", "2"))]
}

fn files<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(p, c)| (*p, c.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_sluice_refuses() {
    let mut f = Flow::new(&[]).await;
    let a = change_a();
    // From a fork.
    f.open_pr(1, &files(&a));
    f.h.fake
        .update_pull(REPO, 1, |p| p.head_repo = Some("mallory/infra".into()));
    f.deliver(&f.h.pr_event("opened", 1).head_repo("mallory/infra"))
        .await;
    // Into a branch that is not trusted.
    f.open_pr(2, &files(&a));
    f.deliver(&f.h.pr_event("opened", 2).base("weak", &f.h.origin.head()))
        .await;
    // A command from someone who is not a collaborator.
    f.open_pr(3, &files(&a));
    f.deliver(&comment(&f, 3, "mallory", "sluice plan").set("/comment/author_association", "NONE"))
        .await;
    insta::assert_snapshot!(f.said().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_without_terraform_changes_gets_success_checks_at_once() {
    let app_id = crate::fake_github::APP_ID.to_string();
    let mut f = Flow::new(&[("SLUICE_GITHUB_APP_ID", &app_id)]).await;
    f.open_pr(1, &[("README.md", "docs only\n")]);
    f.deliver(&f.h.pr_event("opened", 1)).await;
    let said = f.said().await;
    for check in ["sluice:plan", "sluice:apply-gate"] {
        let line = format!("write #1 CreateCheckRun check/[#1]/{check}");
        assert!(said.contains(&line), "{said}");
    }
    assert!(said.contains("status [#1] sluice/plan=Success"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_sluice_refuses() {
    let mut f = Flow::new(&[]).await;
    f.open_pr(1, &[("README.md", "docs\n")]);
    f.deliver(&f.h.pr_event("opened", 1)).await;
    // Nothing is planned yet: nothing to apply, nothing to approve.
    f.deliver(&comment(&f, 1, "alice", "sluice apply")).await;
    f.deliver(&comment(&f, 1, "alice", "sluice approve_policies"))
        .await;
    // A command that does not parse gets the grammar's answer, and `help` its usage.
    f.deliver(&comment(&f, 1, "alice", "sluice plan --projet a"))
        .await;
    f.deliver(&comment(&f, 1, "alice", "sluice plan -d envs/nothing"))
        .await;
    insta::assert_snapshot!(f.said().await);
    // A configuration the server cannot read is rejected with its diagnostics.
    f.h.push(
        1,
        "change-1",
        &[("sluice.yaml", "version: 1\nprojects:\n  - dri: envs/a\n")],
    );
    let head = f.h.fake_pull(1).head_sha;
    f.shas.push((head, "[#1 pushed]".to_string()));
    f.deliver(&comment(&f, 1, "alice", "sluice plan")).await;
    insta::assert_snapshot!("commands_sluice_refuses_config", f.said().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_queues_behind_the_locks_of_another_pull_request() {
    let mut f = Flow::new(&[]).await;
    let a = change_a();
    f.open_pr(1, &files(&a));
    f.deliver(&f.h.pr_event("opened", 1)).await;
    insta::assert_snapshot!("queue_first", f.said().await);
    f.open_pr(2, &files(&a));
    f.deliver(&f.h.pr_event("opened", 2)).await;
    insta::assert_snapshot!("queue_second", f.said().await);
    // No project changed: nothing planned, and said so.
    f.open_pr(3, &[("README.md", "docs\n")]);
    f.deliver(&f.h.pr_event("opened", 3)).await;
    f.deliver(&comment(&f, 3, "alice", "sluice plan")).await;
    insta::assert_snapshot!("queue_no_projects", f.said().await);
    // The first pull request lets go of its locks: the queued plan starts, and only now says
    // "planning" and audits the locks it takes.
    f.deliver(&comment(&f, 1, "alice", "sluice unlock")).await;
    insta::assert_snapshot!("queue_second_starts", f.said().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn unlock_and_close_release_what_a_pull_request_holds() {
    let mut f = Flow::new(&[]).await;
    let a = change_a();
    f.open_pr(1, &files(&a));
    f.deliver(&f.h.pr_event("opened", 1)).await;
    f.said().await;
    f.deliver(&comment(&f, 1, "alice", "sluice unlock")).await;
    insta::assert_snapshot!("unlock", f.said().await);
    f.deliver(&comment(&f, 1, "alice", "sluice unlock")).await;
    insta::assert_snapshot!("unlock_again", f.said().await);
    f.deliver(&f.h.pr_event("opened", 1)).await;
    f.said().await;
    f.h.fake.update_pull(REPO, 1, |p| p.state = "closed".into());
    f.deliver(&f.h.pr_event("closed", 1)).await;
    insta::assert_snapshot!("close", f.said().await);
    // Commands on a closed pull request are refused.
    f.deliver(&comment(&f, 1, "alice", "sluice plan")).await;
    insta::assert_snapshot!("closed_command", f.said().await);
}

/// `POST /events` with `headers` (name, value) and `body`.
fn post(headers: &[(&str, String)], body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post("/events");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    request.body(Body::from(body)).expect("a valid request")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_intake_answers_every_kind_of_request() {
    let mut f = Flow::new(&[("SLUICE_REPO_ALLOWLIST", REPO)]).await;
    f.open_pr(1, &[("README.md", "docs\n")]);
    let signed = f.h.pr_event("opened", 1).signed(SECRET);
    let headers: Vec<(&str, String)> = [
        "X-GitHub-Event",
        "X-GitHub-Delivery",
        "X-Hub-Signature-256",
        "Content-Type",
    ]
    .into_iter()
    .map(|h| (h, signed.header(h).expect("signed header").to_string()))
    .collect();
    let without = |name: &str| -> Vec<(&str, String)> {
        headers
            .iter()
            .filter(|(n, _)| *n != name)
            .cloned()
            .collect()
    };
    let mut answers = Vec::new();
    let mut ask = |what: &str, (status, body): (StatusCode, String)| {
        answers.push(format!("{what}: {} {}", status.as_u16(), body.trim()));
    };

    ask(
        "unsigned",
        f.answer(post(&without("X-Hub-Signature-256"), signed.body.clone()))
            .await,
    );
    let mut forged = signed.body.clone();
    forged.push(b' ');
    ask("forged", f.answer(post(&headers, forged)).await);
    let mut too_large = headers.clone();
    too_large.push(("Content-Length", (100u64 << 20).to_string()));
    ask(
        "too large",
        f.answer(post(&too_large, signed.body.clone())).await,
    );
    ask(
        "no event name",
        f.answer(post(&without("X-GitHub-Event"), signed.body.clone()))
            .await,
    );
    let other =
        f.h.pr_event("opened", 1)
            .repo("acme/elsewhere", &f.h.origin.url())
            .signed(SECRET);
    let other_headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(n, _)| (*n, other.header(n).expect("signed header").to_string()))
        .collect();
    ask(
        "not served",
        f.answer(post(&other_headers, other.body.clone())).await,
    );
    ask("new", f.answer(post(&headers, signed.body.clone())).await);
    ask("again", f.answer(post(&headers, signed.body.clone())).await);
    let unauthenticated = Request::get("/api/locks")
        .body(Body::empty())
        .expect("request");
    ask("api without token", f.answer(unauthenticated).await);
    let audit = |query: &str| {
        Request::get(format!("/api/audit?{query}"))
            .header(
                "Authorization",
                format!("Bearer {}", crate::server::API_TOKEN),
            )
            .body(Body::empty())
            .expect("request")
    };
    ask(
        "audit since a bad time",
        f.answer(audit("since=yesterday")).await,
    );
    let (status, body) = f.answer(audit("since=2000-01-01&until=2000-01-02")).await;
    ask("audit of a day long ago", (status, body));
    let delivery = signed.delivery().to_string();
    insta::assert_snapshot!(answers.join("\n").replace(&delivery, "[delivery]"));
}

/// What GitHub does not display is not read (a saved reply's HTML comment, zero-width
/// characters, a BOM, trailing `\r`), a comment addressed to Sluice that is still not a command
/// is answered with why, and terraform arguments outside what a command takes are refused with
/// a reply naming them — each on the pull request.
#[tokio::test(flavor = "multi_thread")]
async fn comments_are_read_as_displayed_and_extra_arguments_by_the_grammar() {
    let mut f = Flow::new(&[]).await;
    f.open_pr(1, &[("README.md", "docs\n")]);
    f.deliver(&f.h.pr_event("opened", 1)).await;
    f.said().await;
    for body in [
        "sluice apply\r\n<!-- saved reply: release checklist -->\r\n",
        "\u{FEFF}sluice\u{200B} apply\u{200D}",
        "sluice plan\nthanks!",
        "sluice apply -- -target=null_resource.a",
        "sluice plan -- -target=null_resource.a -- -destroy",
        "sluice plan -- -target=null_resource.a extra",
    ] {
        f.deliver(&comment(&f, 1, "alice", body)).await;
    }
    insta::assert_snapshot!(f.said().await);
}
