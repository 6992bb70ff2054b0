//! Server benchmarks, measured side by side in one run (`cargo bench --bench server_bench`):
//!
//! * **webhook ack**: `POST /events` latency (p50/p99/max) at a fixed offered rate of 500
//!   requests/s for 10 s, open loop, against the release `sluice serve` with signature
//!   verification, parsing and a durable insert per delivery — then a check that every delivery
//!   was stored (nothing lost). Goal: p99 ≤ 10 ms.
//! * **webhook → plan comment** vs raw `terraform init && terraform plan` of the same project,
//!   interleaved rounds, medians and their ratio. Goal ≤ 1.10. Also against raw
//!   `init && plan && show -json` (the work Sluice must do by design): Sluice's own overhead.
//! * **audit**: export (CSV) and verify a generated log of 1,000,000 entries; time and the peak
//!   RSS of the `sluice audit` process (bounded: it streams).
//!
//! GitHub is the same local fake the integration tests use. Needs `scripts/install-test-tools`.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::too_many_lines,
    reason = "benchmarks start the binary and tools themselves, and a failed unwrap is a failed run"
)]

// The integration tests' fake GitHub and webhook helpers (their own unit tests included, hence
// the allowances).
#[path = "../tests/it/fake_github.rs"]
#[allow(unused_imports)]
mod fake_github;
#[path = "../tests/it/webhooks.rs"]
#[allow(unused_imports)]
mod webhooks;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_github::{FakeGitHub, FakePull, TOKEN};
use webhooks::Webhook;

const SECRET: &str = "bench-webhook-secret-0123456789";
const REPO: &str = "acme/infra";

fn tools_dir() -> PathBuf {
    std::env::var_os("SLUICE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"))
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &Path, api: &str, extra: &[(&str, &str)]) -> Server {
    let tools = tools_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["serve", "--log-format", "json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "SLUICE_LOG",
            std::env::var("SLUICE_BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_DATA_DIR", data)
        .env("SLUICE_WEBHOOK_SECRET", SECRET)
        .env("SLUICE_GITHUB_TOKEN", TOKEN)
        .env("SLUICE_GITHUB_API_URL", api)
        .env("SLUICE_TERRAFORM_BIN", tools.join("bin/terraform"))
        .env("SLUICE_PROVIDER_MIRROR", tools.join("providers"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("sluice starts");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    // SLUICE_BENCH_LOG=FILE keeps the server's log (e.g. with SLUICE_BENCH_LOG_LEVEL=info) to
    // see where the time goes.
    let mut keep =
        std::env::var_os("SLUICE_BENCH_LOG").map(|p| std::fs::File::create(p).expect("log file"));
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(f) = &mut keep {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
            if let Some(addr) = line.strip_prefix("sluice: listening on ")
                && let Some(t) = tx.take()
            {
                let _ = t.send(addr.trim().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server listens");
    Server { child, url }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn project(name: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    null = {{\n      source  = \"hashicorp/null\"\n      version = \"~> 2.1\"\n    }}\n  }}\n}}\n\n\
         resource \"null_resource\" \"{name}\" {{\n  count = 5\n  triggers = {{ i = count.index }}\n}}\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

async fn webhook_ack(results: &mut Vec<(String, String, String, bool)>) {
    let fake = FakeGitHub::start().await;
    let data = tempfile::tempdir().unwrap();
    // Deliveries come from one address here, from many (GitHub's) in production.
    let server = start_server(
        data.path(),
        &fake.url(),
        &[("SLUICE_HTTP__MAX_CONNECTIONS_PER_IP", "0")],
    );
    fake.add_pull(FakePull::new(REPO, 1));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // Conversation on a PR: the full intake path (verify, parse, allowlist, durable insert),
    // and no work after it — the common case for a busy repository.
    let rate = 500u32;
    let seconds = 10u32;
    let total = rate * seconds;
    let bodies: Vec<_> = (0..total)
        .map(|i| {
            Webhook::load("issue_comment.created.pr.json")
                .repo(REPO, "file:///nonexistent")
                .pr_number(1)
                .comment_body(&format!("Looks good to me ({i})"))
                // Each delivery is a distinct comment (one comment id is one event).
                .set("/comment/id", 1_000_000 + u64::from(i))
                .installation(None)
                .signed(SECRET)
        })
        .collect();
    // Warm-up.
    for b in bodies.iter().take(50) {
        let _ = client
            .post(format!("{}/events", server.url))
            .headers(b.header_map())
            .body(b.body.clone())
            .send()
            .await;
    }
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(total as usize);
    for (i, b) in bodies.into_iter().enumerate().skip(50) {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        let client = client.clone();
        let url = format!("{}/events", server.url);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let r = client
                .post(url)
                .headers(b.header_map())
                .body(b.body.clone())
                .send()
                .await;
            let ok = r.map(|r| r.status().as_u16() == 202).unwrap_or(false);
            // Latency from when the request was due, so client-side queueing counts too.
            (due.elapsed(), ok)
        }));
    }
    let mut lat = Vec::new();
    let mut accepted = 0u32;
    for t in tasks {
        let (d, ok) = t.await.unwrap();
        lat.push(d);
        accepted += ok as u32;
    }
    lat.sort();
    let sent = total - 50;
    // Nothing lost: every accepted delivery is a row.
    let db = sluice::adapters::store::SqliteStore::open(&data.path().join("sluice.db"))
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let p50 = percentile(&lat, 0.5);
    let p99 = percentile(&lat, 0.99);
    let max = *lat.last().unwrap();
    println!(
        "webhook ack at {rate}/s for {seconds}s: sent {sent}, accepted {accepted}, stored {stored} (incl. 50 warm-up); \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    results.push((
        "webhook ack p99 @500/s".into(),
        format!("{:.2} ms", p99.as_secs_f64() * 1e3),
        "≤ 10 ms".into(),
        p99 <= Duration::from_millis(10),
    ));
    results.push((
        "webhooks lost".into(),
        format!("{}", total as i64 - stored),
        "0".into(),
        stored == total as i64 && accepted == sent,
    ));
    drop(server);
}

async fn webhook_to_comment(results: &mut Vec<(String, String, String, bool)>) {
    let fake = FakeGitHub::start().await;
    let data = tempfile::tempdir().unwrap();
    let origin = tempfile::tempdir().unwrap();
    git(origin.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(origin.path().join("README.md"), "bench\n").unwrap();
    git(origin.path(), &["add", "-A"]);
    git(origin.path(), &["commit", "-qm", "base"]);
    let base = git(origin.path(), &["rev-parse", "HEAD"]);
    let server = start_server(data.path(), &fake.url(), &[("SLUICE_WORKERS", "1")]);
    let client = reqwest::Client::new();
    let url = format!("file://{}", origin.path().display());

    let tools = tools_dir();
    let raw_dir = tempfile::tempdir().unwrap();
    let cli_config = raw_dir.path().join("terraformrc");
    std::fs::write(
        &cli_config,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            tools.join("providers").display()
        ),
    )
    .unwrap();

    let rounds = 5;
    let mut sluice_times = Vec::new();
    let mut raw_times = Vec::new();
    let mut raw_show_times = Vec::new();
    for round in 1..=rounds {
        // Sluice: a PR adding a new project; from the webhook to the plan comment on GitHub.
        let n = round as u64;
        git(
            origin.path(),
            &["checkout", "-q", "-b", &format!("pr{n}"), &base],
        );
        let dir = format!("envs/r{n}");
        std::fs::create_dir_all(origin.path().join(&dir)).unwrap();
        std::fs::write(
            origin.path().join(&dir).join("main.tf"),
            project(&format!("r{n}")),
        )
        .unwrap();
        git(origin.path(), &["add", "-A"]);
        git(origin.path(), &["commit", "-qm", "pr"]);
        let head = git(origin.path(), &["rev-parse", "HEAD"]);
        git(
            origin.path(),
            &["update-ref", &format!("refs/pull/{n}/head"), &head],
        );
        git(origin.path(), &["checkout", "-q", "main"]);
        fake.add_pull(FakePull {
            head_sha: head.clone(),
            head_ref: format!("pr{n}"),
            base_sha: base.clone(),
            ..FakePull::new(REPO, n)
        });
        let hook = Webhook::load("pull_request.opened.json")
            .repo(REPO, &url)
            .pr_number(n)
            .head_sha(&head)
            .set("/pull_request/head/ref", format!("pr{n}").as_str())
            .base("main", &base)
            .draft(false)
            .installation(None)
            .signed(SECRET);
        let t = Instant::now();
        let r = client
            .post(format!("{}/events", server.url))
            .headers(hook.header_map())
            .body(hook.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        loop {
            if fake
                .bot_comments(REPO, n)
                .iter()
                .any(|c| c.contains("Plan:"))
            {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "no plan comment");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sluice_times.push(t.elapsed());

        // Raw terraform on the same project, same mirror, no Sluice.
        let work = raw_dir.path().join(format!("r{n}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("main.tf"), project(&format!("r{n}"))).unwrap();
        let t = Instant::now();
        for args in [
            vec!["init", "-input=false", "-no-color"],
            vec!["plan", "-input=false", "-no-color", "-out=p"],
        ] {
            let st = Command::new(tools.join("bin/terraform"))
                .args(&args)
                .current_dir(&work)
                .env_clear()
                .env("TF_CLI_CONFIG_FILE", &cli_config)
                .env("CHECKPOINT_DISABLE", "1")
                .env("TF_IN_AUTOMATION", "1")
                .env("HOME", raw_dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        }
        raw_times.push(t.elapsed());
        // …plus `show -json`, which Sluice must run too: it renders plans from the JSON.
        let st = Command::new(tools.join("bin/terraform"))
            .args(["show", "-json", "p"])
            .current_dir(&work)
            .env_clear()
            .env("TF_CLI_CONFIG_FILE", &cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("HOME", raw_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        raw_show_times.push(t.elapsed());
    }
    let s = median(sluice_times.clone());
    let r = median(raw_times.clone());
    let ratio = s.as_secs_f64() / r.as_secs_f64();
    println!(
        "webhook → plan comment: median {:.0} ms (rounds {:?}); raw terraform init && plan: median {:.0} ms (rounds {:?}); ratio {ratio:.2}",
        s.as_secs_f64() * 1e3,
        sluice_times
            .iter()
            .map(|d| d.as_millis())
            .collect::<Vec<_>>(),
        r.as_secs_f64() * 1e3,
        raw_times.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
    );
    results.push((
        "webhook→comment ÷ raw init+plan".into(),
        format!("{ratio:.2}"),
        "≤ 1.10".into(),
        ratio <= 1.10,
    ));
    // The same raw commands plus `show -json`, which Sluice must run too (it renders plans from
    // the JSON): this ratio is Sluice's own overhead.
    let rs = median(raw_show_times.clone());
    let ratio_show = s.as_secs_f64() / rs.as_secs_f64();
    println!(
        "raw terraform init && plan && show -json: median {:.0} ms (rounds {:?}); webhook → comment ÷ that = {ratio_show:.2}",
        rs.as_secs_f64() * 1e3,
        raw_show_times
            .iter()
            .map(|d| d.as_millis())
            .collect::<Vec<_>>(),
    );
    results.push((
        "webhook→comment ÷ raw init+plan+show".into(),
        format!("{ratio_show:.2}"),
        "≤ 1.10".into(),
        ratio_show <= 1.10,
    ));
}

/// Peak RSS (VmHWM, kB) of a child process, sampled until it exits.
fn run_measuring_rss(mut cmd: Command) -> (std::process::ExitStatus, u64, Duration) {
    let t = Instant::now();
    let mut child = cmd.spawn().expect("child starts");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().expect("wait") {
            return (st, peak, t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Exports and verifies a log of 1,000,000 entries: time and the exporter's peak memory.
async fn audit_export(results: &mut Vec<(String, String, String, bool)>) {
    use sluice::app::ports::store::Store;
    use sluice::core::audit::{AuditAction, AuditActor, AuditRecord, AuditResult, ChangeCounts};
    let data = tempfile::tempdir().unwrap();
    let store = sluice::adapters::store::SqliteStore::open(&data.path().join("sluice.db"))
        .await
        .unwrap();
    let n: u64 = 1_000_000;
    let t = Instant::now();
    let batch = 20_000;
    for b in 0..(n / batch) {
        let records: Vec<AuditRecord> = (0..batch)
            .map(|i| {
                let k = b * batch + i;
                AuditRecord {
                    event_id: Some(format!("delivery-{k}")),
                    actor: AuditActor {
                        login: "alice".into(),
                        id: Some(1001),
                        kind: "human".into(),
                    },
                    action: Some(if k % 3 == 0 {
                        AuditAction::Apply
                    } else {
                        AuditAction::Plan
                    }),
                    repo: Some("acme/infra".into()),
                    pr: Some(k / 10),
                    head_sha: Some(format!("{:040x}", k)),
                    project: Some(format!("envs/p{}", k % 50)),
                    workspace: Some("default".into()),
                    result: Some(AuditResult::Success),
                    plan_sha256: Some(format!("{:064x}", k)),
                    changes: Some(ChangeCounts {
                        add: k % 7,
                        change: 1,
                        destroy: 0,
                        replace: 0,
                        import: 0,
                    }),
                    details: [("note".to_string(), "reason, with \"quotes\"".to_string())].into(),
                    ..AuditRecord::default()
                }
            })
            .collect();
        store
            .append_audit(
                records,
                sluice::core::types::UnixMs::new(1_772_323_200_000 + (b * batch) as i64),
            )
            .await
            .unwrap();
    }
    let generated = t.elapsed();
    drop(store);
    let out = data.path().join("export.csv");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["audit", "export", "--format", "csv", "--output"])
        .arg(&out)
        .env("SLUICE_DATA_DIR", data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (st, peak_kb, took) = run_measuring_rss(cmd);
    assert!(st.success());
    let size = std::fs::metadata(&out).unwrap().len();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["audit", "verify"])
        .env("SLUICE_DATA_DIR", data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (vst, vpeak_kb, vtook) = run_measuring_rss(cmd);
    assert!(vst.success());
    println!(
        "audit: generated {n} entries in {:.1} s; export CSV ({} MB) in {:.1} s, peak RSS {} MB; verify in {:.1} s, peak RSS {} MB",
        generated.as_secs_f64(),
        size / 1_000_000,
        took.as_secs_f64(),
        peak_kb / 1024,
        vtook.as_secs_f64(),
        vpeak_kb / 1024
    );
    results.push((
        "audit export 1M entries, peak RSS".into(),
        format!("{} MB", peak_kb / 1024),
        "bounded".into(),
        peak_kb < 100 * 1024,
    ));
    results.push((
        "audit verify 1M entries, peak RSS".into(),
        format!("{} MB", vpeak_kb / 1024),
        "bounded".into(),
        vpeak_kb < 100 * 1024,
    ));
}

fn main() {
    if !tools_dir().join("bin/terraform").is_file() {
        eprintln!("server_bench: terraform is missing; run scripts/install-test-tools first");
        std::process::exit(1);
    }
    // `cargo bench` passes `--bench`; a filter argument selects one benchmark.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut results = Vec::new();
    rt.block_on(async {
        if want("audit") {
            audit_export(&mut results).await;
        }
        if want("ack") {
            webhook_ack(&mut results).await;
        }
        if want("comment") {
            webhook_to_comment(&mut results).await;
        }
    });
    println!(
        "\n{:<36} {:>12} {:>10}  ok",
        "benchmark", "measured", "goal"
    );
    for (name, measured, goal, ok) in &results {
        println!(
            "{name:<36} {measured:>12} {goal:>10}  {}",
            if *ok { "ok" } else { "NOT OK" }
        );
    }
}
