//! Directories any repository can hold — a space, non-ASCII letters, `+`, `@`, `(`, a leading
//! `-`, a backtick — planned and applied end to end through the real server, each applied by
//! commenting exactly the hint Sluice printed for it: every hint parses back to its project,
//! and no name breaks the markdown of the reply or is read as an option by git or terraform.

use crate::server::{Harness, REPO};
use crate::support::null_project;

const DIRS: [&str; 7] = [
    "envs/eu west",
    "envs/café",
    "svc+1",
    "team@eu",
    "app (legacy)",
    "-edge",
    "odd`tick",
];

/// The command inside a markdown code span (`` `x` `` or ``` `` x`y `` ```).
fn unspan(span: &str) -> &str {
    let ticks = span.len() - span.trim_start_matches('`').len();
    let inner = &span[ticks..span.len() - ticks];
    if ticks > 1 {
        inner
            .strip_prefix(' ')
            .and_then(|s| s.strip_suffix(' '))
            .unwrap_or(inner)
    } else {
        inner
    }
}

/// The apply hint the plan comment prints in `dir`'s section.
fn apply_hint(comment: &str, dir: &str) -> String {
    let sections: Vec<&str> = comment.split("\n### ").collect();
    let section = sections
        .iter()
        .find(|s| {
            s.lines()
                .next()
                .is_some_and(|head| head.contains(&format!("· dir {}", span_of(dir))))
        })
        .unwrap_or_else(|| panic!("no section for {dir:?}:\n{comment}"));
    let line = section
        .lines()
        .find(|l| l.contains("To **apply** this plan, comment: "))
        .unwrap_or_else(|| panic!("no apply hint for {dir:?}:\n{section}"));
    let span = line
        .split_once("comment: ")
        .map(|(_, s)| s.trim())
        .expect("a hint");
    unspan(span).to_string()
}

/// How the comment shows a value in a code span.
fn span_of(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_in_dirs_of_any_name_plan_and_apply_by_the_hints_sluice_prints() {
    let contents: Vec<(String, String)> = DIRS
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("{d}/main.tf"), null_project(&format!("r{i}"), "1")))
        .collect();
    let files: Vec<(&str, &str)> = contents
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let mut h = Harness::new(&files).await;
    h.set_env("SLUICE_WORKERS", "2");
    h.start();
    let changed: Vec<(String, String)> = DIRS
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("{d}/main.tf"), null_project(&format!("r{i}"), "2")))
        .collect();
    let changed: Vec<(&str, &str)> = changed
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let head = h.open_pr(1, "odd", &changed);
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h
        .wait_plan(1, "the plan", |c| {
            c.contains("## sluice plan") && c.matches("**Plan: 1 to add").count() == DIRS.len()
        })
        .await;
    assert_eq!(
        h.wait_status(&head, "sluice/plan", "success").await,
        format!("{n}/{n} projects planned", n = DIRS.len())
    );
    // A backtick in a name keeps the markdown intact: its heading and hints are code spans
    // that enclose it.
    assert!(
        plan.contains("### `` odd`tick `` · dir `` odd`tick `` · workspace `default`"),
        "{plan}"
    );
    assert!(plan.contains("`` sluice apply -p 'odd`tick' ``"), "{plan}");
    assert!(plan.contains("`sluice apply -p=-edge`"), "{plan}");
    assert!(plan.contains("`sluice apply -p 'envs/eu west'`"), "{plan}");

    h.fake.add_review(REPO, 1, "bob", "APPROVED");
    for (i, dir) in DIRS.iter().enumerate() {
        let hint = apply_hint(&plan, dir);
        h.deliver(&h.comment_event(1, "alice", &hint)).await;
        let what = format!("the apply of {dir:?} by `{hint}`");
        h.wait(&what, || {
            (h.count_comments(1, |c| c.contains("Apply complete")) == i + 1).then_some(())
        })
        .await;
    }
    let applies = h.count_comments(1, |c| c.contains("Apply complete") && c.contains("1 added"));
    assert_eq!(applies, DIRS.len(), "each project applied once");
    assert_eq!(
        h.count_comments(1, |c| c.contains("**Error:**")
            || c.contains("Apply refused")),
        0,
        "no hint was refused"
    );
}
