//! The subset of `terraform show -json <planfile>` (and `tofu show -json`) that Sluice reads.
//!
//! This module owns the serde types and [`parse_plan_json`]. Inside the document it stays
//! tolerant: unknown fields are ignored (never `deny_unknown_fields`) and any `format_version`
//! is accepted, so a plan from a newer terraform still parses. It refuses a change action it
//! does not know (a gate that cannot tell whether a change destroys something must not
//! summarise it as harmless), and at the top level anything but one object with the keys
//! terraform writes, each once, and nothing after it: the document comes out of a sandbox that
//! runs PR code, and a forged plan wrapped around the real one must not parse. A newer
//! terraform's new top-level key is refused by name until [`PLAN_JSON_KEYS`] lists it. It does
//! no I/O and renders nothing (see `summary`, `diff`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A parsed plan. Values (`before`, `after`, ...) stay as JSON because their shape depends on
/// provider schemas that the plan JSON does not carry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Plan {
    /// e.g. `"1.2"`. Not checked: newer versions only add fields.
    #[serde(default)]
    pub format_version: String,
    #[serde(default)]
    pub terraform_version: String,
    #[serde(default)]
    pub resource_changes: Vec<ResourceChange>,
    /// Terraform ≥ 0.15.4: changes detected outside terraform since the last apply, as
    /// `before` (the prior state) → `after` (what the refresh read). In a refresh-only plan
    /// (`plan -refresh-only`) this is the whole answer to "did anything change outside Git?";
    /// in a normal plan terraform ≥ 1.2 lists only the drift relevant to the planned changes.
    /// Actions are `update` or `delete` (deleted outside). Absent or `null` reads as empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub resource_drift: Vec<ResourceChange>,
    /// Keyed by output name; `BTreeMap` so rendering order is stable.
    #[serde(default)]
    pub output_changes: BTreeMap<String, Change>,
    /// Terraform ≥ 1.4 sets this when planning stopped on an error and the plan is partial.
    #[serde(default)]
    pub errored: bool,
    /// The configuration the plan was made from: which modules were called, from which
    /// `source`. Absent in hand-written plans and some tool outputs; readers fall back to the
    /// `.tf` files then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Configuration>,
}

/// The `configuration` section of `terraform show -json`: the parsed configuration, without
/// file positions (terraform does not export them). Only the module tree is read.
///
/// Format: <https://developer.hashicorp.com/terraform/internals/json-format#configuration-representation>.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Configuration {
    #[serde(default)]
    pub root_module: ModuleConfig,
}

/// One module of the configuration (`root_module`, or the `module` of a call).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ModuleConfig {
    /// The `resource` and `data` blocks declared in this module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ConfigResource>,
    /// The `module` blocks of this module, by call name (`module "net" { … }` is `net`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub module_calls: BTreeMap<String, ModuleCall>,
}

/// A `resource` or `data` block as the configuration section lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConfigResource {
    /// Relative to its module, without instance keys: `null_resource.a`, `data.x.y`.
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub mode: ResourceMode,
    #[serde(rename = "type", default)]
    pub resource_type: String,
    #[serde(default)]
    pub name: String,
}

/// A `module "name" { … }` block.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ModuleCall {
    /// As written: `./modules/net`, `../shared`, `terraform-aws-modules/vpc/aws`, `git::…`.
    #[serde(default)]
    pub source: String,
    /// Set for registry modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_constraint: Option<String>,
    /// Present when the call has `count` (and terraform writes it: 1.0 does not); its instances
    /// are `module.name[0]`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_expression: Option<Value>,
    /// Like `count_expression`, for `for_each`: instances `module.name["key"]`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each_expression: Option<Value>,
    #[serde(default)]
    pub module: ModuleConfig,
}

impl Configuration {
    /// The configuration of the module at `path` (call names from the root, e.g.
    /// `["app", "dns"]` for `module.app.module.dns`), with the call that leads to it (`None`
    /// for the root).
    pub fn module(&self, path: &[&str]) -> Option<(&ModuleConfig, Option<&ModuleCall>)> {
        let mut module = &self.root_module;
        let mut call = None;
        for name in path {
            let c = module.module_calls.get(*name)?;
            module = &c.module;
            call = Some(c);
        }
        Some((module, call))
    }
}

/// `null` reads like an absent list.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// One entry of `resource_changes[]` (or `resource_drift[]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ResourceChange {
    /// Full address, e.g. `module.net.aws_subnet.a["x"]`.
    pub address: String,
    /// Set when the resource is in a module, e.g. `module.net`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_address: Option<String>,
    #[serde(default)]
    pub mode: ResourceMode,
    #[serde(rename = "type", default)]
    pub resource_type: String,
    #[serde(default)]
    pub name: String,
    /// `count` index (number) or `for_each` key (string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Value>,
    #[serde(default)]
    pub provider_name: String,
    /// Set on changes to a deposed object (left behind by `create_before_destroy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposed: Option<String>,
    /// Terraform ≥ 1.1: the address before a `moved` block renamed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_address: Option<String>,
    pub change: Change,
    /// e.g. `replace_because_tainted`, `delete_because_no_resource_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_reason: Option<String>,
}

impl ResourceChange {
    /// The address as people read it in a plan, including the deposed key when there is one.
    pub fn display_address(&self) -> String {
        match &self.deposed {
            Some(key) => format!("{} (deposed object {key})", self.address),
            None => self.address.clone(),
        }
    }

    /// True when a `moved` block gave this resource a new address in this plan.
    pub fn is_moved(&self) -> bool {
        self.previous_address
            .as_deref()
            .is_some_and(|prev| prev != self.address)
    }

    /// Terraform does not show (or count) data sources being dropped from state.
    pub(crate) fn is_hidden_data_delete(&self) -> bool {
        self.mode == ResourceMode::Data && self.change.actions == Action::Delete
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceMode {
    #[default]
    Managed,
    Data,
    /// A mode from a newer terraform (e.g. ephemeral resources). Rendered like a managed one.
    #[serde(other)]
    Other,
}

/// The `change` object of a resource or output change.
///
/// `before_sensitive` / `after_sensitive` mirror the value's shape with `true` at sensitive
/// leaves (or `true` for the whole value); `after_unknown` does the same for values only known
/// after apply. Absent, `null`, `false` and `{}` all mean "nothing marked".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Change {
    pub actions: Action,
    #[serde(default)]
    pub before: Value,
    #[serde(default)]
    pub after: Value,
    #[serde(default)]
    pub after_unknown: Value,
    #[serde(default)]
    pub before_sensitive: Value,
    #[serde(default)]
    pub after_sensitive: Value,
    /// Terraform ≥ 1.5: present when the change imports an existing object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importing: Option<Importing>,
    /// Paths (steps are attribute names or list indexes) whose change forces the replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_paths: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Importing {
    /// The id being imported; newer versions may import by identity instead and omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// What terraform will do to one object: the closed set of `change.actions` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub enum Action {
    /// `["no-op"]`
    NoOp,
    /// `["create"]`
    Create,
    /// `["read"]`: a data source read during apply.
    Read,
    /// `["update"]`: in place.
    Update,
    /// `["delete"]`
    Delete,
    /// `["delete", "create"]`: replace, destroying first (the default).
    DeleteThenCreate,
    /// `["create", "delete"]`: replace with `create_before_destroy`.
    CreateThenDelete,
    /// `["forget"]` (terraform ≥ 1.7 `removed` blocks): dropped from state, not destroyed.
    Forget,
}

impl Action {
    pub fn is_replace(self) -> bool {
        matches!(self, Action::DeleteThenCreate | Action::CreateThenDelete)
    }

    /// True for actions that destroy an existing object (plain deletes and replacements).
    pub fn destroys(self) -> bool {
        matches!(self, Action::Delete) || self.is_replace()
    }

    pub fn as_strs(self) -> &'static [&'static str] {
        match self {
            Action::NoOp => &["no-op"],
            Action::Create => &["create"],
            Action::Read => &["read"],
            Action::Update => &["update"],
            Action::Delete => &["delete"],
            Action::DeleteThenCreate => &["delete", "create"],
            Action::CreateThenDelete => &["create", "delete"],
            Action::Forget => &["forget"],
        }
    }
}

/// Why a `change.actions` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown change actions {0:?}; this plan comes from a newer terraform than Sluice understands, \
     and Sluice will not summarise a change it cannot classify"
)]
pub struct UnknownActions(pub Vec<String>);

impl TryFrom<Vec<String>> for Action {
    type Error = UnknownActions;

    fn try_from(v: Vec<String>) -> Result<Self, Self::Error> {
        let strs: Vec<&str> = v.iter().map(String::as_str).collect();
        Ok(match strs.as_slice() {
            ["no-op"] => Action::NoOp,
            ["create"] => Action::Create,
            ["read"] => Action::Read,
            ["update"] => Action::Update,
            ["delete"] => Action::Delete,
            ["delete", "create"] => Action::DeleteThenCreate,
            ["create", "delete"] => Action::CreateThenDelete,
            ["forget"] => Action::Forget,
            _ => return Err(UnknownActions(v)),
        })
    }
}

impl From<Action> for Vec<String> {
    fn from(a: Action) -> Self {
        a.as_strs().iter().map(|s| s.to_string()).collect()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_strs().join(","))
    }
}

/// Why bytes could not be read as a plan. The message is for the person reading the PR
/// comment or the CLI, so it says where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanJsonError {
    #[error("plan JSON is empty (did `terraform show -json` fail?)")]
    Empty,
    /// Not JSON at all (or truncated).
    #[error("plan JSON is not valid: {message} at line {line} column {column}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// Valid JSON of the wrong shape (e.g. `resource_changes` is not a list), or an unknown action.
    #[error(
        "plan JSON does not look like `terraform show -json` output: {message} at line {line} column {column}"
    )]
    Shape {
        message: String,
        line: usize,
        column: usize,
    },
}

/// Every top-level key of `terraform show -json <planfile>` output, in Terraform's
/// `internal/command/jsonplan` (up to 1.12) and OpenTofu's: a document with any other key, or
/// with one twice, is refused (see [`parse_plan_json`]).
pub const PLAN_JSON_KEYS: &[&str] = &[
    "format_version",
    "terraform_version",
    "variables",
    "planned_values",
    "resource_drift",
    "resource_changes",
    "deferred_changes",
    "output_changes",
    "prior_state",
    "configuration",
    "relevant_attributes",
    "checks",
    "timestamp",
    "applyable",
    "complete",
    "errored",
    "action_invocations",
    "deferred_action_invocations",
];

/// The top level of a plan document, checked before the typed parse: one object, every key
/// known, none twice. What follows it must be whitespace (serde_json refuses the rest).
struct TopLevel;

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = TopLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a plan object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopLevel, A::Error> {
                use serde::de::Error;
                let mut seen: Vec<String> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !PLAN_JSON_KEYS.contains(&key.as_str()) {
                        return Err(A::Error::custom(format!(
                            "unknown top-level key `{key}` (not written by terraform or OpenTofu)"
                        )));
                    }
                    if seen.contains(&key) {
                        return Err(A::Error::custom(format!(
                            "top-level key `{key}` appears twice"
                        )));
                    }
                    seen.push(key);
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(TopLevel)
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Parses the output of `terraform show -json <planfile>`, strictly: one JSON object and
/// nothing after it, its top-level keys among [`PLAN_JSON_KEYS`] and none twice. A document
/// that is not exactly what terraform writes — such as a forged plan wrapped around the real
/// one — is refused rather than half-read.
pub fn parse_plan_json(bytes: &[u8]) -> Result<Plan, PlanJsonError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PlanJsonError::Empty);
    }
    serde_json::from_slice::<TopLevel>(bytes)
        .and_then(|_| serde_json::from_slice(bytes))
        .map_err(|e| {
            let (line, column) = (e.line(), e.column());
            // serde_json's Display appends " at line L column C"; keep only the message so ours reads once.
            let full = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
            match e.classify() {
                serde_json::error::Category::Data => PlanJsonError::Shape {
                    message,
                    line,
                    column,
                },
                _ => PlanJsonError::Syntax {
                    message,
                    line,
                    column,
                },
            }
        })
}

impl Plan {
    /// Every string (and number) value the plan marks as sensitive, before or after the change,
    /// in `resource_changes`, `resource_drift` and `output_changes`.
    ///
    /// The diff renderer never prints these, but terraform itself may echo them (a provider
    /// error quoting a password, apply output): feed them to a `Redactor` for that text.
    pub fn sensitive_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        let changes = self
            .resource_changes
            .iter()
            .chain(&self.resource_drift)
            .map(|rc| &rc.change)
            .chain(self.output_changes.values());
        for c in changes {
            collect_sensitive(&c.before, &c.before_sensitive, &mut out);
            collect_sensitive(&c.after, &c.after_sensitive, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

fn collect_sensitive(value: &Value, marks: &Value, out: &mut Vec<String>) {
    match marks {
        Value::Bool(true) => collect_leaves(value, out),
        Value::Object(m) => {
            for (k, mark) in m {
                if let Some(v) = value.get(k) {
                    collect_sensitive(v, mark, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, mark) in a.iter().enumerate() {
                if let Some(v) = value.get(i) {
                    collect_sensitive(v, mark, out);
                }
            }
        }
        _ => {}
    }
}

fn collect_leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|v| collect_leaves(v, out)),
        Value::Object(m) => m.values().for_each(|v| collect_leaves(v, out)),
        Value::Null | Value::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = include_str!("../../../tests/fixtures/plans/create.json");
    const MIXED: &str = include_str!("../../../tests/fixtures/plans/mixed.json");
    const SENSITIVE: &str = include_str!("../../../tests/fixtures/plans/sensitive.json");
    const FUTURE: &str = include_str!("../../../tests/fixtures/plans/future.json");
    const AWS: &str = include_str!("../../../tests/fixtures/plans/aws_db.json");
    const MODULES: &str = include_str!("../../../tests/fixtures/plans/module_replace.json");

    fn actions(json: &str) -> Vec<(String, Action)> {
        parse_plan_json(json.as_bytes())
            .expect("fixture parses")
            .resource_changes
            .into_iter()
            .map(|rc| (rc.address, rc.change.actions))
            .collect()
    }

    #[test]
    fn real_terraform_fixtures_parse() {
        let plan = parse_plan_json(CREATE.as_bytes()).unwrap();
        assert_eq!(plan.format_version, "0.2");
        assert_eq!(plan.terraform_version, "1.0.3");
        assert_eq!(plan.resource_changes.len(), 6);
        let vpc = &plan.resource_changes[0];
        assert_eq!(vpc.module_address.as_deref(), Some("module.net"));
        assert_eq!(vpc.resource_type, "null_resource");
        assert_eq!(vpc.provider_name, "registry.terraform.io/hashicorp/null");

        let got = actions(MIXED);
        let want = [
            ("data.null_data_source.computed", Action::Read),
            ("null_resource.cbd", Action::CreateThenDelete),
            ("null_resource.keep", Action::NoOp),
            ("null_resource.new", Action::Create),
            ("null_resource.old[0]", Action::NoOp),
            ("null_resource.old[1]", Action::Delete),
            ("null_resource.replace_me", Action::DeleteThenCreate),
        ];
        let got: Vec<(&str, Action)> = got.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        assert_eq!(got, want);

        let plan = parse_plan_json(MIXED.as_bytes()).unwrap();
        let rm = &plan.resource_changes[6];
        assert_eq!(rm.change.replace_paths, vec![vec![Value::from("triggers")]]);
        assert_eq!(
            rm.action_reason.as_deref(),
            Some("replace_because_cannot_update")
        );
        assert_eq!(plan.output_changes["version"].actions, Action::Update);
    }

    #[test]
    fn configuration_gives_the_module_tree() {
        let plan = parse_plan_json(MODULES.as_bytes()).unwrap();
        let config = plan.configuration.as_ref().expect("terraform writes it");
        let (app, call) = config.module(&["app"]).unwrap();
        assert_eq!(call.unwrap().source, "./modules/app");
        let names: Vec<&str> = app.resources.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            names,
            [
                "null_resource.cache",
                "null_resource.keep",
                "null_resource.server"
            ]
        );
        let (_, dns) = config.module(&["app", "dns"]).unwrap();
        assert_eq!(dns.unwrap().source, "../dns");
        let (_, buckets) = config.module(&["buckets"]).unwrap();
        // terraform 1.0 does not write `for_each_expression` for module calls.
        assert_eq!(buckets.unwrap().source, "./modules/bucket");
        assert_eq!(config.module(&[]).unwrap().1, None);
        assert!(config.module(&["nope"]).is_none());
        let data = config
            .root_module
            .resources
            .iter()
            .find(|r| r.mode == ResourceMode::Data)
            .unwrap();
        assert_eq!(
            (data.mode, data.resource_type.as_str(), data.name.as_str()),
            (ResourceMode::Data, "null_data_source", "release")
        );
        // Plans without the section (hand-written, other tools) still parse.
        assert!(
            parse_plan_json(AWS.as_bytes())
                .unwrap()
                .configuration
                .is_none()
        );
    }

    #[test]
    fn refresh_only_plans_carry_resource_drift() {
        let refresh = parse_plan_json(
            include_str!("../../../tests/fixtures/plans/drift.refresh-only.json").as_bytes(),
        )
        .unwrap();
        assert!(refresh.resource_changes.is_empty());
        let drift: Vec<(&str, Action)> = refresh
            .resource_drift
            .iter()
            .map(|rc| (rc.address.as_str(), rc.change.actions))
            .collect();
        assert_eq!(
            drift,
            [
                ("null_resource.db", Action::Update),
                ("null_resource.deleted", Action::Delete),
                ("null_resource.edited", Action::Update),
                ("null_resource.both", Action::Update),
            ]
        );
        let normal =
            parse_plan_json(include_str!("../../../tests/fixtures/plans/drift.json").as_bytes())
                .unwrap();
        assert_eq!(normal.resource_drift.len(), 4);
        assert_eq!(normal.resource_changes.len(), 6);
        // A value that is sensitive only in the drift (it changed outside) is still collected.
        assert_eq!(
            refresh.sensitive_values(),
            ["hunter2-at-apply", "hunter2-changed-by-hand"]
        );
        let null_drift = parse_plan_json(br#"{"resource_drift": null}"#).unwrap();
        assert!(null_drift.resource_drift.is_empty());
    }

    #[test]
    fn the_top_level_is_exactly_what_terraform_writes() {
        let real = r#"{"format_version":"1.0","resource_changes":[{"address":"null_resource.x","mode":"managed","type":"null_resource","name":"x","change":{"actions":["create"]}}]}"#;
        assert_eq!(
            parse_plan_json(real.as_bytes())
                .unwrap()
                .resource_changes
                .len(),
            1
        );
        let forged = r#"{"format_version":"1.0","resource_changes":[]"#;
        let shape = |doc: String| match parse_plan_json(doc.as_bytes()) {
            Err(PlanJsonError::Shape { message, .. }) => message,
            other => panic!("{other:?} for {doc}"),
        };
        // A forged plan wrapping the real one in a key of its own, or repeating a key.
        let m = shape(format!(r#"{forged},"zz":{real}}}"#));
        assert!(m.contains("unknown top-level key `zz`"), "{m}");
        let m = shape(format!(r#"{forged},"resource_changes":[]}}"#));
        assert!(m.contains("`resource_changes` appears twice"), "{m}");
        let m = shape(r#"{"format_version":"1.0","format_version":"1.0"}"#.to_string());
        assert!(m.contains("appears twice"), "{m}");
        // The real plan followed by anything but whitespace, or two documents.
        for doc in [
            format!("{real}{real}"),
            format!("{real}\n{{}}"),
            format!("{real} x"),
        ] {
            assert!(
                matches!(
                    parse_plan_json(doc.as_bytes()),
                    Err(PlanJsonError::Syntax { .. })
                ),
                "{doc}"
            );
        }
        assert!(parse_plan_json(format!("{real}\n\n").as_bytes()).is_ok());
        // Not an object.
        assert!(parse_plan_json(b"[]").is_err());
    }

    #[test]
    fn future_format_with_unknown_fields_parses() {
        let plan = parse_plan_json(FUTURE.as_bytes()).unwrap();
        assert_eq!(plan.format_version, "9.9");
        let by_addr: BTreeMap<&str, &ResourceChange> = plan
            .resource_changes
            .iter()
            .map(|rc| (rc.address.as_str(), rc))
            .collect();
        let imported = by_addr["aws_s3_bucket.logs"];
        assert_eq!(imported.change.actions, Action::NoOp);
        assert_eq!(
            imported.change.importing.as_ref().unwrap().id.as_deref(),
            Some("acme-logs")
        );
        assert!(by_addr["aws_instance.renamed"].is_moved());
        assert_eq!(by_addr["aws_iam_user.gone"].change.actions, Action::Forget);
        assert_eq!(by_addr["future_thing.x"].mode, ResourceMode::Other);
    }

    #[test]
    fn hand_written_aws_fixture_parses() {
        let got = actions(AWS);
        assert!(got.contains(&("aws_db_instance.main".into(), Action::DeleteThenCreate)));
        assert!(got.contains(&("aws_db_instance.legacy".into(), Action::Delete)));
    }

    #[test]
    fn every_action_list_round_trips() {
        for a in [
            Action::NoOp,
            Action::Create,
            Action::Read,
            Action::Update,
            Action::Delete,
            Action::DeleteThenCreate,
            Action::CreateThenDelete,
            Action::Forget,
        ] {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a, "{json}");
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let check = |input: &str, expect: &str| {
            let err = parse_plan_json(input.as_bytes()).unwrap_err().to_string();
            assert_eq!(err, expect, "input: {input}");
        };
        check("", "plan JSON is empty (did `terraform show -json` fail?)");
        check(
            " \n",
            "plan JSON is empty (did `terraform show -json` fail?)",
        );
        check(
            "{\n  \"format_version\": \"1.2\",\n  oops",
            "plan JSON is not valid: key must be a string at line 3 column 3",
        );
        check(
            "{\"resource_changes\": [",
            "plan JSON is not valid: EOF while parsing a list at line 1 column 22",
        );
        check(
            "{\"resource_changes\": 3}",
            "plan JSON does not look like `terraform show -json` output: invalid type: integer `3`, expected a sequence at line 1 column 22",
        );
        let unknown =
            r#"{"resource_changes":[{"address":"a.b","change":{"actions":["teleport"]}}]}"#;
        let err = parse_plan_json(unknown.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("unknown change actions [\"teleport\"]"),
            "{err}"
        );
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn sensitive_values_are_collected_from_both_sides() {
        let plan = parse_plan_json(SENSITIVE.as_bytes()).unwrap();
        assert_eq!(
            plan.sensitive_values(),
            vec!["hunter2-new-secret".to_string(), "hunter2-old".to_string()]
        );
    }
}
