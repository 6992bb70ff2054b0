//! The policy model: what a parsed policy file says, as plain values with the position of every
//! part, so a decision can point at the line that made it.
//!
//! Only the parser ([`super::parse`]) builds these values, and only from files without errors,
//! so every pattern here compiled and every name is valid. Nothing here evaluates or does I/O.

use std::fmt;

use globset::GlobMatcher;
use serde::Serialize;

use crate::core::command::CommandKind;
use crate::core::glob::build_glob;
use crate::core::repo_config::{Located, Pos};

/// One policy: a scope, the checks that apply inside it, and what a failure means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Unique among the repository's policies; what `approve_policies --policy-set` names.
    pub name: String,
    pub description: Option<String>,
    /// The file it was read from (`policies/x.yaml`, or `sluice.yaml` for inline policies).
    pub file: String,
    /// Where the entry starts (its first key).
    pub pos: Pos,
    pub scope: Scope,
    /// Who may run which command; a command without an entry is not restricted by this policy.
    pub access: Vec<AccessRule>,
    /// Approvals `apply` needs (on top of the repository's own `approved` requirement).
    pub approvals: Option<Approvals>,
    /// Rules over the plan's content.
    pub rules: Vec<PlanRule>,
    pub on_failure: OnFailure,
    /// Who may override a failure (`on_failure: require_override`).
    pub owners: Principals,
    /// For a Rego policy set (`policy_sets`): its files and, once attached, its result on the
    /// plan. `None` for the YAML policies above.
    pub rego: Option<super::rego::RegoPolicy>,
}

/// Which projects, workspaces and PR target branches a policy covers. `None` means "all"; a list
/// matches when any of its patterns does, and the policy applies when every dimension matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Project names or dirs (`prod-*`, `envs/prod/**`).
    pub projects: Option<Vec<Pattern>>,
    pub workspaces: Option<Vec<Pattern>>,
    /// The PR's target (base) branch.
    pub branches: Option<Vec<Pattern>>,
}

/// The command a policy decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Plan,
    Apply,
    Unlock,
    ApprovePolicies,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::Plan,
        Stage::Apply,
        Stage::Unlock,
        Stage::ApprovePolicies,
    ];

    /// The stage a comment command is checked at; `help` and `version` are never restricted.
    pub fn for_command(kind: CommandKind) -> Option<Stage> {
        match kind {
            CommandKind::Plan => Some(Stage::Plan),
            // `import` / `state rm` change the state as an apply does: whoever may not apply may
            // not run them either.
            CommandKind::Apply | CommandKind::Import | CommandKind::StateRm => Some(Stage::Apply),
            CommandKind::Unlock => Some(Stage::Unlock),
            CommandKind::ApprovePolicies => Some(Stage::ApprovePolicies),
            // `rollback` only opens a pull request, which is then gated like any other; who may
            // ask is GitHub's write permission on the repository.
            CommandKind::Help | CommandKind::Version | CommandKind::Rollback => None,
        }
    }

    /// The command word, which is also the key under `access:`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Plan => "plan",
            Stage::Apply => "apply",
            Stage::Unlock => "unlock",
            Stage::ApprovePolicies => "approve_policies",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `access: { apply: { users: [...], teams: [...] } }`: only these principals may run `stage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub stage: Stage,
    pub allowed: Principals,
    /// The position of the command key (`apply:`).
    pub pos: Pos,
}

/// GitHub users and teams. Logins are stored lowercase (GitHub compares them case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    pub users: Vec<Located<String>>,
    pub teams: Vec<Located<TeamRef>>,
}

impl Principals {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.teams.is_empty()
    }

    /// The principals as a list for decisions and the audit log.
    pub fn to_list(&self) -> Vec<Principal> {
        self.users
            .iter()
            .map(|u| Principal::User(u.value.clone()))
            .chain(
                self.teams
                    .iter()
                    .map(|t| Principal::Team(t.value.to_string())),
            )
            .collect()
    }
}

/// A user or a team, as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    /// A login, lowercase.
    User(String),
    /// `org/slug`, lowercase.
    Team(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(u) => write!(f, "@{u}"),
            Principal::Team(t) => write!(f, "team {t}"),
        }
    }
}

/// A GitHub team, `org/slug`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TeamRef {
    pub org: String,
    pub slug: String,
}

impl fmt::Display for TeamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.slug)
    }
}

/// How approval groups combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Every group must be satisfied (`all_of`, and the single-group short form).
    AllOf,
    /// One satisfied group is enough (`any_of`).
    AnyOf,
}

/// An approvals requirement: groups combined by [`Combine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvals {
    pub combine: Combine,
    pub groups: Vec<ApprovalGroup>,
    /// Only approvals of the PR's current head commit count.
    pub ignore_stale: bool,
    pub pos: Pos,
}

/// At least `minimum` approvals from `from` (anyone but the author when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalGroup {
    pub minimum: u32,
    pub from: Option<Principals>,
    pub pos: Pos,
}

/// An action a rule can name. A replacement is both a delete and a create: rules on `delete` or
/// `create` catch replacements too, and `replace` catches only them (see [`RuleAction::matches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Create,
    Update,
    Delete,
    Replace,
}

/// What terraform does to one object, as far as rules are concerned (no-ops, reads and forgets
/// are not changes to infrastructure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    Replace,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 4] = [
        ChangeKind::Create,
        ChangeKind::Update,
        ChangeKind::Delete,
        ChangeKind::Replace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
            ChangeKind::Replace => "replace",
        }
    }

    /// The verb used in reasons ("replaces `aws_db_instance.main`").
    pub fn verb(self) -> &'static str {
        match self {
            ChangeKind::Create => "creates",
            ChangeKind::Update => "updates",
            ChangeKind::Delete => "deletes",
            ChangeKind::Replace => "replaces",
        }
    }
}

impl RuleAction {
    pub const ALL: [RuleAction; 4] = [
        RuleAction::Create,
        RuleAction::Update,
        RuleAction::Delete,
        RuleAction::Replace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuleAction::Create => "create",
            RuleAction::Update => "update",
            RuleAction::Delete => "delete",
            RuleAction::Replace => "replace",
        }
    }

    /// Whether a rule naming this action applies to a change of this kind. A replacement
    /// destroys an object and creates one, so forgetting `replace` in `deny: [delete]` cannot
    /// let a database be replaced (destroyed) unnoticed.
    pub fn matches(self, change: ChangeKind) -> bool {
        match self {
            RuleAction::Create => matches!(change, ChangeKind::Create | ChangeKind::Replace),
            RuleAction::Update => change == ChangeKind::Update,
            RuleAction::Delete => matches!(change, ChangeKind::Delete | ChangeKind::Replace),
            RuleAction::Replace => change == ChangeKind::Replace,
        }
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which resources a rule looks at: all when both are `None`; otherwise a resource must match
/// every given list (any pattern of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFilter {
    pub resource_types: Option<Vec<Pattern>>,
    pub addresses: Option<Vec<Pattern>>,
}

impl ResourceFilter {
    pub fn matches(&self, resource_type: &str, address: &str) -> bool {
        let any = |list: &Option<Vec<Pattern>>, s: &str| {
            list.as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p.is_match(s)))
        };
        any(&self.resource_types, resource_type) && any(&self.addresses, address)
    }

    pub fn is_all(&self) -> bool {
        self.resource_types.is_none() && self.addresses.is_none()
    }
}

/// One entry of `rules:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRule {
    /// The rule's own `name`, shown in reasons instead of its kind.
    pub name: Option<String>,
    pub kind: RuleKind,
    pub filter: ResourceFilter,
    /// Where the rule's entry starts.
    pub pos: Pos,
}

impl PlanRule {
    /// How reasons name the rule: its `name`, else its kind (`deny`, `max_destroys`, …).
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.kind.keyword().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// Matching changes fail the policy.
    Deny { actions: Vec<RuleAction> },
    /// Matching changes need these approvals.
    RequireApproval {
        actions: Vec<RuleAction>,
        approvals: Approvals,
    },
    /// At most this many objects destroyed (deletes and replacements).
    MaxDestroys(u32),
    /// At most this many objects created, updated, deleted or replaced.
    MaxChanges(u32),
    /// Resources of these providers may not be created, updated or replaced (deleting them is
    /// allowed, so that removing a forbidden provider is possible).
    DenyProviders(Vec<Pattern>),
    /// Created (or replaced) resources that have one of `attributes` must carry these tag keys.
    RequireTags {
        tags: Vec<String>,
        attributes: Vec<String>,
    },
}

impl RuleKind {
    /// The YAML key of this kind.
    pub fn keyword(&self) -> &'static str {
        match self {
            RuleKind::Deny { .. } => "deny",
            RuleKind::RequireApproval { .. } => "require_approval",
            RuleKind::MaxDestroys(_) => "max_destroys",
            RuleKind::MaxChanges(_) => "max_changes",
            RuleKind::DenyProviders(_) => "deny_providers",
            RuleKind::RequireTags { .. } => "require_tags",
        }
    }
}

/// What a failing policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Blocks; nobody can override (change the policy on the base branch instead).
    #[default]
    Deny,
    /// Blocks until one of the policy's owners runs `approve_policies`.
    RequireOverride,
    /// Shown, never blocks.
    Warn,
}

impl OnFailure {
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::Deny => "deny",
            OnFailure::RequireOverride => "require_override",
            OnFailure::Warn => "warn",
        }
    }
}

/// How a pattern's wildcards behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// Paths and branch names: `*` and `?` stay within one `/`-separated segment, `**` crosses
    /// segments (like `when_modified` and GitHub's branch protection patterns).
    Path,
    /// Names without structure (workspaces, resource types): `*` matches anything.
    Name,
    /// Resource addresses: `*` matches anything (dots and brackets included), and `[` `]` are
    /// literal, so `aws_instance.web[0]` means that very instance rather than a character class.
    Address,
}

/// A compiled glob that remembers what was written and where. Equality is by text and position.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    pos: Pos,
    kind: PatternKind,
    matcher: GlobMatcher,
    /// For `dir/**`: also matches `dir` itself, which is what people mean by "everything in dir".
    prefix: Option<GlobMatcher>,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.pos == other.pos
    }
}
impl Eq for Pattern {}

impl Pattern {
    /// Compiles `text`; the error is a sentence for the person who wrote it.
    pub fn new(text: &str, pos: Pos, kind: PatternKind) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing".to_string());
        }
        let glob_text = match kind {
            PatternKind::Address => escape_brackets(text),
            PatternKind::Path | PatternKind::Name => text.to_string(),
        };
        let build = |t: &str| -> Result<GlobMatcher, String> {
            let glob = match kind {
                PatternKind::Path => build_glob(t)?,
                PatternKind::Name | PatternKind::Address => globset::GlobBuilder::new(t)
                    .literal_separator(false)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| {
                        // globset suggests `[{]` for a stray `{`, which is wrong where brackets
                        // are literal; the caller's hint says how addresses work instead.
                        let why = e.kind().to_string();
                        let why = why.split(" (maybe").next().unwrap_or(&why).to_string();
                        format!("`{text}` is not a valid glob: {why}")
                    })?,
            };
            Ok(glob.compile_matcher())
        };
        let matcher = build(&glob_text)?;
        let prefix = match (kind, glob_text.strip_suffix("/**")) {
            (PatternKind::Path, Some(p)) if !p.is_empty() => Some(build(p)?),
            _ => None,
        };
        Ok(Pattern {
            text: text.to_string(),
            pos,
            kind,
            matcher,
            prefix,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn pos(&self) -> Pos {
        self.pos
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s) || self.prefix.as_ref().is_some_and(|p| p.is_match(s))
    }

    /// True for a pattern that matches everything: `**`, or `*` where `*` crosses `/`.
    pub fn is_everything(&self) -> bool {
        match self.kind {
            PatternKind::Path => self.text == "**",
            PatternKind::Name | PatternKind::Address => {
                !self.text.is_empty() && self.text.chars().all(|c| c == '*')
            }
        }
    }
}

/// `[` and `]` become literal (unless already escaped).
fn escape_brackets(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut escaped = false;
    for c in text.chars() {
        if !escaped && matches!(c, '[' | ']') {
            out.push('\\');
        }
        escaped = !escaped && c == '\\';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(text: &str, kind: PatternKind) -> Pattern {
        Pattern::new(text, Pos::default(), kind).expect("valid pattern")
    }

    #[test]
    fn pattern_kinds() {
        // (pattern, kind, input, matches)
        let cases = [
            ("prod-*", PatternKind::Path, "prod-db", true),
            ("prod-*", PatternKind::Path, "prod/db", false),
            ("envs/prod/**", PatternKind::Path, "envs/prod/network", true),
            ("envs/prod/**", PatternKind::Path, "envs/prod", true),
            ("envs/prod/**", PatternKind::Path, "envs/production", false),
            ("envs/*/net", PatternKind::Path, "envs/prod/net", true),
            ("release/*", PatternKind::Path, "release/1.2", true),
            ("release/*", PatternKind::Path, "release/1/2", false),
            ("aws_db_*", PatternKind::Name, "aws_db_instance", true),
            ("aws_db_*", PatternKind::Name, "aws_dynamodb_table", false),
            (
                "module.db.*",
                PatternKind::Address,
                "module.db.aws_db_instance.x",
                true,
            ),
            (
                "aws_instance.web[0]",
                PatternKind::Address,
                "aws_instance.web[0]",
                true,
            ),
            (
                "aws_instance.web[0]",
                PatternKind::Address,
                "aws_instance.web0",
                false,
            ),
            (
                r#"aws_s3_bucket.b["logs"]"#,
                PatternKind::Address,
                r#"aws_s3_bucket.b["logs"]"#,
                true,
            ),
            (
                "*.web[*]",
                PatternKind::Address,
                "module.a.aws_instance.web[3]",
                true,
            ),
        ];
        for (p, kind, input, want) in cases {
            assert_eq!(pat(p, kind).is_match(input), want, "{p} ~ {input}");
        }
    }

    #[test]
    fn what_matches_everything() {
        assert!(pat("**", PatternKind::Path).is_everything());
        assert!(!pat("*", PatternKind::Path).is_everything());
        assert!(!pat("*", PatternKind::Path).is_match("envs/prod"));
        assert!(pat("*", PatternKind::Name).is_everything());
        assert!(pat("*", PatternKind::Address).is_match("module.a.b[\"x/y\"]"));
    }

    #[test]
    fn bad_patterns_say_why() {
        let err = |p: &str, kind| Pattern::new(p, Pos::default(), kind).unwrap_err();
        assert_eq!(
            err("", PatternKind::Name),
            "an empty pattern matches nothing"
        );
        assert_eq!(
            err("envs/[prod", PatternKind::Path),
            "`envs/[prod` is not a valid glob: unclosed character class; missing ']'"
        );
        assert_eq!(
            err("module.{a,b", PatternKind::Address),
            "`module.{a,b` is not a valid glob: unclosed alternate group; missing '}'"
        );
    }

    #[test]
    fn replacements_count_as_delete_and_create() {
        let hits = |a: RuleAction| -> Vec<ChangeKind> {
            ChangeKind::ALL
                .into_iter()
                .filter(|c| a.matches(*c))
                .collect()
        };
        assert_eq!(
            hits(RuleAction::Delete),
            [ChangeKind::Delete, ChangeKind::Replace]
        );
        assert_eq!(
            hits(RuleAction::Create),
            [ChangeKind::Create, ChangeKind::Replace]
        );
        assert_eq!(hits(RuleAction::Replace), [ChangeKind::Replace]);
        assert_eq!(hits(RuleAction::Update), [ChangeKind::Update]);
    }
}
