//! The "Policies" section of a project's PR comment: what failed (with every reason, where the
//! rule is written, and who can override it with which command), what waits for approvals,
//! what warned, what was overridden and what passed.
//!
//! Pure string building. Reason messages already quote names and addresses in code spans
//! (addresses come from the PR's own code, so they must never become markup or mentions).

use std::fmt::Write as _;

use super::code;
use super::eval::{Decision, Outcome, ReasonKind};
use super::model::Principal;
use crate::core::command::approve_policies_hint;
use crate::core::types::ProjectName;

/// Per policy, at most this many reasons in the comment; the rest are counted (the audit log
/// and the decision keep them).
pub const MAX_RENDERED_REASONS: usize = 10;

/// Renders the section for one project, or an empty string when no policy applies to it.
/// `bot_name` is the command word (`sluice`) used in the override command.
pub fn render_section(decisions: &[Decision], bot_name: &str, project: &ProjectName) -> String {
    let applicable: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.outcome != Outcome::NotApplicable)
        .collect();
    if applicable.is_empty() {
        return String::new();
    }
    let count = |f: fn(&Outcome) -> bool| applicable.iter().filter(|d| f(&d.outcome)).count();
    let failed = count(|o| matches!(o, Outcome::Fail { .. }));
    let pending = count(|o| matches!(o, Outcome::Pending));
    let warned = count(|o| matches!(o, Outcome::Warn));
    let overridden = count(|o| matches!(o, Outcome::Overridden { .. }));
    let passed = count(|o| matches!(o, Outcome::Pass));

    let mut tally = Vec::new();
    for (n, text) in [
        (failed, "❌ {} failed"),
        (pending, "⏳ {} waiting for approvals"),
        (warned, "⚠️ {} warned"),
        (overridden, "↪️ {} overridden"),
        (passed, "✅ {} passed"),
    ] {
        if n > 0 {
            tally.push(text.replace("{}", &n.to_string()));
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "**Policies:** {}\n", tally.join(" · "));

    // Worst first: what blocks, then what waits, warns, was overridden; passes last, on one line.
    let order = |o: &Outcome| match o {
        Outcome::Fail { .. } => 0,
        Outcome::Pending => 1,
        Outcome::Warn => 2,
        Outcome::Overridden { .. } => 3,
        Outcome::Pass | Outcome::NotApplicable => 4,
    };
    let mut shown: Vec<&&Decision> = applicable
        .iter()
        .filter(|d| d.outcome != Outcome::Pass)
        .collect();
    shown.sort_by_key(|d| order(&d.outcome));
    for d in shown {
        policy_block(&mut s, d, bot_name, project);
    }
    let passed_names: Vec<String> = applicable
        .iter()
        .filter(|d| d.outcome == Outcome::Pass)
        .map(|d| format!("**{}**", d.policy))
        .collect();
    if !passed_names.is_empty() {
        let _ = writeln!(s, "* ✅ {} passed", passed_names.join(", "));
    }
    s
}

fn policy_block(s: &mut String, d: &Decision, bot: &str, project: &ProjectName) {
    let name = &d.policy;
    let whence = code(&format!("{}:{}", d.file, d.line));
    match &d.outcome {
        Outcome::Fail { overridable_by } if overridable_by.is_empty() => {
            let _ = writeln!(
                s,
                "* ❌ **{name}** ({whence}) blocks apply; it cannot be overridden"
            );
        }
        Outcome::Fail { overridable_by } => {
            let _ = writeln!(
                s,
                "* ❌ **{name}** ({whence}) blocks apply until a policy owner ({}) overrides it: \
                 {}",
                owners(overridable_by),
                code(&approve_policies_hint(bot, project, name))
            );
        }
        Outcome::Pending => {
            let _ = writeln!(
                s,
                "* ⏳ **{name}** ({whence}) waits for approvals before apply"
            );
        }
        Outcome::Warn => {
            let _ = writeln!(s, "* ⚠️ **{name}** ({whence}) warns (does not block)");
        }
        Outcome::Overridden { by } => {
            let _ = writeln!(
                s,
                "* ↪️ **{name}** ({whence}) failed, overridden by `@{by}`"
            );
        }
        Outcome::Pass | Outcome::NotApplicable => {}
    }
    let total = d.reasons.len();
    for r in d.reasons.iter().take(MAX_RENDERED_REASONS) {
        let note = if r.kind == ReasonKind::Note {
            "ℹ️ "
        } else {
            ""
        };
        // A Rego rule lives in its own file, not the config that declares the set.
        let at = if r.file == d.file {
            format!("line {}", r.line)
        } else {
            code(&format!("{}:{}", r.file, r.line))
        };
        let _ = writeln!(
            s,
            "  * {note}{} ({at}): {}",
            code(&r.rule),
            one_line(&r.message)
        );
    }
    if total > MAX_RENDERED_REASONS {
        let _ = writeln!(
            s,
            "  * … and {} more (the audit log has them all)",
            total - MAX_RENDERED_REASONS
        );
    }
}

/// "`@carol` or members of `acme/dba`": in code spans, so nobody gets a notification each time
/// a plan is posted.
fn owners(list: &[Principal]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|p| match p {
            Principal::User(u) => format!("`@{u}`"),
            Principal::Team(t) => format!("members of `{t}`"),
        })
        .collect();
    match items.len() {
        0 => "nobody".to_string(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::eval::Reason;

    fn decision(policy: &str, outcome: Outcome, reasons: &[&str]) -> Decision {
        Decision {
            policy: policy.to_string(),
            file: format!("policies/{policy}.yaml"),
            line: 3,
            outcome,
            reasons: reasons
                .iter()
                .enumerate()
                .map(|(i, m)| Reason {
                    rule: "deny".to_string(),
                    kind: ReasonKind::Plan,
                    message: m.to_string(),
                    address: None,
                    file: format!("policies/{policy}.yaml"),
                    line: 10 + i,
                    column: 9,
                })
                .collect(),
        }
    }

    fn name(s: &str) -> ProjectName {
        ProjectName::new(s).unwrap()
    }

    #[test]
    fn nothing_applicable_renders_nothing() {
        let d = [decision("a", Outcome::NotApplicable, &[])];
        assert_eq!(render_section(&d, "sluice", &name("net")), "");
        assert_eq!(render_section(&[], "sluice", &name("net")), "");
    }

    #[test]
    fn reasons_are_capped_and_text_stays_on_one_line() {
        let many: Vec<String> = (0..13).map(|i| format!("creates `x[{i}]`")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut odd = decision("odd", Outcome::Warn, &["two\nlines\n\n# not a heading"]);
        odd.reasons[0].rule = "rule `with` ticks".to_string();
        let d = [
            decision(
                "caps",
                Outcome::Fail {
                    overridable_by: vec![
                        Principal::User("carol".into()),
                        Principal::Team("acme/dba".into()),
                        Principal::Team("acme/sre".into()),
                    ],
                },
                &many,
            ),
            odd,
            decision("ok", Outcome::Pass, &[]),
        ];
        insta::assert_snapshot!(render_section(&d, "atlantis", &name("envs/prod:blue")), @r"
            **Policies:** ❌ 1 failed · ⚠️ 1 warned · ✅ 1 passed

            * ❌ **caps** (`policies/caps.yaml:3`) blocks apply until a policy owner (`@carol`, members of `acme/dba` or members of `acme/sre`) overrides it: `atlantis approve_policies -p envs/prod:blue --policy-set caps`
              * `deny` (line 10): creates `x[0]`
              * `deny` (line 11): creates `x[1]`
              * `deny` (line 12): creates `x[2]`
              * `deny` (line 13): creates `x[3]`
              * `deny` (line 14): creates `x[4]`
              * `deny` (line 15): creates `x[5]`
              * `deny` (line 16): creates `x[6]`
              * `deny` (line 17): creates `x[7]`
              * `deny` (line 18): creates `x[8]`
              * `deny` (line 19): creates `x[9]`
              * … and 3 more (the audit log has them all)
            * ⚠️ **odd** (`policies/odd.yaml:3`) warns (does not block)
              * `` rule `with` ticks `` (line 10): two lines # not a heading
            * ✅ **ok** passed
        ");
    }
}
