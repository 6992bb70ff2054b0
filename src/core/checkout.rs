//! What of a commit goes into a job's checkout.
//!
//! Terraform treats a few directories of its working directory as its own rather than as
//! configuration: `.terraform/` is its data dir (installed providers, modules, the selected
//! workspace, the backend settings), and `terraform.d/plugins/` is an implied provider mirror and,
//! in terraform 1.0, still a place it loads provisioner plugins from whatever the CLI
//! configuration says. A pull request that commits them would choose the binaries terraform runs.
//! Sluice gives terraform a data dir outside the checkout and a CLI configuration of its own,
//! and does not export these directories at all: not used, not even present. This module owns
//! the rule; the git adapter applies it while unpacking.

/// Directory names never exported into a checkout, at any depth (terraform looks for them in its
/// working directory, which may be any project dir).
pub const ENGINE_OWNED_DIRS: &[&str] = &[".terraform", "terraform.d"];

/// The engine-owned directory `path` (repo-relative, `/`-separated, as `git archive` writes it)
/// is in or is, or `None` when it is exported. A file or symlink with one of these names counts
/// too: whatever a PR puts there, terraform must not find it.
pub fn engine_owned(path: &str) -> Option<&'static str> {
    path.split('/')
        .find_map(|seg| ENGINE_OWNED_DIRS.iter().copied().find(|d| *d == seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_owned_dirs_are_not_exported_at_any_depth() {
        let table: &[(&str, Option<&str>)] = &[
            (".terraform", Some(".terraform")),
            (".terraform/", Some(".terraform")),
            (
                "app/.terraform/providers/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64/x",
                Some(".terraform"),
            ),
            ("envs/prod/.terraform/environment", Some(".terraform")),
            (
                "terraform.d/plugins/linux_amd64/terraform-provisioner-x",
                Some("terraform.d"),
            ),
            ("app/terraform.d", Some("terraform.d")),
            // The lock file and ordinary files are configuration.
            ("app/.terraform.lock.hcl", None),
            ("app/main.tf", None),
            ("app/.terraformrc", None),
            ("app/terraform.d.md", None),
            ("app/my.terraform/main.tf", None),
            // Another case is another directory on Linux, and terraform does not read it.
            ("app/.Terraform/x", None),
            ("", None),
        ];
        for (path, want) in table {
            assert_eq!(engine_owned(path), *want, "{path}");
        }
    }
}
