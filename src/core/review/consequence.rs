//! What a planned change does, in words for a reviewer: "replaced: a change to `triggers`
//! forces it", "destroyed: its block was removed". Shared by review comments, check-run
//! annotations and summaries, so they all say the same thing.
//!
//! Reads one `resource_changes[]` entry (actions, `replace_paths`, `action_reason`,
//! `previous_address`, `importing`); renders no markdown beyond inline code.

use serde_json::Value;

use crate::core::plan::render::code;
use crate::core::plan::{Action, ResourceChange};

/// The kinds of consequence, most serious first (the derived order is used for sorting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Destroy,
    Replace,
    Forget,
    Update,
    Create,
    Move,
    Import,
}

impl Kind {
    /// Destroys or replaces an existing object.
    pub fn is_destructive(self) -> bool {
        matches!(self, Kind::Destroy | Kind::Replace)
    }

    pub fn icon(self) -> &'static str {
        match self {
            Kind::Destroy => "🗑️",
            Kind::Replace => "🔁",
            Kind::Forget => "📤",
            Kind::Update => "✏️",
            Kind::Create => "➕",
            Kind::Move => "↪️",
            Kind::Import => "📥",
        }
    }

    /// `destroyed`, `replaced`, ... (what happens to the object).
    pub fn verb(self) -> &'static str {
        match self {
            Kind::Destroy => "destroyed",
            Kind::Replace => "replaced",
            Kind::Forget => "forgotten",
            Kind::Update => "updated in place",
            Kind::Create => "created",
            Kind::Move => "moved",
            Kind::Import => "imported",
        }
    }

    /// Short form for titles: `destroy`, `replace`, ...
    pub fn word(self) -> &'static str {
        match self {
            Kind::Destroy => "destroy",
            Kind::Replace => "replace",
            Kind::Forget => "forget",
            Kind::Update => "update",
            Kind::Create => "create",
            Kind::Move => "move",
            Kind::Import => "import",
        }
    }
}

/// What one change does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consequence {
    pub kind: Kind,
    /// The address people read (with the deposed key when there is one).
    pub address: String,
    /// Why, when the plan says: `a change to `triggers` forces it`.
    pub reason: Option<String>,
    /// For replacements: how terraform orders the two halves.
    pub order: Option<&'static str>,
}

impl Consequence {
    /// `` `null_resource.a` will be **replaced** (destroyed, then created): a change to `triggers` forces it ``
    pub fn sentence(&self) -> String {
        let mut s = format!("{} will be **{}**", code(&self.address), self.kind.verb());
        if let Some(order) = self.order {
            s.push_str(&format!(" ({order})"));
        }
        if let Some(reason) = &self.reason {
            s.push_str(": ");
            s.push_str(reason);
        }
        s
    }
}

/// The consequence of `rc`, or `None` when it changes nothing people review (no-ops, reads).
pub fn consequence(rc: &ResourceChange) -> Option<Consequence> {
    let (kind, order) = match rc.change.actions {
        Action::Delete => (Kind::Destroy, None),
        Action::DeleteThenCreate => (Kind::Replace, Some("destroyed, then created")),
        Action::CreateThenDelete => (
            Kind::Replace,
            Some("the new object is created before the old one is destroyed"),
        ),
        Action::Update => (Kind::Update, None),
        Action::Create => (Kind::Create, None),
        Action::Forget => (Kind::Forget, None),
        Action::NoOp | Action::Read => {
            if rc.change.importing.is_some() {
                (Kind::Import, None)
            } else if rc.is_moved() && rc.change.actions == Action::NoOp {
                (Kind::Move, None)
            } else {
                return None;
            }
        }
    };
    let reason = match kind {
        Kind::Replace => replace_reason(rc),
        Kind::Destroy => delete_reason(rc.action_reason.as_deref()),
        Kind::Forget => Some("removed from the state, the object itself is kept".to_string()),
        Kind::Move => rc
            .previous_address
            .as_deref()
            .map(|p| format!("from {} (a `moved` block)", code(p))),
        _ => None,
    };
    Some(Consequence {
        kind,
        address: rc.display_address(),
        reason,
        order,
    })
}

fn replace_reason(rc: &ResourceChange) -> Option<String> {
    if !rc.change.replace_paths.is_empty() {
        let paths: Vec<String> = rc
            .change
            .replace_paths
            .iter()
            .take(10)
            .map(|p| code(&attribute_path(p)))
            .collect();
        let more = rc.change.replace_paths.len().saturating_sub(10);
        let mut list = paths.join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        let verb = if rc.change.replace_paths.len() == 1 {
            "forces"
        } else {
            "force"
        };
        return Some(format!(
            "{} {list} {verb} it",
            if rc.change.replace_paths.len() == 1 {
                "a change to"
            } else {
                "changes to"
            }
        ));
    }
    Some(
        match rc.action_reason.as_deref()? {
            "replace_because_tainted" => "the object is tainted",
            "replace_by_request" => "`-replace` asked for it",
            "replace_by_triggers" => "`replace_triggered_by` fired",
            "replace_because_cannot_update" => "the provider cannot update it in place",
            _ => return None,
        }
        .to_string(),
    )
}

fn delete_reason(reason: Option<&str>) -> Option<String> {
    Some(
        match reason? {
            "delete_because_no_resource_config" => "its block was removed",
            "delete_because_no_module" => "its module call was removed",
            "delete_because_count_index" => "`count` no longer includes its index",
            "delete_because_each_key" => "`for_each` no longer includes its key",
            "delete_because_wrong_repetition" => {
                "its block switched between `count` and `for_each`"
            }
            "delete_because_no_move_target" => "the target of its `moved` block is gone",
            _ => return None,
        }
        .to_string(),
    )
}

/// A `replace_paths` entry as people write it: `triggers`, `tags["Name"]`, `ingress[0].cidr`.
pub fn attribute_path(steps: &[Value]) -> String {
    let mut s = String::new();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Value::String(name) if is_identifier(name) => {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(name);
            }
            Value::String(key) => {
                s.push_str(&format!("[{}]", Value::String(key.clone())));
            }
            Value::Number(n) => s.push_str(&format!("[{n}]")),
            other => s.push_str(&format!("[{other}]")),
        }
    }
    s
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::parse_plan_json;

    #[test]
    fn sentences_for_every_kind_of_change() {
        let mut out = String::new();
        for json in [
            include_str!("../../../tests/fixtures/plans/mixed.json"),
            include_str!("../../../tests/fixtures/plans/module_replace.json"),
            include_str!("../../../tests/fixtures/plans/aws_db.json"),
            include_str!("../../../tests/fixtures/plans/future.json"),
            include_str!("../../../tests/fixtures/plans/buckets.json"),
        ] {
            let plan = parse_plan_json(json.as_bytes()).unwrap();
            for rc in &plan.resource_changes {
                match consequence(rc) {
                    Some(c) => out.push_str(&format!("{} {}\n", c.kind.icon(), c.sentence())),
                    None => out.push_str(&format!("(nothing) {}\n", rc.address)),
                }
            }
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn attribute_paths_read_like_configuration() {
        let table = [
            (serde_json::json!(["triggers"]), "triggers"),
            (serde_json::json!(["tags", "Name"]), "tags.Name"),
            (
                serde_json::json!(["tags", "kubernetes.io/role"]),
                "tags[\"kubernetes.io/role\"]",
            ),
            (
                serde_json::json!(["ingress", 0, "cidr_blocks", 1]),
                "ingress[0].cidr_blocks[1]",
            ),
            (serde_json::json!([]), ""),
        ];
        for (steps, want) in table {
            let steps: Vec<Value> = serde_json::from_value(steps).unwrap();
            assert_eq!(attribute_path(&steps), want);
        }
    }
}
