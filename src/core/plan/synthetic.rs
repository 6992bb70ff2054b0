//! Synthetic `terraform show -json` plans of any size, for benchmarks and scale tests.
//!
//! The plans are deterministic (a fixed-seed generator) and realistic enough to exercise every
//! rendering path: creates, in-place updates, deletes, both kinds of replacement, data-source
//! reads, no-ops and imports; resources in modules and with `count` indexes; nested blocks,
//! maps, multi-line strings, JSON policy documents, unknown values and sensitive values.
//! Memory is proportional to the output: each resource is built and serialised on its own into
//! one buffer. Nothing here is used at run time by Sluice itself.

use serde_json::{Value, json};

/// A valid plan JSON document with `resources` resource changes (plus a few output changes).
pub fn synthetic_plan_json(resources: usize) -> String {
    let mut rng = XorShift(0x0051_0000_01ce);
    let mut buf: Vec<u8> = Vec::with_capacity(resources * 1_200 + 1_024);
    buf.extend_from_slice(
        br#"{"format_version":"1.2","terraform_version":"1.6.6","planned_values":{"root_module":{}},"resource_changes":["#,
    );
    for i in 0..resources {
        if i > 0 {
            buf.push(b',');
        }
        let rc = resource_change(i, &mut rng);
        serde_json::to_writer(&mut buf, &rc).expect("writing JSON to a Vec cannot fail");
    }
    buf.extend_from_slice(br#"],"output_changes":"#);
    let outputs = json!({
        "instance_count": change(&["update"], json!(resources / 2), json!(resources), json!({}), json!(false), json!(false)),
        "db_password": change(&["update"], json!("synthetic-old-db-password"), json!("synthetic-new-db-password"), json!(false), json!(true), json!(true)),
        "endpoint": change(&["create"], Value::Null, Value::Null, json!(true), json!(false), json!(false)),
    });
    serde_json::to_writer(&mut buf, &outputs).expect("writing JSON to a Vec cannot fail");
    buf.extend_from_slice(br#","errored":false}"#);
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn change(
    actions: &[&str],
    before: Value,
    after: Value,
    after_unknown: Value,
    before_sensitive: Value,
    after_sensitive: Value,
) -> Value {
    json!({
        "actions": actions,
        "before": before,
        "after": after,
        "after_unknown": after_unknown,
        "before_sensitive": before_sensitive,
        "after_sensitive": after_sensitive,
    })
}

/// The attributes of one object of kind `kind`, version `v` (versions differ in a few values).
fn attributes(kind: u64, i: usize, v: u64) -> (&'static str, Value, Value) {
    let tags = json!({"Name": format!("res-{i}"), "Team": "platform", "Env": if v == 0 { "staging" } else { "prod" }});
    match kind {
        0 => (
            "aws_instance",
            json!({
                "id": format!("i-{i:08x}"),
                "ami": "ami-0abc1234",
                "instance_type": if v == 0 { "t3.micro" } else { "t3.small" },
                "user_data": format!("#!/bin/bash\nset -euo pipefail\necho 'node {i}' > /etc/motd\nsystemctl restart app-v{v}\n"),
                "root_block_device": [{"volume_size": 20 + v * 10, "volume_type": "gp3", "encrypted": true}],
                "tags": tags,
            }),
            json!({}),
        ),
        1 => (
            "aws_security_group",
            json!({
                "id": format!("sg-{i:08x}"),
                "name": format!("sg-{i}"),
                "description": "managed by terraform",
                "ingress": [
                    {"from_port": 443, "to_port": 443, "protocol": "tcp", "cidr_blocks": ["10.0.0.0/16"]},
                    {"from_port": 80, "to_port": 80, "protocol": "tcp", "cidr_blocks": if v == 0 { json!(["10.0.0.0/16"]) } else { json!(["10.0.0.0/16", "10.1.0.0/16"]) }},
                ],
                "tags": tags,
            }),
            json!({}),
        ),
        2 => (
            "aws_db_instance",
            json!({
                "id": format!("db-{i}"),
                "identifier": format!("db-{i}"),
                "engine": "postgres",
                "engine_version": if v == 0 { "14.10" } else { "15.5" },
                "password": format!("synthetic-secret-{i}-{v}"),
                "tags": tags,
            }),
            json!({"password": true}),
        ),
        _ => (
            "aws_iam_role_policy",
            json!({
                "id": format!("role-{i}:policy"),
                "name": "policy",
                "policy": json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": if v == 0 { json!(["s3:GetObject"]) } else { json!(["s3:GetObject", "s3:PutObject"]) }, "Resource": format!("arn:aws:s3:::bucket-{i}/*")}],
                }).to_string(),
            }),
            json!({}),
        ),
    }
}

fn resource_change(i: usize, rng: &mut XorShift) -> Value {
    let kind = rng.below(4);
    let (rtype, before, sens) = attributes(kind, i, 0);
    let (_, mut after, _) = attributes(kind, i, 1);
    let module = (i % 3 == 0).then(|| format!("module.svc_{}", i % 50));
    let name = format!("r{}", i / 4);
    let index = i % 4;
    let address = match &module {
        Some(m) => format!("{m}.{rtype}.{name}[{index}]"),
        None => format!("{rtype}.{name}[{index}]"),
    };
    let unknown_id = json!({"id": true, "arn": true});
    let roll = rng.below(100);
    let (mode, address, rtype, name, change, reason) = match roll {
        // Creates: no before, ids unknown.
        0..=44 => {
            if let Some(a) = after.as_object_mut() {
                a.remove("id");
            }
            let c = change(
                &["create"],
                Value::Null,
                after,
                unknown_id,
                json!(false),
                sens,
            );
            ("managed", address, rtype, name, c, None)
        }
        45..=69 => {
            let c = change(&["update"], before, after, json!({}), sens.clone(), sens);
            ("managed", address, rtype, name, c, None)
        }
        70..=79 => {
            let c = change(
                &["delete"],
                before,
                Value::Null,
                json!({}),
                sens,
                json!(false),
            );
            (
                "managed",
                address,
                rtype,
                name,
                c,
                Some("delete_because_no_resource_config"),
            )
        }
        80..=89 => {
            let actions: &[&str] = if roll % 2 == 0 {
                &["delete", "create"]
            } else {
                &["create", "delete"]
            };
            if let Some(a) = after.as_object_mut() {
                a.remove("id");
            }
            let mut c = change(
                actions,
                before,
                after,
                json!({"id": true}),
                sens.clone(),
                sens,
            );
            c["replace_paths"] = json!([["tags", "Env"]]);
            (
                "managed",
                address,
                rtype,
                name,
                c,
                Some("replace_because_cannot_update"),
            )
        }
        90..=94 => {
            let c = change(
                &["read"],
                Value::Null,
                json!({"filter": [{"name": "tag:Name", "values": [format!("res-{i}")]}]}),
                json!({"id": true, "ids": true}),
                json!(false),
                json!({}),
            );
            let name = format!("lookup_{i}");
            let addr = format!("data.aws_instances.{name}");
            (
                "data",
                addr,
                "aws_instances",
                name,
                c,
                Some("read_because_config_unknown"),
            )
        }
        _ => {
            let mut c = change(
                &["no-op"],
                before.clone(),
                before,
                json!({}),
                sens.clone(),
                sens,
            );
            if i % 2 == 0 {
                c["importing"] = json!({"id": format!("imported-{i}")});
            }
            ("managed", address, rtype, name, c, None)
        }
    };
    let mut rc = json!({
        "address": address,
        "mode": mode,
        "type": rtype,
        "name": name,
        "index": index,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": change,
    });
    if let Some(m) = module {
        rc["module_address"] = json!(m);
    }
    if let Some(r) = reason {
        rc["action_reason"] = json!(r);
    }
    rc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::split::tests::assert_balanced;
    use crate::core::plan::{
        CommandName, CommentLimits, PlanSummary, ProjectOutcome, ProjectReport, Redactor,
        RenderContext, parse_plan_json, render_comments, render_diff,
    };
    use crate::core::types::{ProjectDir, ProjectName, Workspace};

    #[test]
    fn parses_and_has_every_kind_of_change() {
        let json = synthetic_plan_json(400);
        let plan = parse_plan_json(json.as_bytes()).expect("synthetic plan parses");
        assert_eq!(plan.resource_changes.len(), 400);
        let s = PlanSummary::from_plan(&plan);
        assert!(s.add > 0 && s.change > 0 && s.destroy > 0 && s.replace > 0);
        assert!(s.read > 0 && s.import > 0 && s.outputs_changed == 3);
        // Deterministic.
        assert_eq!(json, synthetic_plan_json(400));
        assert_eq!(
            synthetic_plan_json(0),
            synthetic_plan_json(0),
            "empty plans are valid too"
        );
        parse_plan_json(synthetic_plan_json(0).as_bytes()).expect("empty plan parses");
    }

    #[test]
    fn renders_without_leaking_sensitive_values_and_splits_within_limits() {
        let plan = parse_plan_json(synthetic_plan_json(3_000).as_bytes()).unwrap();
        let diff = render_diff(&plan);
        assert!(
            !diff.contains("synthetic-secret-"),
            "sensitive values leaked"
        );
        assert!(!diff.contains("synthetic-new-db-password"));
        let redactor = Redactor::new(plan.sensitive_values());
        assert!(redactor.len() > 100);
        let diff = redactor.redact_string(diff);
        let ctx = RenderContext {
            bot_name: "sluice".into(),
            command: CommandName::Plan,
            head_sha: None,
            log_url: Some("https://sluice.example.com/runs/1".into()),
            limits: CommentLimits::default(),
            after_merge: Default::default(),
        };
        let report = ProjectReport {
            project: ProjectName::new("big").unwrap(),
            dir: ProjectDir::new("envs/big").unwrap(),
            workspace: Workspace::default(),
            outcome: ProjectOutcome::Planned {
                summary: PlanSummary::from_plan(&plan),
                diff,
                plan_sha256: String::new(),
            },
            notes: vec![],
            destroy_plan: false,
        };
        let parts = render_comments(&ctx, &[report]);
        assert!(parts.len() <= 10);
        for p in &parts {
            assert!(p.len() <= 65_536);
            assert_balanced(p);
        }
        assert!(parts.concat().contains("output truncated"));
    }
}
