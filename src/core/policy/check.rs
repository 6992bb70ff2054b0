//! Checks over a whole policy set, beyond what one entry can tell: unique names across files,
//! contradicting rules, teams that do not exist; and [`load_policies`], which puts files and
//! inline policies together and refuses the set when anything is wrong.
//!
//! Contradictions are reported only where they are certain from the text alone (same or wider
//! scope written the same way, same or wider resource filter), as warnings naming both places:
//! a rule that can never be satisfied is a mistake, but the stricter rule still holds. No I/O.

use std::collections::BTreeMap;

use super::eval::{TeamLookup, TeamMembership};
use super::model::{
    ChangeKind, OnFailure, Pattern, PlanRule, Policy, ResourceFilter, RuleKind, Scope, TeamRef,
};
use super::parse::parse_policy_file;
use crate::core::diag::{Diagnostic, has_errors};
use crate::core::glob::is_glob;
use crate::core::repo_config::Pos;

/// The folder policy files live in, at the repository root.
pub const POLICY_DIR: &str = "policies";

/// True for a policy file: a `.yaml` or `.yml` file directly in [`POLICY_DIR`] (subfolders and
/// other files, such as a README, are not read).
pub fn is_policy_file(path: &str) -> bool {
    match path
        .strip_prefix(POLICY_DIR)
        .and_then(|p| p.strip_prefix('/'))
    {
        Some(name) => {
            !name.contains('/')
                && !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
        }
        None => false,
    }
}

/// Reads every policy file (`(path, text)`, e.g. the files of `policies/` on the **base branch**)
/// and adds the inline policies of `sluice.yaml`, then checks the set as a whole. Returns the
/// policies only when no file has an error: a set with a broken file must not be used, or that
/// file's rules would silently not apply (the caller blocks apply and shows the diagnostics).
pub fn load_policies<F: AsRef<str>, T: AsRef<str>>(
    files: &[(F, T)],
    inline: &[Policy],
) -> (Option<Vec<Policy>>, Vec<Diagnostic>) {
    let mut policies = Vec::new();
    let mut diags = Vec::new();
    for (file, text) in files {
        let (p, d) = parse_policy_file(file.as_ref(), text.as_ref());
        policies.extend(p);
        diags.extend(d);
    }
    policies.extend(inline.iter().cloned());
    diags.extend(check_policy_set(&policies));
    // File by file, top to bottom: the order people fix them in.
    diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    if has_errors(&diags) {
        (None, diags)
    } else {
        (Some(policies), diags)
    }
}

/// Set-wide checks: names are unique (they are what `--policy-set` names), and rules that
/// contradict each other are reported at both places.
pub fn check_policy_set(policies: &[Policy]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&str, &Policy> = BTreeMap::new();
    for p in policies {
        match seen.get(p.name.as_str()) {
            Some(first) => out.push(
                Diagnostic::error(
                    &p.file,
                    p.pos.line,
                    p.pos.column,
                    format!(
                        "policy name `{}` is used twice: at {} and at {}",
                        p.name,
                        at(first, first.pos),
                        at(p, p.pos)
                    ),
                )
                .with_hint("policy names must be unique across all policy files; rename one"),
            ),
            None => {
                seen.insert(&p.name, p);
            }
        }
    }
    contradictions(policies, &mut out);
    out
}

/// Errors for every reference to a team that does not exist (per `teams`, as resolved by the
/// caller), at the place it is written. Evaluation fails such rules closed; this tells the
/// people who can fix the file, e.g. in `sluice config check` when GitHub is reachable.
pub fn check_teams(policies: &[Policy], teams: &TeamMembership) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in policies {
        let mut refs = team_refs(p);
        refs.sort_by_key(|(_, pos)| *pos);
        for (team, pos) in refs {
            if teams.lookup(team) == TeamLookup::DoesNotExist {
                out.push(
                    Diagnostic::error(
                        &p.file,
                        pos.line,
                        pos.column,
                        format!("team `{team}` does not exist (or Sluice cannot see it)"),
                    )
                    .with_hint(
                        "check the spelling (`org/team-slug`, as in the team's URL); Sluice's \
                         GitHub App needs the Members: read permission to see teams. Rules \
                         naming it fail until it is fixed",
                    ),
                );
            }
        }
    }
    out
}

/// Every team the policies name, `(org, slug)`, sorted and without duplicates: what the caller
/// resolves through the GitHub API before evaluating.
pub fn teams_referenced(policies: &[Policy]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = policies
        .iter()
        .flat_map(team_refs)
        .map(|(t, _)| (t.org.clone(), t.slug.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn team_refs(p: &Policy) -> Vec<(&TeamRef, Pos)> {
    let mut principals = vec![&p.owners];
    principals.extend(p.access.iter().map(|a| &a.allowed));
    let mut approvals: Vec<_> = p.approvals.iter().collect();
    approvals.extend(p.rules.iter().filter_map(|r| match &r.kind {
        RuleKind::RequireApproval { approvals, .. } => Some(approvals),
        _ => None,
    }));
    principals.extend(
        approvals
            .into_iter()
            .flat_map(|a| a.groups.iter().filter_map(|g| g.from.as_ref())),
    );
    principals
        .into_iter()
        .flat_map(|pr| pr.teams.iter().map(|t| (&t.value, t.pos)))
        .collect()
}

fn at(p: &Policy, pos: Pos) -> String {
    format!("{}:{}", p.file, pos.line)
}

/// A rule that refuses changes outright: `deny`, or a cap of 0, in a policy that denies.
struct Refusal<'p> {
    policy: &'p Policy,
    rule: &'p PlanRule,
    kinds: Vec<ChangeKind>,
}

fn refusals(policies: &[Policy]) -> Vec<Refusal<'_>> {
    let mut out = Vec::new();
    for policy in policies.iter().filter(|p| p.on_failure == OnFailure::Deny) {
        for rule in &policy.rules {
            let kinds: Vec<ChangeKind> = match &rule.kind {
                RuleKind::Deny { actions } => ChangeKind::ALL
                    .into_iter()
                    .filter(|k| actions.iter().any(|a| a.matches(*k)))
                    .collect(),
                RuleKind::MaxDestroys(0) => vec![ChangeKind::Delete, ChangeKind::Replace],
                RuleKind::MaxChanges(0) => ChangeKind::ALL.to_vec(),
                _ => continue,
            };
            out.push(Refusal {
                policy,
                rule,
                kinds,
            });
        }
    }
    out
}

/// A `require_approval` rule asks for approvals for changes that another rule (covering at
/// least the same projects and resources) refuses outright: the approvals can never allow them.
fn contradictions(policies: &[Policy], out: &mut Vec<Diagnostic>) {
    let refusals = refusals(policies);
    for q in policies {
        for rule in &q.rules {
            let RuleKind::RequireApproval { actions, .. } = &rule.kind else {
                continue;
            };
            let kinds: Vec<ChangeKind> = ChangeKind::ALL
                .into_iter()
                .filter(|k| actions.iter().any(|a| a.matches(*k)))
                .collect();
            for d in &refusals {
                let overlap: Vec<ChangeKind> = kinds
                    .iter()
                    .copied()
                    .filter(|k| d.kinds.contains(k))
                    .collect();
                if overlap.is_empty()
                    || !scope_covers(&d.policy.scope, &q.scope)
                    || !filter_covers(&d.rule.filter, &rule.filter)
                {
                    continue;
                }
                let what = overlap
                    .iter()
                    .map(|k| format!("`{}`", k.name()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let refusing = format!(
                    "`{}` of policy `{}` ({})",
                    d.rule.kind.keyword(),
                    d.policy.name,
                    at(d.policy, d.rule.pos)
                );
                let asking = format!(
                    "`require_approval` of policy `{}` ({})",
                    q.name,
                    at(q, rule.pos)
                );
                out.push(
                    Diagnostic::warning(
                        &q.file,
                        rule.pos.line,
                        rule.pos.column,
                        format!(
                            "contradicting rules: this rule asks for approvals for {what} changes, \
                             but {refusing} always refuses them"
                        ),
                    )
                    .with_hint(
                        "approvals can never allow these changes; remove one of the two rules, or \
                         narrow the refusing rule",
                    ),
                );
                out.push(
                    Diagnostic::warning(
                        &d.policy.file,
                        d.rule.pos.line,
                        d.rule.pos.column,
                        format!(
                            "contradicting rules: this rule always refuses {what} changes that \
                             {asking} would allow with approvals"
                        ),
                    )
                    .with_hint("the refusal wins; remove one of the two rules, or narrow this one"),
                );
            }
        }
    }
}

/// True when `wide` certainly covers everything `narrow` does: per dimension, `wide` is
/// unrestricted, matches everything, or lists every pattern `narrow` lists (written the same).
fn scope_covers(wide: &Scope, narrow: &Scope) -> bool {
    list_covers(&wide.projects, &narrow.projects)
        && list_covers(&wide.workspaces, &narrow.workspaces)
        && list_covers(&wide.branches, &narrow.branches)
}

fn filter_covers(wide: &ResourceFilter, narrow: &ResourceFilter) -> bool {
    list_covers(&wide.resource_types, &narrow.resource_types)
        && list_covers(&wide.addresses, &narrow.addresses)
}

fn list_covers(wide: &Option<Vec<Pattern>>, narrow: &Option<Vec<Pattern>>) -> bool {
    match (wide, narrow) {
        (None, _) => true,
        (Some(w), _) if w.iter().any(Pattern::is_everything) => true,
        (Some(_), None) => false,
        // A literal in `narrow` is covered by a pattern of `wide` matching it; a glob only by
        // the same glob (telling whether one glob contains another is not worth guessing).
        (Some(w), Some(n)) => n.iter().all(|np| {
            w.iter().any(|wp| {
                wp.as_str() == np.as_str() || (!is_glob(np.as_str()) && wp.is_match(np.as_str()))
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::core::policy::test_support::teams;

    fn diags(files: &[(&str, &str)]) -> String {
        let (policies, diags) = load_policies(files, &[]);
        let mut out = String::new();
        for d in &diags {
            writeln!(out, "{d}").unwrap();
        }
        match policies {
            Some(p) => writeln!(out, "=> {} policies", p.len()).unwrap(),
            None => writeln!(out, "=> refused").unwrap(),
        }
        out
    }

    #[test]
    fn policy_files_are_yaml_directly_in_policies() {
        for (path, want) in [
            ("policies/a.yaml", true),
            ("policies/b.yml", true),
            ("policies/README.md", false),
            ("policies/sub/c.yaml", false),
            ("policies/.hidden.yaml", false),
            ("other/policies/a.yaml", false),
            ("policiesx/a.yaml", false),
            ("policies.yaml", false),
        ] {
            assert_eq!(is_policy_file(path), want, "{path}");
        }
    }

    #[test]
    fn names_are_unique_across_files() {
        insta::assert_snapshot!(diags(&[
            ("policies/a.yaml", "version: 1\npolicies:\n  - name: caps\n    rules: [{ max_destroys: 1 }]\n"),
            ("policies/b.yaml", "version: 1\npolicies:\n  - name: other\n    rules: [{ max_destroys: 1 }]\n  - name: caps\n    rules: [{ max_changes: 1 }]\n"),
        ]), @r"
            policies/b.yaml:5:5: error: policy name `caps` is used twice: at policies/a.yaml:3 and at policies/b.yaml:5
              hint: policy names must be unique across all policy files; rename one
            => refused
        ");
    }

    #[test]
    fn one_broken_file_refuses_the_whole_set() {
        insta::assert_snapshot!(diags(&[
            ("policies/good.yaml", "version: 1\npolicies:\n  - name: caps\n    rules: [{ max_destroys: 1 }]\n"),
            ("policies/bad.yaml", "version: 1\npolicies:\n  - name: dbs\n    rules: [{ deny: [destroy] }]\n"),
        ]), @r"
            policies/bad.yaml:4:22: error: unknown action `destroy`
              hint: did you mean `delete`? valid actions: create, update, delete, replace
            => refused
        ");
    }

    #[test]
    fn contradicting_rules_are_reported_at_both_places() {
        insta::assert_snapshot!(diags(&[
            ("policies/deny.yaml", r#"version: 1
policies:
  - name: no-db-deletes
    rules:
      - deny: [delete]
        resource_types: ["aws_db_*"]
  - name: no-destroys-in-prod
    scope: { projects: ["prod-*"] }
    rules:
      - max_destroys: 0
"#),
            ("policies/approve.yaml", r#"version: 1
policies:
  - name: dba-approves
    scope: { projects: ["prod-*"], branches: [main] }
    rules:
      - require_approval: [replace]
        resource_types: [aws_db_instance]
        approvals: { minimum: 1, from: { teams: [acme/dba] } }
"#),
        ]), @r"
            policies/approve.yaml:6:9: warning: contradicting rules: this rule asks for approvals for `replace` changes, but `deny` of policy `no-db-deletes` (policies/deny.yaml:5) always refuses them
              hint: approvals can never allow these changes; remove one of the two rules, or narrow the refusing rule
            policies/approve.yaml:6:9: warning: contradicting rules: this rule asks for approvals for `replace` changes, but `max_destroys` of policy `no-destroys-in-prod` (policies/deny.yaml:10) always refuses them
              hint: approvals can never allow these changes; remove one of the two rules, or narrow the refusing rule
            policies/deny.yaml:5:9: warning: contradicting rules: this rule always refuses `replace` changes that `require_approval` of policy `dba-approves` (policies/approve.yaml:6) would allow with approvals
              hint: the refusal wins; remove one of the two rules, or narrow this one
            policies/deny.yaml:10:9: warning: contradicting rules: this rule always refuses `replace` changes that `require_approval` of policy `dba-approves` (policies/approve.yaml:6) would allow with approvals
              hint: the refusal wins; remove one of the two rules, or narrow this one
            => 3 policies
        ");
        // Not contradictions: the refusal only warns, is overridable, covers other projects or
        // resources, or other actions.
        insta::assert_snapshot!(diags(&[
            ("policies/p.yaml", r#"version: 1
policies:
  - name: warn-only
    rules: [{ deny: [delete] }]
    on_failure: warn
  - name: overridable
    rules: [{ max_destroys: 0 }]
    on_failure: require_override
    owners: { users: [carol] }
  - name: staging-only
    scope: { projects: ["staging-*"] }
    rules: [{ deny: [delete] }]
  - name: other-type
    rules: [{ deny: [delete], resource_types: [aws_s3_bucket] }]
  - name: updates
    rules: [{ deny: [update] }]
  - name: asks
    scope: { projects: ["prod-*"] }
    rules:
      - require_approval: [delete]
        resource_types: [aws_db_instance]
        approvals: { minimum: 1 }
"#),
        ]), @"=> 6 policies");
    }

    #[test]
    fn teams_are_collected_and_checked() {
        let (policies, _) = load_policies(
            &[(
                "policies/t.yaml",
                r#"version: 1
policies:
  - name: t
    access: { apply: { teams: [acme/infra, Acme/Gone] } }
    approvals:
      any_of:
        - { from: { teams: [acme/platform] } }
        - { from: { teams: [other/dba] } }
    rules:
      - require_approval: [delete]
        approvals: { from: { teams: [acme/dba] } }
    on_failure: require_override
    owners: { teams: [acme/dba, acme/gone] }
"#,
            )],
            &[],
        );
        let policies = policies.expect("valid");
        assert_eq!(
            teams_referenced(&policies),
            [
                ("acme", "dba"),
                ("acme", "gone"),
                ("acme", "infra"),
                ("acme", "platform"),
                ("other", "dba")
            ]
            .map(|(o, s)| (o.to_string(), s.to_string()))
        );
        let t = teams(&[
            ("acme/infra", Some(&["ian"])),
            ("acme/gone", None),
            ("acme/platform", Some(&[])),
            ("acme/dba", Some(&["dora"])),
        ]);
        let out: Vec<String> = check_teams(&policies, &t)
            .iter()
            .map(|d| d.to_string())
            .collect();
        insta::assert_snapshot!(out.join("\n"), @r"
            policies/t.yaml:4:44: error: team `acme/gone` does not exist (or Sluice cannot see it)
              hint: check the spelling (`org/team-slug`, as in the team's URL); Sluice's GitHub App needs the Members: read permission to see teams. Rules naming it fail until it is fixed
            policies/t.yaml:13:33: error: team `acme/gone` does not exist (or Sluice cannot see it)
              hint: check the spelling (`org/team-slug`, as in the team's URL); Sluice's GitHub App needs the Members: read permission to see teams. Rules naming it fail until it is fixed
        ");
    }
}
