//! Projects a pull request removes, end to end through the real server: every Terraform file of
//! a project deleted, a project directory moved, an entry dropped from `sluice.yaml` — each is
//! named on the pull request with the advice to destroy it first, `sluice/plan` fails until a
//! destroy plan of it is applied, and that destroy plan (`plan -p NAME --destroy`) runs from the
//! base commit's configuration, with real terraform and a real remote state.

use crate::drift::{apply_by_hand, backend_project};
use crate::fake_github::FakePull;
use crate::server::{Harness, REPO};
use crate::state_backend::StateBackend;
use crate::support::{null_project, tools};

/// Like [`Harness::open_pr`], also deleting `remove` (files or directories) on the branch.
fn open_pr_removing(
    h: &Harness,
    n: u64,
    branch: &str,
    files: &[(&str, &str)],
    remove: &[&str],
) -> String {
    h.origin.checkout("main");
    let base = h.origin.head();
    h.origin.checkout_new(branch);
    for (path, content) in files {
        h.origin.write(path, content);
    }
    for path in remove {
        h.origin.remove(path);
    }
    let head = h.origin.commit(&format!("change for #{n}"));
    h.origin.set_pull_ref(n, &head);
    h.origin.checkout("main");
    h.fake.add_pull(FakePull {
        head_sha: head.clone(),
        head_ref: branch.to_string(),
        base_sha: base,
        ..FakePull::new(REPO, n)
    });
    head
}

/// The removed project's section of a plan comment: from its warning to the end of its text.
fn removed_section(comment: &str) -> String {
    let start = comment
        .find("> [!WARNING]\n> **This pull request removes")
        .expect("a removed-project section");
    let rest = &comment[start..];
    // The section ends where the next one starts, or where its fold in the summary closes.
    let end = ["\n\n---", "\n</details>"]
        .iter()
        .filter_map(|e| rest.find(e))
        .min()
        .unwrap_or(rest.len());
    rest[..end].trim_end().to_string()
}

/// The base branch's policy: destroying a `null_resource` needs an owner's override.
const NO_DESTROYS: &str = r#"version: 1
policies:
  - name: no-destroys
    description: Destroying resources needs a sign-off from the owners.
    rules:
      - name: no-delete
        deny: [delete]
        resource_types: [null_resource]
    on_failure: require_override
    owners: { users: [carol] }
"#;

fn resources_in(backend: &StateBackend, state: &str) -> usize {
    backend
        .state(state)
        .and_then(|s| s["resources"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// The issue's example, to the end: resources created from the base branch, a PR deleting the
/// project, the warning and the failing status, the destroy plan from the base commit, its
/// apply after approval, the resources gone from the state, the audit entries marked, and the
/// status green on the next push.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_project_is_named_and_its_destroy_plan_from_the_base_destroys_it() {
    let tools = tools();
    let backend = StateBackend::start();
    let app = backend_project(&backend, "app", &[("web", "1"), ("db", "1")]);
    let keep = null_project("keep", "1");
    let mut h = Harness::new(&[
        ("app/main.tf", &app),
        ("keep/main.tf", &keep),
        ("policies/no-destroys.yaml", NO_DESTROYS),
    ])
    .await;
    h.set_env("SLUICE_RUNNER__EGRESS_ALLOW", &backend.addr.to_string());
    h.start();
    apply_by_hand(&tools, &h.origin, "app");
    assert_eq!(
        resources_in(&backend, "app"),
        2,
        "the base branch's resources exist"
    );

    let head = open_pr_removing(&h, 1, "drop-app", &[], &["app"]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let comment = h
        .wait_plan(1, "the removed project", |c| {
            c.contains("This pull request removes the project")
        })
        .await;
    insta::assert_snapshot!(removed_section(&comment), @r"
    > [!WARNING]
    > **This pull request removes the project**: every Terraform file of `app` is deleted by this pull request.
    > Its resources stay in the cloud: after the merge nothing manages them (they are orphaned).

    To destroy them first, plan the destroy from the base branch's configuration and apply it:
    * :boom: `sluice plan -p app --destroy`
    * :arrow_forward: then `sluice apply -p app`

    Until a destroy plan of this project is applied on this pull request, `sluice/plan` fails. (If its state is already empty, the destroy plan shows no change; applying it records that.)
    ");
    h.wait_status(&head, "sluice/plan", "failure").await;
    assert!(
        h.locks().await.is_empty(),
        "a removed project runs nothing and takes no lock"
    );

    // Planning it as if it were still there says what to do instead.
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p app"))
        .await;
    let told = h
        .wait_comment(1, "the plan of a removed project", |c| {
            c.contains("nothing of it to plan")
        })
        .await;
    assert!(told.contains("`sluice plan -p app --destroy`"), "{told}");

    // The destroy plan runs from the base commit (the files are gone at the head).
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p app --destroy"))
        .await;
    let plan = h
        .wait_plan(1, "the destroy plan", |c| c.contains("Destroy plan"))
        .await;
    assert!(
        plan.contains("Plan: 0 to add, 0 to change, 2 to destroy."),
        "{plan}"
    );
    let caution = plan.find("**Destroy plan**").expect("the warning");
    let summary = plan.find("**Plan: 0 to add").expect("the summary");
    assert!(
        caution < summary,
        "the destroy warning comes first:\n{plan}"
    );
    // A destroy plan settles nothing until it is applied.
    h.wait_status_described(
        &head,
        "sluice/plan",
        "pending",
        "apply the destroy plan of 1 removed project, then plan again",
    )
    .await;

    // Applied like any plan: behind the gate, the base branch's destroy rules included.
    assert!(
        plan.contains("no-destroys"),
        "the policy verdict is shown:\n{plan}"
    );
    h.deliver(&h.comment_event(1, "alice", "sluice apply -p app"))
        .await;
    h.wait_comment(1, "the refusal", |c| c.contains("Apply refused"))
        .await;
    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    h.deliver(&h.comment_event(1, "alice", "sluice apply -p app"))
        .await;
    let refused = h
        .wait_comment(1, "the policy refusal", |c| {
            c.contains("Apply refused") && c.contains("policy `no-destroys` failed")
        })
        .await;
    assert!(refused.contains("null_resource.web"), "{refused}");
    assert_eq!(resources_in(&backend, "app"), 2, "nothing destroyed yet");
    h.deliver(&h.comment_event(1, "carol", "sluice approve_policies -p app"))
        .await;
    h.wait_comment(1, "carol's override", |c| {
        c.contains("overrode policy `no-destroys`")
    })
    .await;
    h.deliver(&h.comment_event(1, "alice", "sluice apply -p app"))
        .await;
    let applied = h
        .wait_comment(1, "the destroy", |c| c.contains("Apply complete"))
        .await;
    assert!(applied.contains("2 destroyed"), "{applied}");
    assert_eq!(resources_in(&backend, "app"), 0, "the resources are gone");
    h.deliver(&h.comment_event(1, "alice", "sluice plan")).await;
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        "0 projects affected",
        "destroyed through Sluice: the removal is settled"
    );

    let audit = h.cli(&["audit", "export", "--format", "jsonl"]);
    let entries = String::from_utf8_lossy(&audit.stdout).to_string();
    let marked: Vec<&str> = entries
        .lines()
        .filter(|l| l.contains("\"destroy_plan\":\"true\""))
        .collect();
    assert!(
        marked.iter().any(|l| l.contains("\"action\":\"plan\""))
            && marked.iter().any(|l| l.contains("\"action\":\"apply\"")),
        "the plan and the apply are recorded as a destroy plan:\n{entries}"
    );
    assert!(
        entries.contains("\"removed\":\"files_deleted\""),
        "the removal is recorded:\n{entries}"
    );

    // Destroyed through Sluice: the next push plans nothing and is green.
    let next = h.push(1, "drop-app", &[("README.md", "gone\n")]);
    h.deliver(&h.pr_event("synchronize", 1)).await;
    assert_eq!(
        h.wait_status(&next, "sluice/plan", "success").await,
        "0 projects affected"
    );
}

/// A project dropped from `sluice.yaml` while its files stay, and a configured dir without
/// Terraform files: the first is a removed project, the second a configuration warning — both
/// on the pull request. `--destroy` without a project is refused there too.
#[tokio::test(flavor = "multi_thread")]
async fn a_project_dropped_from_the_config_and_config_warnings_reach_the_pr() {
    let config =
        "version: 1\nprojects:\n  - name: app\n    dir: app\n  - name: keep\n    dir: keep\n";
    let (app, keep) = (null_project("app", "1"), null_project("keep", "1"));
    let mut h = Harness::new(&[
        ("sluice.yaml", config),
        ("app/main.tf", &app),
        ("keep/main.tf", &keep),
    ])
    .await;
    h.start();
    let dropped =
        "version: 1\nprojects:\n  - name: keep\n    dir: keep\n  - name: ghost\n    dir: ghost\n";
    let head = open_pr_removing(&h, 1, "drop", &[("sluice.yaml", dropped)], &[]);
    h.deliver(&h.pr_event("opened", 1)).await;

    let warning = h
        .wait_comment(1, "the configuration warning", |c| {
            c.contains("has warnings")
        })
        .await;
    assert!(
        warning.contains("project `ghost`: dir `ghost` has no .tf or .tofu files"),
        "{warning}"
    );
    let comment = h
        .wait_plan(1, "the removed project", |c| {
            c.contains("This pull request removes the project")
        })
        .await;
    assert!(
        removed_section(&comment).contains(
            "the configuration no longer lists `app` (workspace `default`); its Terraform files stay"
        ),
        "{comment}"
    );
    assert!(
        comment.contains("`sluice plan -p app --destroy`"),
        "{comment}"
    );
    h.wait_status(&head, "sluice/plan", "failure").await;

    h.deliver(&h.comment_event(1, "alice", "sluice plan --destroy"))
        .await;
    let refused = h
        .wait_comment(1, "the refusal", |c| {
            c.contains("a destroy plan names the project it destroys")
        })
        .await;
    assert!(refused.contains("--destroy"), "{refused}");

    // A targeted plan of another project still says what the PR removes, and fails.
    h.deliver(&h.comment_event(1, "alice", "sluice plan -p keep"))
        .await;
    let run = h
        .wait_plan(1, "the targeted run", |c| {
            c.contains("Plan:") && c.contains("This pull request removes the project")
        })
        .await;
    assert!(run.contains("### `keep`"), "{run}");
    h.wait("a second failure status", || {
        (h.fake
            .statuses(&head)
            .iter()
            .filter(|(c, s, _)| c == "sluice/plan" && s == "failure")
            .count()
            == 2)
            .then_some(())
    })
    .await;
}

/// A project directory moved (detected projects, no `sluice.yaml`): the new directory plans as
/// a new project, the old one is named as moved, and the run fails until it is settled.
#[tokio::test(flavor = "multi_thread")]
async fn a_moved_project_directory_is_named_with_where_it_went() {
    let net = null_project("net", "1");
    let mut h = Harness::new(&[("net/main.tf", &net)]).await;
    h.start();
    let head = open_pr_removing(&h, 1, "move", &[("network/main.tf", &net)], &["net"]);
    h.deliver(&h.pr_event("opened", 1)).await;
    let comment = h
        .wait_plan(1, "the run", |c| {
            c.contains("This pull request removes the project") && c.contains("Plan:")
        })
        .await;
    assert!(
        removed_section(&comment).contains("its files move from `net` to `network`"),
        "{comment}"
    );
    assert!(
        comment.contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "the new directory plans as a new project:\n{comment}"
    );
    h.wait_status(&head, "sluice/plan", "failure").await;
    assert_eq!(
        h.locks().await,
        vec![("network".to_string(), "default".to_string(), 1)],
        "the new project is locked; the removed one runs nothing"
    );
}
