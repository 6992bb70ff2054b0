//! Tests for `render`: snapshots of what users read, and properties of the split output.

use super::*;
use crate::core::plan::split::tests::{Rng, assert_balanced};
use crate::core::plan::{PlanSummary, parse_plan_json, render_diff};

const SHA: &str = "abcdef1234567890abcdef1234567890abcdef12";
const PLAN_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn ctx(command: CommandName) -> RenderContext {
    RenderContext {
        bot_name: "sluice".into(),
        command,
        head_sha: Some(CommitSha::new(SHA).unwrap()),
        log_url: Some("https://sluice.example.com/runs/42".into()),
        limits: CommentLimits::default(),
        after_merge: Default::default(),
    }
}

fn report(name: &str, dir: &str, outcome: ProjectOutcome) -> ProjectReport {
    ProjectReport {
        project: ProjectName::new(name).unwrap(),
        dir: ProjectDir::new(dir).unwrap(),
        workspace: Workspace::default(),
        outcome,
        notes: Vec::new(),
        destroy_plan: false,
    }
}

fn planned(json: &str) -> ProjectOutcome {
    let plan = parse_plan_json(json.as_bytes()).unwrap();
    ProjectOutcome::Planned {
        summary: PlanSummary::from_plan(&plan),
        diff: render_diff(&plan),
        plan_sha256: PLAN_SHA.into(),
    }
}

const CREATE: &str = include_str!("../../../../tests/fixtures/plans/create.json");
const MIXED: &str = include_str!("../../../../tests/fixtures/plans/mixed.json");
const NOCHANGE: &str = include_str!("../../../../tests/fixtures/plans/nochange.json");
const AWS: &str = include_str!("../../../../tests/fixtures/plans/aws_db.json");

/// Real terraform 1.0.3 output for a config with a syntax error.
const HCL_ERROR: &str = "\
There are some problems with the configuration, described below.

The Terraform configuration must be valid before initialization so that
Terraform can determine which modules and providers need to be installed.

Error: Invalid expression

  on main.tf line 3, in resource \"null_resource\" \"a\":
   3:     x = 
   4:   }

Expected the start of an expression, but found an invalid expression token.
";

/// Renders and checks the invariants every output must keep, then returns the single body.
fn one_comment(ctx: &RenderContext, reports: &[ProjectReport]) -> String {
    let parts = render_comments(ctx, reports);
    assert_eq!(parts.len(), 1, "expected one comment, got {}", parts.len());
    assert_balanced(&parts[0]);
    parts.into_iter().next().unwrap()
}

#[test]
fn single_project_create() {
    let body = one_comment(
        &ctx(CommandName::Plan),
        &[report("network", "envs/prod/network", planned(CREATE))],
    );
    insta::assert_snapshot!(body);
}

#[test]
fn on_merge_plans_point_to_the_merge_not_to_apply_or_unlock() {
    let mut c = ctx(CommandName::Plan);
    c.after_merge.insert(ProjectName::new("network").unwrap());
    let only = one_comment(
        &c,
        &[report("network", "envs/prod/network", planned(CREATE))],
    );
    assert!(only.contains("applied after merge"), "{only}");
    assert!(!only.contains("apply -p"), "{only}");
    assert!(
        !only.contains("unlock"),
        "an on_merge plan takes no lock: {only}"
    );
    // With a project applied by comment, its hints stay.
    let both = render_comments(
        &c,
        &[
            report("network", "envs/prod/network", planned(CREATE)),
            report("app", "envs/prod/app", planned(CREATE)),
        ],
    )
    .join("\n");
    assert!(both.contains("`sluice apply -p app`"), "{both}");
    assert!(!both.contains("`sluice apply -p network`"), "{both}");
    assert!(both.contains("`sluice unlock`"), "{both}");
    assert!(
        !both.contains("all unapplied plans"),
        "one plan applies by comment: {both}"
    );
}

#[test]
fn mixed_changes_call_out_destroys_first() {
    let body = one_comment(
        &ctx(CommandName::Plan),
        &[report("app", "envs/prod/app", planned(MIXED))],
    );
    let warning = body.find("> [!WARNING]").expect("warning");
    let details = body.find("<details>").expect("diff");
    assert!(warning < details);
    insta::assert_snapshot!(body);
}

#[test]
fn typed_resources_with_notes() {
    let mut r = report("db", "envs/prod/db", planned(AWS));
    r.notes = vec![
        "**Policy** `no-db-deletes`: :x: deleting `aws_db_instance` in `prod-*` is not allowed"
            .into(),
    ];
    let body = one_comment(&ctx(CommandName::Plan), &[r]);
    assert!(!body.contains("S3cr3t-Legacy-Pass"));
    insta::assert_snapshot!(body);
}

#[test]
fn no_changes() {
    let body = one_comment(
        &ctx(CommandName::Plan),
        &[report("app", "envs/app", planned(NOCHANGE))],
    );
    insta::assert_snapshot!(body, @r"
    **sluice plan** for commit `abcdef1`

    ### `app` · dir `envs/app` · workspace `default`

    **No changes. Your infrastructure matches the configuration.**

    * :repeat: To **plan** this project again, comment: `sluice plan -p app`

    <sub>Plan file SHA-256 `9f86d081884c…`</sub>

    ---

    * :put_litter_in_its_place: To **delete** all plans and locks from this pull request, comment: `sluice unlock`

    Full log: <https://sluice.example.com/runs/42>
    ");
}

#[test]
fn plan_failure_shows_the_error_unfolded() {
    let body = one_comment(
        &ctx(CommandName::Plan),
        &[report(
            "network",
            "envs/prod/network",
            ProjectOutcome::PlanFailed {
                stage: FailedStage::Init,
                error: HCL_ERROR.into(),
            },
        )],
    );
    assert!(!body.contains("<details>"));
    insta::assert_snapshot!(body);
}

#[test]
fn multi_project_with_table() {
    let mut skipped = report(
        "shared",
        "envs/shared",
        ProjectOutcome::Skipped {
            reason: "queued behind #12 (it holds the lock for envs/shared | default)".into(),
        },
    );
    skipped.workspace = Workspace::new("blue").unwrap();
    let reports = [
        report("app", "envs/prod/app", planned(MIXED)),
        report("network", "envs/prod/network", planned(CREATE)),
        report(
            "broken",
            "envs/broken",
            ProjectOutcome::PlanFailed {
                stage: FailedStage::Plan,
                error: HCL_ERROR.into(),
            },
        ),
        report("quiet", "envs/quiet", planned(NOCHANGE)),
        skipped,
    ];
    let body = one_comment(&ctx(CommandName::Plan), &reports);
    let table = body.find("| Project |").expect("table");
    assert!(table < body.find("### ").unwrap(), "table comes first");
    insta::assert_snapshot!(body);
}

#[test]
fn apply_success_and_failure() {
    let plan = parse_plan_json(MIXED.as_bytes()).unwrap();
    let reports = [
        report(
            "app",
            "envs/prod/app",
            ProjectOutcome::Applied {
                output: "null_resource.replace_me: Destroying... [id=3393496508919781608]\n\
                         null_resource.replace_me: Destruction complete after 0s\n\
                         null_resource.replace_me: Creating...\n\
                         null_resource.replace_me: Creation complete after 0s [id=3728438158970536233]\n\n\
                         Apply complete! Resources: 3 added, 0 changed, 3 destroyed.\n"
                    .into(),
                summary: Some(PlanSummary::from_plan(&plan)),
            },
        ),
        report(
            "db",
            "envs/prod/db",
            ProjectOutcome::ApplyFailed {
                error: "Error: creating RDS DB Instance (main-db-v2): InvalidParameterCombination: \
                        Cannot upgrade postgres from 14.10 to 15.5\n"
                    .into(),
            },
        ),
    ];
    let mut c = ctx(CommandName::Apply);
    c.log_url = None;
    let body = one_comment(&c, &reports);
    insta::assert_snapshot!(body);
}

#[test]
fn zero_projects() {
    let body = one_comment(&ctx(CommandName::Plan), &[]);
    insta::assert_snapshot!(body, @r"
    **sluice plan** for commit `abcdef1`

    No projects to plan: no Terraform project is affected by the files changed in this pull request.
    ");
    let body = one_comment(&ctx(CommandName::Apply), &[]);
    assert!(body.contains("No projects to apply"), "{body}");
}

/// A diff of `lines` lines, like `render_diff` output.
fn big_diff(lines: usize) -> String {
    let mut s = String::new();
    for i in 0..lines {
        let _ = writeln!(s, "+     attribute_{i:06} = \"value number {i} é漢🚀\"");
    }
    s
}

fn big_planned(lines: usize, destroyed: usize) -> ProjectOutcome {
    ProjectOutcome::Planned {
        summary: PlanSummary {
            add: lines,
            destroy: destroyed,
            destroyed: (0..destroyed)
                .map(|i| format!("aws_instance.old[{i}]"))
                .collect(),
            ..Default::default()
        },
        diff: big_diff(lines),
        plan_sha256: PLAN_SHA.into(),
    }
}

/// The structure of a body: its headings, HTML, fences, notes and commands; runs of other
/// lines are shown as a count. For snapshots of split output without 65k of text.
fn skeleton(body: &str) -> String {
    let mut out = String::new();
    let mut run = 0;
    let structural = |l: &str| {
        l.starts_with("**")
            || l.starts_with('#')
            || l.starts_with('<')
            || l.starts_with("```")
            || l.starts_with(":warning:")
            || l.starts_with("_Continued")
            || l.starts_with("---")
            || l.starts_with("> ")
            || l.starts_with("* ")
            || l.starts_with("Full log")
    };
    for l in body.lines() {
        if structural(l) {
            if run > 0 {
                let _ = writeln!(out, "[… {run} lines]");
                run = 0;
            }
            let _ = writeln!(out, "{l}");
        } else if !l.is_empty() {
            run += 1;
        }
    }
    if run > 0 {
        let _ = writeln!(out, "[… {run} lines]");
    }
    out
}

#[test]
fn split_result_skeleton() {
    let mut c = ctx(CommandName::Plan);
    c.limits = CommentLimits {
        max_chars: 20_000,
        max_comments: 10,
    };
    let reports = [
        report("small", "envs/small", big_planned(3, 0)),
        report("big", "envs/big", big_planned(700, 2)),
    ];
    let parts = render_comments(&c, &reports);
    assert!(parts.len() > 1 && parts.len() <= 10);
    let mut all = String::new();
    for (i, p) in parts.iter().enumerate() {
        assert!(p.len() <= 20_000);
        assert_balanced(p);
        let _ = writeln!(
            all,
            "======== part {} ({} bytes)",
            i + 1,
            p.len() / 1000 * 1000
        );
        all.push_str(&skeleton(p));
    }
    insta::assert_snapshot!(all);
}

#[test]
fn huge_diff_is_truncated_with_a_note_and_log_link() {
    let mut c = ctx(CommandName::Plan);
    c.limits = CommentLimits {
        max_chars: 65_536,
        max_comments: 3,
    };
    let reports = [
        report("small", "envs/small", big_planned(10, 0)),
        report("huge", "envs/huge", big_planned(50_000, 30)),
        report(
            "broken",
            "envs/broken",
            ProjectOutcome::PlanFailed {
                stage: FailedStage::Plan,
                error: HCL_ERROR.into(),
            },
        ),
    ];
    let parts = render_comments(&c, &reports);
    assert!(parts.len() <= 3, "{} parts", parts.len());
    let all = parts.concat();
    for p in &parts {
        assert!(p.len() <= 65_536);
        assert_balanced(p);
    }
    // Small diff kept whole; the huge one cut with an explicit note and link.
    assert!(all.contains("attribute_000009"), "small diff kept");
    assert!(
        all.contains(":warning: **Note:** output truncated: ")
            && all.contains("lines not shown; full log: <https://sluice.example.com/runs/42>"),
        "{}",
        skeleton(&all)
    );
    // Every project's header and summary, the destroy warning and the whole error stay.
    for h in ["### `small`", "### `huge`", "### `broken`", "> [!WARNING]"] {
        assert!(all.contains(h), "{h} missing");
    }
    assert!(all.contains("Expected the start of an expression"));
    assert!(all.contains("| `huge` | `envs/huge` | `default` | ⚠️ 50000 to add"));
    // The kept part of the huge diff starts at its beginning and ends on a whole line.
    assert!(all.contains("attribute_000000"));
    assert!(!all.contains("attribute_049999"));
}

#[test]
fn errors_lose_their_beginning_only_as_a_last_resort() {
    let mut c = ctx(CommandName::Plan);
    c.limits = CommentLimits {
        max_chars: 10_000,
        max_comments: 1,
    };
    let long_error = |tag: &str| {
        let mut s = String::new();
        for i in 0..2_000 {
            let _ = writeln!(s, "{tag} debug line {i}");
        }
        s.push_str(&format!("Error: {tag} failed for a reason\n"));
        s
    };
    let reports = [
        report(
            "a",
            "a",
            ProjectOutcome::PlanFailed {
                stage: FailedStage::Init,
                error: long_error("alpha"),
            },
        ),
        report(
            "b",
            "b",
            ProjectOutcome::ApplyFailed {
                error: long_error("beta"),
            },
        ),
        report("c", "c", big_planned(5_000, 1)),
    ];
    let parts = render_comments(&c, &reports);
    assert_eq!(parts.len(), 1);
    let body = &parts[0];
    assert!(body.len() <= 10_000);
    assert_balanced(body);
    for want in [
        "Error: alpha failed for a reason",
        "Error: beta failed for a reason",
        "error output truncated: the first",
        "### `c`",
        "destroy `aws_instance.old[0]`",
        "Plan: 5000 to add, 0 to change, 1 to destroy.",
    ] {
        assert!(body.contains(want), "{want} missing:\n{}", skeleton(body));
    }
    assert!(!body.contains("alpha debug line 0\n"));
}

#[test]
fn errors_are_never_dropped_even_when_limits_cannot_be_met() {
    let mut c = ctx(CommandName::Plan);
    c.limits = CommentLimits {
        max_chars: 2_000,
        max_comments: 1,
    };
    let reports: Vec<ProjectReport> = (0..8)
        .map(|i| {
            let error = format!("{}Error: project {i} is broken\n", "noise\n".repeat(1_000));
            let outcome = ProjectOutcome::PlanFailed {
                stage: FailedStage::Plan,
                error,
            };
            report(&format!("p{i}"), &format!("p{i}"), outcome)
        })
        .collect();
    let parts = render_comments(&c, &reports);
    assert!(
        parts.len() > 1,
        "more than max_comments rather than losing errors"
    );
    let all = parts.concat();
    for i in 0..8 {
        assert!(all.contains(&format!("Error: project {i} is broken")));
    }
    for p in &parts {
        assert!(p.len() <= 2_000);
        assert_balanced(p);
    }
}

#[test]
fn many_small_projects_stay_whole() {
    let mut c = ctx(CommandName::Plan);
    c.limits = CommentLimits {
        max_chars: 8_000,
        max_comments: 50,
    };
    let reports: Vec<ProjectReport> = (0..60)
        .map(|i| {
            report(
                &format!("p{i:02}"),
                &format!("envs/p{i:02}"),
                big_planned(5, 0),
            )
        })
        .collect();
    let parts = render_comments(&c, &reports);
    assert!(parts.len() > 1);
    for p in &parts {
        assert!(p.len() <= 8_000);
        assert_balanced(p);
        // No project's diff is torn across comments.
        assert!(!p.contains("(continued)"), "{}", skeleton(p));
    }
    for i in 0..60 {
        let h = format!("### `p{i:02}`");
        assert_eq!(parts.iter().filter(|p| p.contains(&h)).count(), 1, "{h}");
    }
}

#[test]
fn property_bodies_fit_balance_and_keep_every_summary() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for case in 0..40 {
        let mut c = ctx(CommandName::Plan);
        c.limits = CommentLimits {
            max_chars: 2_000 + rng.below(80_000),
            max_comments: 1 + rng.below(12),
        };
        if rng.below(3) == 0 {
            c.log_url = None;
        }
        let n = rng.below(7);
        let reports: Vec<ProjectReport> = (0..n)
            .map(|i| {
                let name = format!("proj{i}");
                let outcome = match rng.below(4) {
                    0 => ProjectOutcome::PlanFailed {
                        stage: FailedStage::Plan,
                        error: format!(
                            "{}Error: boom {i}\n",
                            "noise line\n".repeat(rng.below(3_000))
                        ),
                    },
                    1 => ProjectOutcome::Applied {
                        output: big_diff(rng.below(2_000)),
                        summary: None,
                    },
                    _ => {
                        let lines = if rng.below(4) == 0 { 20_000 } else { 500 };
                        let lines = rng.below(lines);
                        big_planned(lines, rng.below(40))
                    }
                };
                report(&name, &name, outcome)
            })
            .collect();
        let parts = render_comments(&c, &reports);
        let max = c.limits.max_chars;
        assert!(!parts.is_empty());
        for p in &parts {
            assert!(p.len() <= max, "case {case}: {} > {max}", p.len());
            assert_balanced(p);
        }
        let all = parts.concat();
        // More comments than allowed only when nothing foldable is left to cut.
        assert!(
            parts.len() <= c.limits.max_comments || !all.contains("<details>"),
            "case {case}: {} parts > {}",
            parts.len(),
            c.limits.max_comments
        );
        for (i, r) in reports.iter().enumerate() {
            assert!(
                all.contains(&format!("### `proj{i}`")),
                "case {case}: header {i}"
            );
            match &r.outcome {
                ProjectOutcome::Planned { summary, .. } => {
                    assert!(all.contains(&summary.line()), "case {case}: summary {i}");
                }
                ProjectOutcome::PlanFailed { .. } => {
                    assert!(
                        all.contains(&format!("Error: boom {i}")),
                        "case {case}: error {i}"
                    );
                }
                _ => {}
            }
        }
        if parts.len() > 1 {
            for (i, p) in parts.iter().enumerate() {
                assert!(p.contains(&format!("(part {} of {})", i + 1, parts.len())));
            }
        }
    }
}

#[test]
fn head_and_tail_cuts() {
    let text = "one\ntwo\nthree\n";
    let check = |cap: usize, head: (&str, usize), tail: (&str, usize)| {
        assert_eq!(keep_head(text, cap), head, "head cap {cap}");
        assert_eq!(keep_tail(text, cap), tail, "tail cap {cap}");
    };
    check(100, (text, 0), (text, 0));
    check(14, (text, 0), (text, 0));
    check(13, ("one\ntwo\n", 1), ("two\nthree\n", 1));
    check(8, ("one\ntwo\n", 1), ("three\n", 2));
    check(7, ("one\n", 2), ("three\n", 2));
    check(6, ("one\n", 2), ("three\n", 2));
    // No whole line fits: the end of the last one rather than nothing.
    check(5, ("one\n", 2), ("hree\n", 3));
    check(3, ("", 3), ("ee\n", 3));
    check(0, ("", 3), ("", 3));
    assert_eq!(
        keep_tail("ab漢字\n", 4),
        ("字\n", 1),
        "never inside a character"
    );
    assert_eq!(keep_head("no newline at all", 5), ("", 1));
    assert_eq!(keep_tail("a\nlast", 4), ("last", 1));
}

#[test]
fn water_fill_cuts_the_largest_first() {
    assert_eq!(water_fill(&[10, 20], 100), [None, None]);
    assert_eq!(water_fill(&[10, 100, 50], 90), [None, Some(40), Some(40)]);
    assert_eq!(water_fill(&[10, 100, 30], 60), [None, Some(25), Some(25)]);
    assert_eq!(water_fill(&[10, 100], 0), [Some(0), Some(0)]);
}

#[test]
fn markdown_escaping() {
    assert_eq!(code("plain"), "`plain`");
    assert_eq!(code("a`b"), "`` a`b ``");
    assert_eq!(cell("x | y\nz"), "x \\| y z");
    assert_eq!(link("https://x/a b<c>"), "<https://x/a%20b%3Cc%3E>");
    let mut s = String::new();
    fenced(&mut s, "diff", "+ a\n```\n+ b");
    assert_eq!(s, "````diff\n+ a\n```\n+ b\n````\n");
    assert_balanced(&s);
    let mut s = String::new();
    let evil = format!("{}\nok\n", "`".repeat(30));
    fenced(&mut s, "", &evil);
    assert_balanced(&s);
    assert!(s.contains(&format!("    {}", "`".repeat(30))));
}

#[test]
fn terminal_plain() {
    let reports = [
        report("app", "envs/prod/app", planned(MIXED)),
        report(
            "broken",
            "envs/broken",
            ProjectOutcome::PlanFailed {
                stage: FailedStage::Init,
                error: "Error: \u{1b}[31mInvalid expression\u{1b}[0m\n".into(),
            },
        ),
    ];
    let out = render_terminal(&ctx(CommandName::Plan), &reports, TerminalStyle::Plain);
    assert!(
        !out.contains('\u{1b}'),
        "escape sequences from output are neutralised"
    );
    assert!(!out.contains("<details>"));
    insta::assert_snapshot!(out);
}

#[test]
fn terminal_ansi_colours_markers() {
    let reports = [report("app", "envs/prod/app", planned(MIXED))];
    let out = render_terminal(&ctx(CommandName::Plan), &reports, TerminalStyle::Ansi);
    assert!(out.contains("\u{1b}[32m+ resource \"null_resource\" \"new\" {\u{1b}[0m"));
    assert!(out.contains("\u{1b}[31m- resource \"null_resource\" \"old\" {\u{1b}[0m"));
    assert!(out.contains("\u{1b}[31m! destroys null_resource.old[1]\u{1b}[0m"));
}
