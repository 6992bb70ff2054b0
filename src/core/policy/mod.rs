//! Repository policies (PRODUCT.md §6): who may run which command, which approvals `apply`
//! needs, and rules over the plan itself — written in plain YAML that lives in the repository,
//! is reviewed like code, and is always read from the PR's **base** branch so a PR cannot weaken
//! the policy that governs it (the caller's job: this module never sees a branch).
//!
//! The flow: [`parse_policy_file`] for each `policies/*.yaml` (and `sluice.yaml`'s `policies:`,
//! read by `repo_config` into `RepoConfig::policies`) → [`load_policies`] (set-wide checks; no
//! policies at all when any file has an error) → the caller resolves [`teams_referenced`]
//! through GitHub into a [`TeamMembership`] → [`evaluate`] per project and command → [`blocks`],
//! [`render_section`] for the PR comment, [`Decision::to_audit`] for the audit log;
//! `approve_policies` goes through [`plan_overrides`] and [`may_override`].
//!
//! Everything here is pure: no I/O, no clock, no async. The user-facing description of the
//! format is `policies/README.md` at the repository root; in short:
//!
//! ```yaml
//! version: 1
//! policies:
//!   - name: protect-prod-databases        # unique; `approve_policies --policy-set NAME`
//!     description: DBAs sign off on destroying production databases
//!     scope:                              # all optional; a missing key means "all"
//!       projects: ["prod-*", "envs/prod/**"]   # project names or dirs (globs)
//!       workspaces: [default]
//!       branches: [main]                  # the PR's target branch
//!     access:                             # who may run each command (others: unrestricted)
//!       apply: { teams: [acme/infra], users: [alice] }
//!     approvals:                          # or all_of / any_of: [{minimum, from}, ...]
//!       minimum: 2
//!       from: { teams: [acme/platform] }
//!       ignore_stale: true                # only approvals of the head commit count
//!     rules:
//!       - deny: [delete, replace]
//!         resource_types: [aws_db_instance]
//!       - require_approval: [update]
//!         resource_types: ["aws_db_*"]
//!         approvals: { minimum: 1, from: { teams: [acme/dba] } }
//!       - max_destroys: 10
//!       - max_changes: 100
//!       - deny_providers: [hashicorp/external]
//!       - require_tags: [Owner, CostCenter]
//!         resource_types: ["aws_*"]
//!     on_failure: require_override        # deny (default) | require_override | warn
//!     owners: { teams: [acme/dba] }       # who may override
//! ```

mod check;
mod eval;
mod model;
mod parse;
pub mod rego;
mod render;

pub use check::{
    POLICY_DIR, check_policy_set, check_teams, is_policy_file, load_policies, teams_referenced,
};
pub use eval::{
    Decision, MAX_REASONS_PER_RULE, Outcome, OverridePlan, PolicyInput, PolicyOverride, Reason,
    ReasonKind, TeamLookup, TeamMembership, blocks, evaluate, may_override, plan_overrides,
};
pub use model::{
    AccessRule, ApprovalGroup, Approvals, ChangeKind, Combine, OnFailure, Pattern, PatternKind,
    PlanRule, Policy, Principal, Principals, ResourceFilter, RuleAction, RuleKind, Scope, Stage,
    TeamRef,
};
pub(crate) use parse::policies_node;
pub use parse::{DEFAULT_TAG_ATTRIBUTES, SUPPORTED_VERSIONS, parse_policy_file};
pub use render::{MAX_RENDERED_REASONS, render_section};

/// A plan's policies in one word: the `sluice/policy` status of its run counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVerdict {
    /// No policy applies to the project.
    None,
    Pass,
    /// Passes, with warnings.
    Warn,
    /// Waits for approvals.
    Pending,
    /// Fails (blocks the apply).
    Fail,
}

impl PolicyVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVerdict::None => "none",
            PolicyVerdict::Pass => "pass",
            PolicyVerdict::Warn => "warn",
            PolicyVerdict::Pending => "pending",
            PolicyVerdict::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<PolicyVerdict> {
        [
            PolicyVerdict::None,
            PolicyVerdict::Pass,
            PolicyVerdict::Warn,
            PolicyVerdict::Pending,
            PolicyVerdict::Fail,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// The verdict of a set of decisions: the worst applicable outcome.
    pub fn of(decisions: &[Decision]) -> PolicyVerdict {
        let applicable: Vec<&Decision> = decisions
            .iter()
            .filter(|d| d.outcome != Outcome::NotApplicable)
            .collect();
        if applicable.is_empty() {
            PolicyVerdict::None
        } else if applicable.iter().any(|d| d.is_blocking()) {
            PolicyVerdict::Fail
        } else if applicable.iter().any(|d| d.outcome == Outcome::Pending) {
            PolicyVerdict::Pending
        } else if applicable.iter().any(|d| d.outcome == Outcome::Warn) {
            PolicyVerdict::Warn
        } else {
            PolicyVerdict::Pass
        }
    }

    /// The names of the policies behind this verdict among `decisions`, in their order, each
    /// once: the failing ones for `Fail`, those waiting for approvals for `Pending`, the
    /// warning ones for `Warn`; none for `Pass` and `None`.
    pub fn names_in(self, decisions: &[Decision]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for d in decisions {
            let behind = match self {
                PolicyVerdict::Fail => d.is_blocking(),
                PolicyVerdict::Pending => d.outcome == Outcome::Pending,
                PolicyVerdict::Warn => d.outcome == Outcome::Warn,
                PolicyVerdict::Pass | PolicyVerdict::None => false,
            };
            if behind && !names.contains(&d.policy) {
                names.push(d.policy.clone());
            }
        }
        names
    }
}

/// An inline code span for text that may contain anything (addresses come from the PR's own
/// code): whitespace and control characters collapse to one space, and the fence is longer than
/// any run of back-ticks inside, so the text can never close the span and become markup.
pub(crate) fn code(s: &str) -> String {
    let flat: String = s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let longest = flat.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    if longest == 0 {
        format!("`{flat}`")
    } else {
        let fence = "`".repeat(longest + 1);
        format!("{fence} {flat} {fence}")
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::test_support::*;
    use super::*;
    use crate::core::plan::Plan;

    /// Every file of the top-level `policies/` folder (a test below checks none is missing).
    const SHIPPED: &[(&str, &str)] = &[
        (
            "policies/cap-destroys.yaml",
            include_str!("../../../policies/cap-destroys.yaml"),
        ),
        (
            "policies/forbid-risky-providers.yaml",
            include_str!("../../../policies/forbid-risky-providers.yaml"),
        ),
        (
            "policies/only-infra-applies.yaml",
            include_str!("../../../policies/only-infra-applies.yaml"),
        ),
        (
            "policies/protect-prod-databases.yaml",
            include_str!("../../../policies/protect-prod-databases.yaml"),
        ),
        (
            "policies/required-tags.yaml",
            include_str!("../../../policies/required-tags.yaml"),
        ),
        (
            "policies/two-approvals-for-prod.yaml",
            include_str!("../../../policies/two-approvals-for-prod.yaml"),
        ),
    ];

    fn shipped() -> Vec<Policy> {
        let (policies, diags) = load_policies(SHIPPED, &[]);
        assert!(diags.is_empty(), "{diags:#?}");
        policies.expect("the shipped policies are valid")
    }

    #[test]
    fn every_shipped_policy_file_is_tested() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(POLICY_DIR);
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("the policies/ folder exists")
            .map(|e| {
                format!(
                    "{POLICY_DIR}/{}",
                    e.expect("readable").file_name().to_string_lossy()
                )
            })
            .filter(|p| is_policy_file(p))
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = SHIPPED.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            on_disk, listed,
            "list every file of policies/ in SHIPPED (and only those)"
        );
        assert!(
            dir.join("README.md").is_file(),
            "policies/README.md documents the format"
        );
    }

    #[test]
    fn shipped_policies_are_valid_and_consistent() {
        let policies = shipped();
        let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cap-destroys",
                "forbid-risky-providers",
                "only-infra-applies",
                "protect-prod-databases",
                "required-tags",
                "two-approvals-for-prod"
            ]
        );
        // One file per policy, named after it, so `--policy-set NAME` finds the file.
        for p in &policies {
            assert_eq!(p.file, format!("policies/{}.yaml", p.name));
        }
        assert_eq!(
            teams_referenced(&policies),
            [("acme", "dba"), ("acme", "infra"), ("acme", "platform")]
                .map(|(o, s)| (o.to_string(), s.to_string()))
        );
    }

    /// A plan destroying `n` null resources.
    fn many_deletes(n: usize) -> String {
        let changes: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"address":"null_resource.old[{i}]","type":"null_resource","provider_name":"registry.terraform.io/hashicorp/null","change":{{"actions":["delete"],"before":{{}}}}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"format_version":"1.2","resource_changes":[{}]}}"#,
            changes.join(",")
        )
    }

    struct Scenario {
        stage: Stage,
        actor: &'static str,
        project: (&'static str, &'static str),
        plan: String,
        approvals: &'static [(&'static str, Option<char>)],
        overrides: &'static [(&'static str, &'static str)],
    }

    /// Evaluates the shipped policies; shows the applicable decisions and the comment section.
    fn run(s: Scenario) -> String {
        let policies = shipped();
        let project = project(s.project.0, s.project.1, "default");
        let plan: Plan = plan(&s.plan);
        let approvals: Vec<_> = s.approvals.iter().map(|(l, c)| approval(l, *c)).collect();
        let head = sha('a');
        let overrides: Vec<PolicyOverride> = s
            .overrides
            .iter()
            .map(|(policy, by)| PolicyOverride {
                policy: policy.to_string(),
                project: project.name.clone(),
                by: by.to_string(),
                head_sha: head.clone(),
            })
            .collect();
        let teams = teams(&[
            ("acme/dba", Some(&["dora"])),
            ("acme/platform", Some(&["pat", "paula"])),
            ("acme/infra", Some(&["ian", "ada"])),
        ]);
        let input = PolicyInput {
            stage: s.stage,
            actor: s.actor,
            author: "ada",
            target_branch: "main",
            head_sha: &head,
            project: &project,
            base_names: &[],
            plan: Some(&plan),
            approvals: &approvals,
            teams: &teams,
            overrides: &overrides,
        };
        let decisions = evaluate(&policies, &input);
        let applicable: Vec<Decision> = decisions
            .iter()
            .filter(|d| d.outcome != Outcome::NotApplicable)
            .cloned()
            .collect();
        let mut out = show(&applicable);
        writeln!(out, "blocks: {}\n---", blocks(&decisions)).unwrap();
        out.push_str(&render_section(&decisions, "sluice", &project.name));
        out
    }

    #[test]
    fn prod_database_replaced_by_its_author_alone() {
        insta::assert_snapshot!(run(Scenario {
            stage: Stage::Apply,
            actor: "mallory",
            project: ("prod-db", "envs/prod/db"),
            plan: AWS_DB.to_string(),
            approvals: &[("ada", Some('a')), ("pat", Some('b'))],
            overrides: &[("protect-prod-databases", "ada")],
        }), @r"
            cap-destroys: pass
            forbid-risky-providers: pass
            only-infra-applies: fail
              - [Access] access.apply @ policies/only-infra-applies.yaml:10:7: `@mallory` may not run `apply` here: allowed are members of team `acme/infra`
            protect-prod-databases: fail (override: team acme/dba)
              - [Plan] no-database-destroys @ policies/protect-prod-databases.yaml:13:9 <aws_db_instance.legacy>: deletes `aws_db_instance.legacy`
              - [Plan] no-database-destroys @ policies/protect-prod-databases.yaml:13:9 <aws_db_instance.main>: replaces `aws_db_instance.main`
              - [Note] override @ policies/protect-prod-databases.yaml:8:5: the override by `@ada` does not count: `@ada` opened this pull request, and authors cannot override policies on their own pull requests
            required-tags: warn
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <aws_db_instance.main>: replaces `aws_db_instance.main`: missing required tag `CostCenter`
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <module.app.aws_instance.web[0]>: creates `module.app.aws_instance.web[0]`: missing required tags `Owner`, `CostCenter`
            two-approvals-for-prod: fail
              - [Approvals] approvals @ policies/two-approvals-for-prod.yaml:11:7: needs 2 approvals from members of team `acme/platform` (has none); not counted: `@pat` (approved bbbbbbb, not the head aaaaaaa), `@ada` (the author)
            blocks: true
            ---
            **Policies:** ❌ 3 failed · ⚠️ 1 warned · ✅ 2 passed

            * ❌ **only-infra-applies** (`policies/only-infra-applies.yaml:5`) blocks apply; it cannot be overridden
              * `access.apply` (line 10): `@mallory` may not run `apply` here: allowed are members of team `acme/infra`
            * ❌ **protect-prod-databases** (`policies/protect-prod-databases.yaml:8`) blocks apply until a policy owner (members of `acme/dba`) overrides it: `sluice approve_policies -p prod-db --policy-set protect-prod-databases`
              * `no-database-destroys` (line 13): deletes `aws_db_instance.legacy`
              * `no-database-destroys` (line 13): replaces `aws_db_instance.main`
              * ℹ️ `override` (line 8): the override by `@ada` does not count: `@ada` opened this pull request, and authors cannot override policies on their own pull requests
            * ❌ **two-approvals-for-prod** (`policies/two-approvals-for-prod.yaml:5`) blocks apply; it cannot be overridden
              * `approvals` (line 11): needs 2 approvals from members of team `acme/platform` (has none); not counted: `@pat` (approved bbbbbbb, not the head aaaaaaa), `@ada` (the author)
            * ⚠️ **required-tags** (`policies/required-tags.yaml:8`) warns (does not block)
              * `require_tags` (line 11): replaces `aws_db_instance.main`: missing required tag `CostCenter`
              * `require_tags` (line 11): creates `module.app.aws_instance.web[0]`: missing required tags `Owner`, `CostCenter`
            * ✅ **cap-destroys**, **forbid-risky-providers** passed
        ");
    }

    #[test]
    fn prod_database_replaced_with_approvals_and_a_dba_override() {
        insta::assert_snapshot!(run(Scenario {
            stage: Stage::Apply,
            actor: "ian",
            project: ("prod-db", "envs/prod/db"),
            plan: AWS_DB.to_string(),
            approvals: &[("pat", Some('a')), ("paula", Some('a'))],
            overrides: &[("protect-prod-databases", "dora")],
        }), @r"
            cap-destroys: pass
            forbid-risky-providers: pass
            only-infra-applies: pass
            protect-prod-databases: overridden by @dora
              - [Plan] no-database-destroys @ policies/protect-prod-databases.yaml:13:9 <aws_db_instance.legacy>: deletes `aws_db_instance.legacy`
              - [Plan] no-database-destroys @ policies/protect-prod-databases.yaml:13:9 <aws_db_instance.main>: replaces `aws_db_instance.main`
            required-tags: warn
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <aws_db_instance.main>: replaces `aws_db_instance.main`: missing required tag `CostCenter`
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <module.app.aws_instance.web[0]>: creates `module.app.aws_instance.web[0]`: missing required tags `Owner`, `CostCenter`
            two-approvals-for-prod: pass
            blocks: false
            ---
            **Policies:** ⚠️ 1 warned · ↪️ 1 overridden · ✅ 4 passed

            * ⚠️ **required-tags** (`policies/required-tags.yaml:8`) warns (does not block)
              * `require_tags` (line 11): replaces `aws_db_instance.main`: missing required tag `CostCenter`
              * `require_tags` (line 11): creates `module.app.aws_instance.web[0]`: missing required tags `Owner`, `CostCenter`
            * ↪️ **protect-prod-databases** (`policies/protect-prod-databases.yaml:8`) failed, overridden by `@dora`
              * `no-database-destroys` (line 13): deletes `aws_db_instance.legacy`
              * `no-database-destroys` (line 13): replaces `aws_db_instance.main`
            * ✅ **cap-destroys**, **forbid-risky-providers**, **only-infra-applies**, **two-approvals-for-prod** passed
        ");
    }

    #[test]
    fn new_buckets_in_prod_at_plan_time() {
        insta::assert_snapshot!(run(Scenario {
            stage: Stage::Plan,
            actor: "ada",
            project: ("storage", "envs/prod/storage"),
            plan: BUCKETS.to_string(),
            approvals: &[("pat", Some('a'))],
            overrides: &[],
        }), @r#"
            cap-destroys: pass
            forbid-risky-providers: fail
              - [Plan] deny_providers @ policies/forbid-risky-providers.yaml:8:9 <data.external.git_sha>: uses provider `registry.terraform.io/hashicorp/external`, which is not allowed (1 resource: `data.external.git_sha`)
            only-infra-applies: pass
            protect-prod-databases: pass
            required-tags: warn
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <aws_s3_bucket.untagged>: creates `aws_s3_bucket.untagged`: missing required tags `Owner`, `CostCenter`
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <aws_s3_bucket.computed>: creates `aws_s3_bucket.computed`: required tag `CostCenter` cannot be checked: `tags_all` is only known after apply
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <aws_s3_bucket.empty_value["x`y"]>: creates `` aws_s3_bucket.empty_value["x`y"] ``: missing required tag `Owner`
              - [Plan] require_tags @ policies/required-tags.yaml:11:9 <aws_instance.app>: replaces `aws_instance.app`: missing required tag `CostCenter`
            two-approvals-for-prod: pending
              - [Approvals] approvals @ policies/two-approvals-for-prod.yaml:11:7: needs 2 approvals from members of team `acme/platform` (has 1: `@pat`)
            blocks: true
            ---
            **Policies:** ❌ 1 failed · ⏳ 1 waiting for approvals · ⚠️ 1 warned · ✅ 3 passed

            * ❌ **forbid-risky-providers** (`policies/forbid-risky-providers.yaml:5`) blocks apply; it cannot be overridden
              * `deny_providers` (line 8): uses provider `registry.terraform.io/hashicorp/external`, which is not allowed (1 resource: `data.external.git_sha`)
            * ⏳ **two-approvals-for-prod** (`policies/two-approvals-for-prod.yaml:5`) waits for approvals before apply
              * `approvals` (line 11): needs 2 approvals from members of team `acme/platform` (has 1: `@pat`)
            * ⚠️ **required-tags** (`policies/required-tags.yaml:8`) warns (does not block)
              * `require_tags` (line 11): creates `aws_s3_bucket.untagged`: missing required tags `Owner`, `CostCenter`
              * `require_tags` (line 11): creates `aws_s3_bucket.computed`: required tag `CostCenter` cannot be checked: `tags_all` is only known after apply
              * `require_tags` (line 11): creates `` aws_s3_bucket.empty_value["x`y"] ``: missing required tag `Owner`
              * `require_tags` (line 11): replaces `aws_instance.app`: missing required tag `CostCenter`
            * ✅ **cap-destroys**, **only-infra-applies**, **protect-prod-databases** passed
        "#);
    }

    #[test]
    fn real_null_plan_in_staging() {
        insta::assert_snapshot!(run(Scenario {
            stage: Stage::Apply,
            actor: "ada",
            project: ("staging", "envs/staging"),
            plan: MIXED.to_string(),
            approvals: &[],
            overrides: &[],
        }), @r"
            cap-destroys: pass
            forbid-risky-providers: pass
            required-tags: pass
            blocks: false
            ---
            **Policies:** ✅ 3 passed

            * ✅ **cap-destroys**, **forbid-risky-providers**, **required-tags** passed
        ");
    }

    #[test]
    fn too_many_destroys() {
        insta::assert_snapshot!(run(Scenario {
            stage: Stage::Apply,
            actor: "ada",
            project: ("staging", "envs/staging"),
            plan: many_deletes(12),
            approvals: &[],
            overrides: &[],
        }), @r"
            cap-destroys: fail (override: team acme/platform)
              - [Plan] max_destroys @ policies/cap-destroys.yaml:10:9: destroys 12 objects, more than the 10 allowed: `null_resource.old[0]`, `null_resource.old[1]`, `null_resource.old[2]`, `null_resource.old[3]`, `null_resource.old[4]` and 7 more
            forbid-risky-providers: pass
            required-tags: pass
            blocks: true
            ---
            **Policies:** ❌ 1 failed · ✅ 2 passed

            * ❌ **cap-destroys** (`policies/cap-destroys.yaml:7`) blocks apply until a policy owner (members of `acme/platform`) overrides it: `sluice approve_policies -p staging --policy-set cap-destroys`
              * `max_destroys` (line 10): destroys 12 objects, more than the 10 allowed: `null_resource.old[0]`, `null_resource.old[1]`, `null_resource.old[2]`, `null_resource.old[3]`, `null_resource.old[4]` and 7 more
            * ✅ **forbid-risky-providers**, **required-tags** passed
        ");
    }

    #[test]
    fn plan_from_a_newer_terraform_in_prod() {
        insta::assert_snapshot!(run(Scenario {
            stage: Stage::Apply,
            actor: "ian",
            project: ("prod-app", "envs/prod/app"),
            plan: FUTURE.to_string(),
            approvals: &[("pat", Some('a')), ("paula", Some('a'))],
            overrides: &[],
        }), @r"
            cap-destroys: pass
            forbid-risky-providers: pass
            only-infra-applies: pass
            protect-prod-databases: pass
            required-tags: pass
            two-approvals-for-prod: pass
            blocks: false
            ---
            **Policies:** ✅ 6 passed

            * ✅ **cap-destroys**, **forbid-risky-providers**, **only-infra-applies**, **protect-prod-databases**, **required-tags**, **two-approvals-for-prod** passed
        ");
    }

    #[test]
    fn code_spans_survive_any_text() {
        assert_eq!(code("a.b"), "`a.b`");
        assert_eq!(code("x`y"), "`` x`y ``");
        assert_eq!(code("a``b`"), "``` a``b` ```");
        assert_eq!(code("two\nlines\tand\u{0}nul"), "`two lines and nul`");
    }
}
