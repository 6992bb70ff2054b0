//! Tests for `pr_review`: where comments land (real terraform plan and PR patches), fallbacks, bounds, the 422 retry, superseding.

use std::collections::BTreeMap;

use super::*;
use crate::core::plan::parse_plan_json;
use crate::core::review::locate::tests::{fixture_files, fixture_plan};
use crate::core::review::locate::{LocateInput, locate};
use crate::core::review::patch::PrFile;

const SHA: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
const OLD_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn pr_files() -> Vec<PrFile> {
    serde_json::from_str(include_str!(
        "../../../../tests/fixtures/plans/module_replace.pr-files.json"
    ))
    .unwrap()
}

fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

struct Case {
    project: ProjectName,
    dir: ProjectDir,
    workspace: Workspace,
    plan: Plan,
    locations: Locations,
}

impl Case {
    fn new(
        name: &str,
        dir: &str,
        plan: Plan,
        head: &BTreeMap<String, String>,
        base: Option<&BTreeMap<String, String>>,
    ) -> Case {
        let dir = ProjectDir::new(dir).unwrap();
        let locations = locate(
            &plan,
            &LocateInput {
                project_dir: &dir,
                head,
                base,
                bounds: crate::core::review::locate::tests::limits(),
            },
        );
        Case {
            project: ProjectName::new(name).unwrap(),
            dir,
            workspace: Workspace::default(),
            plan,
            locations,
        }
    }

    fn project(&self) -> ReviewProject<'_> {
        ReviewProject {
            project: &self.project,
            dir: &self.dir,
            workspace: &self.workspace,
            plan: &self.plan,
            locations: &self.locations,
            summary: None,
        }
    }
}

fn module_case() -> Case {
    let (head, base) = fixture_files();
    Case::new("app", ".", fixture_plan(), &head, Some(&base))
}

fn ctx(sha: &CommitSha) -> ReviewContext<'_> {
    ReviewContext {
        pr: PrNumber::new(12).unwrap(),
        head_sha: sha,
        summary_url: Some("https://github.com/acme/infra/pull/12#issuecomment-1"),
        log_url: Some("https://sluice.example.com/runs/7"),
    }
}

/// The review as a reader sees it: each comment's place, then its body.
fn show(draft: &ReviewDraft) -> String {
    let mut s = format!("== review body\n{}\n", draft.review.body);
    for c in &draft.review.comments {
        let _ = write!(
            s,
            "== line comment {}:{} {:?}\n{}\n",
            c.path, c.line, c.side, c.body
        );
    }
    for c in &draft.file_comments {
        let _ = write!(s, "== file comment {}\n{}\n", c.path, c.body);
    }
    s
}

#[test]
fn replace_inside_a_module_lands_on_the_call_and_names_the_module_file() {
    let case = module_case();
    let sha = CommitSha::new(SHA).unwrap();
    let diff = PrDiff::from_files(&pr_files());
    let draft = build_review(
        &ctx(&sha),
        &[case.project()],
        &diff,
        &ReviewOptions::default(),
    )
    .expect("destroys and replaces get a review");
    let places: Vec<String> = draft
        .review
        .comments
        .iter()
        .map(|c| format!("{}:{} {:?}", c.path, c.line, c.side))
        .collect();
    assert_eq!(
        places,
        [
            "legacy.tf:2 Left",
            "main.tf:1 Right",
            "main.tf:6 Right",
            "modules/app/cache.tf:1 Right",
        ]
    );
    assert!(draft.file_comments.is_empty());
    assert_eq!(draft.new_objects(), 1);
    insta::assert_snapshot!(show(&draft));
}

#[test]
fn the_request_is_githubs_shape() {
    let case = module_case();
    let sha = CommitSha::new(SHA).unwrap();
    let diff = PrDiff::from_files(&pr_files());
    let draft = build_review(
        &ctx(&sha),
        &[case.project()],
        &diff,
        &ReviewOptions::default(),
    )
    .unwrap();
    let json = serde_json::to_value(&draft.review).unwrap();
    assert_eq!(json["event"], "COMMENT");
    assert_eq!(json["commit_id"], SHA);
    let first = &json["comments"][0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["body", "line", "path", "side"]);
    assert_eq!(first["side"], "LEFT");
    // Every comment fits GitHub's limit and starts with the marker of this push.
    for c in &draft.review.comments {
        let m = Marker::parse(&c.body).unwrap();
        assert_eq!(m.kind, MarkerKind::ReviewComment);
        assert_eq!(m.head.as_deref(), Some(SHA));
    }
    let m = Marker::parse(&draft.review.body).unwrap();
    assert_eq!((m.kind, m.pr), (MarkerKind::Review, 12));
}

/// The AWS plan, with hand-written configuration: `aws_db_instance.main` (replaced because of
/// `identifier`) sits outside the PR's hunk, so its file gets a file-level comment; with
/// `all_changes`, updates are commented too.
#[test]
fn blocks_outside_the_diff_get_file_comments() {
    let head = files(&[
        (
            "db/database.tf",
            "resource \"aws_security_group\" \"db\" {\n  name = \"db\"\n}\n\n\
             resource \"aws_db_instance\" \"main\" {\n  identifier = \"main-v2\"\n  engine     = \"postgres\"\n}\n\n\
             resource \"aws_iam_role_policy\" \"db\" {\n  name = \"db\"\n}\n",
        ),
        (
            "db/app.tf",
            "module \"app\" {\n  source = \"../modules/app\"\n}\n\ndata \"aws_caller_identity\" \"current\" {}\n",
        ),
        (
            "modules/app/main.tf",
            "resource \"aws_instance\" \"web\" {\n  count = 1\n}\n",
        ),
    ]);
    let plan = parse_plan_json(include_bytes!(
        "../../../../tests/fixtures/plans/aws_db.json"
    ))
    .unwrap();
    let case = Case::new("db", "db", plan, &head, None);
    // The PR changed the security group only (lines 1–3) and added the module call.
    let diff = PrDiff::from_files(&[
        PrFile {
            filename: "db/database.tf".into(),
            status: "modified".into(),
            patch: Some("@@ -1,3 +1,3 @@\n resource \"aws_security_group\" \"db\" {\n-  name = \"x\"\n+  name = \"db\"\n }".into()),
            previous_filename: None,
        },
        PrFile {
            filename: "db/app.tf".into(),
            status: "added".into(),
            patch: Some("@@ -0,0 +1,5 @@\n+module \"app\" {\n+  source = \"../modules/app\"\n+}\n+\n+data \"aws_caller_identity\" \"current\" {}".into()),
            previous_filename: None,
        },
    ]);
    let sha = CommitSha::new(SHA).unwrap();
    let draft = build_review(
        &ctx(&sha),
        &[case.project()],
        &diff,
        &ReviewOptions::default(),
    )
    .unwrap();
    insta::assert_snapshot!("destroy_and_replace", show(&draft));
    let all = ReviewOptions {
        comments: ReviewComments::AllChanges,
        ..ReviewOptions::default()
    };
    let draft = build_review(&ctx(&sha), &[case.project()], &diff, &all).unwrap();
    insta::assert_snapshot!("all_changes", show(&draft));
    let off = ReviewOptions {
        comments: ReviewComments::Off,
        ..ReviewOptions::default()
    };
    assert_eq!(
        build_review(&ctx(&sha), &[case.project()], &diff, &off),
        None
    );
}

/// Registry modules, unread files, a deleted file without its base: every change is still
/// reported, in the body; nothing fails.
#[test]
fn changes_that_cannot_be_placed_are_summarised() {
    let plan = parse_plan_json(
        br#"{"resource_changes": [
          {"address": "module.vpc.aws_vpc.this[0]", "change": {"actions": ["delete", "create"], "replace_paths": [["cidr_block"]]}},
          {"address": "null_resource.gone", "change": {"actions": ["delete"]}, "action_reason": "delete_because_no_resource_config"},
          {"address": "null_resource.unchanged", "change": {"actions": ["no-op"]}}
        ]}"#,
    )
    .unwrap();
    let head = files(&[(
        "net/main.tf",
        "module \"vpc\" {\n  source  = \"terraform-aws-modules/vpc/aws\"\n  version = \"5.0.0\"\n}\n",
    )]);
    let case = Case::new("net", "net", plan, &head, None);
    let sha = CommitSha::new(SHA).unwrap();
    // The PR touched neither block's file.
    let diff = PrDiff::from_files(&[PrFile {
        filename: "README.md".into(),
        status: "modified".into(),
        patch: Some("@@ -1 +1 @@\n-a\n+b".into()),
        previous_filename: None,
    }]);
    let draft = build_review(
        &ctx(&sha),
        &[case.project()],
        &diff,
        &ReviewOptions::default(),
    )
    .unwrap();
    assert!(draft.review.comments.is_empty());
    assert!(draft.file_comments.is_empty());
    insta::assert_snapshot!(show(&draft));

    // Nothing destructive: no review.
    let quiet = parse_plan_json(
        br#"{"resource_changes": [{"address": "a.b", "change": {"actions": ["create"]}}]}"#,
    )
    .unwrap();
    let case = Case::new("net", "net", quiet, &head, None);
    assert_eq!(
        build_review(
            &ctx(&sha),
            &[case.project()],
            &diff,
            &ReviewOptions::default()
        ),
        None
    );
}

/// A plan with 1,000 destroys across 200 files: the review stays within its bounds.
#[test]
fn huge_plans_make_bounded_reviews() {
    let mut changes = Vec::new();
    let mut head = BTreeMap::new();
    let mut pr = Vec::new();
    for f in 0..200 {
        let mut text = String::new();
        for r in 0..5 {
            let _ = write!(
                text,
                "resource \"null_resource\" \"r{f}_{r}\" {{\n  triggers = {{}}\n}}\n\n"
            );
            changes.push(format!(
                r#"{{"address": "null_resource.r{f}_{r}", "change": {{"actions": ["delete"]}}}}"#
            ));
        }
        let path = format!("big/f{f}.tf");
        // Half the files are in the PR, with every line shown.
        if f % 2 == 0 {
            pr.push(PrFile {
                filename: path.clone(),
                status: "added".into(),
                patch: Some(format!(
                    "@@ -0,0 +1,20 @@\n{}",
                    text.lines().map(|l| format!("+{l}\n")).collect::<String>()
                )),
                previous_filename: None,
            });
        }
        head.insert(path, text);
    }
    let plan =
        parse_plan_json(format!(r#"{{"resource_changes": [{}]}}"#, changes.join(",")).as_bytes())
            .unwrap();
    let case = Case::new("big", "big", plan, &head, None);
    let sha = CommitSha::new(SHA).unwrap();
    let opts = ReviewOptions::default();
    let draft = build_review(
        &ctx(&sha),
        &[case.project()],
        &PrDiff::from_files(&pr),
        &opts,
    )
    .unwrap();
    assert_eq!(draft.review.comments.len(), opts.max_line_comments);
    assert!(draft.file_comments.len() <= opts.max_file_comments);
    assert!(draft.review.body.len() <= MAX_BODY);
    assert!(
        draft.review.body.contains("- … and 900 more"),
        "{}",
        draft.review.body
    );
    for c in &draft.review.comments {
        assert!(c.body.len() <= MAX_BODY);
    }
}

#[test]
fn a_422_for_a_line_becomes_file_comments() {
    let table = [
        (
            422,
            r#"{"message":"Unprocessable Entity","errors":["Line could not be resolved"]}"#,
            true,
        ),
        (
            422,
            r#"{"message":"Validation Failed","errors":[{"resource":"PullRequestReviewComment","code":"custom","field":"pull_request_review_thread.line","message":"pull_request_review_thread.line must be part of the diff"}]}"#,
            true,
        ),
        (
            422,
            r#"{"message":"Unprocessable Entity","errors":["pull_request_review_thread.diff_hunk can't be blank"]}"#,
            true,
        ),
        (
            422,
            r#"{"message":"Validation Failed","errors":[{"field":"commit_id","code":"invalid"}]}"#,
            false,
        ),
        (404, "line could not be resolved", false),
        (500, "", false),
    ];
    for (status, body, want) in table {
        assert_eq!(is_line_not_in_diff(status, body), want, "{status} {body}");
    }

    let case = module_case();
    let sha = CommitSha::new(SHA).unwrap();
    let diff = PrDiff::from_files(&pr_files());
    let opts = ReviewOptions::default();
    let draft = build_review(&ctx(&sha), &[case.project()], &diff, &opts).unwrap();
    let retry = file_level_retry(&draft, &opts);
    assert!(retry.review.comments.is_empty());
    let paths: Vec<&str> = retry
        .file_comments
        .iter()
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(paths, ["legacy.tf", "main.tf", "modules/app/cache.tf"]);
    let json = serde_json::to_value(&retry.file_comments[0]).unwrap();
    assert_eq!(json["subject_type"], "file");
    assert_eq!(json["commit_id"], SHA);
    assert!(json.get("line").is_none());
    insta::assert_snapshot!(show(&retry));

    // Beyond the file-comment budget, the rest go into the body.
    let tight = ReviewOptions {
        max_file_comments: 1,
        ..opts
    };
    let retry = file_level_retry(&draft, &tight);
    assert_eq!(retry.file_comments.len(), 1);
    assert!(
        retry.review.body.contains("- `main.tf`: "),
        "{}",
        retry.review.body
    );
    assert!(retry.review.body.contains("- `modules/app/cache.tf`: "));

    let one = to_file_level(SHA, &draft.review.comments[0]);
    assert_eq!(
        (
            one.path.as_str(),
            one.subject_type,
            one.body == draft.review.comments[0].body
        ),
        ("legacy.tf", SubjectType::File, true)
    );
}

#[test]
fn a_new_push_supersedes_the_previous_review() {
    let sha = CommitSha::new(SHA).unwrap();
    let previous = PostedReview {
        review_id: 900,
        head_sha: CommitSha::new(OLD_SHA).unwrap(),
        comment_ids: vec![901, 902],
    };
    let s = supersede(&ctx(&sha), &previous);
    assert_eq!(s.review.0, 900);
    assert_eq!(
        s.comments.iter().map(|c| c.0).collect::<Vec<_>>(),
        [901, 902]
    );
    let m = Marker::parse(&s.review.1.body).unwrap();
    assert!(m.superseded);
    assert_eq!(m.head.as_deref(), Some(OLD_SHA));
    insta::assert_snapshot!(format!("{}\n{}", s.review.1.body, s.comments[0].1.body), @r"
    <!-- sluice:review pr=12 head=0123456789abcdef0123456789abcdef01234567 superseded -->
    ~~Sluice plan review for `0123456`~~ — superseded by the plan for `4b825dc` (<https://github.com/acme/infra/pull/12#issuecomment-1>).

    <!-- sluice:review-comment pr=12 head=0123456789abcdef0123456789abcdef01234567 superseded -->
    _Superseded: this comment was about commit `0123456`; see the newest Sluice review for the plan for `4b825dc` (<https://github.com/acme/infra/pull/12#issuecomment-1>)._
    ");
}

/// A review posted after a newer push (its plan, or its write, was late) is retired at once
/// and never displaces the review of the newer head; on time, it retires the previous one.
#[test]
fn a_late_review_is_retired_and_the_newer_one_stays_current() {
    const NEWEST: &str = "89abcdef0123456789abcdef0123456789abcdef";
    let posted = |id: u64, head: &str| PostedReview {
        review_id: id,
        head_sha: CommitSha::new(head).unwrap(),
        comment_ids: vec![id + 1],
    };
    let newest = CommitSha::new(NEWEST).unwrap();
    let ids = |v: &[PostedReview]| v.iter().map(|r| r.review_id).collect::<Vec<_>>();

    // On time: current, the previous one retired in its favour.
    let s = settle_posted(posted(20, NEWEST), Some(posted(10, OLD_SHA)), Some(&newest));
    assert_eq!(s.current.map(|r| r.review_id), Some(20));
    assert_eq!((ids(&s.retire), s.newer.as_str()), (vec![10], NEWEST));

    // Late, after the newest head's review: that one stays current, the late one is retired.
    let s = settle_posted(posted(30, OLD_SHA), Some(posted(20, NEWEST)), Some(&newest));
    assert_eq!(s.current.map(|r| r.review_id), Some(20));
    assert_eq!((ids(&s.retire), s.newer.as_str()), (vec![30], NEWEST));

    // Late, before the newest head has a review: neither older review is left current.
    let s = settle_posted(posted(30, SHA), Some(posted(10, OLD_SHA)), Some(&newest));
    assert_eq!(s.current, None);
    assert_eq!((ids(&s.retire), s.newer.as_str()), (vec![10, 30], NEWEST));

    // The head unknown: taken as current (the next push supersedes it).
    let s = settle_posted(posted(30, SHA), None, None);
    assert_eq!(s.current.map(|r| r.review_id), Some(30));
    assert!(s.retire.is_empty());

    assert!(is_late(&CommitSha::new(SHA).unwrap(), Some(&newest)));
    assert!(!is_late(&newest, Some(&newest)));
    assert!(!is_late(&newest, None));
}

#[test]
fn review_comments_setting_reads_its_words() {
    for (word, want) in [
        ("\"destroy_and_replace\"", ReviewComments::DestroyAndReplace),
        ("\"all_changes\"", ReviewComments::AllChanges),
        ("\"off\"", ReviewComments::Off),
    ] {
        assert_eq!(serde_json::from_str::<ReviewComments>(word).unwrap(), want);
    }
    assert!(serde_json::from_str::<ReviewComments>("\"all\"").is_err());
}

/// A PR with hundreds of changed files, where GitHub lists a file without its patch (too large
/// to show): a change in that file gets a file-level comment, never a line GitHub would refuse.
#[test]
fn files_listed_without_a_patch_get_file_comments() {
    let head = files(&[("big/main.tf", "resource \"null_resource\" \"a\" {\n}\n")]);
    let plan = parse_plan_json(
        br#"{"resource_changes": [{"address": "null_resource.a", "change": {"actions": ["delete"]}}]}"#,
    )
    .unwrap();
    let case = Case::new("big", "big", plan, &head, None);
    let mut listed: Vec<PrFile> = (0..400)
        .map(|i| PrFile {
            filename: format!("other/f{i}.tf"),
            status: "modified".into(),
            patch: Some("@@ -1 +1 @@\n-a\n+b".into()),
            previous_filename: None,
        })
        .collect();
    listed.push(PrFile {
        filename: "big/main.tf".into(),
        status: "modified".into(),
        patch: None,
        previous_filename: None,
    });
    let sha = CommitSha::new(SHA).unwrap();
    let draft = build_review(
        &ctx(&sha),
        &[case.project()],
        &PrDiff::from_files(&listed),
        &ReviewOptions::default(),
    )
    .unwrap();
    assert!(draft.review.comments.is_empty());
    assert_eq!(draft.file_comments.len(), 1);
    assert_eq!(draft.file_comments[0].path, "big/main.tf");
    assert!(
        draft.file_comments[0]
            .body
            .contains("its block starts at line 1")
    );
}
