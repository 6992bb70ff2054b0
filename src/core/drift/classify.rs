//! Classification: what a drift check found, per resource address, from the `terraform show
//! -json` of a refresh-only plan and of a normal plan of the same commit and state.
//!
//! * **`changed_outside`**: the refresh-only plan's `resource_drift` (the last-applied state →
//!   what the refresh read now). Someone or something changed (or deleted) the object outside
//!   Git. This is never explained away: a provider upgrade may make a refresh read values
//!   differently, but an outside change must not hide behind that, so such findings only get
//!   the upgrade as a hint.
//! * **`unapplied`**: a change of the normal plan that the drift does not explain: Git is ahead
//!   of the live infrastructure (merged but not applied).
//! * **`engine_or_provider_upgrade`**: a change of the normal plan that the drift does not
//!   explain, when the only thing that changed since the last applied commit is the engine
//!   version or the locked version of the resource's provider. See [`VersionFacts`] for the
//!   exact rule.
//!
//! A normal-plan change is *explained by drift* when it only undoes it: the object was deleted
//! outside and the plan creates it again, or every attribute path the plan changes (ignoring
//! values only known after apply) was drifted and the plan sets it back to its last-applied
//! value. A plan change that also moves a drifted attribute somewhere else is Git being ahead too,
//! and is reported as such for the paths that are not explained.
//!
//! Values are shown as compact JSON. Values marked sensitive (`before_sensitive` /
//! `after_sensitive`) are never shown, not even partly: a container with any sensitive part is
//! shown as `(sensitive value)` as a whole. Every shown value then goes through
//! [`Redactor`] with the caller's known secrets and every value either plan marks sensitive
//! anywhere, and only after that is it cut to [`MAX_VALUE_CHARS`]. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fingerprint::{Fingerprint, ValuesDigest};
use crate::core::plan::diff::natural_cmp;
use crate::core::plan::model::{Action, Change, Plan, ResourceChange, ResourceMode};
use crate::core::plan::redact::Redactor;

/// Longest value (in characters, after redaction) kept in a finding; longer ones end in `…`.
pub const MAX_VALUE_CHARS: usize = 300;

/// The three answers a drift check gives about a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftClass {
    /// Changed (or deleted) outside Git, from the refresh-only plan's `resource_drift`.
    ChangedOutside,
    /// A change the normal plan wants that only an engine or provider upgrade explains.
    EngineOrProviderUpgrade,
    /// A change the normal plan wants that the drift does not explain: Git is ahead.
    Unapplied,
}

impl DriftClass {
    pub const ALL: [DriftClass; 3] = [
        DriftClass::ChangedOutside,
        DriftClass::EngineOrProviderUpgrade,
        DriftClass::Unapplied,
    ];

    /// The stable name used in reports, events and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftClass::ChangedOutside => "changed_outside",
            DriftClass::EngineOrProviderUpgrade => "engine_or_provider_upgrade",
            DriftClass::Unapplied => "unapplied",
        }
    }

    /// How a report names it for people.
    pub fn label(self) -> &'static str {
        match self {
            DriftClass::ChangedOutside => "changed outside Git",
            DriftClass::EngineOrProviderUpgrade => "engine or provider upgrade",
            DriftClass::Unapplied => "unapplied (Git is ahead)",
        }
    }
}

impl fmt::Display for DriftClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of an attribute path: an object key or map key, or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathStep {
    Key(String),
    Index(u64),
}

/// A path inside a resource's attributes, e.g. `triggers["%"]` or `ingress[0].cidr_blocks`.
/// Serialized as terraform writes `replace_paths`: a JSON array of strings (keys) and integers
/// (indexes). The empty path means the whole object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttrPath(pub Vec<PathStep>);

impl AttrPath {
    pub fn steps(&self) -> &[PathStep] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `self` is `other` or lies inside it (or the other way round).
    pub fn overlaps(&self, other: &AttrPath) -> bool {
        let n = self.0.len().min(other.0.len());
        self.0[..n] == other.0[..n]
    }
}

/// `triggers.image`, `triggers["%"]`, `ingress[0].cidr_blocks`: keys that are identifiers
/// follow a dot, others are quoted in brackets (both are valid terraform expressions on
/// objects and maps alike). The root path displays as `(whole object)`.
impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(whole object)");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Key(k) if is_identifier(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                PathStep::Key(k) => {
                    let quoted = serde_json::to_string(k).map_err(|_| fmt::Error)?;
                    write!(f, "[{quoted}]")?;
                }
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn is_identifier(k: &str) -> bool {
    k.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One side of an attribute change, as a report may show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ShownValue {
    /// Not set (absent or `null`).
    Absent,
    /// Compact JSON, redacted and cut to [`MAX_VALUE_CHARS`].
    Value(String),
    /// Marked sensitive by the plan: never shown.
    Sensitive,
    /// Only known after apply.
    Unknown,
}

impl fmt::Display for ShownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShownValue::Absent => f.write_str("(none)"),
            ShownValue::Value(v) => f.write_str(v),
            ShownValue::Sensitive => f.write_str("(sensitive value)"),
            ShownValue::Unknown => f.write_str("(known after apply)"),
        }
    }
}

/// A changed attribute: its path and both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub path: AttrPath,
    pub before: ShownValue,
    pub after: ShownValue,
}

/// What changed between the last applied commit and now that may explain a plan change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Upgrade {
    /// The terraform/tofu version.
    Engine { from: String, to: String },
    /// The version locked in `.terraform.lock.hcl` for the resource's provider.
    Provider {
        /// Full source address, e.g. `registry.terraform.io/hashicorp/aws`.
        provider: String,
        from: String,
        to: String,
    },
}

impl fmt::Display for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upgrade::Engine { from, to } => write!(f, "engine {from} → {to}"),
            Upgrade::Provider { provider, from, to } => {
                write!(f, "provider {provider} {from} → {to}")
            }
        }
    }
}

/// One classified change of one resource (or output). A resource may have two findings, e.g.
/// `changed_outside` for one attribute and `unapplied` for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub class: DriftClass,
    /// The address as people read it (with ` (deposed object KEY)` for deposed objects);
    /// outputs are `output.NAME`.
    pub address: String,
    /// For `changed_outside`: `update` (changed) or `delete` (deleted outside). Otherwise what
    /// the normal plan would do.
    pub action: Action,
    /// Empty for outputs.
    pub resource_type: String,
    /// Empty for outputs.
    pub provider_name: String,
    /// Every changed attribute (before → after), sorted by path. For creates and deletes these
    /// are the attributes of the whole object.
    pub changes: Vec<AttributeChange>,
    /// For `engine_or_provider_upgrade`, what changed; for the other classes, upgrades that
    /// may also play a part (shown as a hint, never used to explain an outside change away).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrades: Vec<Upgrade>,
    /// A short fact for people, e.g. `moved from null_resource.old`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Finding {
    /// The paths that identify this finding in a [`Fingerprint`]: none for whole-object
    /// actions (create, delete, forget, move/import only), since every attribute is involved;
    /// the changed attribute paths otherwise.
    pub fn fingerprint_paths(&self) -> Vec<&AttrPath> {
        match self.action {
            Action::Update | Action::DeleteThenCreate | Action::CreateThenDelete => {
                self.changes.iter().map(|c| &c.path).collect()
            }
            Action::Create | Action::Delete | Action::Forget | Action::Read | Action::NoOp => {
                Vec::new()
            }
        }
    }
}

/// How many resources (and outputs) each class has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub changed_outside: usize,
    pub engine_or_provider_upgrade: usize,
    pub unapplied: usize,
}

impl ClassCounts {
    pub fn get(&self, class: DriftClass) -> usize {
        match class {
            DriftClass::ChangedOutside => self.changed_outside,
            DriftClass::EngineOrProviderUpgrade => self.engine_or_provider_upgrade,
            DriftClass::Unapplied => self.unapplied,
        }
    }

    pub fn total(&self) -> usize {
        self.changed_outside + self.engine_or_provider_upgrade + self.unapplied
    }
}

/// The result of a check that ran both plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// Sorted by address (naturally: `x[2]` before `x[10]`), then class.
    pub findings: Vec<Finding>,
    /// Identity of the drift (see [`Fingerprint`]).
    pub fingerprint: Fingerprint,
    /// Digest of what the report shows (see [`ValuesDigest`]).
    pub values: ValuesDigest,
    /// `terraform_version` of the normal plan.
    pub engine_version: String,
}

impl Classification {
    /// Nothing changed outside, nothing unapplied: the project is in sync.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Resources (and outputs) per class. A resource with two findings counts once in each.
    pub fn counts(&self) -> ClassCounts {
        let mut c = ClassCounts::default();
        for f in &self.findings {
            match f.class {
                DriftClass::ChangedOutside => c.changed_outside += 1,
                DriftClass::EngineOrProviderUpgrade => c.engine_or_provider_upgrade += 1,
                DriftClass::Unapplied => c.unapplied += 1,
            }
        }
        c
    }

    /// The findings of one class, in order.
    pub fn of_class(&self, class: DriftClass) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.class == class)
    }
}

/// Engine and provider versions at one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSnapshot {
    /// e.g. `1.0.3` (a leading `v` is ignored). `None` when unknown.
    pub engine_version: Option<String>,
    /// The contents of the project's `.terraform.lock.hcl`; `None` when there is none.
    pub lock_file: Option<String>,
}

/// What the app knows about versions, for the `engine_or_provider_upgrade` rule.
///
/// **The rule.** A change of the normal plan that the drift does not explain is classified
/// `engine_or_provider_upgrade` exactly when
/// 1. the last applied commit is known (`last_applied` is `Some`), and
/// 2. no file of the project other than `.terraform.lock.hcl` changed between the last applied
///    commit and the checked commit (`config_changed` is `false`: the project's dir and the
///    local modules it uses, as the app computes from git), and
/// 3. the engine version differs between the two, or the locked version of the resource's own
///    provider does (outputs count only the engine).
///
/// Then nothing but the upgrade can have produced the change. Whenever the configuration also
/// changed, the two cannot be told apart from the plan JSON, so the change is `unapplied` with
/// the upgrades listed as a hint: it needs an apply either way, and calling a configuration
/// change an "upgrade" could make people wave it through. A lock file Sluice cannot parse
/// counts as "provider versions unknown" (no provider upgrade is claimed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionFacts {
    /// Versions at the last commit Sluice applied for this project; `None` when unknown.
    pub last_applied: Option<VersionSnapshot>,
    /// Versions at the checked commit (the engine version that ran the check).
    pub current: VersionSnapshot,
    /// Whether any file of the project other than `.terraform.lock.hcl` changed since the last
    /// applied commit.
    pub config_changed: bool,
}

/// The input of [`classify`]: both plans of one check.
#[derive(Debug, Clone, Copy)]
pub struct CheckPlans<'a> {
    /// `terraform plan -refresh-only -out=…` then `show -json`.
    pub refresh_only: &'a Plan,
    /// `terraform plan -out=…` then `show -json`, on the same commit and state.
    pub plan: &'a Plan,
}

/// Why a check's plans cannot be classified. Any of these means the check failed: an
/// incomplete answer must never read as "in sync".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error(
        "terraform reported errors while making the {0} plan, so it is incomplete; the check cannot tell whether the project is in sync"
    )]
    Errored(&'static str),
    #[error(
        "the refresh-only plan proposes changes to {0}; it does not look like the output of `plan -refresh-only`"
    )]
    NotRefreshOnly(String),
}

/// Classifies one check. `secrets` are the values the app knows to be secret (project
/// variables, credentials); every value either plan marks sensitive is added to them.
pub fn classify(
    plans: CheckPlans<'_>,
    versions: Option<&VersionFacts>,
    secrets: &[String],
) -> Result<Classification, ClassifyError> {
    if plans.refresh_only.errored {
        return Err(ClassifyError::Errored("refresh-only"));
    }
    if plans.plan.errored {
        return Err(ClassifyError::Errored("normal"));
    }
    if let Some(rc) = plans.refresh_only.resource_changes.iter().find(|rc| {
        rc.mode != ResourceMode::Data && rc.change.actions != Action::NoOp && !rc.is_moved()
    }) {
        return Err(ClassifyError::NotRefreshOnly(rc.display_address()));
    }

    let redactor = Redactor::new(
        secrets
            .iter()
            .cloned()
            .chain(plans.refresh_only.sensitive_values())
            .chain(plans.plan.sensitive_values()),
    );
    let shower = Shower {
        redactor: &redactor,
    };
    let upgrades = UpgradeRule::new(versions);

    let mut findings = Vec::new();
    // Drift by (address, deposed key), to match against the normal plan.
    let mut drift: BTreeMap<ObjectKey<'_>, (&ResourceChange, Vec<AttrPath>)> = BTreeMap::new();
    for rc in &plans.refresh_only.resource_drift {
        if rc.mode == ResourceMode::Data || rc.change.actions == Action::NoOp {
            continue;
        }
        let raw = diff_change(&rc.change, Action::Update);
        if raw.is_empty() && rc.change.actions != Action::Delete {
            // Only marks changed: nothing a person could act on.
            continue;
        }
        let paths: Vec<AttrPath> = raw.iter().map(|r| r.path.clone()).collect();
        let note = (rc.change.actions == Action::Delete)
            .then(|| "deleted outside Git: the refresh found no object".to_string());
        findings.push(Finding {
            class: DriftClass::ChangedOutside,
            address: rc.display_address(),
            action: rc.change.actions,
            resource_type: rc.resource_type.clone(),
            provider_name: rc.provider_name.clone(),
            changes: shower.show_all(raw),
            upgrades: upgrades.for_provider(&rc.provider_name),
            note,
        });
        drift.insert((rc.address.as_str(), rc.deposed.as_deref()), (rc, paths));
    }

    for rc in &plans.plan.resource_changes {
        if rc.mode == ResourceMode::Data || rc.is_hidden_data_delete() {
            continue;
        }
        let action = rc.change.actions;
        let shown_noop = rc.change.importing.is_some() || rc.is_moved();
        if action == Action::NoOp && !shown_noop {
            continue;
        }
        if action == Action::Read {
            continue;
        }
        let raw = diff_change(&rc.change, action);
        let key = (rc.address.as_str(), rc.deposed.as_deref());
        let residual = match drift.get(&key) {
            Some((d, drifted)) => match unexplained(d, drifted, rc, raw) {
                Some(r) => r,
                None => continue,
            },
            None => raw,
        };
        if residual.is_empty() && !shown_noop && !action.destroys() && action != Action::Create {
            continue;
        }
        let ups = upgrades.for_provider(&rc.provider_name);
        let class = upgrades.classify(&ups);
        let mut notes = Vec::new();
        if rc.is_moved() {
            let prev = rc.previous_address.as_deref().unwrap_or_default();
            notes.push(format!("moved from {prev}"));
        }
        if let Some(imp) = &rc.change.importing {
            notes.push(match &imp.id {
                Some(id) => format!(
                    "imported from id {}",
                    shower.text(&serde_json::to_string(id).unwrap_or_default())
                ),
                None => "imported".to_string(),
            });
        }
        if action == Action::Forget {
            notes.push("removed from the state, not destroyed".to_string());
        }
        findings.push(Finding {
            class,
            address: rc.display_address(),
            action,
            resource_type: rc.resource_type.clone(),
            provider_name: rc.provider_name.clone(),
            changes: shower.show_all(residual),
            upgrades: ups,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        });
    }

    for (name, change) in &plans.plan.output_changes {
        if change.actions == Action::NoOp {
            continue;
        }
        let raw = diff_output(change);
        let ups = upgrades.engine();
        findings.push(Finding {
            class: upgrades.classify(&ups),
            address: format!("output.{name}"),
            action: change.actions,
            resource_type: String::new(),
            provider_name: String::new(),
            changes: shower.show_all(raw),
            upgrades: ups,
            note: None,
        });
    }

    findings.sort_by(|a, b| natural_cmp(&a.address, &b.address).then(a.class.cmp(&b.class)));
    let fingerprint = Fingerprint::of(
        findings
            .iter()
            .map(|f| (f.address.as_str(), f.fingerprint_paths())),
    );
    let values = ValuesDigest::of(&findings);
    Ok(Classification {
        findings,
        fingerprint,
        values,
        engine_version: plans.plan.terraform_version.clone(),
    })
}

/// An object in a plan: its address and deposed key.
type ObjectKey<'p> = (&'p str, Option<&'p str>);

/// The part of a normal-plan change `c` that the drift `d` (with changed paths `drifted`)
/// does not explain, or `None` when it explains all of it.
fn unexplained(
    d: &ResourceChange,
    drifted: &[AttrPath],
    c: &ResourceChange,
    raw: Vec<RawChange>,
) -> Option<Vec<RawChange>> {
    match (d.change.actions, c.change.actions) {
        // Deleted outside, and the plan creates it again: that is the undo.
        (Action::Delete, Action::Create) => None,
        (Action::Update, Action::Update | Action::DeleteThenCreate | Action::CreateThenDelete) => {
            // Values only known after apply follow from other changes (a new id on replace);
            // they explain nothing and need no explaining, unless they are all there is.
            let driving: Vec<&RawChange> = raw.iter().filter(|r| !r.after_unknown).collect();
            let driving = if driving.is_empty() {
                raw.iter().collect()
            } else {
                driving
            };
            let restores = |r: &RawChange| {
                drifted.iter().any(|p| p.overlaps(&r.path))
                    && !r.after_unknown
                    && lookup(&c.change.after, &r.path) == lookup(&d.change.before, &r.path)
            };
            if driving.iter().all(|r| restores(r)) {
                return None;
            }
            Some(raw.into_iter().filter(|r| !restores(r)).collect())
        }
        _ => Some(raw),
    }
}

/// The value at `path` in `v`, with absent and `null` alike.
fn lookup<'v>(v: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let mut cur = v;
    for step in &path.0 {
        cur = match step {
            PathStep::Key(k) => cur.get(k)?,
            PathStep::Index(i) => cur.get(usize::try_from(*i).ok()?)?,
        };
    }
    (!cur.is_null()).then_some(cur)
}

// ---------------------------------------------------------------------------------------------
// Upgrades

struct UpgradeRule {
    /// `None` when the rule cannot claim upgrades (no last applied commit).
    config_changed: Option<bool>,
    engine: Option<Upgrade>,
    /// Normalised provider address → (from, to), for providers whose locked version changed.
    providers: BTreeMap<String, (String, String)>,
}

impl UpgradeRule {
    fn new(facts: Option<&VersionFacts>) -> Self {
        let none = UpgradeRule {
            config_changed: None,
            engine: None,
            providers: BTreeMap::new(),
        };
        let Some(facts) = facts else { return none };
        let Some(last) = &facts.last_applied else {
            return none;
        };
        let engine = match (&last.engine_version, &facts.current.engine_version) {
            (Some(a), Some(b)) if norm_version(a) != norm_version(b) => Some(Upgrade::Engine {
                from: norm_version(a).to_string(),
                to: norm_version(b).to_string(),
            }),
            _ => None,
        };
        let mut providers = BTreeMap::new();
        let parsed = (
            last.lock_file.as_deref().map(locked_providers),
            facts.current.lock_file.as_deref().map(locked_providers),
        );
        if let (Some(Some(before)), Some(Some(after))) = parsed {
            for (addr, to) in &after {
                if let Some(from) = before.get(addr)
                    && from != to
                {
                    providers.insert(addr.clone(), (from.clone(), to.clone()));
                }
            }
        }
        UpgradeRule {
            config_changed: Some(facts.config_changed),
            engine,
            providers,
        }
    }

    fn engine(&self) -> Vec<Upgrade> {
        self.engine.iter().cloned().collect()
    }

    fn for_provider(&self, provider_name: &str) -> Vec<Upgrade> {
        let mut out = self.engine();
        let addr = normalise_provider(provider_name);
        if let Some((from, to)) = self.providers.get(&addr) {
            out.push(Upgrade::Provider {
                provider: addr,
                from: from.clone(),
                to: to.clone(),
            });
        }
        out
    }

    fn classify(&self, upgrades: &[Upgrade]) -> DriftClass {
        if self.config_changed == Some(false) && !upgrades.is_empty() {
            DriftClass::EngineOrProviderUpgrade
        } else {
            DriftClass::Unapplied
        }
    }
}

fn norm_version(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('v').unwrap_or(v)
}

/// `hashicorp/aws` → `registry.terraform.io/hashicorp/aws`; lowercase, as terraform compares
/// provider source addresses case-insensitively.
fn normalise_provider(addr: &str) -> String {
    let a = addr.trim().to_ascii_lowercase();
    if a.matches('/').count() == 1 {
        format!("registry.terraform.io/{a}")
    } else {
        a
    }
}

/// Provider source address → locked version, from a `.terraform.lock.hcl`; `None` when the
/// text does not parse.
pub fn locked_providers(lock_file: &str) -> Option<BTreeMap<String, String>> {
    let body = hcl::parse(lock_file).ok()?;
    let mut out = BTreeMap::new();
    for block in body.blocks().filter(|b| b.identifier() == "provider") {
        let Some(label) = block.labels().first() else {
            continue;
        };
        let version = block
            .body()
            .attributes()
            .find(|a| a.key() == "version")
            .and_then(|a| match a.expr() {
                hcl::Expression::String(s) => Some(s.clone()),
                _ => None,
            });
        if let Some(v) = version {
            out.insert(normalise_provider(label.as_str()), v);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Diffing values

/// A changed path with raw sides, before anything is shown.
#[derive(Debug)]
struct RawChange {
    path: AttrPath,
    before: RawSide,
    after: RawSide,
    after_unknown: bool,
}

#[derive(Debug)]
enum RawSide {
    Absent,
    Value(Value),
    Sensitive,
    Unknown,
}

/// A value with its sensitivity and unknown marks (same shapes as in the plan JSON).
#[derive(Clone, Copy, Default)]
struct Side<'v> {
    val: Option<&'v Value>,
    sens: Option<&'v Value>,
    unk: Option<&'v Value>,
}

impl<'v> Side<'v> {
    fn value(&self) -> Option<&'v Value> {
        self.val.filter(|v| !v.is_null())
    }

    fn all_sensitive(&self) -> bool {
        matches!(self.sens, Some(Value::Bool(true)))
    }

    fn unknown(&self) -> bool {
        matches!(self.unk, Some(Value::Bool(true)))
    }

    fn key(&self, k: &str) -> Side<'v> {
        Side {
            val: self.val.and_then(|v| v.get(k)),
            sens: inherit(self.sens, |m| m.get(k)),
            unk: inherit(self.unk, |m| m.get(k)),
        }
    }

    fn index(&self, i: usize) -> Side<'v> {
        Side {
            val: self.val.and_then(|v| v.get(i)),
            sens: inherit(self.sens, |m| m.get(i)),
            unk: inherit(self.unk, |m| m.get(i)),
        }
    }

    /// The side as a whole: sensitive if any part is, unknown if any part is.
    fn raw(&self) -> RawSide {
        if any_mark(self.sens) {
            // Sensitive wins even over unknown: nothing about the value may show.
            return if self.value().is_some() || self.unknown() {
                RawSide::Sensitive
            } else {
                RawSide::Absent
            };
        }
        if any_mark(self.unk) {
            return RawSide::Unknown;
        }
        match self.value() {
            Some(v) => RawSide::Value(v.clone()),
            None => RawSide::Absent,
        }
    }
}

/// A mark of `true` on a container covers everything inside it.
fn inherit<'v>(
    marks: Option<&'v Value>,
    step: impl Fn(&'v Value) -> Option<&'v Value>,
) -> Option<&'v Value> {
    match marks {
        Some(Value::Bool(true)) => marks,
        Some(m) => step(m),
        None => None,
    }
}

fn any_mark(m: Option<&Value>) -> bool {
    match m {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(o)) => o.values().any(|v| any_mark(Some(v))),
        Some(Value::Array(a)) => a.iter().any(|v| any_mark(Some(v))),
        _ => false,
    }
}

/// The changed paths of a resource change. `action` is how to read it: a read has no
/// meaningful `before`.
fn diff_change(c: &Change, action: Action) -> Vec<RawChange> {
    let before = Side {
        val: (action != Action::Read).then_some(&c.before),
        sens: Some(&c.before_sensitive),
        unk: None,
    };
    let after = Side {
        val: Some(&c.after),
        sens: Some(&c.after_sensitive),
        unk: Some(&c.after_unknown),
    };
    let mut out = Vec::new();
    let mut path = Vec::new();
    // The root of a resource is always walked key by key, so a created or deleted object shows
    // its attributes rather than one blob.
    walk_keys(before, after, &mut path, &mut out);
    out
}

fn diff_output(c: &Change) -> Vec<RawChange> {
    let before = Side {
        val: Some(&c.before),
        sens: Some(&c.before_sensitive),
        unk: None,
    };
    let after = Side {
        val: Some(&c.after),
        sens: Some(&c.after_sensitive),
        unk: Some(&c.after_unknown),
    };
    let mut out = Vec::new();
    walk(before, after, &mut Vec::new(), &mut out);
    out
}

fn walk_keys(b: Side<'_>, a: Side<'_>, path: &mut Vec<PathStep>, out: &mut Vec<RawChange>) {
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for src in [b.val, a.val, a.unk] {
        if let Some(Value::Object(m)) = src {
            keys.extend(m.keys().map(String::as_str));
        }
    }
    for k in keys {
        path.push(PathStep::Key(k.to_string()));
        walk(b.key(k), a.key(k), path, out);
        path.pop();
    }
}

fn walk(b: Side<'_>, a: Side<'_>, path: &mut Vec<PathStep>, out: &mut Vec<RawChange>) {
    let sensitive = b.all_sensitive() || a.all_sensitive();
    let both_objects = matches!(
        (b.value(), a.value()),
        (Some(Value::Object(_)), Some(Value::Object(_)))
    );
    let same_len_lists = match (b.value(), a.value()) {
        (Some(Value::Array(x)), Some(Value::Array(y))) => x.len() == y.len(),
        _ => false,
    };
    if !sensitive && !a.unknown() && both_objects {
        walk_keys(b, a, path, out);
        return;
    }
    if !sensitive && !a.unknown() && same_len_lists {
        let n = b.value().and_then(Value::as_array).map_or(0, Vec::len);
        for i in 0..n {
            path.push(PathStep::Index(i as u64));
            walk(b.index(i), a.index(i), path, out);
            path.pop();
        }
        return;
    }
    let after_unknown = a.unknown() || any_mark(a.unk);
    let changed = after_unknown || b.value() != a.value();
    if !changed {
        return;
    }
    out.push(RawChange {
        path: AttrPath(path.clone()),
        before: b.raw(),
        after: a.raw(),
        after_unknown,
    });
}

/// Turns raw sides into what a report may show: redacted, cut.
struct Shower<'r> {
    redactor: &'r Redactor,
}

impl Shower<'_> {
    fn show_all(&self, raw: Vec<RawChange>) -> Vec<AttributeChange> {
        let mut out: Vec<AttributeChange> = raw
            .into_iter()
            .map(|r| AttributeChange {
                path: r.path,
                before: self.side(r.before),
                after: self.side(r.after),
            })
            .collect();
        out.sort_by(|x, y| x.path.cmp(&y.path));
        out
    }

    fn side(&self, s: RawSide) -> ShownValue {
        match s {
            RawSide::Absent => ShownValue::Absent,
            RawSide::Sensitive => ShownValue::Sensitive,
            RawSide::Unknown => ShownValue::Unknown,
            RawSide::Value(v) => {
                let json = serde_json::to_string(&v).unwrap_or_default();
                ShownValue::Value(self.text(&json))
            }
        }
    }

    /// Redacted first, then cut: cutting first could leave a secret's prefix the redactor no
    /// longer recognises.
    fn text(&self, s: &str) -> String {
        let red = self.redactor.redact(s);
        let mut chars = red.chars();
        let mut out: String = chars.by_ref().take(MAX_VALUE_CHARS).collect();
        if chars.next().is_some() {
            out.push('…');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::model::parse_plan_json;

    const REFRESH: &str = include_str!("../../../tests/fixtures/plans/drift.refresh-only.json");
    const NORMAL: &str = include_str!("../../../tests/fixtures/plans/drift.json");

    fn parse(json: &str) -> Plan {
        parse_plan_json(json.as_bytes()).expect("test plan parses")
    }

    /// A compact listing of a classification, for snapshots.
    fn listing(c: &Classification) -> String {
        let mut s = String::new();
        for f in &c.findings {
            s.push_str(&format!("{} {} ({})", f.class, f.address, f.action));
            if let Some(n) = &f.note {
                s.push_str(&format!(" — {n}"));
            }
            s.push('\n');
            for u in &f.upgrades {
                s.push_str(&format!("  upgrade: {u}\n"));
            }
            for ch in &f.changes {
                s.push_str(&format!("  {}: {} → {}\n", ch.path, ch.before, ch.after));
            }
        }
        if s.is_empty() {
            s.push_str("clean\n");
        }
        s
    }

    fn check(refresh: &str, normal: &str, versions: Option<&VersionFacts>) -> Classification {
        classify(
            CheckPlans {
                refresh_only: &parse(refresh),
                plan: &parse(normal),
            },
            versions,
            &[],
        )
        .expect("classifies")
    }

    /// A resource change as terraform writes it; `before`/`after` are JSON, `extra` adds
    /// fields to `change` (marks, after_unknown).
    fn rc(addr: &str, actions: &str, before: &str, after: &str, extra: &str) -> String {
        let (ty, name) = addr.split_once('.').unwrap();
        format!(
            r#"{{"address":"{addr}","mode":"managed","type":"{ty}","name":"{name}",
               "provider_name":"registry.terraform.io/hashicorp/aws",
               "change":{{"actions":{actions},"before":{before},"after":{after}{extra}}}}}"#
        )
    }

    fn drift_plan(entries: &[String]) -> String {
        format!(r#"{{"resource_drift":[{}]}}"#, entries.join(","))
    }

    fn normal_plan(entries: &[String]) -> String {
        format!(r#"{{"resource_changes":[{}]}}"#, entries.join(","))
    }

    #[test]
    fn real_terraform_check() {
        let c = check(REFRESH, NORMAL, None);
        insta::assert_snapshot!(listing(&c), @r#"
        unapplied null_resource.app (delete,create)
          id: "1251852728458377901" → (known after apply)
          triggers.image: "app:1.0" → "app:1.1"
        changed_outside null_resource.both (update)
          triggers["%"]: "scaled-by-hand" → (none)
        unapplied null_resource.both (delete,create)
          id: "2005472756150212719" → (known after apply)
          triggers.replicas: "2" → "3"
        changed_outside null_resource.db (update)
          triggers["%"]: (sensitive value) → (none)
        changed_outside null_resource.deleted (delete) — deleted outside Git: the refresh found no object
          id: "" → (none)
          triggers: {"name":"cache"} → (none)
        changed_outside null_resource.edited (update)
          triggers["%"]: "large-by-hand" → (none)
        "#);
        let counts = c.counts();
        assert_eq!(
            (counts.changed_outside, counts.unapplied, counts.total()),
            (4, 2, 6)
        );
        let all = serde_json::to_string(&c).unwrap();
        assert!(!all.contains("hunter2"), "{all}");
        assert_eq!(c.engine_version, "1.0.3");
        // The same check again is the same drift.
        assert_eq!(check(REFRESH, NORMAL, None).fingerprint, c.fingerprint);
    }

    #[test]
    fn a_clean_check() {
        let c = check(
            "{}",
            include_str!("../../../tests/fixtures/plans/nochange.json"),
            None,
        );
        assert!(c.is_clean());
        assert_eq!(listing(&c), "clean\n");
    }

    #[test]
    fn drift_that_the_plan_only_undoes_is_not_unapplied() {
        let d = rc(
            "aws_sg.web",
            r#"["update"]"#,
            r#"{"id":"sg-1","cidr":"10.0.0.0/8","name":"web"}"#,
            r#"{"id":"sg-1","cidr":"0.0.0.0/0","name":"web"}"#,
            "",
        );
        // The plan sets the drifted attribute back to its last-applied value.
        let undo = rc(
            "aws_sg.web",
            r#"["update"]"#,
            r#"{"id":"sg-1","cidr":"0.0.0.0/0","name":"web"}"#,
            r#"{"id":"sg-1","cidr":"10.0.0.0/8","name":"web"}"#,
            "",
        );
        let c = check(
            &drift_plan(std::slice::from_ref(&d)),
            &normal_plan(&[undo]),
            None,
        );
        insta::assert_snapshot!(listing(&c), @r#"
        changed_outside aws_sg.web (update)
          cidr: "10.0.0.0/8" → "0.0.0.0/0"
        "#);

        // Git also moved the same attribute elsewhere: that part is unapplied.
        let elsewhere = rc(
            "aws_sg.web",
            r#"["update"]"#,
            r#"{"id":"sg-1","cidr":"0.0.0.0/0","name":"web"}"#,
            r#"{"id":"sg-1","cidr":"10.1.0.0/16","name":"web"}"#,
            "",
        );
        let c = check(
            &drift_plan(std::slice::from_ref(&d)),
            &normal_plan(&[elsewhere]),
            None,
        );
        insta::assert_snapshot!(listing(&c), @r#"
        changed_outside aws_sg.web (update)
          cidr: "10.0.0.0/8" → "0.0.0.0/0"
        unapplied aws_sg.web (update)
          cidr: "0.0.0.0/0" → "10.1.0.0/16"
        "#);

        // A replacement forced by the drifted attribute: the new id follows, it explains
        // nothing and needs no explaining.
        let replace = rc(
            "aws_sg.web",
            r#"["delete","create"]"#,
            r#"{"id":"sg-1","cidr":"0.0.0.0/0","name":"web"}"#,
            r#"{"cidr":"10.0.0.0/8","name":"web"}"#,
            r#","after_unknown":{"id":true}"#,
        );
        let c = check(
            &drift_plan(std::slice::from_ref(&d)),
            &normal_plan(&[replace]),
            None,
        );
        assert_eq!(c.counts().unapplied, 0, "{}", listing(&c));

        // Another attribute changed by Git besides the undo.
        let more = rc(
            "aws_sg.web",
            r#"["update"]"#,
            r#"{"id":"sg-1","cidr":"0.0.0.0/0","name":"web"}"#,
            r#"{"id":"sg-1","cidr":"10.0.0.0/8","name":"web-2"}"#,
            "",
        );
        let c = check(&drift_plan(&[d]), &normal_plan(&[more]), None);
        insta::assert_snapshot!(listing(&c), @r#"
        changed_outside aws_sg.web (update)
          cidr: "10.0.0.0/8" → "0.0.0.0/0"
        unapplied aws_sg.web (update)
          name: "web" → "web-2"
        "#);
    }

    #[test]
    fn deleted_outside_and_recreated_by_the_plan() {
        let d = rc(
            "aws_s3_bucket.logs",
            r#"["delete"]"#,
            r#"{"id":"logs","acl":"private"}"#,
            "null",
            "",
        );
        let create = rc(
            "aws_s3_bucket.logs",
            r#"["create"]"#,
            "null",
            r#"{"acl":"private"}"#,
            r#","after_unknown":{"id":true}"#,
        );
        let c = check(&drift_plan(&[d]), &normal_plan(&[create]), None);
        insta::assert_snapshot!(listing(&c), @r#"
        changed_outside aws_s3_bucket.logs (delete) — deleted outside Git: the refresh found no object
          acl: "private" → (none)
          id: "logs" → (none)
        "#);
        // Whole-object findings have no paths in the fingerprint.
        assert_eq!(
            c.fingerprint,
            Fingerprint::of([("aws_s3_bucket.logs", Vec::<&AttrPath>::new())])
        );
    }

    #[test]
    fn sensitive_values_never_show() {
        // Whole value sensitive, a leaf sensitive, a container with one sensitive leaf, and
        // a secret the app knows that also appears unmarked elsewhere.
        let d = rc(
            "aws_db.main",
            r#"["update"]"#,
            r#"{"password":"old-pw-1234","tags":{"owner":"a","token":"tok-old-1"},"list":["x","pw-in-list"],"note":"plain"}"#,
            r#"{"password":"new-pw-5678","tags":{"owner":"b","token":"tok-new-2"},"list":["x","pw-in-list","y"],"note":"mentions new-pw-5678 and app-secret-99"}"#,
            r#","before_sensitive":{"password":true,"tags":{"token":true},"list":[false,true]},
               "after_sensitive":{"password":true,"tags":{"token":true},"list":[false,true,false]}"#,
        );
        let c = classify(
            CheckPlans {
                refresh_only: &parse(&drift_plan(&[d])),
                plan: &parse("{}"),
            },
            None,
            &["app-secret-99".to_string()],
        )
        .unwrap();
        insta::assert_snapshot!(listing(&c), @r#"
        changed_outside aws_db.main (update)
          list: (sensitive value) → (sensitive value)
          note: "plain" → "mentions *** and ***"
          password: (sensitive value) → (sensitive value)
          tags.owner: "a" → "b"
          tags.token: (sensitive value) → (sensitive value)
        "#);
        let all = serde_json::to_string(&c).unwrap();
        for secret in ["pw-1234", "pw-5678", "tok-", "pw-in-list", "app-secret"] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }

        // The whole object sensitive: one line, no keys (they could be secrets too).
        let whole = rc(
            "aws_x.y",
            r#"["update"]"#,
            r#"{"cfg":{"k1":"v1"}}"#,
            r#"{"cfg":{"k2":"v2"}}"#,
            r#","before_sensitive":{"cfg":true},"after_sensitive":{"cfg":true}"#,
        );
        let c = check(&drift_plan(&[whole]), "{}", None);
        insta::assert_snapshot!(listing(&c), @r"
        changed_outside aws_x.y (update)
          cfg: (sensitive value) → (sensitive value)
        ");
    }

    #[test]
    fn long_values_are_cut_after_redaction() {
        let secret = "s3cr3t-".repeat(10);
        let long = format!("{}{}", "a".repeat(MAX_VALUE_CHARS - 5), secret);
        let d = rc(
            "aws_x.y",
            r#"["update"]"#,
            r#"{"v":"short"}"#,
            &format!(r#"{{"v":"{long}"}}"#),
            "",
        );
        let c = classify(
            CheckPlans {
                refresh_only: &parse(&drift_plan(&[d])),
                plan: &parse("{}"),
            },
            None,
            std::slice::from_ref(&secret),
        )
        .unwrap();
        let ShownValue::Value(v) = &c.findings[0].changes[0].after else {
            panic!("a value")
        };
        assert!(v.ends_with("***\"") || v.ends_with('…'), "{v}");
        assert!(v.chars().count() <= MAX_VALUE_CHARS + 1);
        assert!(!v.contains("s3cr3t"), "{v}");
    }

    #[test]
    fn lists_of_another_length_change_as_a_whole() {
        let d = rc(
            "aws_x.y",
            r#"["update"]"#,
            r#"{"ports":[80,443],"rules":[{"from":1},{"from":2}]}"#,
            r#"{"ports":[80,443,8080],"rules":[{"from":1},{"from":3}]}"#,
            "",
        );
        let c = check(&drift_plan(&[d]), "{}", None);
        insta::assert_snapshot!(listing(&c), @r"
        changed_outside aws_x.y (update)
          ports: [80,443] → [80,443,8080]
          rules[1].from: 2 → 3
        ");
    }

    #[test]
    fn outputs_moves_imports_and_forgets_are_unapplied() {
        let normal = r#"{
          "resource_changes":[
            {"address":"aws_x.new","previous_address":"aws_x.old","mode":"managed","type":"aws_x","name":"new",
             "change":{"actions":["no-op"],"before":{"id":"1"},"after":{"id":"1"}}},
            {"address":"aws_x.imp","mode":"managed","type":"aws_x","name":"imp",
             "change":{"actions":["no-op"],"before":{"id":"i-1"},"after":{"id":"i-1"},"importing":{"id":"i-1"}}},
            {"address":"aws_x.gone","mode":"managed","type":"aws_x","name":"gone",
             "change":{"actions":["forget"],"before":{"id":"g"},"after":null}},
            {"address":"data.aws_x.read","mode":"data","type":"aws_x","name":"read",
             "change":{"actions":["read"],"before":null,"after":{"id":"r"}}}
          ],
          "output_changes":{
            "url":{"actions":["update"],"before":"http://a","after":"http://b"},
            "same":{"actions":["no-op"],"before":"x","after":"x"},
            "pw":{"actions":["create"],"before":null,"after":"hunter2-out","after_sensitive":true}
          }
        }"#;
        let c = check("{}", normal, None);
        insta::assert_snapshot!(listing(&c), @r#"
        unapplied aws_x.gone (forget) — removed from the state, not destroyed
          id: "g" → (none)
        unapplied aws_x.imp (no-op) — imported from id "i-1"
        unapplied aws_x.new (no-op) — moved from aws_x.old
        unapplied output.pw (create)
          (whole object): (none) → (sensitive value)
        unapplied output.url (update)
          (whole object): "http://a" → "http://b"
        "#);
    }

    fn lock(version: &str) -> String {
        format!(
            r#"# This file is maintained automatically by "terraform init".
provider "registry.terraform.io/hashicorp/aws" {{
  version     = "{version}"
  constraints = "~> 5.0"
  hashes = [
    "h1:abc=",
  ]
}}

provider "registry.terraform.io/hashicorp/null" {{
  version = "3.2.1"
}}
"#
        )
    }

    #[test]
    fn upgrade_rule() {
        let change = rc(
            "aws_x.y",
            r#"["update"]"#,
            r#"{"v":"a"}"#,
            r#"{"v":"b"}"#,
            "",
        );
        let normal = normal_plan(&[change]);
        let snap = |engine: &str, aws: &str| VersionSnapshot {
            engine_version: Some(engine.to_string()),
            lock_file: Some(lock(aws)),
        };
        let facts =
            |last: Option<VersionSnapshot>, now: VersionSnapshot, config_changed| VersionFacts {
                last_applied: last,
                current: now,
                config_changed,
            };
        let cases: Vec<(&str, Option<VersionFacts>, &str)> = vec![
            ("no facts", None, "unapplied"),
            (
                "never applied through Sluice",
                Some(facts(None, snap("1.5.0", "5.1.0"), false)),
                "unapplied",
            ),
            (
                "nothing changed",
                Some(facts(
                    Some(snap("1.5.0", "5.1.0")),
                    snap("v1.5.0", "5.1.0"),
                    false,
                )),
                "unapplied",
            ),
            (
                "provider upgraded, config unchanged",
                Some(facts(
                    Some(snap("1.5.0", "5.1.0")),
                    snap("1.5.0", "5.2.0"),
                    false,
                )),
                "engine_or_provider_upgrade [provider registry.terraform.io/hashicorp/aws 5.1.0 → 5.2.0]",
            ),
            (
                "engine upgraded, config unchanged",
                Some(facts(
                    Some(snap("1.5.0", "5.1.0")),
                    snap("1.6.2", "5.1.0"),
                    false,
                )),
                "engine_or_provider_upgrade [engine 1.5.0 → 1.6.2]",
            ),
            (
                "provider upgraded, config changed too: cannot tell",
                Some(facts(
                    Some(snap("1.5.0", "5.1.0")),
                    snap("1.5.0", "5.2.0"),
                    true,
                )),
                "unapplied [provider registry.terraform.io/hashicorp/aws 5.1.0 → 5.2.0]",
            ),
            (
                "another provider upgraded",
                Some(VersionFacts {
                    last_applied: Some(VersionSnapshot {
                        engine_version: None,
                        lock_file: Some(lock("5.1.0").replace("3.2.1", "3.0.0")),
                    }),
                    current: snap("1.5.0", "5.1.0"),
                    config_changed: false,
                }),
                "unapplied",
            ),
            (
                "lock file does not parse",
                Some(VersionFacts {
                    last_applied: Some(VersionSnapshot {
                        engine_version: None,
                        lock_file: Some("provider {{{".to_string()),
                    }),
                    current: snap("1.5.0", "5.2.0"),
                    config_changed: false,
                }),
                "unapplied",
            ),
        ];
        for (name, facts, want) in cases {
            let c = check("{}", &normal, facts.as_ref());
            let f = &c.findings[0];
            let mut got = f.class.to_string();
            if !f.upgrades.is_empty() {
                let ups: Vec<String> = f.upgrades.iter().map(ToString::to_string).collect();
                got.push_str(&format!(" [{}]", ups.join(", ")));
            }
            assert_eq!(got, want, "{name}");
        }

        // Drift is never explained away by an upgrade: it only gets the hint.
        let d = rc(
            "aws_x.y",
            r#"["update"]"#,
            r#"{"v":"a"}"#,
            r#"{"v":"z"}"#,
            "",
        );
        let upgraded = facts(Some(snap("1.5.0", "5.1.0")), snap("1.5.0", "5.2.0"), false);
        let c = check(&drift_plan(&[d]), "{}", Some(&upgraded));
        assert_eq!(c.findings[0].class, DriftClass::ChangedOutside);
        assert_eq!(c.findings[0].upgrades.len(), 1);
    }

    #[test]
    fn lock_files_parse() {
        let got = locked_providers(&lock("5.1.0")).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [
                (
                    "registry.terraform.io/hashicorp/aws".to_string(),
                    "5.1.0".to_string()
                ),
                (
                    "registry.terraform.io/hashicorp/null".to_string(),
                    "3.2.1".to_string()
                ),
            ]
        );
        assert_eq!(locked_providers("").unwrap().len(), 0);
        assert!(locked_providers("provider \"x\" {").is_none());
        assert_eq!(
            normalise_provider("HashiCorp/AWS"),
            "registry.terraform.io/hashicorp/aws"
        );
    }

    #[test]
    fn refused_inputs() {
        let errored = r#"{"errored":true}"#;
        let got = |r: &str, n: &str| {
            classify(
                CheckPlans {
                    refresh_only: &parse(r),
                    plan: &parse(n),
                },
                None,
                &[],
            )
            .unwrap_err()
            .to_string()
        };
        insta::assert_snapshot!(got(errored, "{}"), @"terraform reported errors while making the refresh-only plan, so it is incomplete; the check cannot tell whether the project is in sync");
        insta::assert_snapshot!(got("{}", errored), @"terraform reported errors while making the normal plan, so it is incomplete; the check cannot tell whether the project is in sync");
        // The plans swapped: the "refresh-only" one wants changes.
        insta::assert_snapshot!(got(NORMAL, REFRESH), @"the refresh-only plan proposes changes to null_resource.app; it does not look like the output of `plan -refresh-only`");
    }

    #[test]
    fn paths_display_like_terraform_expressions() {
        let p = AttrPath(vec![
            PathStep::Key("ingress".into()),
            PathStep::Index(0),
            PathStep::Key("cidr_blocks".into()),
        ]);
        assert_eq!(p.to_string(), "ingress[0].cidr_blocks");
        let p = AttrPath(vec![
            PathStep::Key("tags".into()),
            PathStep::Key("kubernetes.io/role".into()),
        ]);
        assert_eq!(p.to_string(), r#"tags["kubernetes.io/role"]"#);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"["tags","kubernetes.io/role"]"#
        );
        assert_eq!(AttrPath::default().to_string(), "(whole object)");
    }
}
