//! `import` and `state rm` (`core::state_command`): which project they act on, and the result
//! of the run — the engine's output (already redacted by the runner) in a fence it cannot
//! close, and, after a change, that the pull request's plans of the project are stale.

use crate::core::command::{CommandKind, project_hint};
use crate::core::plan::render::{code, fenced};
use crate::core::state_command::ArgError;
use crate::core::types::ProjectName;

/// The most output bytes a result comment shows: the tail, where terraform says what it did.
pub const MAX_OUTPUT_BYTES: usize = 30_000;

/// The command's name in replies (`import`, `state rm`).
fn name(kind: CommandKind) -> &'static str {
    kind.name()
}

/// No project of the pull request's head matches the command's `-p` / `-d` / `-w`.
pub fn no_project(kind: CommandKind, known: &[ProjectName]) -> String {
    let cmd = name(kind);
    let mut s = format!(
        "**Error:** `{cmd}` was not run: no project of this pull request matches it. Name one \
         project with `-p PROJECT` (or `-d DIR -w WORKSPACE`)."
    );
    if !known.is_empty() {
        let names: Vec<String> = known.iter().map(|p| code(p.as_str())).collect();
        s.push_str(&format!("\n\nProjects: {}.", names.join(", ")));
    }
    s
}

/// The command matches several projects; a state change names exactly one.
pub fn several_projects(kind: CommandKind, bot: &str, matched: &[ProjectName]) -> String {
    let cmd = name(kind);
    let hints: Vec<String> = matched
        .iter()
        .map(|p| format!("* {}", code(&project_hint(bot, kind, p))))
        .collect();
    format!(
        "**Error:** `{cmd}` was not run: it changes the state of one project, and {} match. \
         Name one with `-p`, followed by the arguments:\n\n{}",
        matched.len(),
        hints.join("\n")
    )
}

/// The command's words do not check (`core::state_command`): the error, its hint, the usage.
pub fn bad_arguments(kind: CommandKind, bot: &str, error: &ArgError) -> String {
    format!(
        "**Error:** {}\n\nHint: {}\n\nUsage: {}",
        error.message,
        error.hint,
        code(&kind.synopsis(bot))
    )
}

/// Another pull request took the project's lock between the check and the run: it waits.
pub fn waiting(kind: CommandKind, holder: Option<crate::core::types::PrNumber>) -> String {
    let by = holder.map_or_else(|| "another pull request".to_string(), |pr| pr.to_string());
    format!(
        "`{}` is queued: the project is locked by {by}; it runs when the lock is released.",
        name(kind)
    )
}

/// The refusal of `core::state_command::refusal`, as posted.
pub fn refused(message: &str) -> String {
    format!("**Not run:** {message}")
}

/// What a finished run of `cmd` (`import`, `state rm`) says: the command and project, then the
/// output or the error. After a change, the store has discarded the pull request's plans of the
/// project: they were made against the old state.
pub fn result(cmd: &str, bot: &str, project: &ProjectName, outcome: Result<&str, &str>) -> String {
    let mut s = match outcome {
        Ok(_) => format!(
            "### :white_check_mark: `{cmd}` succeeded for project {}\n\n",
            code(project.as_str())
        ),
        Err(_) => format!(
            "### :x: `{cmd}` failed for project {}\n\n",
            code(project.as_str())
        ),
    };
    let text = match outcome {
        Ok(t) | Err(t) => tail(t.trim_end()),
    };
    if !text.is_empty() {
        fenced(&mut s, "", &text);
        s.push('\n');
    }
    if outcome.is_ok() {
        let again = code(&project_hint(bot, CommandKind::Plan, project));
        s.push_str(&format!(
            "The state changed, so any plan of this project on this pull request was made \
             against the old state and is discarded: plan again ({again}) before `apply`."
        ));
    }
    s
}

/// The last [`MAX_OUTPUT_BYTES`] of `text`, on a character boundary, with a note when cut.
fn tail(text: &str) -> String {
    if text.len() <= MAX_OUTPUT_BYTES {
        return text.to_string();
    }
    let mut start = text.len() - MAX_OUTPUT_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[… {start} bytes of output left out …]\n{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_texts() {
        let p = ProjectName::new("envs/a").unwrap();
        let ok = result(
            "import",
            "sluice",
            &p,
            Ok("null_resource.x: Importing...\nImport successful!\n```\nnot a fence end"),
        );
        let failed = result(
            "state rm",
            "sluice",
            &p,
            Err("Error: Invalid target address"),
        );
        insta::assert_snapshot!(format!("{ok}\n---\n{failed}"), @"
        ### :white_check_mark: `import` succeeded for project `envs/a`

        ````
        null_resource.x: Importing...
        Import successful!
        ```
        not a fence end
        ````

        The state changed, so any plan of this project on this pull request was made against the old state and is discarded: plan again (`sluice plan -p envs/a`) before `apply`.
        ---
        ### :x: `state rm` failed for project `envs/a`

        ```
        Error: Invalid target address
        ```
        ");
    }

    #[test]
    fn project_choice_texts() {
        let a = ProjectName::new("a").unwrap();
        let b = ProjectName::new("b c").unwrap();
        let bad =
            crate::core::state_command::StateCommand::import(&["module.net", "x"]).unwrap_err();
        let out = [
            no_project(CommandKind::Import, &[a.clone(), b.clone()]),
            several_projects(CommandKind::StateRm, "sluice", &[a, b]),
            bad_arguments(CommandKind::Import, "sluice", &bad),
        ];
        insta::assert_snapshot!(out.join("\n---\n"), @r#"
        **Error:** `import` was not run: no project of this pull request matches it. Name one project with `-p PROJECT` (or `-d DIR -w WORKSPACE`).

        Projects: `a`, `b c`.
        ---
        **Error:** `state rm` was not run: it changes the state of one project, and 2 match. Name one with `-p`, followed by the arguments:

        * `sluice state rm -p a`
        * `sluice state rm -p 'b c'`
        ---
        **Error:** `module.net` names a module; `import` needs a resource

        Hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`

        Usage: `sluice import [-p PROJECT | [-d DIR] [-w WORKSPACE]] ADDRESS ID [-- TERRAFORM_ARGS]`
        "#);
    }

    #[test]
    fn long_output_keeps_its_tail() {
        let long = format!("{}é{}", "x".repeat(MAX_OUTPUT_BYTES), "end");
        let t = tail(&long);
        assert!(t.ends_with("end"));
        assert!(t.starts_with("[… "));
        assert!(t.len() < MAX_OUTPUT_BYTES + 64);
    }
}
