//! The answer to `version`: the engine and its version for every project.

use crate::core::types::{Engine, ProjectDir, ProjectName, Workspace};

/// One project's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: ProjectName,
    pub dir: ProjectDir,
    pub workspace: Workspace,
    pub engine: Engine,
    /// `terraform version`'s first line, or why it is not known.
    pub version: String,
}

/// The table of `rows`, in their order.
pub fn table(rows: &[Row]) -> String {
    let mut body =
        String::from("| project | dir | workspace | engine | version |\n|---|---|---|---|---|\n");
    for r in rows {
        body.push_str(&format!(
            "| {} | `{}` | `{}` | {} | {} |\n",
            r.name, r.dir, r.workspace, r.engine, r.version
        ));
    }
    body
}

/// The version column when running the binary failed.
pub fn unknown(error: &str) -> String {
    format!("unknown ({error})")
}

/// The version column when no binary could be found.
pub fn unavailable(error: &str) -> String {
    format!("unavailable: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let row = |dir: &str, engine: Engine, version: &str| Row {
            name: ProjectName::new(dir).unwrap(),
            dir: ProjectDir::new(dir).unwrap(),
            workspace: Workspace::default(),
            engine,
            version: version.into(),
        };
        insta::assert_snapshot!(table(&[
            row("envs/a", Engine::Terraform, "Terraform v1.0.3"),
            row("envs/b", Engine::Opentofu, &unavailable("tofu binary unavailable: `tofu` is not on PATH")),
            row("envs/c", Engine::Terraform, &unknown("`terraform version` did not answer within 20s")),
        ]), @r"
        | project | dir | workspace | engine | version |
        |---|---|---|---|---|
        | envs/a | `envs/a` | `default` | terraform | Terraform v1.0.3 |
        | envs/b | `envs/b` | `default` | opentofu | unavailable: tofu binary unavailable: `tofu` is not on PATH |
        | envs/c | `envs/c` | `default` | terraform | unknown (`terraform version` did not answer within 20s) |
        ");
    }
}
