//! What a plan run says about a project the pull request removes (`core::removed`): that it
//! disappears and why, that its resources stay in the cloud and are orphaned by the merge, and
//! the two commands that destroy them first — written by the grammar (`command::project_hint`),
//! so they parse back to the project.
//!
//! Also the configuration warnings a plan posts, so they reach the pull request and not only
//! the server's log.

use std::fmt::Write as _;

use crate::core::command::{CommandKind, project_hint};
use crate::core::diag::Diagnostic;
use crate::core::plan::render::code;
use crate::core::projects::Project;
use crate::core::removed::Removal;
use crate::core::types::{CommitSha, ProjectDir, ProjectName, Workspace};

/// One word for the audit log: `files_deleted`, `moved`, `dropped_from_config`.
pub fn removal_word(removal: &Removal) -> &'static str {
    match removal {
        Removal::FilesDeleted => "files_deleted",
        Removal::Moved { .. } => "moved",
        Removal::DroppedFromConfig => "dropped_from_config",
    }
}

/// Where a removed project ran: what its part of a comment names.
#[derive(Debug, Clone, Copy)]
pub struct Removed<'a> {
    pub name: &'a ProjectName,
    pub dir: &'a ProjectDir,
    pub workspace: &'a Workspace,
    pub removal: &'a Removal,
}

impl<'a> Removed<'a> {
    /// The removed `project` (as the base branch defines it).
    pub fn of(project: &'a Project, removal: &'a Removal) -> Self {
        Removed {
            name: &project.name,
            dir: &project.dir,
            workspace: &project.workspace,
            removal,
        }
    }
}

/// Why the project disappears, as a clause: "its `.tf` files are deleted".
fn why(project: &Removed<'_>, removal: &Removal) -> String {
    match removal {
        Removal::FilesDeleted => format!(
            "every Terraform file of {} is deleted by this pull request",
            code(project.dir.as_str())
        ),
        Removal::Moved { to } => {
            let to: Vec<String> = to.iter().map(|d| code(d.as_str())).collect();
            format!(
                "its files move from {} to {} — a new project, with its own state unless its \
                 backend configuration points at the same one",
                code(project.dir.as_str()),
                to.join(", ")
            )
        }
        Removal::DroppedFromConfig => format!(
            "the configuration no longer lists {} (workspace {}); its Terraform files stay",
            code(project.dir.as_str()),
            code(project.workspace.as_str())
        ),
    }
}

/// A removed project's part of the plan run's comment (markdown): why it disappears, that
/// its resources are orphaned by the merge, and how to destroy them first.
pub fn section(bot_name: &str, project: &Removed<'_>) -> String {
    let (name, removal) = (project.name, project.removal);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "> [!WARNING]\n> **This pull request removes the project**: {}.\n> Its resources stay \
         in the cloud: after the merge nothing manages them (they are orphaned).\n",
        why(project, removal)
    );
    let _ = writeln!(
        s,
        "To destroy them first, plan the destroy from the base branch's configuration and apply \
         it:\n* :boom: {}\n* :arrow_forward: then {}\n",
        code(&destroy_hint(bot_name, name)),
        code(&project_hint(bot_name, CommandKind::Apply, name))
    );
    s.push_str(
        "Until a destroy plan of this project is applied on this pull request, `sluice/plan` \
         fails. (If its state is already empty, the destroy plan shows no change; applying it \
         records that.)",
    );
    if matches!(removal, Removal::Moved { .. }) {
        s.push_str(
            " If the new directory uses the same backend state, do not apply the destroy plan: \
             it would destroy what the new project manages.",
        );
    }
    s
}

/// The one line the run's table shows for a removed project.
pub fn table_line() -> &'static str {
    "removed: its resources would be orphaned"
}

/// `sluice plan -p NAME --destroy`, written by the grammar.
pub fn destroy_hint(bot_name: &str, project: &ProjectName) -> String {
    let mut hint = project_hint(bot_name, CommandKind::Plan, project);
    hint.push_str(" --destroy");
    hint
}

/// A `plan -p` (without `--destroy`) of a project the pull request removes: it has nothing
/// to plan at the head; its destroy is planned from the base branch.
pub fn target_removed(bot_name: &str, project: &ProjectName) -> String {
    format!(
        "❌ This pull request removes the project {}: there is nothing of it to plan at its \
         head. To destroy its resources before the merge, comment {}, then {}.",
        code(project.as_str()),
        code(&destroy_hint(bot_name, project)),
        code(&project_hint(bot_name, CommandKind::Apply, project))
    )
}

/// The configuration's warnings at `head` (a configured dir without Terraform files, a
/// `when_modified` pattern dropped, …), posted with a plan so they reach the pull request.
pub fn config_warnings(file: Option<&str>, head: &CommitSha, warnings: &[Diagnostic]) -> String {
    let mut body = format!(
        "⚠️ **`{}` has warnings** at {}:\n\n```\n",
        file.unwrap_or("the configuration"),
        head.short()
    );
    for d in warnings {
        let _ = writeln!(body, "{d}");
    }
    body.push_str("```\n`sluice config check` shows the same locally.");
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::{ParseContext, Parsed, parse_comment};

    fn project(dir: &str) -> Project {
        Project::detected(ProjectDir::new(dir).unwrap(), Workspace::default())
    }

    #[test]
    fn a_removed_project_is_explained_with_commands_that_parse_back() {
        insta::assert_snapshot!(section("sluice", &Removed::of(&project("envs/eu west"), &Removal::FilesDeleted)), @r"
        > [!WARNING]
        > **This pull request removes the project**: every Terraform file of `envs/eu west` is deleted by this pull request.
        > Its resources stay in the cloud: after the merge nothing manages them (they are orphaned).

        To destroy them first, plan the destroy from the base branch's configuration and apply it:
        * :boom: `sluice plan -p 'envs/eu west' --destroy`
        * :arrow_forward: then `sluice apply -p 'envs/eu west'`

        Until a destroy plan of this project is applied on this pull request, `sluice/plan` fails. (If its state is already empty, the destroy plan shows no change; applying it records that.)
        ");
        let moved = Removal::Moved {
            to: vec![ProjectDir::new("network").unwrap()],
        };
        insta::assert_snapshot!(section("sluice", &Removed::of(&project("net"), &moved)), @r"
        > [!WARNING]
        > **This pull request removes the project**: its files move from `net` to `network` — a new project, with its own state unless its backend configuration points at the same one.
        > Its resources stay in the cloud: after the merge nothing manages them (they are orphaned).

        To destroy them first, plan the destroy from the base branch's configuration and apply it:
        * :boom: `sluice plan -p net --destroy`
        * :arrow_forward: then `sluice apply -p net`

        Until a destroy plan of this project is applied on this pull request, `sluice/plan` fails. (If its state is already empty, the destroy plan shows no change; applying it records that.) If the new directory uses the same backend state, do not apply the destroy plan: it would destroy what the new project manages.
        ");
        let ctx = ParseContext::new("sluice");
        for dir in ["envs/eu west", "-edge", "a`b", "café (old)", "x+y@z"] {
            let name = project(dir).name;
            let Parsed::Command(c) = parse_comment(&ctx, &destroy_hint("sluice", &name)) else {
                panic!("{dir}: the destroy hint does not parse");
            };
            assert!(c.destroy, "{dir}");
            assert_eq!(c.targets.project.as_ref(), Some(&name), "{dir}");
        }
    }
}
