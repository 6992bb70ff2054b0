//! `sluice config check [PATH]`: validates a repository's configuration as it is on disk (the
//! working tree, uncommitted edits included): the config file, the projects it defines against
//! the tree, and policy files. Prints every diagnostic with file:line:col, and every project
//! (with its Atlantis `branch` pattern and `plan_requirements` when it has them: the project
//! exists only on pull requests into matching base branches, and is planned only once its
//! requirements hold).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::repo_state::load_config_files;
use crate::config::Limits;
use crate::core::diag::{Diagnostic, has_errors};
use crate::core::projects::{self, RepoSnapshot, module_sources};
use crate::core::types::ProjectDir;

pub struct CheckReport {
    pub ok: bool,
    pub text: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// Builds a snapshot from the working tree (skipping `.git` and `.terraform`), reading `.tf`
/// files within the default [`Limits`] as the server does; files over them come back as
/// diagnostics.
pub fn snapshot_from_disk(root: &Path) -> anyhow::Result<(RepoSnapshot, Vec<Diagnostic>)> {
    let limits = Limits::default();
    let mut diags = Vec::new();
    let mut files = BTreeSet::new();
    let mut symlinks = BTreeMap::new();
    let mut module_calls: BTreeMap<ProjectDir, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == ".git" || name == ".terraform" {
                continue;
            }
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("walked paths are under the root")
                .to_string_lossy()
                .replace('\\', "/");
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                let target = std::fs::read_link(&path)?;
                symlinks.insert(rel, target.to_string_lossy().into_owned());
            } else if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if (rel.ends_with(".tf") || rel.ends_with(".tofu")) && size > limits.file_bytes {
                    let why = crate::core::hcl_scan::Refusal::TooLarge {
                        bytes: usize::try_from(size).unwrap_or(usize::MAX),
                        max: usize::try_from(limits.file_bytes).unwrap_or(usize::MAX),
                    };
                    diags.push(projects::unread_file(&rel, 0, 0, &why));
                } else if rel.ends_with(".tf") || rel.ends_with(".tofu") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if text.contains("module") {
                        match module_sources(&rel, &text, &limits.hcl()) {
                            Ok(sources) if !sources.is_empty() => {
                                let d = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
                                if let Ok(d) = ProjectDir::new(d) {
                                    module_calls.entry(d).or_default().extend(sources);
                                }
                            }
                            Err(d) if d.is_error() => diags.push(d),
                            _ => {}
                        }
                    }
                }
                files.insert(rel);
            }
        }
    }
    Ok((
        RepoSnapshot {
            files,
            symlinks,
            module_calls,
        },
        diags,
    ))
}

pub fn check(root: &Path) -> anyhow::Result<CheckReport> {
    if !root.is_dir() {
        anyhow::bail!("{} is not a directory", root.display());
    }
    let read = |name: &str| -> anyhow::Result<Option<String>> {
        let p = root.join(name);
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    };
    let (config, file, mut diags) =
        load_config_files(read, &super::repo_state::RepoRules::unconfigured())?;
    let (snapshot, unread) = snapshot_from_disk(root)?;
    diags.extend(unread);
    // A config file that did not parse defines no projects: listing the ones detection would
    // find without it (under the file's name) would describe a configuration nobody wrote.
    let unusable = file.is_some() && config.is_none();
    let found = if unusable {
        Vec::new()
    } else {
        let (found, project_diags) = projects::all_projects(&snapshot, config.as_ref());
        diags.extend(project_diags);
        found
    };
    // Policy files: `policies/*.yaml` plus the `policies:` of the config file.
    let mut policy_files = Vec::new();
    for path in snapshot
        .files
        .iter()
        .filter(|p| crate::core::policy::is_policy_file(p))
    {
        let full = root.join(path);
        let text = std::fs::read_to_string(&full)
            .with_context(|| format!("reading {}", full.display()))?;
        policy_files.push((path.clone(), text));
    }
    let inline = config
        .as_ref()
        .map(|c| c.policies.clone())
        .unwrap_or_default();
    let (policies, policy_diags) = crate::core::policy::load_policies(&policy_files, &inline);
    diags.extend(policy_diags);

    let policy_count = policies.as_ref().map(Vec::len).unwrap_or(0);
    let ok = !has_errors(&diags);
    let mut text = String::new();
    for d in &diags {
        writeln!(text, "{d}")?;
    }
    match &file {
        Some(f) if unusable => writeln!(text, "{f}: no projects until the errors are fixed")?,
        Some(f) => writeln!(text, "{f}: {} project(s)", found.len())?,
        None => writeln!(
            text,
            "no sluice.yaml or atlantis.yaml: {} project(s) detected from .tf files",
            found.len()
        )?,
    }
    for p in &found {
        write!(
            text,
            "  {:<30} dir={} workspace={} engine={}",
            p.name.as_str(),
            p.dir,
            p.workspace,
            p.engine
        )?;
        // What only some pull requests see: Atlantis `branch` and `plan_requirements`.
        let entry = config
            .as_ref()
            .and_then(|c| c.projects.as_ref())
            .and_then(|list| list.iter().find(|e| Some(e.pos) == p.config_pos));
        if let Some(b) = entry.and_then(|e| e.branch.as_ref()) {
            write!(text, " branch={}", b.text)?;
        }
        if let Some(r) = entry
            .and_then(|e| e.plan_requirements.as_ref())
            .filter(|r| !r.is_empty())
        {
            let r: Vec<&str> = r.iter().map(|r| r.as_str()).collect();
            write!(text, " plan_requirements=[{}]", r.join(","))?;
        }
        writeln!(text)?;
    }
    if !policy_files.is_empty() || !inline.is_empty() {
        writeln!(
            text,
            "{} policy file(s), {policy_count} policy(ies)",
            policy_files.len()
        )?;
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if ok {
        writeln!(text, "ok")?;
    } else {
        writeln!(text, "{errors} error(s)")?;
    }
    Ok(CheckReport {
        ok,
        text,
        diagnostics: diags,
    })
}
