//! `sluice drift remediate` end to end: a project applied through Sluice on a remote state
//! (terraform's `http` backend), changed behind Sluice's back, reported in a drift issue; the
//! command on that issue opens a pull request from the default branch whose plan of the project
//! puts Git's state back — planned, never applied without review.

use crate::drift::{
    Receiver, apply_through_sluice, backend_project, drift_harness, issue_comment, merge,
    push_event, wait_status,
};
use crate::server::REPO;
use crate::state_backend::StateBackend;

#[tokio::test(flavor = "multi_thread")]
async fn drift_remediate_opens_a_pull_request_whose_plan_is_the_fix_and_refuses_what_it_must() {
    let backend = StateBackend::start();
    let receiver = Receiver::start();
    let h = drift_harness(&backend, &receiver).await;
    h.fake.set_repo_dir(REPO, h.origin.path());

    let v2 = backend_project(&backend, "app", &[("web", "2"), ("db", "1")]);
    apply_through_sluice(&h, 1, "web-2", &v2).await;
    merge(&h, "web-2");
    h.deliver(&h.pr_event("closed", 1).set("/pull_request/merged", true))
        .await;
    h.deliver(&push_event(&h)).await;
    wait_status(&h, "synced", |p| p["status"] == "synced").await;

    // Someone sets web's value by hand: the live state no longer matches Git's `2`.
    backend.edit("app", |state| {
        let web = state["resources"]
            .as_array_mut()
            .expect("resources")
            .iter_mut()
            .find(|r| r["name"] == "web")
            .expect("web in state");
        web["instances"][0]["attributes"]["triggers"]["v"] = "resized-by-hand".into();
    });
    h.deliver(&push_event(&h)).await;
    wait_status(&h, "the drift", |p| p["drift"]["phase"] == "open").await;
    let issue = h
        .wait("the drift issue", || {
            h.fake.issues(REPO).into_iter().find(|i| i.open)
        })
        .await
        .number;

    // A non-collaborator is refused (and nothing is opened).
    h.deliver(&issue_comment(
        &h,
        issue,
        "mallory",
        "NONE",
        "sluice drift remediate",
    ))
    .await;
    let refused = h
        .wait_comment(issue, "the refusal", |c| c.contains("@mallory"))
        .await;
    assert!(refused.contains("not a collaborator"), "{refused}");
    assert!(h.fake.pull(REPO, 2).is_none());

    // A collaborator: PR #2 from main's head, planned for `app`; its plan puts web back.
    let main_head = h.origin.git(&["rev-parse", "main"]);
    h.deliver(&issue_comment(
        &h,
        issue,
        "alice",
        "OWNER",
        "sluice drift remediate",
    ))
    .await;
    let told = h
        .wait_comment(issue, "the remediation reply", |c| {
            c.contains("to remediate")
        })
        .await;
    assert!(told.contains("Opened #2"), "{told}");
    let pull = h.fake_pull(2);
    assert_eq!(pull.head_ref, "sluice/remediate-app");
    assert_eq!(pull.base_ref, "main");
    assert!(pull.title.contains("Remediate drift"), "{}", pull.title);
    assert_eq!(
        h.origin.git(&["rev-parse", "sluice/remediate-app^"]),
        main_head,
        "one commit on main's head"
    );
    assert!(
        h.origin
            .git(&["diff", "--name-only", "main", "sluice/remediate-app"])
            .is_empty(),
        "no file changed"
    );
    h.wait_status(&pull.head_sha, "sluice/plan", "success")
        .await;
    let plan = h
        .wait_comment(2, "the remediation plan", |c| {
            c.contains("null_resource.web")
        })
        .await;
    assert!(plan.contains("must be replaced"), "{plan}");
    assert!(!plan.contains("null_resource.db"), "{plan}");
    // GitHub's `opened` delivery of the PR autoplans nothing (no file changed) and leaves the
    // project's plan as its `sluice/plan`.
    h.deliver(&h.pr_event("opened", 2)).await;
    h.wait_idle(&[2]).await;
    let plan_statuses: Vec<(String, String)> = h
        .fake
        .statuses(&pull.head_sha)
        .into_iter()
        .filter(|(context, _, _)| context == "sluice/plan")
        .map(|(_, state, description)| (state, description))
        .collect();
    assert!(
        plan_statuses
            .last()
            .is_some_and(|(state, d)| state == "success" && !d.contains("0 projects")),
        "{plan_statuses:?}"
    );
    // Planned, not applied: the drifted value is still live.
    let live = backend.state("app").expect("state");
    assert!(live.to_string().contains("resized-by-hand"));

    // Asked again while #2 is open: pointed to it.
    h.deliver(&issue_comment(
        &h,
        issue,
        "alice",
        "OWNER",
        "sluice drift remediate",
    ))
    .await;
    let again = h
        .wait_comment(issue, "the second reply", |c| c.contains("already open"))
        .await;
    assert!(again.contains("#2"), "{again}");
    assert!(h.fake.pull(REPO, 3).is_none());

    // Accepted drift is not remediated.
    let until = (chrono::Utc::now() + chrono::Duration::days(30))
        .date_naive()
        .to_string();
    h.deliver(&issue_comment(
        &h,
        issue,
        "alice",
        "OWNER",
        &format!("sluice drift accept --until {until} --reason \"vendor fix pending\""),
    ))
    .await;
    wait_status(&h, "accepted", |p| p["drift"]["phase"] == "accepted").await;
    h.deliver(&issue_comment(
        &h,
        issue,
        "alice",
        "OWNER",
        "sluice drift remediate",
    ))
    .await;
    let accepted = h
        .wait_comment(issue, "the accepted refusal", |c| c.contains("is accepted"))
        .await;
    assert!(accepted.contains("only open or acknowledged"), "{accepted}");

    // Every request is audited: the outsider's refusal, the two answers and the refusal.
    let out = h.cli(&["audit", "export", "--format", "jsonl"]);
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let remediations: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["action"] == "drift_remediate")
        .map(|e| {
            (
                e["result"].as_str().unwrap_or_default(),
                e["details"]["already_open"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        remediations,
        vec![("success", "false"), ("success", "true"), ("refused", "-")],
        "{entries:#?}"
    );
    assert!(
        entries.iter().any(|e| e["action"] == "command_rejected"
            && e["actor"]["login"] == "mallory"
            && e["details"]["command"] == "drift remediate"),
        "{entries:#?}"
    );
}
