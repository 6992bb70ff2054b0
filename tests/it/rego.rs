//! Rego policy sets on the pure core (`core::policy::rego`), with the real regorus engine:
//! v0 and v1 syntax detected per file or forced per set, conftest's `deny`/`warn`/`violation`
//! rules in `data.main` or chosen namespaces, exceptions, syntax errors at file:line:col, a slow
//! rule stopped by the time budget.

use std::time::{Duration, Instant};

use sluice::core::policy::rego::{
    Namespaces, PolicySetConfig, RawOwners, RegoEvaluation, RegoLimits, RegoVersion, SetOrigin,
    compile_set, evaluate_set,
};
use sluice::core::repo_config::{Located, Pos};

fn set(path: &str, version: Option<RegoVersion>) -> PolicySetConfig {
    PolicySetConfig {
        name: "guardrails".to_string(),
        path: Located {
            value: path.to_string(),
            pos: Pos {
                line: 5,
                column: 13,
            },
        },
        owners: RawOwners::default(),
        approve_count: 1,
        rego_version: version,
        file: "atlantis.yaml".to_string(),
        pos: Pos { line: 4, column: 7 },
        origin: SetOrigin::Repo,
    }
}

/// A plan that creates a public bucket and an instance.
const PLAN: &str = r#"{
  "format_version": "1.2",
  "resource_changes": [
    {"address": "aws_s3_bucket.logs", "type": "aws_s3_bucket",
     "change": {"actions": ["create"], "after": {"acl": "public-read"}}},
    {"address": "aws_instance.web", "type": "aws_instance",
     "change": {"actions": ["create"], "after": {"instance_type": "m5.24xlarge"}}}
  ]
}"#;

const V0: &str = r#"package main

deny[msg] {
  r := input.resource_changes[_]
  r.change.after.acl == "public-read"
  msg := sprintf("%s is public", [r.address])
}

warn[msg] {
  r := input.resource_changes[_]
  r.type == "aws_instance"
  msg := sprintf("%s: check the instance size", [r.address])
}
"#;

const V1: &str = r#"package main

deny contains msg if {
  some r in input.resource_changes
  r.change.after.acl == "public-read"
  msg := sprintf("%s is public (v1)", [r.address])
}

violation_size contains {"msg": msg} if {
  some r in input.resource_changes
  endswith(r.change.after.instance_type, "24xlarge")
  msg := sprintf("%s is too large", [r.address])
}
"#;

fn findings(ev: &RegoEvaluation) -> String {
    let mut out = String::new();
    for (kind, list) in [("failure", &ev.failures), ("warning", &ev.warnings)] {
        for f in list {
            out.push_str(&format!(
                "{kind} {}.{} ({}:{}): {}\n",
                f.namespace, f.rule, f.file, f.line, f.message
            ));
        }
    }
    for e in &ev.exceptions {
        out.push_str(&format!("exception {e}\n"));
    }
    if let Some(e) = &ev.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

fn evaluate(files: &[(&str, &str)], ns: &Namespaces) -> String {
    let (compiled, diags) = compile_set(&set("policies", None), files);
    let compiled = compiled.unwrap_or_else(|| panic!("{diags:?}"));
    let versions: Vec<String> = compiled
        .sources
        .iter()
        .map(|s| format!("{} {} {}", s.path, s.version.name(), s.package))
        .collect();
    format!(
        "{}\n{}",
        versions.join("\n"),
        findings(&evaluate_set(&compiled, PLAN, ns, &RegoLimits::default()))
    )
}

#[test]
fn v0_and_v1_files_are_detected_per_file_and_their_rules_reported() {
    let out = evaluate(
        &[("policies/a.rego", V0), ("policies/b.rego", V1)],
        &Namespaces::default(),
    );
    insta::assert_snapshot!(out, @"
    policies/a.rego v0 main
    policies/b.rego v1 main
    failure main.deny (policies/a.rego:3): aws_s3_bucket.logs is public
    failure main.deny (policies/a.rego:3): aws_s3_bucket.logs is public (v1)
    failure main.violation_size (policies/b.rego:9): aws_instance.web is too large
    warning main.warn (policies/a.rego:9): aws_instance.web: check the instance size
    ");
}

#[test]
fn import_rego_v1_and_a_forced_version_decide_the_dialect() {
    let with_import = format!(
        "package main\nimport rego.v1\n{}",
        &V1["package main\n".len()..]
    );
    let (c, d) = compile_set(&set("p", None), &[("p/x.rego", with_import.as_str())]);
    assert_eq!(c.unwrap().sources[0].version, RegoVersion::V1, "{d:?}");

    // A v1 file forced to v0 does not parse: the error says which reading was used.
    let (c, d) = compile_set(&set("p", Some(RegoVersion::V0)), &[("p/x.rego", V1)]);
    assert!(c.is_none());
    let text = format!("{}", d[0]);
    assert!(text.starts_with("p/x.rego:"), "{text}");
    assert!(text.contains("rego_version"), "{text}");
    // And a v0 file forced to v1.
    let (c, d) = compile_set(&set("p", Some(RegoVersion::V1)), &[("p/x.rego", V0)]);
    assert!(c.is_none(), "{d:?}");
}

#[test]
fn namespaces_main_by_default_others_by_flag_or_all() {
    let aws = "package terraform.aws\n\ndeny[msg] {\n  input.resource_changes[_].type == \"aws_instance\"\n  msg := \"no instances\"\n}\n";
    let files = [("policies/main.rego", V0), ("policies/aws.rego", aws)];
    let main_only = evaluate(&files, &Namespaces::default());
    assert!(!main_only.contains("no instances"), "{main_only}");
    assert!(main_only.contains("is public"), "{main_only}");
    let aws_only = evaluate(
        &files,
        &Namespaces::from_conftest_args(&["--namespace", "terraform.aws"]).unwrap(),
    );
    assert!(aws_only.contains("no instances"), "{aws_only}");
    assert!(!aws_only.contains("is public"), "{aws_only}");
    let all = evaluate(
        &files,
        &Namespaces::from_conftest_args(&["--all-namespaces"]).unwrap(),
    );
    assert!(
        all.contains("no instances") && all.contains("is public"),
        "{all}"
    );
    insta::assert_snapshot!(all, @"
    policies/aws.rego v0 terraform.aws
    policies/main.rego v0 main
    failure main.deny (policies/main.rego:3): aws_s3_bucket.logs is public
    failure terraform.aws.deny (policies/aws.rego:3): no instances
    warning main.warn (policies/main.rego:9): aws_instance.web: check the instance size
    ");
}

#[test]
fn conftest_arguments_other_than_namespaces_are_refused() {
    assert_eq!(
        Namespaces::from_conftest_args(&["-n=a.b", "--namespace", "c"]).unwrap(),
        Namespaces::Only(vec!["a.b".to_string(), "c".to_string()])
    );
    for bad in [
        &["-p /policies"][..],
        &["--namespace"],
        &["--output=json"],
        &["-n", "a-b"],
    ] {
        let e = Namespaces::from_conftest_args(bad).unwrap_err();
        assert!(!e.message.is_empty(), "{bad:?}");
    }
}

#[test]
fn exceptions_silence_the_named_rules() {
    let policy = r#"package main

deny_public[msg] {
  input.resource_changes[_].change.after.acl == "public-read"
  msg := "public"
}

deny_big[msg] {
  input.resource_changes[_].type == "aws_instance"
  msg := "big"
}

exception[rules] {
  input.resource_changes[_].address == "aws_s3_bucket.logs"
  rules := ["public"]
}
"#;
    let out = evaluate(&[("policies/e.rego", policy)], &Namespaces::default());
    assert!(out.contains("exception main.deny_public"), "{out}");
    assert!(out.contains("main.deny_big"), "{out}");
    assert!(!out.contains("): public"), "{out}");
}

#[test]
fn a_syntax_error_is_reported_at_file_line_col() {
    let broken = "package main\n\ndeny[msg] {\n  msg := \n}\n";
    let (c, diags) = compile_set(&set("policies", None), &[("policies/broken.rego", broken)]);
    assert!(c.is_none());
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(text.join("\n"), @"
    policies/broken.rego:3:11: error: Rego: expecting }
      hint: read as Rego v0 (detected); set `rego_version` on policy set `guardrails` to choose
    ");
    assert!(diags[0].line >= 3, "{text:?}");
    assert!(diags[0].column > 0, "{text:?}");
}

#[test]
fn a_set_without_rego_files_is_refused() {
    let (c, diags) = compile_set(&set("policies", None), &[("other/a.rego", V0)]);
    assert!(c.is_none());
    assert!(diags[0].to_string().contains("no .rego files"), "{diags:?}");
}

#[test]
fn a_slow_rule_is_stopped_by_the_time_budget() {
    let slow = r#"package main
import rego.v1

deny contains msg if {
  xs := numbers.range(1, 5000)
  n := count([1 | some i in xs; some j in xs; (i * j) % 7 == 0])
  n > 0
  msg := "slow"
}
"#;
    let (c, d) = compile_set(&set("policies", None), &[("policies/slow.rego", slow)]);
    let c = c.unwrap_or_else(|| panic!("{d:?}"));
    let limits = RegoLimits {
        time_budget: Duration::from_millis(300),
        ..RegoLimits::default()
    };
    let started = Instant::now();
    let ev = evaluate_set(&c, PLAN, &Namespaces::default(), &limits);
    let took = started.elapsed();
    let err = ev.error.as_deref().unwrap_or_else(|| panic!("{ev:?}"));
    assert!(err.contains("longer than 300 ms"), "{err}");
    // Compiling ran the rule once too (it does not depend on the input), also bounded.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn input_over_the_limit_and_bad_messages_fail_the_set() {
    let (c, _) = compile_set(&set("policies", None), &[("policies/a.rego", V0)]);
    let c = c.unwrap();
    let ev = evaluate_set(
        &c,
        PLAN,
        &Namespaces::default(),
        &RegoLimits {
            max_input_bytes: 10,
            ..RegoLimits::default()
        },
    );
    assert!(ev.error.unwrap().contains("bytes"));
    let no_msg = "package main\n\ndeny[x] {\n  x := {\"text\": \"no msg key\"}\n}\n";
    let (c, _) = compile_set(&set("policies", None), &[("policies/a.rego", no_msg)]);
    let ev = evaluate_set(
        &c.unwrap(),
        PLAN,
        &Namespaces::default(),
        &RegoLimits::default(),
    );
    assert!(ev.error.unwrap().contains("without a `msg`"));
}
