//! Durability of the real binary: SIGKILL in the middle of a plan or an apply, and a graceful
//! shutdown (SIGTERM) while a plan runs. Nothing may be silently dropped; locks stay consistent.
//!
//! To make "in the middle" reliable, terraform is wrapped by a script that sleeps before `plan`
//! and `apply`. The wrapper needs to exec the real binary by its host path, so these runs use the
//! `plain` runner profile — what is tested here is the job machinery, not the sandbox.

use std::time::Duration;

use crate::server::{Harness, REPO};
use crate::support::{null_project, tools};

/// A terraform that takes `secs` seconds longer for `plan` and `apply`.
pub(crate) fn slow_terraform(dir: &std::path::Path, secs: u32) -> std::path::PathBuf {
    let real = tools().terraform;
    let path = dir.join("slow-terraform");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ncase \"$1\" in plan|apply) : > \"{}/started-$1\"; sleep {secs} ;; esac\nexec {} \"$@\"\n",
            dir.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Waits until the slow engine of [`slow_terraform`] in `bin` runs `command` (`plan` or `apply`):
/// a kill from then on lands while the engine runs.
pub(crate) async fn engine_running(h: &Harness, bin: &tempfile::TempDir, command: &str) {
    let marker = bin.path().join(format!("started-{command}"));
    h.wait(&format!("the engine to run {command}"), || {
        marker.exists().then_some(())
    })
    .await;
}

async fn slow_harness(secs: u32) -> (Harness, tempfile::TempDir) {
    let files = [("envs/a/main.tf", null_project("a", "1"))];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut h = Harness::new(&refs).await;
    let bin = tempfile::tempdir().unwrap();
    let wrapper = slow_terraform(bin.path(), secs);
    h.set_env("SLUICE_TERRAFORM_BIN", &wrapper.display().to_string());
    h.set_env("SLUICE_RUNNER__PROFILE", "plain");
    h.start();
    (h, bin)
}

async fn wait_log(h: &Harness, needle: &str) {
    h.wait(&format!("log line {needle:?}"), || {
        h.server().logs().contains(needle).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_killed_mid_run_is_run_again_after_restart() {
    let (mut h, _bin) = slow_harness(4).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    // "job started" is the positive signal that the plan is under way; the slow engine keeps
    // it running for seconds, so the kill lands mid-run without waiting any longer.
    wait_log(&h, "job started").await;
    h.server.as_mut().unwrap().kill();
    assert!(
        h.fake.bot_comments(REPO, 1).is_empty(),
        "killed before it could report"
    );

    h.start();
    // The lock taken before the crash is still this PR's.
    assert_eq!(
        h.locks().await,
        vec![("envs/a".to_string(), "default".to_string(), 1)]
    );
    let comment = h
        .wait_comment(1, "the re-run's plan", |c| c.contains("Plan: 1 to add"))
        .await;
    assert!(comment.contains("envs/a"), "{comment}");
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        "1/1 project planned"
    );
    assert!(
        h.server().logs().contains("job lease expired"),
        "the restarted server recovered the job"
    );
    assert_eq!(
        h.count_comments(1, |c| c.contains("Plan:")),
        1,
        "one plan comment, not two"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_killed_mid_run_is_reported_interrupted_never_rerun() {
    let (mut h, bin) = slow_harness(4).await;
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    h.wait_status(&head, "sluice/plan", "success").await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply"))
        .await;
    h.wait("the apply job to start", || {
        h.server()
            .logs()
            .lines()
            .any(|l| l.contains("job started") && l.contains("apply"))
            .then_some(())
    })
    .await;
    engine_running(&h, &bin, "apply").await;
    h.server.as_mut().unwrap().kill();

    h.start();
    let c = h
        .wait_comment(1, "the interrupted apply", |c| c.contains("Interrupted"))
        .await;
    assert!(c.contains("may have changed infrastructure"), "{c}");
    let desc = h.wait_status(&head, "sluice/apply", "failure").await;
    assert!(desc.contains("interrupted"), "{desc}");
    h.wait_idle(&[1]).await;
    assert!(
        !h.server()
            .logs()
            .lines()
            .any(|l| l.contains("job started") && l.contains("apply")),
        "the apply was not started again after the restart"
    );
    let audit = String::from_utf8_lossy(&h.cli(&["audit", "export"]).stdout).into_owned();
    assert!(audit.contains("\"result\":\"interrupted\""), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_waits_then_interrupts_and_tells_the_pr() {
    let (mut h, bin) = slow_harness(60).await;
    h.set_env("SLUICE_SHUTDOWN_GRACE_SECS", "1");
    h.set_env("SLUICE_RUNNER__GRACE_SECS", "2");
    h.server.as_mut().unwrap().kill();
    h.start();
    let head = h.open_pr(1, "change", &[("envs/a/main.tf", &null_project("a", "2"))]);
    h.deliver(&h.pr_event("opened", 1)).await;
    wait_log(&h, "job started").await;
    engine_running(&h, &bin, "plan").await;
    let status = h
        .server
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(30))
        .expect("exits");
    assert!(status.success(), "clean exit: {status:?}");
    let c = h
        .wait_comment(1, "the interrupted plan", |c| c.contains("Interrupted"))
        .await;
    assert!(c.contains("shut down"), "{c}");
    let desc = h.wait_status(&head, "sluice/plan", "failure").await;
    assert!(desc.contains("interrupted"), "{desc}");
    // Nothing of the run is left behind.
    let ps = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(bin.path().join("slow-terraform"))
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&ps.stdout);
    assert!(left.trim().is_empty(), "terraform processes left: {left}");
}
