//! Git, through the `git` command line (run with `duct`: explicit argv, cleared environment,
//! a timeout). Synchronous by design; async callers use `spawn_blocking`.
//!
//! Objects are shared, never re-cloned per job: the server keeps one bare mirror per repository
//! (`<data>/repos/<owner>/<name>.git`) and fetches into it; `preview` reads the user's own repo.
//! A job's checkout is an *export* of one commit (`git archive` unpacked with the `tar` crate):
//! no `.git`, no hooks, nothing that points back at the mirror.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Secret;
use crate::core::projects::{ChangeKind, ChangedFile, RepoSnapshot, module_sources};
use crate::core::types::{CommitSha, ProjectDir};

/// Longest any single git command may take (fetches of big repositories included).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// A repository on disk: a bare mirror or the `.git` of a working copy.
#[derive(Debug, Clone)]
pub struct GitRepo {
    git_dir: PathBuf,
}

/// Environment for every git command: nothing inherited but PATH, no prompts, no user or
/// system configuration (a hostile `~/.gitconfig` cannot add hooks or helpers).
fn base_env() -> Vec<(String, String)> {
    vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string()),
        ),
        ("GIT_TERMINAL_PROMPT".to_string(), "0".to_string()),
        ("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()),
        ("GIT_CONFIG_GLOBAL".to_string(), "/dev/null".to_string()),
        ("HOME".to_string(), "/nonexistent".to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ]
}

/// Runs git with `args`, returning stdout. Errors carry git's stderr, so "bad revision" and
/// "repository not found" reach the user verbatim.
fn git_output(
    git_dir: Option<&Path>,
    args: &[&str],
    extra_env: &[(String, String)],
    stdin: Option<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    let mut argv: Vec<String> = Vec::new();
    if let Some(d) = git_dir {
        argv.push(format!("--git-dir={}", d.display()));
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut env = base_env();
    env.extend_from_slice(extra_env);
    let mut expr = duct::cmd("git", &argv)
        .full_env(env)
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    expr = match stdin {
        Some(bytes) => expr.stdin_bytes(bytes),
        None => expr.stdin_null(),
    };
    let handle = expr
        .start()
        .context("cannot start git (is it installed?)")?;
    let out = match handle.wait_timeout(GIT_TIMEOUT)? {
        Some(out) => out.clone(),
        None => {
            let _ = handle.kill();
            bail!(
                "git {} timed out after {}s",
                args.first().unwrap_or(&""),
                GIT_TIMEOUT.as_secs()
            );
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            stderr.trim()
        );
    }
    Ok(out.stdout)
}

/// Credentials for fetching over https, given to git through the environment (never argv).
fn auth_env(url: &str, token: Option<&Secret>) -> Vec<(String, String)> {
    match token {
        Some(t) if url.starts_with("https://") || url.starts_with("http://") => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", t.expose()));
            vec![
                ("GIT_CONFIG_COUNT".to_string(), "1".to_string()),
                (
                    "GIT_CONFIG_KEY_0".to_string(),
                    "http.extraHeader".to_string(),
                ),
                (
                    "GIT_CONFIG_VALUE_0".to_string(),
                    format!("Authorization: Basic {b64}"),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

impl GitRepo {
    /// Opens the repository containing `path` (a working copy or a bare repo).
    pub fn open(path: &Path) -> anyhow::Result<GitRepo> {
        let out = git_output(
            None,
            &[
                "-C",
                &path.to_string_lossy(),
                "rev-parse",
                "--absolute-git-dir",
            ],
            &[],
            None,
        )
        .with_context(|| format!("{} is not a git repository", path.display()))?;
        let dir = String::from_utf8_lossy(&out).trim().to_string();
        Ok(GitRepo {
            git_dir: PathBuf::from(dir),
        })
    }

    /// The bare mirror of `url` under `dir`, created on first use.
    pub fn mirror(dir: &Path) -> anyhow::Result<GitRepo> {
        if !dir.join("HEAD").is_file() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            git_output(
                None,
                &["init", "--bare", "--quiet", &dir.to_string_lossy()],
                &[],
                None,
            )?;
        }
        Ok(GitRepo {
            git_dir: dir.to_path_buf(),
        })
    }

    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        git_output(Some(&self.git_dir), args, &[], None)
    }

    /// Fetches `refspecs` from `url` (https with a token, or `file://`, or a path).
    pub fn fetch(
        &self,
        url: &str,
        refspecs: &[String],
        token: Option<&Secret>,
    ) -> anyhow::Result<()> {
        let mut args: Vec<&str> = vec!["fetch", "--quiet", "--no-tags", "--force", "--", url];
        args.extend(refspecs.iter().map(String::as_str));
        git_output(Some(&self.git_dir), &args, &auth_env(url, token), None)
            .with_context(|| format!("fetching from {}", redact_url(url)))?;
        Ok(())
    }

    /// Resolves a ref or SHA to a commit. A name that does not exist is an error naming it.
    pub fn resolve(&self, rev: &str) -> anyhow::Result<CommitSha> {
        if rev.starts_with('-') {
            bail!("`{rev}` is not a git revision");
        }
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .git(&[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ])
            .map_err(|_| {
                anyhow::anyhow!(
                    "git ref `{rev}` does not exist in {}",
                    self.git_dir.display()
                )
            })?;
        let s = String::from_utf8_lossy(&out);
        CommitSha::new(s.trim()).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// True when the commit exists locally.
    pub fn has_commit(&self, sha: &CommitSha) -> bool {
        self.resolve(sha.as_str()).is_ok()
    }

    pub fn merge_base(&self, a: &CommitSha, b: &CommitSha) -> anyhow::Result<CommitSha> {
        let out = self
            .git(&["merge-base", a.as_str(), b.as_str()])
            .with_context(|| format!("{} and {} have no common history", a.short(), b.short()))?;
        CommitSha::new(String::from_utf8_lossy(&out).trim()).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// True when `ancestor` is reachable from `descendant`.
    pub fn is_ancestor(
        &self,
        ancestor: &CommitSha,
        descendant: &CommitSha,
    ) -> anyhow::Result<bool> {
        let out = duct::cmd(
            "git",
            [
                format!("--git-dir={}", self.git_dir.display()),
                "merge-base".into(),
                "--is-ancestor".into(),
                ancestor.to_string(),
                descendant.to_string(),
            ],
        )
        .full_env(base_env())
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => bail!(
                "git merge-base failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    /// Files changed by `head` relative to its merge base with `base` — what a PR's "Files
    /// changed" tab shows. Renames are detected so a moved project counts at both places.
    pub fn changed_files(
        &self,
        base: &CommitSha,
        head: &CommitSha,
    ) -> anyhow::Result<Vec<ChangedFile>> {
        // `base...head`: the changes of `head` since its merge base with `base`, in one call.
        // A rename is reported as delete + add, so a moved file affects both places.
        let range = format!("{}...{}", base.as_str(), head.as_str());
        let out = self
            .git(&["diff", "--name-status", "-z", "--no-renames", &range])
            .with_context(|| {
                format!(
                    "{} and {} have no common history",
                    base.short(),
                    head.short()
                )
            })?;
        parse_name_status(&out)
    }

    /// The tree of `commit`: every file, every symlink with its target, and the local module
    /// sources of every `.tf` / `.tofu` file (parsed with the core's HCL reader).
    pub fn snapshot(&self, commit: &CommitSha) -> anyhow::Result<RepoSnapshot> {
        let out = self.git(&["ls-tree", "-r", "-z", "--full-tree", commit.as_str()])?;
        let mut files = BTreeSet::new();
        let mut symlink_objs: Vec<(String, String)> = Vec::new();
        let mut tf_objs: Vec<(String, String)> = Vec::new();
        for entry in out.split(|&b| b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut parts = meta.split(' ');
            let (Some(mode), Some(kind), Some(obj)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if kind != "blob" {
                continue; // submodules
            }
            if mode == "120000" {
                symlink_objs.push((path.to_string(), obj.to_string()));
            } else {
                if path.ends_with(".tf") || path.ends_with(".tofu") {
                    tf_objs.push((path.to_string(), obj.to_string()));
                }
                files.insert(path.to_string());
            }
        }
        let mut wanted: Vec<&str> = symlink_objs.iter().map(|(_, o)| o.as_str()).collect();
        wanted.extend(tf_objs.iter().map(|(_, o)| o.as_str()));
        let blobs = self.read_blobs(&wanted)?;
        let symlinks: BTreeMap<String, String> = symlink_objs
            .into_iter()
            .map(|(p, o)| {
                (
                    p,
                    String::from_utf8_lossy(blobs.get(&o).map(Vec::as_slice).unwrap_or_default())
                        .into_owned(),
                )
            })
            .collect();
        let mut module_calls: BTreeMap<ProjectDir, Vec<String>> = BTreeMap::new();
        for (path, obj) in tf_objs {
            let Some(text) = blobs.get(&obj) else {
                continue;
            };
            let text = String::from_utf8_lossy(text);
            // Cheap filter: most files declare no module; skip the HCL parse for them.
            if !text.contains("module") {
                continue;
            }
            // A file terraform cannot parse is reported by terraform itself in the plan;
            // detection just learns nothing from it.
            let Ok(sources) = module_sources(&path, &text) else {
                continue;
            };
            if sources.is_empty() {
                continue;
            }
            let dir = match path.rsplit_once('/') {
                Some((d, _)) => d,
                None => ".",
            };
            let Ok(dir) = ProjectDir::new(dir) else {
                continue;
            };
            module_calls.entry(dir).or_default().extend(sources);
        }
        Ok(RepoSnapshot {
            files,
            symlinks,
            module_calls,
        })
    }

    /// Reads several blobs in one `git cat-file --batch` call.
    fn read_blobs(&self, objects: &[&str]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        let mut map = BTreeMap::new();
        if objects.is_empty() {
            return Ok(map);
        }
        let mut input = objects.join("\n");
        input.push('\n');
        let out = git_output(
            Some(&self.git_dir),
            &["cat-file", "--batch"],
            &[],
            Some(input.into_bytes()),
        )?;
        let mut rest = out.as_slice();
        while !rest.is_empty() {
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .context("truncated cat-file output")?;
            let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
            rest = &rest[nl + 1..];
            let mut h = header.split(' ');
            let (Some(obj), Some(kind)) = (h.next(), h.next()) else {
                bail!("bad cat-file header {header:?}")
            };
            if kind == "missing" {
                continue;
            }
            let size: usize = h
                .next()
                .and_then(|s| s.parse().ok())
                .context("bad cat-file size")?;
            if rest.len() < size + 1 {
                bail!("truncated cat-file output");
            }
            map.insert(obj.to_string(), rest[..size].to_vec());
            rest = &rest[size + 1..];
        }
        Ok(map)
    }

    /// The contents of several files at `commit` in one `git cat-file --batch` call, in the
    /// order asked; `None` where a file does not exist (or is not a file).
    pub fn read_files(
        &self,
        commit: &CommitSha,
        paths: &[&str],
    ) -> anyhow::Result<Vec<Option<String>>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = String::new();
        for p in paths {
            if p.contains('\n') {
                bail!("a path with a newline cannot be read");
            }
            input.push_str(&format!("{}:{}\n", commit.as_str(), p));
        }
        let out = git_output(
            Some(&self.git_dir),
            &["cat-file", "--batch"],
            &[],
            Some(input.into_bytes()),
        )?;
        let mut rest = out.as_slice();
        let mut found = Vec::with_capacity(paths.len());
        for _ in paths {
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .context("truncated cat-file output")?;
            let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
            rest = &rest[nl + 1..];
            let mut h = header.rsplitn(3, ' ');
            let (last, kind) = (h.next().unwrap_or(""), h.next().unwrap_or(""));
            if last == "missing" || last == "ambiguous" {
                found.push(None);
                continue;
            }
            let size: usize = last
                .parse()
                .with_context(|| format!("bad cat-file header {header:?}"))?;
            if rest.len() < size + 1 {
                bail!("truncated cat-file output");
            }
            found.push(
                (kind == "blob").then(|| String::from_utf8_lossy(&rest[..size]).into_owned()),
            );
            rest = &rest[size + 1..];
        }
        Ok(found)
    }

    /// Paths of the files directly inside `dir` at `commit` (not recursive).
    pub fn list_dir(&self, commit: &CommitSha, dir: &str) -> anyhow::Result<Vec<String>> {
        let spec = format!("{}:{}", commit.as_str(), dir.trim_end_matches('/'));
        let out = match self.git(&["ls-tree", "-z", "--end-of-options", &spec]) {
            Ok(o) => o,
            Err(_) => return Ok(Vec::new()), // no such directory
        };
        Ok(out
            .split(|&b| b == 0)
            .filter(|e| !e.is_empty())
            .filter_map(|e| {
                let e = String::from_utf8_lossy(e);
                let (meta, name) = e.split_once('\t')?;
                meta.contains(" blob ")
                    .then(|| format!("{}/{name}", dir.trim_end_matches('/')))
            })
            .collect())
    }

    /// The content of `path` at `commit`, or `None` when the file does not exist there.
    pub fn read_file(&self, commit: &CommitSha, path: &str) -> anyhow::Result<Option<String>> {
        let spec = format!("{}:{}", commit.as_str(), path);
        let out = duct::cmd(
            "git",
            [
                format!("--git-dir={}", self.git_dir.display()),
                "cat-file".into(),
                "blob".into(),
                spec,
            ],
        )
        .full_env(base_env())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// Blob SHAs of `paths` at `commit` (recorded in the audit log for policy files), in one
    /// `git cat-file --batch-check` call; `None` where a path does not exist.
    pub fn blob_ids(
        &self,
        commit: &CommitSha,
        paths: &[String],
    ) -> anyhow::Result<Vec<Option<String>>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = String::new();
        for p in paths {
            input.push_str(&format!("{}:{}\n", commit.as_str(), p.replace('\n', "")));
        }
        let out = git_output(
            Some(&self.git_dir),
            &["cat-file", "--batch-check"],
            &[],
            Some(input.into_bytes()),
        )?;
        let text = String::from_utf8_lossy(&out);
        Ok(text
            .lines()
            .map(|l| {
                let mut parts = l.split(' ');
                match (parts.next(), parts.next()) {
                    (Some(sha), Some("blob")) => Some(sha.to_string()),
                    _ => None,
                }
            })
            .collect())
    }

    /// Writes the tree of `commit` into `dest` (which must be empty or absent), except what
    /// terraform treats as its own ([`exported`]); returns the top-most paths left out. The tar
    /// reader refuses entries that would land outside `dest`.
    pub fn export(&self, commit: &CommitSha, dest: &Path) -> anyhow::Result<Vec<String>> {
        std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
        let reader = duct::cmd(
            "git",
            [
                format!("--git-dir={}", self.git_dir.display()),
                "archive".into(),
                "--format=tar".into(),
                commit.to_string(),
            ],
        )
        .full_env(base_env())
        .stderr_capture()
        .reader()
        .context("starting git archive")?;
        let mut archive = tar::Archive::new(CheckedReader(reader));
        archive.set_preserve_permissions(true);
        archive.set_overwrite(false);
        let mut left_out: Vec<String> = Vec::new();
        let context = || format!("checking out {} into {}", commit.short(), dest.display());
        for entry in archive.entries().with_context(context)? {
            let mut entry = entry.with_context(context)?;
            let path = entry.path().with_context(context)?.into_owned();
            if let Some(top) = exported(&path.to_string_lossy()).err() {
                if !left_out.contains(&top) {
                    left_out.push(top);
                }
                continue;
            }
            entry.unpack_in(dest).with_context(context)?;
        }
        Ok(left_out)
    }
}

/// Whether an archive entry goes into a checkout: `Err(top)` for what terraform treats as its
/// own (`.terraform/`, `terraform.d/`, see [`crate::core::checkout`]), with the top-most path of
/// that directory, for the message that says what was left out.
fn exported(path: &str) -> Result<(), String> {
    let path = path.trim_end_matches('/');
    match crate::core::checkout::engine_owned(path) {
        None => Ok(()),
        Some(dir) => {
            let mut top = String::new();
            for seg in path.split('/') {
                if !top.is_empty() {
                    top.push('/');
                }
                top.push_str(seg);
                if seg == dir {
                    break;
                }
            }
            Err(top)
        }
    }
}

/// Passes reads through; duct's reader reports a failed `git archive` as a read error at EOF.
struct CheckedReader(duct::ReaderHandle);

impl Read for CheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

fn parse_name_status(out: &[u8]) -> anyhow::Result<Vec<ChangedFile>> {
    let fields: Vec<String> = out
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let mut changed = Vec::new();
    let mut i = 0;
    while i < fields.len() {
        let status = &fields[i];
        let code = status.chars().next().unwrap_or('M');
        match code {
            'R' | 'C' => {
                let (Some(from), Some(to)) = (fields.get(i + 1), fields.get(i + 2)) else {
                    bail!("truncated git diff output");
                };
                changed.push(ChangedFile {
                    path: to.clone(),
                    kind: ChangeKind::Renamed { from: from.clone() },
                });
                i += 3;
            }
            _ => {
                let Some(path) = fields.get(i + 1) else {
                    bail!("truncated git diff output")
                };
                let kind = match code {
                    'A' => ChangeKind::Added,
                    'D' => ChangeKind::Deleted,
                    _ => ChangeKind::Modified,
                };
                changed.push(ChangedFile {
                    path: path.clone(),
                    kind,
                });
                i += 2;
            }
        }
    }
    Ok(changed)
}

/// `https://user:pass@host/x` → `https://***@host/x`, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sh(dir: &Path, script: &str) {
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
    }

    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        sh(
            d.path(),
            "git init -q -b main . && mkdir -p envs/prod modules/net && \
             printf 'module \"n\" {\\n  source = \"../../modules/net\"\\n}\\n' > envs/prod/main.tf && \
             echo 'variable \"x\" {}' > modules/net/main.tf && echo hi > README.md && \
             ln -s ../../etc escape && git add -A && git commit -qm one && \
             git checkout -qb feature && echo '# c' >> modules/net/main.tf && git rm -q README.md && \
             git commit -qam two",
        );
        d
    }

    #[test]
    fn resolve_diff_snapshot_export() {
        let d = repo();
        let g = GitRepo::open(d.path()).unwrap();
        let main = g.resolve("main").unwrap();
        let head = g.resolve("feature").unwrap();
        let err = g.resolve("no-such-branch").unwrap_err().to_string();
        assert!(err.contains("`no-such-branch` does not exist"), "{err}");

        let changed = g.changed_files(&main, &head).unwrap();
        assert_eq!(changed.len(), 2);
        assert!(
            changed
                .iter()
                .any(|c| c.path == "README.md" && c.kind == ChangeKind::Deleted)
        );
        assert!(
            changed
                .iter()
                .any(|c| c.path == "modules/net/main.tf" && c.kind == ChangeKind::Modified)
        );

        let snap = g.snapshot(&head).unwrap();
        assert!(snap.files.contains("envs/prod/main.tf"));
        assert_eq!(
            snap.symlinks.get("escape").map(String::as_str),
            Some("../../etc")
        );
        let prod = ProjectDir::new("envs/prod").unwrap();
        assert_eq!(
            snap.module_calls.get(&prod).unwrap(),
            &vec!["../../modules/net".to_string()]
        );

        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("checkout");
        assert!(g.export(&head, &dest).unwrap().is_empty());
        assert!(dest.join("envs/prod/main.tf").is_file());
        assert!(!dest.join(".git").exists());
        assert!(!dest.join("README.md").exists());

        assert_eq!(
            g.read_file(&main, "README.md").unwrap().as_deref(),
            Some("hi\n")
        );
        assert_eq!(g.read_file(&head, "README.md").unwrap(), None);
        assert!(g.is_ancestor(&main, &head).unwrap());
        assert!(!g.is_ancestor(&head, &main).unwrap());
    }

    #[test]
    fn export_leaves_out_what_terraform_treats_as_its_own() {
        let d = tempfile::tempdir().unwrap();
        sh(
            d.path(),
            "git init -q -b main . && mkdir -p app/.terraform/providers app/terraform.d/plugins/linux_amd64 && \
             echo 'x' > app/main.tf && echo lock > app/.terraform.lock.hcl && \
             echo trojan > app/.terraform/providers/p && echo env > app/.terraform/environment && \
             echo trojan > app/terraform.d/plugins/linux_amd64/terraform-provisioner-x && \
             ln -s ../app app/.terraform-link && ln -s app terraform.d && \
             git add -A && git commit -qm one",
        );
        let g = GitRepo::open(d.path()).unwrap();
        let head = g.resolve("main").unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("checkout");
        let mut left_out = g.export(&head, &dest).unwrap();
        left_out.sort();
        assert_eq!(
            left_out,
            ["app/.terraform", "app/terraform.d", "terraform.d"]
        );
        assert!(dest.join("app/main.tf").is_file());
        assert!(dest.join("app/.terraform.lock.hcl").is_file());
        assert!(dest.join("app/.terraform-link").is_symlink());
        assert!(!dest.join("app/.terraform").exists());
        assert!(!dest.join("app/terraform.d").exists());
        assert!(!dest.join("terraform.d").exists() && !dest.join("terraform.d").is_symlink());
    }

    #[test]
    fn batched_reads() {
        let d = repo();
        let g = GitRepo::open(d.path()).unwrap();
        let head = g.resolve("feature").unwrap();
        let got = g
            .read_files(
                &head,
                &[
                    "modules/net/main.tf",
                    "nope.txt",
                    "envs/prod",
                    "envs/prod/main.tf",
                ],
            )
            .unwrap();
        assert!(got[0].as_deref().unwrap().contains("variable \"x\""));
        assert_eq!(got[1], None, "missing file");
        assert_eq!(got[2], None, "a directory is not a file");
        assert!(got[3].as_deref().unwrap().contains("module \"n\""));
        assert_eq!(
            g.list_dir(&head, "envs/prod").unwrap(),
            vec!["envs/prod/main.tf"]
        );
        assert!(g.list_dir(&head, "no/such/dir").unwrap().is_empty());
        let ids = g
            .blob_ids(
                &head,
                &["envs/prod/main.tf".to_string(), "nope".to_string()],
            )
            .unwrap();
        assert_eq!(ids[0].as_deref().map(str::len), Some(40));
        assert_eq!(ids[1], None);
    }

    #[test]
    fn mirror_fetches_from_a_file_url() {
        let d = repo();
        let m = tempfile::tempdir().unwrap();
        let mirror = GitRepo::mirror(&m.path().join("acme/infra.git")).unwrap();
        let url = format!("file://{}", d.path().display());
        mirror
            .fetch(
                &url,
                &["+refs/heads/*:refs/remotes/origin/*".to_string()],
                None,
            )
            .unwrap();
        assert!(mirror.resolve("refs/remotes/origin/feature").is_ok());
        let err = mirror
            .fetch(
                "file:///nonexistent/repo",
                &["+refs/heads/*:refs/x/*".to_string()],
                None,
            )
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("fetching from file:///nonexistent/repo"),
            "{err:#}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(
            redact_url("https://x:tok@github.com/a/b"),
            "https://***@github.com/a/b"
        );
        assert_eq!(redact_url("file:///tmp/x"), "file:///tmp/x");
        let env = auth_env("https://github.com/a/b", Some(&Secret::new("abc")));
        // "x-access-token:abc" in base64
        assert_eq!(env[2].1, "Authorization: Basic eC1hY2Nlc3MtdG9rZW46YWJj");
        assert!(auth_env("file:///x", Some(&Secret::new("abc"))).is_empty());
    }
}
