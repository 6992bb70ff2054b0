//! The plain-text report of `sluice drift check` (a terminal reads it): per project, its sync
//! verdict, then each classified resource with its changed attributes (before → after, already
//! redacted by [`classify`](super::classify())), or the check's error.

use std::fmt::Write as _;

use super::classify::{Classification, DriftClass};
use crate::core::types::{ProjectDir, ProjectName, Workspace};

/// Attributes shown per resource; the rest are counted.
const MAX_ATTRS: usize = 20;

/// Which project a report is about.
#[derive(Debug, Clone)]
pub struct CheckHeader<'a> {
    pub project: &'a ProjectName,
    pub dir: &'a ProjectDir,
    pub workspace: &'a Workspace,
    /// Short commit the check ran on.
    pub commit: &'a str,
}

/// One project's report: `Ok` the classification, `Err` the (redacted) error.
pub fn render_check(h: &CheckHeader<'_>, result: Result<&Classification, &str>) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{} (dir {}, workspace {}) at {}: ",
        h.project, h.dir, h.workspace, h.commit
    );
    let c = match result {
        Err(e) => {
            let _ = writeln!(s, "check failed");
            for line in e.trim_end().lines() {
                let _ = writeln!(s, "{}", format!("  | {line}").trim_end());
            }
            return s;
        }
        Ok(c) => c,
    };
    if c.is_clean() {
        let _ = writeln!(s, "in sync");
        return s;
    }
    let counts = c.counts();
    let mut parts = Vec::new();
    for class in DriftClass::ALL {
        let n = counts.get(class);
        if n > 0 {
            parts.push(format!("{n} {}", class.as_str()));
        }
    }
    let _ = writeln!(
        s,
        "{} (fingerprint {})",
        parts.join(", "),
        c.fingerprint.short()
    );
    for class in DriftClass::ALL {
        for f in c.of_class(class) {
            let _ = write!(
                s,
                "  {:<26} {} ({})",
                class.as_str(),
                f.address,
                f.action.as_strs().join(", ")
            );
            if let Some(note) = &f.note {
                let _ = write!(s, " — {note}");
            }
            s.push('\n');
            for ch in f.changes.iter().take(MAX_ATTRS) {
                let path = if ch.path.is_root() {
                    "(value)".to_string()
                } else {
                    ch.path.to_string()
                };
                let _ = writeln!(s, "      {path}: {} → {}", ch.before, ch.after);
            }
            if f.changes.len() > MAX_ATTRS {
                let _ = writeln!(
                    s,
                    "      … and {} more attribute(s)",
                    f.changes.len() - MAX_ATTRS
                );
            }
            for u in &f.upgrades {
                let _ = writeln!(s, "      upgrade: {u}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::drift::classify::{CheckPlans, classify};
    use crate::core::plan::parse_plan_json;

    fn fixture(name: &str) -> crate::core::plan::Plan {
        let path = format!("{}/tests/fixtures/plans/{name}", env!("CARGO_MANIFEST_DIR"));
        parse_plan_json(&std::fs::read(path).unwrap()).unwrap()
    }

    fn header<'a>(p: &'a ProjectName, d: &'a ProjectDir, w: &'a Workspace) -> CheckHeader<'a> {
        CheckHeader {
            project: p,
            dir: d,
            workspace: w,
            commit: "a1b2c3d",
        }
    }

    #[test]
    fn a_drifted_project_lists_each_resource_with_its_attributes() {
        let (refresh_only, plan) = (fixture("drift.refresh-only.json"), fixture("drift.json"));
        let c = classify(
            CheckPlans {
                refresh_only: &refresh_only,
                plan: &plan,
            },
            None,
            &[],
        )
        .unwrap();
        let (p, d, w) = (
            ProjectName::new("prod").unwrap(),
            ProjectDir::new("envs/prod").unwrap(),
            Workspace::default(),
        );
        let text = render_check(&header(&p, &d, &w), Ok(&c));
        assert!(text.starts_with("prod (dir envs/prod, workspace default) at a1b2c3d: "));
        assert!(text.contains("changed_outside"), "{text}");
        assert!(text.contains("unapplied"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        // Every finding is listed by address.
        for f in &c.findings {
            assert!(text.contains(&f.address), "{} missing:\n{text}", f.address);
        }
    }

    #[test]
    fn a_clean_check_and_a_failed_one() {
        let (p, d, w) = (
            ProjectName::new("app").unwrap(),
            ProjectDir::new(".").unwrap(),
            Workspace::default(),
        );
        let clean = Classification {
            findings: Vec::new(),
            fingerprint: crate::core::drift::Fingerprint::of(std::iter::empty::<(
                &str,
                Vec<&crate::core::drift::AttrPath>,
            )>()),
            values: crate::core::drift::ValuesDigest::of(&[]),
            engine_version: "1.0.3".into(),
        };
        insta::assert_snapshot!(render_check(&header(&p, &d, &w), Ok(&clean)), @"app (dir ., workspace default) at a1b2c3d: in sync");
        insta::assert_snapshot!(
            render_check(&header(&p, &d, &w), Err("`terraform init` exited with status 1.\n\nError: Failed to get existing workspaces")),
            @r"
        app (dir ., workspace default) at a1b2c3d: check failed
          | `terraform init` exited with status 1.
          |
          | Error: Failed to get existing workspaces
        "
        );
    }
}
