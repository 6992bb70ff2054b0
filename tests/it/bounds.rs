//! Pull-request content can neither stop the server nor exhaust it: files over the limits Sluice
//! reads within are told on the PR (and the other projects still plan), checkouts stop at their
//! quotas, and an event whose handling kills the process is set aside after a few tries while
//! every other PR is still served. The real `sluice serve` binary, a fake GitHub, real git and
//! terraform.

use std::time::{Duration, Instant};

use crate::server::{API_TOKEN, Harness, REPO, SECRET};
use crate::support::null_project;

fn is_plan(c: &str) -> bool {
    c.contains("sluice plan") && c.contains("Plan:")
}

/// A `.tf` file that declares a module and nests `depth` brackets: about 4 KB for 2,000, and
/// enough, before the bounds existed, to overflow the stack of the thread parsing it for module
/// detection — which aborted the whole server.
fn nested_tf(depth: usize) -> String {
    format!(
        "module \"m\" {{\n  source = \"../../modules/m\"\n  x = {}1{}\n}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

async fn two_projects() -> Harness {
    let files = [
        ("envs/a/main.tf", null_project("a", "1")),
        ("envs/b/main.tf", null_project("b", "1")),
        ("modules/m/main.tf", "variable \"x\" {}\n".to_string()),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    Harness::new(&refs).await
}

async fn healthy(h: &Harness) {
    let r = h
        .http
        .get(format!("{}/healthz", h.url()))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deeply_nested_tf_file_is_a_detection_error_and_the_other_projects_still_plan() {
    let mut h = two_projects().await;
    h.start();
    let head = h.open_pr(
        1,
        "deep",
        &[
            ("envs/a/main.tf", &null_project("a", "2")),
            ("envs/b/main.tf", &null_project("b", "2")),
            ("envs/b/deep.tf", &nested_tf(2000)),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;

    let warning = h
        .wait_comment(1, "the detection error", |c| {
            c.contains("Some projects could not be planned")
        })
        .await;
    assert!(
        warning.contains("envs/b/deep.tf:3:")
            && warning.contains("nest more than 100 levels deep here (limits.hcl_depth)"),
        "the error names the file, the spot and the limit:\n{warning}"
    );
    assert!(
        warning.contains("the projects in its directory are not planned"),
        "{warning}"
    );
    let plan = h.wait_comment(1, "the plan of envs/a", is_plan).await;
    assert!(plan.contains("envs/a"), "{plan}");
    assert!(
        !plan.contains("envs/b"),
        "envs/b holds a file Sluice did not read: not planned\n{plan}"
    );
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        "1/1 project planned"
    );
    // The server is still there, and still serves other pull requests.
    assert!(h.server.as_mut().unwrap().exited().is_none());
    healthy(&h).await;
    h.open_pr(2, "plain", &[("envs/b/main.tf", &null_project("b", "3"))]);
    h.deliver(&h.pr_event("opened", 2)).await;
    let plan = h.wait_comment(2, "the next PR's plan", is_plan).await;
    assert!(plan.contains("envs/b"), "{plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn content_over_the_limits_is_refused_with_the_limit_named_on_the_pr() {
    let mut h = two_projects().await;
    h.set_env("SLUICE_LIMITS__EXPORT_FILE_BYTES", "2000");
    h.set_env("SLUICE_LIMITS__FILE_BYTES", "4096");
    h.set_env("SLUICE_LIMITS__CHANGED_FILES", "20");
    h.set_env("SLUICE_LIMITS__PROJECTS_PER_RUN", "1");
    h.start();
    let data_dir = h.data_dir().display().to_string();
    let no_host_paths = |c: &str| {
        assert!(!c.contains(&data_dir), "a host path leaked:\n{c}");
    };

    // A file larger than a checkout holds: the job fails at checkout, naming file and limit.
    h.open_pr(
        1,
        "blob",
        &[
            ("envs/a/main.tf", &null_project("a", "2")),
            ("envs/a/blob.bin", &"x".repeat(3000)),
        ],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let c = h
        .wait_comment(1, "the failed checkout", |c| {
            c.contains("export_file_bytes")
        })
        .await;
    assert!(
        c.contains("`envs/a/blob.bin` is 2.9 KiB; a job's checkout holds files of at most 2.0 KiB (limits.export_file_bytes)"),
        "{c}"
    );
    no_host_paths(&c);

    // A symbolic link out of the repository: never checked out. (Another project: PR 1 holds
    // the lock of envs/a.)
    h.open_pr(2, "link", &[("envs/b/main.tf", &null_project("b", "3"))]);
    h.origin.checkout("link");
    std::os::unix::fs::symlink("/etc/passwd", h.origin.path().join("envs/b/passwd")).unwrap();
    let head = h.origin.commit("a link out");
    h.origin.set_pull_ref(2, &head);
    h.origin.checkout("main");
    h.fake.update_pull(REPO, 2, |p| p.head_sha = head.clone());
    h.deliver(&h.pr_event("synchronize", 2)).await;
    let c = h
        .wait_comment(2, "the refused link", |c| c.contains("symbolic link"))
        .await;
    assert!(
        c.contains("`envs/b/passwd` is a symbolic link to `/etc/passwd`, outside the repository"),
        "{c}"
    );
    no_host_paths(&c);

    // A configuration file larger than Sluice reads: a configuration error, nothing runs.
    let big_config = format!("version: 1\n# {}\n", "x".repeat(5000));
    h.open_pr(
        3,
        "config",
        &[
            ("sluice.yaml", &big_config),
            ("envs/a/main.tf", &null_project("a", "4")),
        ],
    );
    h.deliver(&h.pr_event("opened", 3)).await;
    let c = h
        .wait_comment(3, "the config error", |c| c.contains("cannot plan"))
        .await;
    assert!(c.contains("sluice.yaml: error: the file is 4.9 KiB"), "{c}");
    assert!(c.contains("(limits.file_bytes)"), "{c}");

    // Too many changed files: told, not read.
    let many: Vec<(String, String)> = (0..25)
        .map(|i| (format!("docs/page{i}.md"), format!("page {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    h.open_pr(4, "many", &refs);
    h.deliver(&h.pr_event("opened", 4)).await;
    let c = h
        .wait_comment(4, "the refusal", |c| c.contains("changed_files"))
        .await;
    assert!(
        c.contains("this pull request changes more than 20 files; Sluice reads at most that many (limits.changed_files)"),
        "{c}"
    );
    no_host_paths(&c);

    // More projects than one plan runs.
    let head = h.open_pr(
        5,
        "wide",
        &[
            ("envs/a/main.tf", &null_project("a", "5")),
            ("envs/b/main.tf", &null_project("b", "5")),
        ],
    );
    h.deliver(&h.pr_event("opened", 5)).await;
    let c = h
        .wait_comment(5, "the refusal", |c| c.contains("projects_per_run"))
        .await;
    assert!(
        c.contains("it affects 2 projects, and one plan runs at most 1 (limits.projects_per_run)"),
        "{c}"
    );
    h.wait_status(&head, "sluice/plan", "failure").await;
    let audit = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    assert!(audit.contains("\"action\":\"plan_refused\""), "{audit}");

    assert!(h.server.as_mut().unwrap().exited().is_none());
    healthy(&h).await;
}

/// Reading a commit has a deadline: a PR whose files are merely slow to read (each within the
/// limits) fails its event with the limit named, and the server goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn reading_a_pr_past_the_deadline_is_told_and_the_server_goes_on() {
    let mut h = two_projects().await;
    h.set_env("SLUICE_LIMITS__DETECTION_TIMEOUT_SECS", "2");
    h.start();
    // Forty files, each with the largest object the pre-scan admits: seconds of parsing.
    let mut object =
        String::from("module \"m\" {\n  source = \"../../modules/m\"\n}\nlocals {\n  m = {\n");
    for i in 0..6000 {
        object.push_str(&format!("    k{i} = {i}\n"));
    }
    object.push_str("  }\n}\n");
    let files: Vec<(String, String)> = (0..40)
        .map(|i| (format!("envs/a/slow{i}.tf"), object.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    h.open_pr(1, "slow", &refs);
    let started = Instant::now();
    h.deliver(&h.pr_event("opened", 1)).await;
    let c = h
        .wait_comment(1, "the deadline", |c| c.contains("detection_timeout_secs"))
        .await;
    assert!(
        c.contains("reading the pull request took longer than 2 s (limits.detection_timeout_secs)"),
        "{c}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // The server still serves: health, and the next PR.
    healthy(&h).await;
    h.open_pr(2, "plain", &[("envs/b/main.tf", &null_project("b", "2"))]);
    h.deliver(&h.pr_event("opened", 2)).await;
    h.wait_comment(2, "the next PR's plan", is_plan).await;
}

/// A "tree bomb" (ten trees of ten, nine levels deep: 10^9 paths in a few KB of objects) as PR
/// #`n` of the harness's origin, built with `git hash-object` and `git mktree`.
fn open_tree_bomb_pr(h: &Harness, n: u64) {
    use crate::fake_github::FakePull;
    let origin = &h.origin;
    origin.checkout("main");
    let base = origin.head();
    let mut object = {
        let blob = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(blob.path(), "x\n").expect("write");
        origin
            .git(&["hash-object", "-w", &blob.path().display().to_string()])
            .trim()
            .to_string()
    };
    let (mut kind, mut mode) = ("blob", "100644");
    for _ in 0..9 {
        let listing: String = (0..10)
            .map(|i| format!("{mode} {kind} {object}\tn{i}\n"))
            .collect();
        let out = std::process::Command::new("git")
            .arg("mktree")
            .current_dir(origin.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(listing.as_bytes())?;
                c.wait_with_output()
            })
            .expect("git mktree");
        object = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (kind, mode) = ("tree", "040000");
    }
    let head = origin
        .git(&["commit-tree", &object, "-p", &base, "-m", "tree bomb"])
        .trim()
        .to_string();
    origin.set_pull_ref(n, &head);
    h.fake.add_pull(FakePull {
        head_sha: head,
        head_ref: "bomb".to_string(),
        base_sha: base,
        ..FakePull::new(REPO, n)
    });
}

/// Git reading crafted objects is bounded too: a PR whose tree spells 10^9 paths fails its
/// event with the limit named, within the detection deadline, no git process is left running,
/// and the server goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_git_tree_bomb_is_a_clear_error_and_leaves_no_git_running() {
    let mut h = two_projects().await;
    h.set_env(
        "SLUICE_LIMITS__GIT_MEMORY_BYTES",
        &(256u64 << 20).to_string(),
    );
    h.set_env("SLUICE_LIMITS__DETECTION_TIMEOUT_SECS", "30");
    h.start();
    open_tree_bomb_pr(&h, 1);
    let started = Instant::now();
    h.deliver(&h.pr_event("opened", 1)).await;
    let c = h
        .wait_comment(1, "the tree bomb's error", |c| {
            c.contains("limits.git_memory_bytes")
                || c.contains("limits.tree_files")
                || c.contains("limits.detection_timeout_secs")
        })
        .await;
    assert!(
        c.contains("ran out of memory") && c.contains("limits.git_memory_bytes"),
        "{c}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    let data = h.data_dir().display().to_string();
    let left: Vec<String> = crate::support::processes_matching(&data)
        .into_iter()
        .filter(|p| p.contains("git") && !p.contains("sluice"))
        .collect();
    assert!(left.is_empty(), "git still running: {left:?}");
    healthy(&h).await;
    h.open_pr(2, "plain", &[("envs/b/main.tf", &null_project("b", "2"))]);
    h.deliver(&h.pr_event("opened", 2)).await;
    h.wait_comment(2, "the next PR's plan", is_plan).await;
}

/// The poison-event scenario. Every real input that used to kill the server is bounded now, so
/// the test names the delivery to abort on (`SLUICE_TEST_CRASH_ON_DELIVERY`, honoured by debug
/// builds only). The server is restarted whenever it dies, like a supervisor would.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_kills_the_server_is_set_aside_and_every_other_pr_is_still_served() {
    let mut h = two_projects().await;
    h.open_pr(1, "poison", &[("envs/a/main.tf", &null_project("a", "2"))]);
    let poison = h.pr_event("opened", 1).signed(SECRET);
    let delivery = poison.delivery().to_string();
    h.set_env("SLUICE_TEST_CRASH_ON_DELIVERY", &delivery);
    h.start();

    let r = h.send_signed(&poison).await;
    assert_eq!(r.status(), 202, "stored before it is handled");
    // Another PR's event, stored while the first one keeps killing the server.
    h.open_pr(2, "healthy", &[("envs/b/main.tf", &null_project("b", "2"))]);
    let healthy_event = h.pr_event("opened", 2).signed(SECRET);

    let mut crashes = 0;
    let mut sent_healthy = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if h.fake
            .bot_comments(REPO, 1)
            .iter()
            .any(|c| c.contains("could not process this event"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event was never set aside\n{}",
            h.server().logs()
        );
        if h.server.as_mut().unwrap().exited().is_some() {
            crashes += 1;
            assert!(
                crashes <= 3,
                "the server died more often than the event's attempts"
            );
            h.start();
            if !sent_healthy {
                let r = h.send_signed(&healthy_event).await;
                assert_eq!(r.status(), 202);
                sent_healthy = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        crashes, 3,
        "one crash per attempt (limits.event_attempts = 3)"
    );

    // The PR is told, without host paths; the server keeps running and serves PR 2.
    let told = h
        .fake
        .bot_comments(REPO, 1)
        .into_iter()
        .find(|c| c.contains("could not process this event"))
        .unwrap();
    assert!(told.contains(&delivery), "{told}");
    assert!(told.contains("tried 3 times"), "{told}");
    assert!(
        !told.contains(&h.data_dir().display().to_string()),
        "{told}"
    );
    h.wait_comment(2, "the other PR's plan", is_plan).await;
    assert!(h.server.as_mut().unwrap().exited().is_none());
    healthy(&h).await;
    assert!(
        h.fake.bot_comments(REPO, 1).iter().all(|c| !is_plan(c)),
        "nothing of the poison event ran"
    );

    // Operators see it: the CLI, the API (with the token only) and the audit log.
    let out = h.cli(&["events", "list", "--dead"]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.contains(&delivery)
            && listed.contains("dead")
            && listed.contains("attempts=3")
            && listed.contains("acme/infra#1")
            && listed.contains("none finished"),
        "{listed}"
    );
    let api = |token: Option<&str>| {
        let mut req = h.http.get(format!("{}/api/events?state=dead", h.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(api(None).await.unwrap().status(), 401);
    let v: serde_json::Value = api(Some(API_TOKEN)).await.unwrap().json().await.unwrap();
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{v}");
    assert_eq!(events[0]["delivery_id"], delivery.as_str());
    assert_eq!(events[0]["state"], "dead");
    assert_eq!(events[0]["attempts"], 3);
    assert_eq!(events[0]["target"], "acme/infra#1");
    let audit = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    let entry = audit
        .lines()
        .find(|l| l.contains("\"action\":\"event_dead_lettered\""))
        .unwrap_or_else(|| panic!("no audit entry:\n{audit}"));
    assert!(
        entry.contains(&delivery) && entry.contains("\"error_class\":\"unfinished\""),
        "{entry}"
    );
}
