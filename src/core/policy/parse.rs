//! Reading policy YAML into [`Policy`] values, reporting every problem at `file:line:col`.
//!
//! Two entry points share one entry schema: a policy file (`policies/*.yaml`, `version: 1` and a
//! `policies:` list) and the `policies:` key of `sluice.yaml` (read by [`crate::core::repo_config`]
//! through [`policies_node`]). Reading goes through [`crate::core::yaml::Reader`], so errors look
//! exactly like those of `sluice.yaml`. Checks that need more than one policy (duplicate names,
//! contradictions) are in [`super::check`]. No I/O: the caller hands over the text.

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;

use super::model::{
    AccessRule, ApprovalGroup, Approvals, Combine, OnFailure, Pattern, PatternKind, PlanRule,
    Policy, Principals, ResourceFilter, RuleAction, RuleKind, Scope, Stage, TeamRef,
};
use crate::core::diag::Diagnostic;
use crate::core::repo_config::{Located, Pos};
use crate::core::yaml::{Key, Key::Known, Reader, did_you_mean, is_null, pos, pos_of_span};

/// Versions of the policy file format this build understands.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// Tag attributes `require_tags` looks at when the rule names none: `tags` as written, and AWS'
/// `tags_all`, which adds the provider's `default_tags` — a tag set there is a tag the resource has.
pub const DEFAULT_TAG_ATTRIBUTES: &[&str] = &["tags", "tags_all"];

/// Most policies one file (or one `policies:` list) may hold.
pub const MAX_POLICIES: usize = 1_000;

const FILE_KEYS: &[(&str, Key)] = &[("version", Known), ("policies", Known)];

const POLICY_KEYS: &[(&str, Key)] = &[
    ("name", Known),
    ("description", Known),
    ("scope", Known),
    ("access", Known),
    ("approvals", Known),
    ("rules", Known),
    ("on_failure", Known),
    ("owners", Known),
];

const SCOPE_KEYS: &[(&str, Key)] = &[
    ("projects", Known),
    ("workspaces", Known),
    ("branches", Known),
];

const ACCESS_KEYS: &[(&str, Key)] = &[
    ("plan", Known),
    ("apply", Known),
    ("unlock", Known),
    ("approve_policies", Known),
];

const PRINCIPAL_KEYS: &[(&str, Key)] = &[("users", Known), ("teams", Known)];

const APPROVAL_KEYS: &[(&str, Key)] = &[
    ("minimum", Known),
    ("from", Known),
    ("ignore_stale", Known),
    ("all_of", Known),
    ("any_of", Known),
];

const GROUP_KEYS: &[(&str, Key)] = &[("minimum", Known), ("from", Known)];

/// The keys that say what kind of rule an entry of `rules:` is; exactly one per rule.
const RULE_KINDS: &[&str] = &[
    "deny",
    "require_approval",
    "max_destroys",
    "max_changes",
    "deny_providers",
    "require_tags",
];

/// Every key a rule may have; which modifiers go with which kind is checked in [`rule`].
const RULE_KEYS: &[(&str, Key)] = &[
    ("deny", Known),
    ("require_approval", Known),
    ("max_destroys", Known),
    ("max_changes", Known),
    ("deny_providers", Known),
    ("require_tags", Known),
    ("name", Known),
    ("resource_types", Known),
    ("addresses", Known),
    ("approvals", Known),
    ("tag_attributes", Known),
];

/// Words people use for the four actions, mapped to the one Sluice means (`destroy` is what
/// terraform's own output says; `delete` is what the plan JSON says).
const ACTION_SYNONYMS: &[(&str, RuleAction)] = &[
    ("destroy", RuleAction::Delete),
    ("destroyed", RuleAction::Delete),
    ("remove", RuleAction::Delete),
    ("deleted", RuleAction::Delete),
    ("add", RuleAction::Create),
    ("new", RuleAction::Create),
    ("created", RuleAction::Create),
    ("change", RuleAction::Update),
    ("modify", RuleAction::Update),
    ("updated", RuleAction::Update),
    ("recreate", RuleAction::Replace),
    ("replaced", RuleAction::Replace),
];

/// Parses one policy file (`policies/*.yaml`). Returns the policies that had no error, and every
/// diagnostic. Callers that act on policies use [`super::load_policies`], which refuses the whole
/// set when anything is wrong (a half-read policy set would be a weaker one).
pub fn parse_policy_file(file: &str, text: &str) -> (Vec<Policy>, Vec<Diagnostic>) {
    let mut r = Reader::new(file, "start with `version: 1`, then `policies:`");
    let policies = read_file(&mut r, text);
    r.diags.sort_by_key(|d| (d.line, d.column));
    (policies, r.diags)
}

fn read_file(r: &mut Reader, text: &str) -> Vec<Policy> {
    let Some(root) = r.load(text) else {
        return Vec::new();
    };
    let Some(map) = root.as_mapping() else {
        r.error(
            Pos::default(),
            "the file must be a mapping of keys to values",
            None,
        );
        return Vec::new();
    };
    if map.is_empty() {
        let file = r.file;
        r.error(
            Pos { line: 1, column: 1 },
            format!("`{file}` is empty (or only comments)"),
            Some("start it with `version: 1` and a `policies:` list, or delete it".to_string()),
        );
        return Vec::new();
    }
    if !version(r, map) {
        return Vec::new();
    }
    r.check_keys(map, "at the top level of a policy file", FILE_KEYS);
    match map.get_node("policies") {
        Some(node) => policies_node(r, node),
        None => {
            r.error(
                Pos { line: 1, column: 1 },
                "missing `policies`",
                Some("add a `policies:` list with at least one `- name: …` entry".to_string()),
            );
            Vec::new()
        }
    }
}

/// `version: 1`; false when it is missing or unsupported (nothing else is read then: a schema we
/// do not know would only produce misleading unknown-key errors).
fn version(r: &mut Reader, map: &MarkedMappingNode) -> bool {
    let Some(node) = map.get_node("version") else {
        r.error(
            Pos { line: 1, column: 1 },
            "missing `version`",
            Some("add `version: 1` at the top of the file".to_string()),
        );
        return false;
    };
    let Some(v) = r.string(node, "version") else {
        return false;
    };
    if SUPPORTED_VERSIONS.iter().any(|s| s.to_string() == v.value) {
        return true;
    }
    r.error(
        v.pos,
        format!(
            "unsupported policy file version `{}`; this Sluice reads version 1",
            v.value
        ),
        Some("if the file was written for a newer Sluice, upgrade the server".to_string()),
    );
    false
}

/// A `policies:` list (in a policy file or in `sluice.yaml`). Entries with errors are left out;
/// their diagnostics are in the reader.
pub(crate) fn policies_node(r: &mut Reader, node: &Node) -> Vec<Policy> {
    if let Node::Scalar(s) = node {
        if is_null(s) {
            r.warning(
                pos(node),
                "`policies` is empty",
                Some("list at least one policy, or remove `policies:`".to_string()),
            );
            return Vec::new();
        }
    }
    let Some(seq) = r.sequence(node, "policies") else {
        return Vec::new();
    };
    if !r.at_most(seq, "policies", MAX_POLICIES) {
        return Vec::new();
    }
    if seq.is_empty() {
        r.warning(
            pos(node),
            "`policies` is empty",
            Some("list at least one policy, or remove `policies: []`".to_string()),
        );
        return Vec::new();
    }
    seq.iter().filter_map(|entry| policy(r, entry)).collect()
}

fn errors(r: &Reader) -> usize {
    r.diags.iter().filter(|d| d.is_error()).count()
}

/// Where a mapping starts for a reader: its first key (a block mapping's own marker sits after it).
fn start_of(map: &MarkedMappingNode, node: &Node) -> Pos {
    map.keys()
        .next()
        .map_or_else(|| pos(node), |k| pos_of_span(k.span()))
}

fn policy(r: &mut Reader, node: &Node) -> Option<Policy> {
    let map = r.mapping(node, "each entry of `policies`")?;
    let entry_pos = start_of(map, node);
    let errors_before = errors(r);
    r.check_keys(map, "in policy", POLICY_KEYS);

    let name = match map.get_node("name") {
        Some(n) => r.string(n, "name").and_then(|n| policy_name(r, n)),
        None => {
            r.error(
                entry_pos,
                "policy has no `name`",
                Some(
                    "add `name: …` (letters, digits, `-`, `_`, `.`); owners override a policy by \
                     this name with `approve_policies --policy-set NAME`"
                        .to_string(),
                ),
            );
            None
        }
    };
    let description = map
        .get_node("description")
        .and_then(|n| r.string(n, "description"))
        .map(|d| d.value);
    let scope = map
        .get_node("scope")
        .map(|n| scope(r, n))
        .unwrap_or_default();
    let access = map
        .get_node("access")
        .map(|n| access(r, n))
        .unwrap_or_default();
    let approvals = map
        .get_node("approvals")
        .and_then(|n| approvals(r, n, "approvals"));
    let rules = map
        .get_node("rules")
        .map(|n| rules(r, n))
        .unwrap_or_default();

    let on_failure_node = map.get_node("on_failure");
    let on_failure = on_failure_node
        .and_then(|n| r.string(n, "on_failure"))
        .and_then(|v| on_failure(r, v))
        .unwrap_or_default();
    let owners_node = map.get_node("owners");
    // `None`: no `owners`; `Some(None)`: `owners` with errors (already reported).
    let owners_read = owners_node.map(|n| principals(r, n, "owners"));
    let owners_ok = !matches!(owners_read, Some(None));
    let owners = owners_read.flatten().unwrap_or_default();

    match (on_failure, owners_node) {
        (OnFailure::RequireOverride, _) if owners_ok && owners.is_empty() => {
            let at = owners_node.or(on_failure_node).map_or(entry_pos, pos);
            r.error(
                at,
                "`on_failure: require_override` needs `owners` who may override",
                Some("add `owners: { teams: [org/team] }` or `owners: { users: [login] }`".to_string()),
            );
        }
        (OnFailure::Deny | OnFailure::Warn, Some(n)) => r.warning(
            pos(n),
            format!(
                "`owners` has no effect with `on_failure: {}`: only `require_override` can be overridden",
                on_failure.name()
            ),
            Some("set `on_failure: require_override`, or remove `owners`".to_string()),
        ),
        _ => {}
    }
    if access.is_empty() && approvals.is_none() && rules.is_empty() && errors(r) == errors_before {
        r.warning(
            entry_pos,
            "this policy checks nothing",
            Some("add `access`, `approvals` or `rules`".to_string()),
        );
    }

    if errors(r) > errors_before {
        return None;
    }
    Some(Policy {
        name: name?,
        description,
        file: r.file.to_string(),
        pos: entry_pos,
        scope,
        access,
        approvals,
        rules,
        on_failure,
        owners,
        rego: None,
    })
}

/// Names are typed in `approve_policies --policy-set NAME`, so they follow the same rules as
/// that flag's value (see `core::command`).
pub(crate) fn policy_name(r: &mut Reader, n: Located<String>) -> Option<String> {
    let v = &n.value;
    let bad = v.len() > 100
        || v.starts_with('-')
        || v.chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':')));
    if bad {
        r.error(
            n.pos,
            format!("policy name `{v}` is not allowed"),
            Some(
                "use up to 100 letters, digits, `-`, `_`, `.`, `/` or `:`, not starting with `-` \
                 (it is typed in `approve_policies --policy-set NAME`)"
                    .to_string(),
            ),
        );
        return None;
    }
    Some(n.value)
}

fn on_failure(r: &mut Reader, v: Located<String>) -> Option<OnFailure> {
    let valid = ["deny", "require_override", "warn"];
    match v.value.as_str() {
        "deny" => Some(OnFailure::Deny),
        "require_override" => Some(OnFailure::RequireOverride),
        "warn" => Some(OnFailure::Warn),
        other => {
            let guess = match other {
                "block" | "fail" | "error" => Some("deny"),
                "override" | "approve" | "require_approval" => Some("require_override"),
                "warning" | "inform" => Some("warn"),
                _ => did_you_mean(other, valid),
            };
            let list = valid.join(", ");
            let hint = match guess {
                Some(g) => format!("did you mean `{g}`? valid values: {list}"),
                None => format!("valid values: {list}"),
            };
            r.error(
                v.pos,
                format!("unknown `on_failure` value `{other}`"),
                Some(hint),
            );
            None
        }
    }
}

/// A list of patterns (or a single one) under `key`. `None` when the key has errors; an empty
/// list is an error, because it would match nothing and silently switch the policy or rule off.
fn patterns(r: &mut Reader, node: &Node, key: &str, kind: PatternKind) -> Option<Vec<Pattern>> {
    let list = r.one_or_many(node, key)?;
    if list.is_empty() {
        r.error(
            pos(node),
            format!("`{key}: []` matches nothing"),
            Some(format!(
                "remove `{key}` to match everything, or list patterns"
            )),
        );
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for item in list {
        match Pattern::new(&item.value, item.pos, kind) {
            Ok(p) => out.push(p),
            Err(e) => {
                let hint = (kind == PatternKind::Address && e.contains("glob")).then(|| {
                    "in addresses `*` matches any characters and `[` `]` are literal".to_string()
                });
                r.error(item.pos, e, hint);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn scope(r: &mut Reader, node: &Node) -> Scope {
    let Some(map) = r.mapping(node, "`scope`") else {
        return Scope::default();
    };
    r.check_keys(map, "in `scope`", SCOPE_KEYS);
    let mut get = |key: &str, kind| map.get_node(key).and_then(|n| patterns(r, n, key, kind));
    Scope {
        projects: get("projects", PatternKind::Path),
        workspaces: get("workspaces", PatternKind::Name),
        branches: get("branches", PatternKind::Path),
    }
}

fn access(r: &mut Reader, node: &Node) -> Vec<AccessRule> {
    let Some(map) = r.mapping(node, "`access`") else {
        return Vec::new();
    };
    r.check_keys(map, "in `access`", ACCESS_KEYS);
    let mut out = Vec::new();
    for stage in Stage::ALL {
        let Some(n) = map.get_node(stage.name()) else {
            continue;
        };
        let Some(allowed) = principals(r, n, stage.name()) else {
            continue;
        };
        if allowed.is_empty() {
            r.warning(
                pos(n),
                format!("nobody may run `{stage}` where this policy applies"),
                Some(format!(
                    "list `users` or `teams`, or remove `{stage}` to leave the command unrestricted"
                )),
            );
        }
        let at = map
            .keys()
            .find(|k| k.as_str() == stage.name())
            .map_or_else(|| pos(n), |k| pos_of_span(k.span()));
        out.push(AccessRule {
            stage,
            allowed,
            pos: at,
        });
    }
    out
}

/// `{ users: [...], teams: [...] }`. `None` when it has errors.
fn principals(r: &mut Reader, node: &Node, key: &str) -> Option<Principals> {
    let map = r.mapping(node, &format!("`{key}`"))?;
    r.check_keys(map, &format!("in `{key}`"), PRINCIPAL_KEYS);
    let before = errors(r);
    let mut p = Principals::default();
    if let Some(n) = map.get_node("users") {
        for u in r.one_or_many(n, "users").unwrap_or_default() {
            let login = u.value.strip_prefix('@').unwrap_or(&u.value);
            if login.contains('/') {
                r.error(
                    u.pos,
                    format!("`{}` is a team, not a user", u.value),
                    Some("list teams under `teams:`".to_string()),
                );
            } else if !is_login(login) {
                r.error(
                    u.pos,
                    format!("`{}` is not a GitHub login", u.value),
                    Some("logins are letters, digits and `-` (bots end in `[bot]`)".to_string()),
                );
            } else {
                p.users.push(Located {
                    value: login.to_ascii_lowercase(),
                    pos: u.pos,
                });
            }
        }
    }
    if let Some(n) = map.get_node("teams") {
        for t in r.one_or_many(n, "teams").unwrap_or_default() {
            let raw = t.value.strip_prefix('@').unwrap_or(&t.value);
            match raw.split_once('/') {
                Some((org, slug)) if is_org(org) && is_slug(slug) => p.teams.push(Located {
                    value: TeamRef {
                        org: org.to_ascii_lowercase(),
                        slug: slug.to_ascii_lowercase(),
                    },
                    pos: t.pos,
                }),
                Some(_) => r.error(
                    t.pos,
                    format!("`{}` is not a GitHub team", t.value),
                    Some("write `org/team-slug`, e.g. `acme/platform`".to_string()),
                ),
                None => r.error(
                    t.pos,
                    format!("team `{}` needs its organisation", t.value),
                    Some(format!(
                        "write `org/{raw}` (e.g. `acme/{raw}`); users go under `users:`"
                    )),
                ),
            }
        }
    }
    (errors(r) == before).then_some(p)
}

fn is_login(s: &str) -> bool {
    let base = s.strip_suffix("[bot]").unwrap_or(s);
    !base.is_empty()
        && base.len() <= 39
        && !base.starts_with('-')
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_org(s: &str) -> bool {
    is_login(s) && !s.ends_with("[bot]")
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `approvals:` (of a policy, or of a `require_approval` rule).
fn approvals(r: &mut Reader, node: &Node, key: &str) -> Option<Approvals> {
    let map = r.mapping(node, &format!("`{key}`"))?;
    let at = start_of(map, node);
    r.check_keys(map, &format!("in `{key}`"), APPROVAL_KEYS);
    let before = errors(r);
    let ignore_stale = map
        .get_node("ignore_stale")
        .and_then(|n| r.boolean(n, "ignore_stale"))
        .unwrap_or(false);
    let all_of = map.get_node("all_of");
    let any_of = map.get_node("any_of");
    let short = ["minimum", "from"]
        .into_iter()
        .find(|k| map.get_node(k).is_some());
    let (combine, groups) = match (all_of, any_of, short) {
        (Some(_), Some(n), _) => {
            r.error(
                pos(n),
                "use either `all_of` or `any_of`, not both",
                Some("to require several groups, list them all under `all_of`".to_string()),
            );
            (Combine::AllOf, Vec::new())
        }
        (Some(n), None, Some(k)) | (None, Some(n), Some(k)) => {
            r.error(
                pos(n),
                format!("`{k}` and a list of groups cannot be combined"),
                Some(
                    "either write `minimum`/`from` directly under `approvals`, or give each group \
                     its own `minimum`/`from` under `all_of`/`any_of`"
                        .to_string(),
                ),
            );
            (Combine::AllOf, Vec::new())
        }
        (Some(n), None, None) => (Combine::AllOf, groups(r, n, "all_of")),
        (None, Some(n), None) => (Combine::AnyOf, groups(r, n, "any_of")),
        (None, None, _) => (Combine::AllOf, group(r, map, at).into_iter().collect()),
    };
    (errors(r) == before).then_some(Approvals {
        combine,
        groups,
        ignore_stale,
        pos: at,
    })
}

fn groups(r: &mut Reader, node: &Node, key: &str) -> Vec<ApprovalGroup> {
    let Some(seq) = r.sequence(node, key) else {
        return Vec::new();
    };
    if seq.is_empty() {
        r.error(
            pos(node),
            format!("`{key}` lists no groups"),
            Some("add groups like `- { minimum: 1, from: { teams: [org/team] } }`".to_string()),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for item in seq.iter() {
        let Some(map) = r.mapping(item, &format!("each entry of `{key}`")) else {
            continue;
        };
        r.check_keys(map, &format!("in an `{key}` group"), GROUP_KEYS);
        let at = start_of(map, item);
        out.extend(group(r, map, at));
    }
    out
}

/// `minimum` (default 1) and `from` (default: anyone but the author).
fn group(r: &mut Reader, map: &MarkedMappingNode, at: Pos) -> Option<ApprovalGroup> {
    let minimum = match map.get_node("minimum") {
        Some(n) => r.whole_number(n, "minimum")?,
        None => 1,
    };
    let from = match map.get_node("from") {
        None => None,
        Some(n) => {
            let p = principals(r, n, "from")?;
            if p.is_empty() {
                r.error(
                    pos(n),
                    "`from` lists nobody, so no approval could ever count",
                    Some(
                        "list `users` or `teams`, or remove `from` to count anyone's approval"
                            .to_string(),
                    ),
                );
                return None;
            }
            Some(p)
        }
    };
    if minimum == 0 {
        r.warning(
            at,
            "`minimum: 0` requires no approval",
            Some("remove the requirement, or set `minimum` to 1 or more".to_string()),
        );
    }
    // With users only (no team that could grow), the requirement can be impossible.
    if let Some(p) = &from {
        if p.teams.is_empty() && (minimum as usize) > p.users.len() {
            r.error(
                at,
                format!(
                    "`minimum: {minimum}` can never be met: only {} user{} can approve",
                    p.users.len(),
                    if p.users.len() == 1 { "" } else { "s" }
                ),
                Some("lower `minimum`, or add users or teams to `from`".to_string()),
            );
            return None;
        }
    }
    Some(ApprovalGroup {
        minimum,
        from,
        pos: at,
    })
}

fn rules(r: &mut Reader, node: &Node) -> Vec<PlanRule> {
    let Some(seq) = r.sequence(node, "rules") else {
        return Vec::new();
    };
    seq.iter().filter_map(|item| rule(r, item)).collect()
}

fn rule(r: &mut Reader, node: &Node) -> Option<PlanRule> {
    let map = r.mapping(node, "each entry of `rules`")?;
    let at = start_of(map, node);
    let before = errors(r);
    r.check_keys(map, "in rule", RULE_KEYS);
    let kinds: Vec<(&str, &Node)> = RULE_KINDS
        .iter()
        .filter_map(|k| map.get_node(k).map(|n| (*k, n)))
        .collect();
    let (keyword, value) = match kinds.as_slice() {
        [one] => *one,
        // An unknown key (already reported, with did-you-mean) is most likely the misspelt kind.
        [] if map
            .keys()
            .any(|k| !RULE_KEYS.iter().any(|(n, _)| *n == k.as_str())) =>
        {
            return None;
        }
        [] => {
            r.error(
                at,
                "this rule does not say what it checks",
                Some(format!("start it with one of: {}", RULE_KINDS.join(", "))),
            );
            return None;
        }
        [first, second, ..] => {
            let second_pos = map
                .keys()
                .find(|k| k.as_str() == second.0)
                .map_or(at, |k| pos_of_span(k.span()));
            r.error(
                second_pos,
                format!(
                    "a rule checks one thing, and this one has `{}` and `{}`",
                    first.0, second.0
                ),
                Some("split it into two entries of `rules`".to_string()),
            );
            return None;
        }
    };

    // Which modifiers each kind takes; any other is an error naming the kind.
    let modifiers: &[&str] = match keyword {
        "deny" | "max_destroys" | "max_changes" => &["name", "resource_types", "addresses"],
        "require_approval" => &["name", "resource_types", "addresses", "approvals"],
        "require_tags" => &["name", "resource_types", "addresses", "tag_attributes"],
        _ => &["name"],
    };
    for key in map.keys() {
        let k = key.as_str();
        if k != keyword
            && RULE_KEYS.iter().any(|(n, _)| *n == k)
            && !modifiers.contains(&k)
            && !RULE_KINDS.contains(&k)
        {
            r.error(
                pos_of_span(key.span()),
                format!("`{k}` does not apply to a `{keyword}` rule"),
                Some(format!(
                    "a `{keyword}` rule takes: {}",
                    modifiers.join(", ")
                )),
            );
        }
    }

    let name = map
        .get_node("name")
        .and_then(|n| r.string(n, "name"))
        .map(|n| n.value);
    let filter = ResourceFilter {
        resource_types: map
            .get_node("resource_types")
            .and_then(|n| patterns(r, n, "resource_types", PatternKind::Name)),
        addresses: map
            .get_node("addresses")
            .and_then(|n| patterns(r, n, "addresses", PatternKind::Address)),
    };

    let kind = match keyword {
        "deny" => RuleKind::Deny {
            actions: actions(r, value, keyword)?,
        },
        "require_approval" => {
            let actions = actions(r, value, keyword)?;
            let approvals = match map.get_node("approvals") {
                Some(n) => approvals(r, n, "approvals")?,
                None => {
                    r.error(
                        at,
                        "a `require_approval` rule needs `approvals` saying whose approval",
                        Some(
                            "add e.g. `approvals: { minimum: 1, from: { teams: [acme/dba] } }`"
                                .to_string(),
                        ),
                    );
                    return None;
                }
            };
            RuleKind::RequireApproval { actions, approvals }
        }
        "max_destroys" => RuleKind::MaxDestroys(r.whole_number(value, keyword)?),
        "max_changes" => RuleKind::MaxChanges(r.whole_number(value, keyword)?),
        "deny_providers" => {
            RuleKind::DenyProviders(patterns(r, value, keyword, PatternKind::Path)?)
        }
        _ => {
            let tags = r.one_or_many(value, keyword)?;
            if tags.is_empty() {
                r.error(
                    pos(value),
                    "`require_tags` lists no tag",
                    Some("list the tag keys every created resource must have, e.g. `[Owner, CostCenter]`".to_string()),
                );
                return None;
            }
            let attributes = match map.get_node("tag_attributes") {
                Some(n) => r
                    .one_or_many(n, "tag_attributes")?
                    .into_iter()
                    .map(|a| a.value)
                    .collect(),
                None => DEFAULT_TAG_ATTRIBUTES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            RuleKind::RequireTags {
                tags: tags.into_iter().map(|t| t.value).collect(),
                attributes,
            }
        }
    };
    (errors(r) == before).then_some(PlanRule {
        name,
        kind,
        filter,
        pos: at,
    })
}

fn actions(r: &mut Reader, node: &Node, key: &str) -> Option<Vec<RuleAction>> {
    let list = r.one_or_many(node, key)?;
    if list.is_empty() {
        r.error(
            pos(node),
            format!("`{key}` lists no action"),
            Some("list one or more of: create, update, delete, replace".to_string()),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for a in list {
        let lower = a.value.to_ascii_lowercase();
        match RuleAction::ALL.into_iter().find(|x| x.name() == lower) {
            Some(action) => {
                if !out.contains(&action) {
                    out.push(action);
                }
            }
            None => {
                ok = false;
                let names = RuleAction::ALL.map(RuleAction::name);
                let valid = names.join(", ");
                let guess = ACTION_SYNONYMS
                    .iter()
                    .find(|(w, _)| *w == lower)
                    .map(|(_, x)| x.name())
                    .or_else(|| did_you_mean(&lower, names));
                let hint = match (lower.as_str(), guess) {
                    ("read" | "no-op" | "noop" | "forget", _) => format!(
                        "`{lower}` does not change infrastructure, so rules do not look at it; \
                         valid actions: {valid}"
                    ),
                    (_, Some(g)) => format!("did you mean `{g}`? valid actions: {valid}"),
                    (_, None) => format!("valid actions: {valid}"),
                };
                r.error(a.pos, format!("unknown action `{}`", a.value), Some(hint));
            }
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::core::policy::test_support::summary;

    /// Parses `text` as policy file `file`; renders the diagnostics, then the policies read.
    fn check(text: &str) -> String {
        let (policies, diags) = parse_policy_file("policies/p.yaml", text);
        let mut out = String::new();
        for d in &diags {
            writeln!(out, "{d}").unwrap();
        }
        writeln!(out, "=> {} policies", policies.len()).unwrap();
        for p in &policies {
            out.push_str(&summary(p));
        }
        out
    }

    #[test]
    fn a_policy_file_holds_at_most_max_policies() {
        let mut text = String::from("version: 1\npolicies:\n");
        for i in 0..=MAX_POLICIES {
            text.push_str(&format!(
                "  - {{name: p{i}, rules: [{{deny: [delete]}}]}}\n"
            ));
        }
        let out = check(&text);
        assert!(
            out.starts_with(
                "policies/p.yaml:3:3: error: `policies` lists 1001 entries; Sluice reads at most 1000"
            ),
            "{out}"
        );
    }

    #[test]
    fn full_example() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: protect-prod
    description: Databases in prod are protected.
    scope:
      projects: ["prod-*", "envs/prod/**"]
      workspaces: default
      branches: [main, "release/*"]
    access:
      apply: { teams: [Acme/Infra], users: ["@Alice"] }
      unlock: { users: alice }
      approve_policies: { teams: [acme/dba] }
    approvals:
      minimum: 2
      from: { teams: [acme/platform] }
      ignore_stale: true
    rules:
      - name: no-db-destroys
        deny: [delete, replace]
        resource_types: [aws_db_instance, "aws_rds_*"]
      - require_approval: update
        addresses: ["module.db.*", "aws_instance.web[0]"]
        approvals:
          any_of:
            - { minimum: 1, from: { teams: [acme/dba] } }
            - { minimum: 2, from: { users: [bob, carol] } }
      - max_destroys: 10
      - max_changes: 0
        resource_types: [aws_iam_role]
      - deny_providers: [hashicorp/external]
      - require_tags: [Owner, CostCenter]
        tag_attributes: labels
    on_failure: require_override
    owners: { teams: [acme/dba], users: [carol] }
  - name: warn-only
    approvals:
      all_of:
        - from: { users: [dave] }
        - minimum: 1
    on_failure: warn
"#), @r"
            => 2 policies
            protect-prod @ policies/p.yaml:4:5 on_failure=require_override owners=[@carol acme/dba]
              scope: projects=prod-*|envs/prod/** workspaces=default branches=main|release/*
              access apply [@alice acme/infra]
              access unlock [@alice]
              access approve_policies [acme/dba]
              approvals all_of(2×[acme/platform]) fresh-only
              rule 19:9 no-db-destroys [deny delete,replace] types=aws_db_instance|aws_rds_* addresses=*
              rule 22:9 require_approval [require_approval update any_of(1×[acme/dba], 2×[@bob @carol])] types=* addresses=module.db.*|aws_instance.web[0]
              rule 28:9 max_destroys [max_destroys 10] types=* addresses=*
              rule 29:9 max_changes [max_changes 0] types=aws_iam_role addresses=*
              rule 31:9 deny_providers [deny_providers hashicorp/external] types=* addresses=*
              rule 32:9 require_tags [require_tags Owner,CostCenter in labels] types=* addresses=*
            warn-only @ policies/p.yaml:36:5 on_failure=warn owners=[]
              scope: projects=* workspaces=* branches=*
              approvals all_of(1×[@dave], 1×anyone)
        ");
    }

    #[test]
    fn yaml_errors() {
        insta::assert_snapshot!(check("version: 1\npolicies:\n  - name: [x\n"), @r"
            policies/p.yaml:4:1: error: invalid YAML: while parsing a flow sequence, expected ',' or ']'
              hint: check indentation and quoting around this spot
            => 0 policies
        ");
        insta::assert_snapshot!(check("version: 1\npolicies:\n  - name: a\n    name: b\n"), @r"
            policies/p.yaml:4:5: error: key `name` appears twice in the same mapping (first at line 3)
              hint: remove one of them; YAML would silently keep only the last
            => 0 policies
        ");
        insta::assert_snapshot!(check("version: 1\npolicies:\n  - name: a\n    access: { apply: { users: [@alice] } }\n"), @r#"
            policies/p.yaml:4:32: error: invalid YAML: unexpected character: `@'
              hint: `@` cannot start a plain YAML value: write the name without it (`alice`), or quote it (`"@alice"`)
            => 0 policies
        "#);
        insta::assert_snapshot!(check("- version: 1\n"), @r"
            policies/p.yaml:1:1: error: the file must be a mapping of keys to values
              hint: start with `version: 1`, then `policies:`
            => 0 policies
        ");
        insta::assert_snapshot!(check("# nothing yet\n"), @r"
            policies/p.yaml:1:1: error: `policies/p.yaml` is empty (or only comments)
              hint: start it with `version: 1` and a `policies:` list, or delete it
            => 0 policies
        ");
        insta::assert_snapshot!(check("version: 1\npolicies:\n  - &p { name: a, rules: [{max_destroys: 1}] }\n  - *p\n"), @r"
            policies/p.yaml:3:8: error: YAML anchors and aliases (`&name`, `*name`) are not supported
              hint: write the value out in each place; Sluice reads a plain subset of YAML so every value has exactly one position in the file
            => 0 policies
        ");
    }

    #[test]
    fn versions_and_top_level() {
        insta::assert_snapshot!(check("version: 2\npolicies: [{nme: x}]\n"), @r"
            policies/p.yaml:1:10: error: unsupported policy file version `2`; this Sluice reads version 1
              hint: if the file was written for a newer Sluice, upgrade the server
            => 0 policies
        ");
        insta::assert_snapshot!(check("policies: []\n"), @r"
            policies/p.yaml:1:1: error: missing `version`
              hint: add `version: 1` at the top of the file
            => 0 policies
        ");
        insta::assert_snapshot!(check("version: 1\n"), @r"
            policies/p.yaml:1:1: error: missing `policies`
              hint: add a `policies:` list with at least one `- name: …` entry
            => 0 policies
        ");
        insta::assert_snapshot!(check("version: 1\npolicies: []\npolicy: x\n"), @r"
            policies/p.yaml:2:11: warning: `policies` is empty
              hint: list at least one policy, or remove `policies: []`
            policies/p.yaml:3:1: error: unknown key `policy` at the top level of a policy file
              hint: valid keys here: version, policies
            => 0 policies
        ");
    }

    #[test]
    fn unknown_keys_with_did_you_mean() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: a
    scoep: { projects: [x] }
    scope: { project: [x], branch: main }
    access: { aply: { users: [a] }, apply: { user: [a], teams: [acme/x] } }
    approvals: { minimun: 2, from: { teams: [acme/x] }, ignore_stale: true }
    rules:
      - deny: [delete]
        resource_type: [aws_db_instance]
      - max_destroys: 1
        approvals: { minimum: 1 }
      - requires_tags: [Owner]
    onfailure: warn
"#), @r"
            policies/p.yaml:5:5: error: unknown key `scoep` in policy
              hint: did you mean `scope`? valid keys here: name, description, scope, access, approvals, rules, on_failure, owners
            policies/p.yaml:6:14: error: unknown key `project` in `scope`
              hint: did you mean `projects`? valid keys here: projects, workspaces, branches
            policies/p.yaml:6:28: error: unknown key `branch` in `scope`
              hint: did you mean `branches`? valid keys here: projects, workspaces, branches
            policies/p.yaml:7:15: error: unknown key `aply` in `access`
              hint: did you mean `apply`? valid keys here: plan, apply, unlock, approve_policies
            policies/p.yaml:7:46: error: unknown key `user` in `apply`
              hint: did you mean `users`? valid keys here: users, teams
            policies/p.yaml:8:18: error: unknown key `minimun` in `approvals`
              hint: did you mean `minimum`? valid keys here: minimum, from, ignore_stale, all_of, any_of
            policies/p.yaml:11:9: error: unknown key `resource_type` in rule
              hint: did you mean `resource_types`? valid keys here: deny, require_approval, max_destroys, max_changes, deny_providers, require_tags, name, resource_types, addresses, approvals, tag_attributes
            policies/p.yaml:13:9: error: `approvals` does not apply to a `max_destroys` rule
              hint: a `max_destroys` rule takes: name, resource_types, addresses
            policies/p.yaml:14:9: error: unknown key `requires_tags` in rule
              hint: did you mean `require_tags`? valid keys here: deny, require_approval, max_destroys, max_changes, deny_providers, require_tags, name, resource_types, addresses, approvals, tag_attributes
            policies/p.yaml:15:5: error: unknown key `onfailure` in policy
              hint: did you mean `on_failure`? valid keys here: name, description, scope, access, approvals, rules, on_failure, owners
            => 0 policies
        ");
    }

    #[test]
    fn unknown_actions_and_outcomes() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: a
    rules:
      - deny: [destroy, Create, updat, read, teleport, remove]
      - require_approval: []
        approvals: { minimum: 1 }
      - deny: recreate
    on_failure: block
  - name: b
    rules: [{ max_changes: 1 }]
    on_failure: overide
"#), @r"
            policies/p.yaml:6:16: error: unknown action `destroy`
              hint: did you mean `delete`? valid actions: create, update, delete, replace
            policies/p.yaml:6:33: error: unknown action `updat`
              hint: did you mean `update`? valid actions: create, update, delete, replace
            policies/p.yaml:6:40: error: unknown action `read`
              hint: `read` does not change infrastructure, so rules do not look at it; valid actions: create, update, delete, replace
            policies/p.yaml:6:46: error: unknown action `teleport`
              hint: valid actions: create, update, delete, replace
            policies/p.yaml:6:56: error: unknown action `remove`
              hint: did you mean `delete`? valid actions: create, update, delete, replace
            policies/p.yaml:7:27: error: `require_approval` lists no action
              hint: list one or more of: create, update, delete, replace
            policies/p.yaml:9:15: error: unknown action `recreate`
              hint: did you mean `replace`? valid actions: create, update, delete, replace
            policies/p.yaml:10:17: error: unknown `on_failure` value `block`
              hint: did you mean `deny`? valid values: deny, require_override, warn
            policies/p.yaml:13:17: error: unknown `on_failure` value `overide`
              hint: valid values: deny, require_override, warn
            => 0 policies
        ");
    }

    #[test]
    fn globs_that_do_not_compile() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: a
    scope:
      projects: ["envs/[prod", ""]
      workspaces: []
      branches: ["release/{a,b"]
    rules:
      - deny: [delete]
        resource_types: ["aws_[db"]
        addresses: ["module.{db.*", "aws_instance.web[0]"]
      - deny_providers: ["hashicorp/[x"]
"#), @r"
            policies/p.yaml:6:18: error: `envs/[prod` is not a valid glob: unclosed character class; missing ']'
            policies/p.yaml:6:32: error: an empty pattern matches nothing
            policies/p.yaml:7:19: error: `workspaces: []` matches nothing
              hint: remove `workspaces` to match everything, or list patterns
            policies/p.yaml:8:18: error: `release/{a,b` is not a valid glob: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)
            policies/p.yaml:11:26: error: `aws_[db` is not a valid glob: unclosed character class; missing ']'
            policies/p.yaml:12:21: error: `module.{db.*` is not a valid glob: unclosed alternate group; missing '}'
              hint: in addresses `*` matches any characters and `[` `]` are literal
            policies/p.yaml:13:26: error: `hashicorp/[x` is not a valid glob: unclosed character class; missing ']'
            => 0 policies
        ");
    }

    #[test]
    fn wrong_types() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: a
    scope: prod
    access: [apply]
    approvals:
      minimum: "2"
      ignore_stale: yes
    rules:
      - max_destroys: ten
      - max_changes: -1
      - max_destroys: 1.5
      - require_tags: { Owner: true }
  - just-a-name
  - name: { x: 1 }
    rules: { deny: [delete] }
  - description: no name
    rules: [{ max_changes: 3 }]
"#), @r#"
            policies/p.yaml:5:12: error: `scope` should be a mapping of keys to values, found `prod`
            policies/p.yaml:6:13: error: `access` should be a mapping of keys to values, found a list
            policies/p.yaml:8:16: error: `minimum` should be a whole number like `10`, found the quoted string `"2"`
              hint: write it without quotes: quoted values are strings
            policies/p.yaml:9:21: error: `ignore_stale` should be `true` or `false`, found `yes`
            policies/p.yaml:11:23: error: `max_destroys` should be a whole number like `10`, found `ten`
            policies/p.yaml:12:22: error: `max_changes` should be a whole number like `10`, found `-1`
            policies/p.yaml:13:23: error: `max_destroys` should be a whole number like `10`, found `1.5`
            policies/p.yaml:14:23: error: `require_tags` should be a list, found a mapping
              hint: write `require_tags: [a, b]` or one `- item` per line
            policies/p.yaml:15:5: error: each entry of `policies` should be a mapping of keys to values, found `just-a-name`
            policies/p.yaml:16:11: error: `name` should be a single value, found a mapping
            policies/p.yaml:17:12: error: `rules` should be a list, found a mapping
              hint: write `rules: [a, b]` or one `- item` per line
            policies/p.yaml:18:5: error: policy has no `name`
              hint: add `name: …` (letters, digits, `-`, `_`, `.`); owners override a policy by this name with `approve_policies --policy-set NAME`
            => 0 policies
        "#);
    }

    #[test]
    fn principals_must_be_github_names() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: a
    access:
      apply: { users: [acme/infra, "bad name", "dependabot[bot]"], teams: [infra, "acme/", "acme/in fra", "@acme/ok"] }
      plan: {}
      unlock: { users: [] }
"#), @r"
            policies/p.yaml:6:24: error: `acme/infra` is a team, not a user
              hint: list teams under `teams:`
            policies/p.yaml:6:36: error: `bad name` is not a GitHub login
              hint: logins are letters, digits and `-` (bots end in `[bot]`)
            policies/p.yaml:6:76: error: team `infra` needs its organisation
              hint: write `org/infra` (e.g. `acme/infra`); users go under `users:`
            policies/p.yaml:6:83: error: `acme/` is not a GitHub team
              hint: write `org/team-slug`, e.g. `acme/platform`
            policies/p.yaml:6:92: error: `acme/in fra` is not a GitHub team
              hint: write `org/team-slug`, e.g. `acme/platform`
            policies/p.yaml:7:13: warning: nobody may run `plan` where this policy applies
              hint: list `users` or `teams`, or remove `plan` to leave the command unrestricted
            policies/p.yaml:8:15: warning: nobody may run `unlock` where this policy applies
              hint: list `users` or `teams`, or remove `unlock` to leave the command unrestricted
            => 0 policies
        ");
    }

    #[test]
    fn approvals_shapes() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: a
    approvals:
      minimum: 1
      any_of: [{ minimum: 1 }]
  - name: b
    approvals:
      all_of: [{ minimum: 1 }]
      any_of: [{ minimum: 1 }]
  - name: c
    approvals:
      any_of: []
  - name: d
    approvals:
      minimum: 3
      from: { users: [alice, bob] }
  - name: e
    approvals:
      from: {}
  - name: f
    approvals:
      minimum: 0
  - name: g
    rules:
      - require_approval: [delete]
"#), @r"
            policies/p.yaml:7:15: error: `minimum` and a list of groups cannot be combined
              hint: either write `minimum`/`from` directly under `approvals`, or give each group its own `minimum`/`from` under `all_of`/`any_of`
            policies/p.yaml:11:15: error: use either `all_of` or `any_of`, not both
              hint: to require several groups, list them all under `all_of`
            policies/p.yaml:14:15: error: `any_of` lists no groups
              hint: add groups like `- { minimum: 1, from: { teams: [org/team] } }`
            policies/p.yaml:17:7: error: `minimum: 3` can never be met: only 2 users can approve
              hint: lower `minimum`, or add users or teams to `from`
            policies/p.yaml:21:13: error: `from` lists nobody, so no approval could ever count
              hint: list `users` or `teams`, or remove `from` to count anyone's approval
            policies/p.yaml:24:7: warning: `minimum: 0` requires no approval
              hint: remove the requirement, or set `minimum` to 1 or more
            policies/p.yaml:27:9: error: a `require_approval` rule needs `approvals` saying whose approval
              hint: add e.g. `approvals: { minimum: 1, from: { teams: [acme/dba] } }`
            => 1 policies
            f @ policies/p.yaml:22:5 on_failure=deny owners=[]
              scope: projects=* workspaces=* branches=*
              approvals all_of(0×anyone)
        ");
    }

    #[test]
    fn outcomes_and_owners_must_agree() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: needs-owners
    rules: [{ max_destroys: 0 }]
    on_failure: require_override
  - name: useless-owners
    rules: [{ max_destroys: 0 }]
    owners: { users: [carol] }
  - name: nothing
    description: checks nothing
  - name: "-bad"
    rules: [{ max_destroys: 0 }]
  - name: has space
    rules: [{ max_destroys: 0 }]
"#), @r"
            policies/p.yaml:6:17: error: `on_failure: require_override` needs `owners` who may override
              hint: add `owners: { teams: [org/team] }` or `owners: { users: [login] }`
            policies/p.yaml:9:13: warning: `owners` has no effect with `on_failure: deny`: only `require_override` can be overridden
              hint: set `on_failure: require_override`, or remove `owners`
            policies/p.yaml:10:5: warning: this policy checks nothing
              hint: add `access`, `approvals` or `rules`
            policies/p.yaml:12:11: error: policy name `-bad` is not allowed
              hint: use up to 100 letters, digits, `-`, `_`, `.`, `/` or `:`, not starting with `-` (it is typed in `approve_policies --policy-set NAME`)
            policies/p.yaml:14:11: error: policy name `has space` is not allowed
              hint: use up to 100 letters, digits, `-`, `_`, `.`, `/` or `:`, not starting with `-` (it is typed in `approve_policies --policy-set NAME`)
            => 2 policies
            useless-owners @ policies/p.yaml:7:5 on_failure=deny owners=[@carol]
              scope: projects=* workspaces=* branches=*
              rule 8:15 max_destroys [max_destroys 0] types=* addresses=*
            nothing @ policies/p.yaml:10:5 on_failure=deny owners=[]
              scope: projects=* workspaces=* branches=*
        ");
    }

    #[test]
    fn one_rule_one_kind() {
        insta::assert_snapshot!(check(r#"
version: 1
policies:
  - name: a
    rules:
      - deny: [delete]
        max_destroys: 3
      - name: nothing
        resource_types: [aws_db_instance]
      - deny_providers: [hashicorp/null]
        resource_types: [null_resource]
      - require_tags: []
"#), @r"
            policies/p.yaml:7:9: error: a rule checks one thing, and this one has `deny` and `max_destroys`
              hint: split it into two entries of `rules`
            policies/p.yaml:8:9: error: this rule does not say what it checks
              hint: start it with one of: deny, require_approval, max_destroys, max_changes, deny_providers, require_tags
            policies/p.yaml:11:9: error: `resource_types` does not apply to a `deny_providers` rule
              hint: a `deny_providers` rule takes: name
            policies/p.yaml:12:23: error: `require_tags` lists no tag
              hint: list the tag keys every created resource must have, e.g. `[Owner, CostCenter]`
            => 0 policies
        ");
    }
}
