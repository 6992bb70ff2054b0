//! Git, through the `git` command line (run with `duct`: explicit argv, cleared environment,
//! a timeout). Synchronous by design; async callers use `spawn_blocking`.
//!
//! Objects are shared, never re-cloned per job: the server keeps one bare mirror per repository
//! (`<data>/repos/<owner>/<name>.git`) and fetches into it; `preview` reads the user's own repo.
//! A job's checkout is an *export* of one commit (`git archive` unpacked with the `tar` crate):
//! no `.git`, no hooks, nothing that points back at the mirror.
//!
//! Everything read here comes from pull requests, so every read is bounded by the repository's
//! [`Limits`]: git's output is streamed, never captured whole, and git is stopped as soon as a
//! tree has too many files, a diff too many changes, a path is too long, or a blob is larger
//! than asked for; blob sizes are known before any content is read; an export stops at its
//! quotas. Errors name the limit (`limits.<name>`) and never a host path.
//!
//! Git itself is confined too, since crafted objects can make it grow without bound (a "tree
//! bomb": a few hundred KB of trees reused to spell 10^9 paths): every git process runs in a
//! process group of its own under an address-space limit (`limits.git_memory_bytes`), a read of
//! pull-request content may take at most `limits.detection_timeout_secs` — and no longer than
//! the reader waits ([`set_read_deadline`]) — and when it is stopped, or its reader goes away,
//! the whole group is killed: no git is left running behind.
#![allow(
    clippy::disallowed_methods,
    reason = "this adapter is where git processes start, with their timeouts and caps"
)]

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod mirrors;
mod revert;

pub use mirrors::Mirrors;
pub use revert::{RevertOutcome, RevertPlan, RevertRequest};

use crate::config::{Limits, Secret};
use crate::core::diag::Diagnostic;
use crate::core::projects::{ChangeKind, ChangedFile, RepoSnapshot, module_sources};
use crate::core::types::{CommitSha, ProjectDir};

/// Longest any single git command may take (fetches of big repositories included); reads of
/// pull-request content have the shorter `limits.detection_timeout_secs`.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

thread_local! {
    static READ_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Every git command this thread starts from now on ends by `deadline` (`None`: no deadline but
/// its own timeout): killed, with everything it started, when it runs past it. The threads that
/// read pull requests set it to the moment their caller stops waiting (`app::bounded`), so a
/// git the caller gave up on does not go on running.
pub fn set_read_deadline(deadline: Option<Instant>) {
    READ_DEADLINE.with(|d| d.set(deadline));
}

/// `timeout`, shortened to this thread's read deadline.
fn bounded(timeout: Duration) -> Duration {
    match READ_DEADLINE.with(Cell::get) {
        Some(d) => timeout.min(d.saturating_duration_since(Instant::now())),
        None => timeout,
    }
}

/// Runs git in a process group of its own (so it and everything it starts are killed together,
/// [`kill_groups`]) under an address-space limit of `memory` bytes.
fn confined(expr: duct::Expression, memory: u64) -> duct::Expression {
    expr.before_spawn(move |cmd| {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: setrlimit is async-signal-safe; nothing is allocated between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_AS,
                    memory,
                    memory,
                )
                .map_err(std::io::Error::from)
            });
        }
        Ok(())
    })
}

/// SIGKILL to the process groups led by `pids` (see [`confined`]).
fn kill_groups(pids: &[u32]) {
    for pid in pids {
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Git's failure, said plainly when it hit the memory limit.
fn git_failure(what: &str, stderr: &[u8], memory: u64) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = stderr.trim();
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("out of memory") || lower.contains("cannot allocate memory") {
        anyhow::anyhow!(
            "git {what} ran out of memory: it may use {} (limits.git_memory_bytes); the \
             commit's objects take more than that to read (crafted trees can spell billions of \
             paths in a few KB). Git said: {stderr}",
            human_bytes(memory)
        )
    } else {
        anyhow::anyhow!("git {what} failed: {stderr}")
    }
}

/// A repository on disk: a bare mirror or the `.git` of a working copy, with the bounds every
/// read of it respects.
#[derive(Debug, Clone)]
pub struct GitRepo {
    git_dir: PathBuf,
    limits: Limits,
}

/// A file read at a commit by [`GitRepo::read_files_bounded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRead {
    /// No such file (or not a file) at that commit.
    Missing,
    Text(String),
    /// Larger than `limits.file_bytes`: not read.
    TooLarge {
        bytes: u64,
    },
}

/// `1.5 MiB`-style sizes for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
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
    memory: u64,
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    let mut argv: Vec<String> = Vec::new();
    if let Some(d) = git_dir {
        argv.push(format!("--git-dir={}", d.display()));
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut env = base_env();
    env.extend_from_slice(extra_env);
    let mut expr = confined(
        duct::cmd("git", &argv)
            .full_env(env)
            .stdout_capture()
            .stderr_capture()
            .unchecked(),
        memory,
    );
    expr = match stdin {
        Some(bytes) => expr.stdin_bytes(bytes),
        None => expr.stdin_null(),
    };
    let handle = expr
        .start()
        .context("cannot start git (is it installed?)")?;
    let out = match handle.wait_timeout(timeout)? {
        Some(out) => out.clone(),
        None => {
            kill_groups(&handle.pids());
            let _ = handle.kill();
            bail!(
                "git {} was stopped after {}s",
                args.first().unwrap_or(&""),
                timeout.as_secs()
            );
        }
    };
    if !out.status.success() {
        return Err(git_failure(
            args.first().unwrap_or(&""),
            &out.stderr,
            memory,
        ));
    }
    Ok(out.stdout)
}

/// A git command whose standard output is read as a stream, so no more of it is ever held than
/// the reader keeps. Git (its whole process group) is killed when the stream is dropped before
/// its end, and by a watchdog after its timeout.
struct GitStream {
    reader: Arc<duct::ReaderHandle>,
    /// Dropping it tells the watchdog the command is over.
    _done: std::sync::mpsc::Sender<()>,
    /// Set by the watchdog when it stopped git.
    stopped: Arc<AtomicBool>,
    timeout: Duration,
    memory: u64,
    what: String,
    finished: bool,
}

impl GitStream {
    fn start(
        git_dir: &Path,
        args: &[&str],
        stdin: Option<Vec<u8>>,
        memory: u64,
        timeout: Duration,
    ) -> anyhow::Result<GitStream> {
        let mut argv = vec![format!("--git-dir={}", git_dir.display())];
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut expr = confined(
            duct::cmd("git", &argv)
                .full_env(base_env())
                .stderr_capture()
                .unchecked(),
            memory,
        );
        expr = match stdin {
            Some(bytes) => expr.stdin_bytes(bytes),
            None => expr.stdin_null(),
        };
        let reader = Arc::new(
            expr.reader()
                .context("cannot start git (is it installed?)")?,
        );
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let watched = Arc::clone(&reader);
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopped);
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                flag.store(true, Ordering::SeqCst);
                kill_groups(&watched.pids());
                let _ = watched.kill();
            }
        });
        Ok(GitStream {
            reader,
            _done: done,
            stopped,
            timeout,
            memory,
            what: args.first().unwrap_or(&"").to_string(),
            finished: false,
        })
    }

    /// The error to report instead of a read or exit failure, when the watchdog stopped git.
    fn stopped_error(&self) -> Option<anyhow::Error> {
        self.stopped.load(Ordering::SeqCst).then(|| {
            anyhow::anyhow!(
                "git {} was stopped after {}s: reading the pull request's objects took too long \
                 (limits.detection_timeout_secs)",
                self.what,
                self.timeout.as_secs()
            )
        })
    }

    /// Reads to the end and checks git's exit status (its stderr is the error).
    fn finish(mut self) -> anyhow::Result<()> {
        let mut sink = [0u8; 8192];
        loop {
            match self.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(self.stopped_error().unwrap_or_else(|| e.into())),
            }
        }
        self.finished = true;
        if let Some(e) = self.stopped_error() {
            return Err(e);
        }
        match self.reader.try_wait()? {
            Some(out) if out.status.success() => Ok(()),
            Some(out) => Err(git_failure(&self.what, &out.stderr, self.memory)),
            None => bail!("git {} did not finish", self.what),
        }
    }
}

impl Read for GitStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.reader).read(buf)
    }
}

impl Drop for GitStream {
    fn drop(&mut self) {
        if !self.finished {
            kill_groups(&self.reader.pids());
            let _ = self.reader.kill();
        }
    }
}

/// Why [`read_records`] stopped.
#[derive(Debug)]
enum RecordsError {
    /// More than the allowed number of records.
    TooMany,
    /// A record longer than allowed (its start, for the message).
    TooLong(String),
    Io(std::io::Error),
}

/// Reads `sep`-terminated records, each at most `max_len` bytes, at most `max_count` of them.
fn read_records(
    input: &mut impl BufRead,
    sep: u8,
    max_len: usize,
    max_count: usize,
) -> Result<Vec<Vec<u8>>, RecordsError> {
    let mut out = Vec::new();
    loop {
        let mut rec = Vec::new();
        let n = input
            .by_ref()
            .take(max_len as u64 + 1)
            .read_until(sep, &mut rec)
            .map_err(RecordsError::Io)?;
        if n == 0 {
            return Ok(out);
        }
        if rec.last() == Some(&sep) {
            rec.pop();
        } else if rec.len() > max_len {
            let start = String::from_utf8_lossy(&rec[..rec.len().min(80)]).into_owned();
            return Err(RecordsError::TooLong(start));
        }
        if rec.is_empty() && sep == 0 {
            continue;
        }
        if out.len() == max_count {
            return Err(RecordsError::TooMany);
        }
        out.push(rec);
    }
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
            Limits::default().git_memory_bytes,
            bounded(GIT_TIMEOUT),
        )
        .with_context(|| format!("{} is not a git repository", path.display()))?;
        let dir = String::from_utf8_lossy(&out).trim().to_string();
        Ok(GitRepo {
            git_dir: PathBuf::from(dir),
            limits: Limits::default(),
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
                Limits::default().git_memory_bytes,
                bounded(GIT_TIMEOUT),
            )?;
        }
        Ok(GitRepo {
            git_dir: dir.to_path_buf(),
            limits: Limits::default(),
        })
    }

    /// The same repository read within `limits` (the default limits otherwise).
    pub fn with_limits(mut self, limits: Limits) -> GitRepo {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// How long one read of the repository's content may take: `limits.detection_timeout_secs`,
    /// and no longer than this thread's reader waits ([`set_read_deadline`]).
    fn read_timeout(&self) -> Duration {
        bounded(Duration::from_secs(self.limits.detection_timeout_secs))
    }

    fn stream(&self, args: &[&str], stdin: Option<Vec<u8>>) -> anyhow::Result<GitStream> {
        GitStream::start(
            &self.git_dir,
            args,
            stdin,
            self.limits.git_memory_bytes,
            self.read_timeout(),
        )
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        git_output(
            Some(&self.git_dir),
            args,
            &[],
            None,
            self.limits.git_memory_bytes,
            self.read_timeout(),
        )
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
        git_output(
            Some(&self.git_dir),
            &args,
            &auth_env(url, token),
            None,
            self.limits.git_memory_bytes,
            bounded(GIT_TIMEOUT),
        )
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
        let timeout = self.read_timeout();
        let out = confined(
            duct::cmd(
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
            .unchecked(),
            self.limits.git_memory_bytes,
        )
        .start()
        .context("cannot start git (is it installed?)")?;
        let Some(out) = out.wait_timeout(timeout)? else {
            kill_groups(&out.pids());
            let _ = out.kill();
            bail!("git merge-base was stopped after {}s", timeout.as_secs());
        };
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
        let max = self.limits.changed_files;
        let mut out = BufReader::new(self.stream(
            &["diff", "--name-status", "-z", "--no-renames", &range],
            None,
        )?);
        // Two records per change: the status, then the path.
        let records = match read_records(&mut out, 0, self.limits.path_bytes + 8, 2 * max) {
            Ok(r) => r,
            Err(RecordsError::TooMany) => bail!(
                "this pull request changes more than {max} files; Sluice reads at most that many \
                 (limits.changed_files)"
            ),
            Err(RecordsError::TooLong(start)) => bail!(
                "a changed path is longer than {} bytes (limits.path_bytes): `{start}…`",
                self.limits.path_bytes
            ),
            Err(RecordsError::Io(e)) => return Err(e.into()),
        };
        out.into_inner().finish().with_context(|| {
            format!(
                "comparing {} with {} (their merge base)",
                head.short(),
                base.short()
            )
        })?;
        parse_name_status(&records)
    }

    /// The tree of `commit`: every file, every symlink with its target, and the local module
    /// sources of every `.tf` / `.tofu` file (parsed with the core's HCL reader). Files Sluice
    /// refused to read (over `limits.file_bytes`, `limits.detection_bytes` or the HCL limits) are
    /// dropped silently here; [`GitRepo::read_tree`] returns them as diagnostics.
    pub fn snapshot(&self, commit: &CommitSha) -> anyhow::Result<RepoSnapshot> {
        Ok(self.read_tree(commit)?.0)
    }

    /// [`GitRepo::snapshot`], plus an error diagnostic for every `.tf`/`.tofu` file whose module
    /// calls Sluice did not read because it is over a limit (syntax errors are left to
    /// terraform). Errors: a tree with more than `limits.tree_files` entries, a path or symlink
    /// target longer than `limits.path_bytes`, or git failing.
    pub fn read_tree(&self, commit: &CommitSha) -> anyhow::Result<(RepoSnapshot, Vec<Diagnostic>)> {
        let l = &self.limits;
        let mut out = BufReader::new(self.stream(
            &["ls-tree", "-r", "-z", "--full-tree", commit.as_str()],
            None,
        )?);
        // `<mode> <type> <object>\t<path>`: the path plus at most ~100 bytes.
        let records = match read_records(&mut out, 0, l.path_bytes + 128, l.tree_files) {
            Ok(r) => r,
            Err(RecordsError::TooMany) => bail!(
                "the tree of commit {} has more than {} files; Sluice reads at most that many \
                 (limits.tree_files)",
                commit.short(),
                l.tree_files
            ),
            Err(RecordsError::TooLong(start)) => bail!(
                "commit {} has a path longer than {} bytes (limits.path_bytes): `{start}…`",
                commit.short(),
                l.path_bytes
            ),
            Err(RecordsError::Io(e)) => return Err(e.into()),
        };
        out.into_inner().finish()?;
        let mut files = BTreeSet::new();
        let mut symlink_objs: Vec<(String, String)> = Vec::new();
        let mut tf_candidates: Vec<(String, String)> = Vec::new();
        for entry in &records {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            if path.len() > l.path_bytes {
                bail!(
                    "commit {} has a path longer than {} bytes (limits.path_bytes): `{}…`",
                    commit.short(),
                    l.path_bytes,
                    &path[..floor_boundary(path, 80)]
                );
            }
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
                continue;
            }
            if path.ends_with(".tf") || path.ends_with(".tofu") {
                tf_candidates.push((path.to_string(), obj.to_string()));
            }
            files.insert(path.to_string());
        }
        // Sizes first (only of what may be read), so no content over a limit is ever read.
        let mut objs: Vec<&str> = symlink_objs.iter().map(|(_, o)| o.as_str()).collect();
        objs.extend(tf_candidates.iter().map(|(_, o)| o.as_str()));
        let sizes = self.blob_sizes(&objs)?;
        let size_of = |o: &str| sizes.get(o).copied().unwrap_or(u64::MAX);
        for (path, obj) in &symlink_objs {
            if size_of(obj) > l.path_bytes as u64 {
                bail!(
                    "the symbolic link `{path}` at commit {} has a target longer than {} bytes \
                     (limits.path_bytes)",
                    commit.short(),
                    l.path_bytes
                );
            }
        }
        let mut tf_objs: Vec<(String, String, u64)> = Vec::new();
        let mut diagnostics = Vec::new();
        let mut detection_bytes = 0u64;
        for (path, obj) in tf_candidates {
            let size = size_of(&obj);
            if size > l.file_bytes {
                diagnostics.push(unread(
                    &path,
                    format!(
                        "the file is {}; Sluice reads `.tf` files of at most {} (limits.file_bytes)",
                        human_bytes(size),
                        human_bytes(l.file_bytes)
                    ),
                ));
            } else if detection_bytes + size > l.detection_bytes {
                diagnostics.push(unread(
                    &path,
                    format!(
                        "the `.tf` files of this commit are larger than {} together; Sluice reads \
                         at most that much of them, in path order (limits.detection_bytes)",
                        human_bytes(l.detection_bytes)
                    ),
                ));
            } else {
                detection_bytes += size;
                tf_objs.push((path, obj, size));
            }
        }
        let mut wanted: Vec<(&str, u64)> = symlink_objs
            .iter()
            .map(|(_, o)| (o.as_str(), l.path_bytes as u64))
            .collect();
        wanted.extend(tf_objs.iter().map(|(_, o, size)| (o.as_str(), *size)));
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
        let module_calls = module_calls(tf_objs, &blobs, l, &mut diagnostics);
        Ok((
            RepoSnapshot {
                files,
                symlinks,
                module_calls,
            },
            diagnostics,
        ))
    }

    /// The sizes of several objects (by id), in one `git cat-file --batch-check` call; objects
    /// git does not have are left out.
    fn blob_sizes(&self, objects: &[&str]) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut sizes = BTreeMap::new();
        if objects.is_empty() {
            return Ok(sizes);
        }
        let mut input = objects.join("\n");
        input.push('\n');
        let mut out =
            BufReader::new(self.stream(&["cat-file", "--batch-check"], Some(input.into_bytes()))?);
        for _ in objects {
            let line = read_header(&mut out)?;
            let mut parts = line.split(' ');
            if let (Some(obj), Some("blob"), Some(size)) =
                (parts.next(), parts.next(), parts.next())
                && let Ok(size) = size.parse()
            {
                sizes.insert(obj.to_string(), size);
            }
        }
        out.into_inner().finish()?;
        Ok(sizes)
    }

    /// Reads several blobs, each no larger than the size given with it, in one
    /// `git cat-file --batch` call. Never holds more than the sizes asked for.
    fn read_blobs(&self, objects: &[(&str, u64)]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        let mut map = BTreeMap::new();
        if objects.is_empty() {
            return Ok(map);
        }
        let mut input = String::new();
        for (obj, _) in objects {
            input.push_str(obj);
            input.push('\n');
        }
        let mut out =
            BufReader::new(self.stream(&["cat-file", "--batch"], Some(input.into_bytes()))?);
        for (obj, max) in objects {
            let header = read_header(&mut out)?;
            let mut h = header.split(' ');
            let (Some(got), Some(kind)) = (h.next(), h.next()) else {
                bail!("bad cat-file header {header:?}")
            };
            if kind == "missing" {
                continue;
            }
            let size: u64 = h
                .next()
                .and_then(|s| s.parse().ok())
                .context("bad cat-file size")?;
            if got != *obj || size > *max {
                bail!(
                    "git returned {got} ({size} bytes) when asked for {obj} (at most {max} bytes)"
                );
            }
            map.insert(obj.to_string(), read_body(&mut out, size)?);
        }
        out.into_inner().finish()?;
        Ok(map)
    }

    /// The contents of several files at `commit`, in the order asked; `None` where a file does
    /// not exist (or is not a file). A file larger than `limits.file_bytes` is an error naming it
    /// (see [`GitRepo::read_files_bounded`] to tell it apart instead).
    pub fn read_files(
        &self,
        commit: &CommitSha,
        paths: &[&str],
    ) -> anyhow::Result<Vec<Option<String>>> {
        self.read_files_bounded(commit, paths)?
            .into_iter()
            .zip(paths)
            .map(|(f, path)| match f {
                FileRead::Missing => Ok(None),
                FileRead::Text(t) => Ok(Some(t)),
                FileRead::TooLarge { bytes } => bail!(
                    "`{path}` is {}; Sluice reads files of at most {} (limits.file_bytes)",
                    human_bytes(bytes),
                    human_bytes(self.limits.file_bytes)
                ),
            })
            .collect()
    }

    /// The contents of several files at `commit`, in the order asked: their sizes first
    /// (`cat-file --batch-check`), then the content of those within `limits.file_bytes` (one
    /// `cat-file --batch`).
    pub fn read_files_bounded(
        &self,
        commit: &CommitSha,
        paths: &[&str],
    ) -> anyhow::Result<Vec<FileRead>> {
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
        let mut out =
            BufReader::new(self.stream(&["cat-file", "--batch-check"], Some(input.into_bytes()))?);
        let mut found = Vec::with_capacity(paths.len());
        let mut wanted: Vec<(String, u64)> = Vec::new();
        for _ in paths {
            let header = read_header(&mut out)?;
            let mut h = header.rsplitn(3, ' ');
            let (last, kind, obj) = (
                h.next().unwrap_or(""),
                h.next().unwrap_or(""),
                h.next().unwrap_or(""),
            );
            if last == "missing" || last == "ambiguous" || kind != "blob" {
                found.push(FileRead::Missing);
                continue;
            }
            let size: u64 = last
                .parse()
                .with_context(|| format!("bad cat-file header {header:?}"))?;
            if size > self.limits.file_bytes {
                found.push(FileRead::TooLarge { bytes: size });
            } else {
                found.push(FileRead::Text(String::new()));
                wanted.push((obj.to_string(), size));
            }
        }
        out.into_inner().finish()?;
        let refs: Vec<(&str, u64)> = wanted.iter().map(|(o, s)| (o.as_str(), *s)).collect();
        let blobs = self.read_blobs(&refs)?;
        let mut next = wanted.iter();
        for f in &mut found {
            if let FileRead::Text(t) = f {
                let (obj, _) = next.next().expect("one wanted blob per text");
                *t = String::from_utf8_lossy(blobs.get(obj).map(Vec::as_slice).unwrap_or_default())
                    .into_owned();
            }
        }
        Ok(found)
    }

    /// Paths of the files directly inside `dir` at `commit` (not recursive), at most
    /// `limits.tree_files` of them.
    pub fn list_dir(&self, commit: &CommitSha, dir: &str) -> anyhow::Result<Vec<String>> {
        let spec = format!("{}:{}", commit.as_str(), dir.trim_end_matches('/'));
        let mut out =
            BufReader::new(self.stream(&["ls-tree", "-z", "--end-of-options", &spec], None)?);
        let records = match read_records(
            &mut out,
            0,
            self.limits.path_bytes + 128,
            self.limits.tree_files,
        ) {
            Ok(r) => r,
            Err(RecordsError::TooMany) => bail!(
                "`{dir}` at commit {} has more than {} entries (limits.tree_files)",
                commit.short(),
                self.limits.tree_files
            ),
            Err(RecordsError::TooLong(start)) => bail!(
                "`{dir}` at commit {} has a path longer than {} bytes (limits.path_bytes): `{start}…`",
                commit.short(),
                self.limits.path_bytes
            ),
            Err(RecordsError::Io(e)) => return Err(e.into()),
        };
        if out.into_inner().finish().is_err() {
            return Ok(Vec::new()); // no such directory
        }
        Ok(records
            .iter()
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
        Ok(self.read_files(commit, &[path])?.pop().flatten())
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
        let mut out =
            BufReader::new(self.stream(&["cat-file", "--batch-check"], Some(input.into_bytes()))?);
        let mut ids = Vec::with_capacity(paths.len());
        for _ in paths {
            let line = read_header(&mut out)?;
            let mut parts = line.split(' ');
            ids.push(match (parts.next(), parts.next()) {
                (Some(sha), Some("blob")) => Some(sha.to_string()),
                _ => None,
            });
        }
        out.into_inner().finish()?;
        Ok(ids)
    }

    /// Writes the tree of `commit` into `dest` (which must be empty or absent), within the
    /// checkout quotas of [`Limits`] (see [`ExportQuota`]) and except what terraform treats as its
    /// own ([`exported`]); returns the top-most paths left out. A commit over a quota, a special
    /// file, or a symbolic link that leads outside the checkout stops the export with an error
    /// naming the file and the limit (and never `dest`, a host path).
    pub fn export(&self, commit: &CommitSha, dest: &Path) -> anyhow::Result<Vec<String>> {
        std::fs::create_dir_all(dest).context("creating the job's checkout directory")?;
        let stream = self.stream(&["archive", "--format=tar", commit.as_str()], None)?;
        let mut archive = tar::Archive::new(stream);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(false);
        let left_out = unpack_within_quota(&mut archive, dest, ExportQuota::new(&self.limits))
            .with_context(|| format!("checking out commit {}", commit.short()))?;
        archive
            .into_inner()
            .finish()
            .with_context(|| format!("checking out commit {}", commit.short()))?;
        Ok(left_out)
    }
}

/// The local module sources each directory's `.tf` files call (read from `blobs`, within the
/// HCL limits); a file over those limits is a diagnostic.
fn module_calls(
    tf_objs: Vec<(String, String, u64)>,
    blobs: &BTreeMap<String, Vec<u8>>,
    limits: &Limits,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<ProjectDir, Vec<String>> {
    let hcl = limits.hcl();
    let mut module_calls: BTreeMap<ProjectDir, Vec<String>> = BTreeMap::new();
    for (path, obj, _) in tf_objs {
        let Some(text) = blobs.get(&obj) else {
            continue;
        };
        let text = String::from_utf8_lossy(text);
        // Cheap filter: most files declare no module; skip the HCL parse for them.
        if !text.contains("module") {
            continue;
        }
        // A file terraform cannot parse is reported by terraform itself in the plan;
        // detection just learns nothing from it. A file over the limits is reported here.
        let sources = match module_sources(&path, &text, &hcl) {
            Ok(s) => s,
            Err(d) => {
                if d.is_error() {
                    diagnostics.push(d);
                }
                continue;
            }
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
    module_calls
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

/// The quotas of one job's checkout, and what the entries seen so far used of them. Every
/// archive entry is admitted (or refused) before anything of it is written.
#[derive(Debug)]
pub struct ExportQuota {
    max_bytes: u64,
    max_entries: usize,
    max_file_bytes: u64,
    max_path_bytes: usize,
    bytes: u64,
    entries: usize,
}

/// What to do with an admitted entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Write,
    /// Archive metadata (git's pax header with the commit id): nothing to write.
    Skip,
}

impl ExportQuota {
    pub fn new(limits: &Limits) -> ExportQuota {
        ExportQuota {
            max_bytes: limits.export_bytes,
            max_entries: limits.export_files,
            max_file_bytes: limits.export_file_bytes,
            max_path_bytes: limits.path_bytes,
            bytes: 0,
            entries: 0,
        }
    }

    /// Admits one entry: `path` relative to the checkout, its tar type, its size, and for a
    /// symbolic link its target. Errors name the file and the limit.
    pub fn admit(
        &mut self,
        path: &Path,
        kind: tar::EntryType,
        size: u64,
        link: Option<&Path>,
    ) -> anyhow::Result<Admit> {
        use tar::EntryType as T;
        let shown = path.display();
        match kind {
            T::XGlobalHeader => return Ok(Admit::Skip),
            T::Regular | T::Continuous | T::Directory | T::Symlink => {}
            other => bail!(
                "`{shown}` is a special file ({other:?}); a checkout holds only regular files, \
                 directories and symbolic links"
            ),
        }
        if path.as_os_str().len() > self.max_path_bytes {
            bail!(
                "`{shown}` is longer than {} bytes (limits.path_bytes)",
                self.max_path_bytes
            );
        }
        self.entries += 1;
        if self.entries > self.max_entries {
            bail!(
                "it has more than {} files and directories; a job's checkout holds at most that \
                 many (limits.export_files)",
                self.max_entries
            );
        }
        if kind == T::Symlink {
            let target = link.context("a symbolic link without a target")?;
            if !link_stays_inside(path, target) {
                bail!(outside_link(path, target));
            }
            return Ok(Admit::Write);
        }
        if size > self.max_file_bytes {
            bail!(
                "`{shown}` is {}; a job's checkout holds files of at most {} \
                 (limits.export_file_bytes)",
                human_bytes(size),
                human_bytes(self.max_file_bytes)
            );
        }
        self.bytes += size;
        if self.bytes > self.max_bytes {
            bail!(
                "its files take more than {}; a job's checkout holds at most that \
                 (limits.export_bytes)",
                human_bytes(self.max_bytes)
            );
        }
        Ok(Admit::Write)
    }
}

fn outside_link(path: &Path, target: &Path) -> String {
    format!(
        "`{}` is a symbolic link to `{}`, outside the repository; Sluice does not check out \
         links that leave it",
        path.display(),
        target.display()
    )
}

/// Whether a symbolic link at `path` (relative to the checkout) pointing at `target` stays
/// inside the checkout, read lexically: absolute targets, and `..` past the top, leave it.
pub fn link_stays_inside(path: &Path, target: &Path) -> bool {
    let mut depth: usize = path.parent().map_or(0, |p| {
        p.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count()
    });
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Unpacks `archive` into `dest` entry by entry, each admitted by `quota` first; then checks
/// that every symbolic link that resolves, resolves inside `dest` (a lexical check alone cannot
/// see a link that goes through another link).
fn unpack_within_quota<R: Read>(
    archive: &mut tar::Archive<R>,
    dest: &Path,
    mut quota: ExportQuota,
) -> anyhow::Result<Vec<String>> {
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let path = entry
            .path()
            .context("an archive entry without a path")?
            .into_owned();
        if let Err(top) = exported(&path.to_string_lossy()) {
            if !left_out.contains(&top) {
                left_out.push(top);
            }
            continue;
        }
        let kind = entry.header().entry_type();
        let link = entry.link_name().ok().flatten().map(|l| l.into_owned());
        if quota.admit(&path, kind, entry.size(), link.as_deref())? == Admit::Skip {
            continue;
        }
        let written = entry
            .unpack_in(dest)
            .map_err(|e| anyhow::anyhow!("writing `{}` failed: {}", path.display(), e.kind()))?;
        if !written {
            bail!("`{}` would land outside the checkout", path.display());
        }
        if let Some(target) = link {
            links.push((path, target));
        }
    }
    let root = std::fs::canonicalize(dest).context("resolving the job's checkout directory")?;
    for (path, target) in links {
        if let Ok(real) = std::fs::canonicalize(dest.join(&path))
            && !real.starts_with(&root)
        {
            bail!(outside_link(&path, &target));
        }
    }
    Ok(left_out)
}

/// Reads one `\n`-terminated header line of `cat-file` output (at most 4 KiB).
fn read_header(out: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = Vec::new();
    out.by_ref().take(4096).read_until(b'\n', &mut line)?;
    if line.pop() != Some(b'\n') {
        bail!("truncated cat-file output");
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads one object's `size` bytes and the `\n` after them.
fn read_body(out: &mut impl BufRead, size: u64) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
    out.by_ref().take(size).read_to_end(&mut body)?;
    let mut nl = [0u8; 1];
    if body.len() as u64 != size || out.read(&mut nl)? != 1 || nl[0] != b'\n' {
        bail!("truncated cat-file output");
    }
    Ok(body)
}

/// The error diagnostic of a `.tf` file whose module calls were not read.
fn unread(path: &str, why: String) -> Diagnostic {
    crate::core::projects::unread_file(path, 0, 0, &why)
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn parse_name_status(records: &[Vec<u8>]) -> anyhow::Result<Vec<ChangedFile>> {
    let fields: Vec<String> = records
        .iter()
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

        // `escape -> ../../etc` leaves the repository: the checkout is refused, naming it.
        let out = tempfile::tempdir().unwrap();
        let err = g.export(&head, &out.path().join("refused")).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "checking out commit {}: `escape` is a symbolic link to `../../etc`, outside the \
                 repository; Sluice does not check out links that leave it",
                head.short()
            )
        );
        sh(d.path(), "git rm -q escape && git commit -qm three");
        let head = g.resolve("feature").unwrap();
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

    fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
        let mut l = Limits::default();
        f(&mut l);
        l
    }

    /// A repository whose `main` has `script` applied (run in the work tree, then committed).
    fn repo_with(script: &str) -> (tempfile::TempDir, GitRepo, CommitSha) {
        let d = tempfile::tempdir().unwrap();
        sh(
            d.path(),
            &format!("git init -q -b main . && {script} && git add -A && git commit -qm one"),
        );
        let g = GitRepo::open(d.path()).unwrap();
        let head = g.resolve("main").unwrap();
        (d, g, head)
    }

    /// A "tree bomb" on top of `main`: ten trees of ten, nine levels deep — 10^9 paths in a
    /// few KB of objects. Returns the repo, the base and the bomb commit.
    fn tree_bomb() -> (tempfile::TempDir, GitRepo, CommitSha, CommitSha) {
        let (d, g, base) = repo_with("echo base > README");
        sh(
            d.path(),
            r#"t=$(echo x | git hash-object -w --stdin); kind=blob; mode=100644
               for level in 1 2 3 4 5 6 7 8 9; do
                 t=$(for i in 0 1 2 3 4 5 6 7 8 9; do printf '%s %s %s\tn%s\n' $mode $kind $t $i; done | git mktree)
                 kind=tree; mode=040000
               done
               c=$(git commit-tree $t -p main -m bomb) && git update-ref refs/heads/bomb $c"#,
        );
        let bomb = g.resolve("bomb").unwrap();
        (d, g, base, bomb)
    }

    fn gits_of(dir: &Path) -> Vec<String> {
        let out = std::process::Command::new("pgrep")
            .args(["-af", &dir.display().to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("git"))
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_tree_bomb_stops_git_within_its_memory_and_leaves_nothing_running() {
        let (d, g, base, bomb) = tree_bomb();
        // Within its memory: git fails with a clear error, fast.
        let small = g
            .clone()
            .with_limits(limits(|l| l.git_memory_bytes = 128 << 20));
        let started = Instant::now();
        let err = format!("{:#}", small.changed_files(&base, &bomb).unwrap_err());
        assert!(
            err.contains("ran out of memory") && err.contains("limits.git_memory_bytes"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        assert!(gits_of(d.path()).is_empty(), "{:?}", gits_of(d.path()));

        // With memory to spare, the reader's deadline stops it — with every process it started.
        let roomy = g
            .clone()
            .with_limits(limits(|l| l.git_memory_bytes = 8 << 30));
        let dir = d.path().to_path_buf();
        let started = Instant::now();
        let err = std::thread::spawn(move || {
            set_read_deadline(Some(Instant::now() + Duration::from_secs(2)));
            format!("{:#}", roomy.changed_files(&base, &bomb).unwrap_err())
        })
        .join()
        .unwrap();
        assert!(
            err.contains("was stopped after") && err.contains("limits.detection_timeout_secs"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        assert!(gits_of(&dir).is_empty(), "{:?}", gits_of(&dir));

        // Reading the tree stops at limits.tree_files, and git with it.
        let err = format!("{:#}", g.snapshot(&g.resolve("bomb").unwrap()).unwrap_err());
        assert!(err.contains("limits.tree_files"), "{err}");
        assert!(gits_of(d.path()).is_empty(), "{:?}", gits_of(d.path()));
    }

    #[test]
    fn trees_and_diffs_over_their_limits_are_refused() {
        let (d, g, head) = repo_with("mkdir -p a && for i in 1 2 3 4 5; do echo $i > a/f$i; done");
        let few = g.clone().with_limits(limits(|l| l.tree_files = 4));
        let err = format!("{:#}", few.snapshot(&head).unwrap_err());
        assert!(
            err.contains("has more than 4 files") && err.contains("(limits.tree_files)"),
            "{err}"
        );
        assert_eq!(g.snapshot(&head).unwrap().files.len(), 5);
        let err = format!("{:#}", few.list_dir(&head, "a").unwrap_err());
        assert!(err.contains("more than 4 entries"), "{err}");

        sh(
            d.path(),
            "git checkout -qb pr && rm a/f1 a/f2 a/f3 && echo x > b && git add -A && git commit -qm two",
        );
        let pr = g.resolve("pr").unwrap();
        assert_eq!(g.changed_files(&head, &pr).unwrap().len(), 4);
        let narrow = g.clone().with_limits(limits(|l| l.changed_files = 3));
        let err = format!("{:#}", narrow.changed_files(&head, &pr).unwrap_err());
        assert_eq!(
            err,
            "this pull request changes more than 3 files; Sluice reads at most that many (limits.changed_files)"
        );

        let long = format!("mkdir -p {0} && echo x > {0}/main.tf", "d".repeat(60));
        let (_d, g, head) = repo_with(&long);
        let short = g.clone().with_limits(limits(|l| l.path_bytes = 40));
        let err = format!("{:#}", short.snapshot(&head).unwrap_err());
        assert!(
            err.contains("a path longer than 40 bytes (limits.path_bytes)"),
            "{err}"
        );
    }

    #[test]
    fn tf_files_over_the_limits_are_diagnostics_and_blobs_are_never_read_whole() {
        let deep = format!(
            "module \"m\" {{\n  source = \"../m\"\n  x = {}1{}\n}}\n",
            "[".repeat(150),
            "]".repeat(150)
        );
        let script = format!(
            "mkdir -p ok big deep m && \
             printf 'module \"m\" {{\n  source = \"../m\"\n}}\n' > ok/main.tf && \
             printf 'module \"m\" {{\n  source = \"../m\"\n}}\n' > big/main.tf && \
             head -c 3000 /dev/zero | tr '\\0' '#' >> big/main.tf && \
             printf '%s' '{deep}' > deep/main.tf && echo 'variable \"v\" {{}}' > m/main.tf && \
             head -c 5000 /dev/zero > sluice.yaml"
        );
        let (_d, g, head) = repo_with(&script);
        let g = g.with_limits(limits(|l| l.file_bytes = 2048));
        let (snap, diags) = g.read_tree(&head).unwrap();
        let shown: Vec<String> = diags
            .iter()
            .map(|d| d.to_string().lines().next().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            shown,
            vec![
                "big/main.tf: error: not read: the file is 3.0 KiB; Sluice reads `.tf` files of at most 2 KiB (limits.file_bytes)",
                "deep/main.tf:3:105: error: not read: brackets, braces, parentheses, string templates and operators nest more than 100 levels deep here (limits.hcl_depth)",
            ]
        );
        let calls: Vec<&str> = snap.module_calls.keys().map(|d| d.as_str()).collect();
        assert_eq!(
            calls,
            vec!["ok"],
            "only the readable file's calls are known"
        );
        assert!(
            snap.files.contains("big/main.tf"),
            "unread files are still files"
        );

        // The detection budget: files past it (in path order) are not read either.
        let g2 = g.clone().with_limits(limits(|l| l.detection_bytes = 100));
        let (_, diags) = g2.read_tree(&head).unwrap();
        assert!(
            diags
                .iter()
                .any(|d| d.file == "big/main.tf" && d.message.contains("(limits.detection_bytes)")),
            "{diags:?}"
        );

        // Files read into memory: a config file over the limit is not read.
        let got = g
            .read_files_bounded(&head, &["sluice.yaml", "ok/main.tf", "nope"])
            .unwrap();
        assert_eq!(got[0], FileRead::TooLarge { bytes: 5000 });
        assert!(matches!(&got[1], FileRead::Text(t) if t.contains("../m")));
        assert_eq!(got[2], FileRead::Missing);
        let err = format!("{:#}", g.read_files(&head, &["sluice.yaml"]).unwrap_err());
        assert_eq!(
            err,
            "`sluice.yaml` is 4.9 KiB; Sluice reads files of at most 2 KiB (limits.file_bytes)"
        );
    }

    #[test]
    fn exports_stop_at_their_quotas() {
        let (_d, g, head) = repo_with(
            "mkdir -p a b && head -c 3000 /dev/zero > a/big && echo x > a/small && \
             echo y > b/one && echo z > b/two",
        );
        let export = |l: Limits| {
            let out = tempfile::tempdir().unwrap();
            let r = g
                .clone()
                .with_limits(l)
                .export(&head, &out.path().join("co"));
            r.map_err(|e| format!("{e:#}"))
        };
        assert!(export(Limits::default()).is_ok());
        let msg = |r: Result<Vec<String>, String>| {
            r.unwrap_err()
                .split(": ")
                .skip(1)
                .collect::<Vec<_>>()
                .join(": ")
        };
        assert_eq!(
            msg(export(limits(|l| l.export_file_bytes = 2000))),
            "`a/big` is 2.9 KiB; a job's checkout holds files of at most 2.0 KiB (limits.export_file_bytes)"
        );
        assert_eq!(
            msg(export(limits(|l| l.export_bytes = 3002))),
            "its files take more than 2.9 KiB; a job's checkout holds at most that (limits.export_bytes)"
        );
        assert_eq!(
            msg(export(limits(|l| l.export_files = 5))),
            "it has more than 5 files and directories; a job's checkout holds at most that many (limits.export_files)"
        );
        assert!(
            export(limits(|l| l.export_files = 6)).is_ok(),
            "2 dirs + 4 files"
        );
    }

    #[test]
    fn exports_refuse_links_that_leave_the_checkout() {
        for (script, link, target) in [
            ("ln -s /etc/passwd abs", "abs", "/etc/passwd"),
            ("mkdir -p a && ln -s ../../x a/up", "a/up", "../../x"),
            // Lexically inside, but `sub` is the checkout itself, so `sub/..` is its parent.
            (
                "ln -s . sub && ln -s sub/../outside.txt sneaky",
                "sneaky",
                "sub/../outside.txt",
            ),
        ] {
            let (_d, g, head) = repo_with(script);
            let out = tempfile::tempdir().unwrap();
            std::fs::write(out.path().join("outside.txt"), "host file").unwrap();
            let err = format!("{:#}", g.export(&head, &out.path().join("co")).unwrap_err());
            assert!(
                err.ends_with(&format!(
                    "`{link}` is a symbolic link to `{target}`, outside the repository; Sluice does not check out links that leave it"
                )),
                "{err}"
            );
            assert!(
                !err.contains(&out.path().display().to_string()),
                "no host path: {err}"
            );
        }
        // Links that stay inside are checked out.
        let (_d, g, head) =
            repo_with("mkdir -p m && echo x > m/f && mkdir e && ln -s ../m e/m && ln -s m/f top");
        let out = tempfile::tempdir().unwrap();
        g.export(&head, &out.path().join("co")).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.path().join("co/e/m/f")).unwrap(),
            "x\n"
        );
    }

    #[test]
    fn only_files_directories_and_links_are_admitted() {
        let mut q = ExportQuota::new(&Limits::default());
        for kind in [
            tar::EntryType::Fifo,
            tar::EntryType::Char,
            tar::EntryType::Block,
            tar::EntryType::Link,
        ] {
            let err = q
                .admit(Path::new("dev"), kind, 0, None)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("`dev` is a special file"), "{err}");
        }
        assert_eq!(
            q.admit(
                Path::new("pax_global_header"),
                tar::EntryType::XGlobalHeader,
                52,
                None
            )
            .unwrap(),
            Admit::Skip
        );
        assert!(link_stays_inside(Path::new("a/b/l"), Path::new("../../c")));
        assert!(!link_stays_inside(
            Path::new("a/b/l"),
            Path::new("../../../c")
        ));
        assert!(!link_stays_inside(Path::new("l"), Path::new("/c")));
        assert!(link_stays_inside(Path::new("l"), Path::new("./a/../b")));
    }

    #[test]
    fn helpers() {
        assert_eq!(
            redact_url("https://x:tok@github.com/a/b"),
            "https://***@github.com/a/b"
        );
        assert_eq!(redact_url("file:///tmp/x"), "file:///tmp/x");
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(2048), "2 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        let env = auth_env("https://github.com/a/b", Some(&Secret::new("abc")));
        // "x-access-token:abc" in base64
        assert_eq!(env[2].1, "Authorization: Basic eC1hY2Nlc3MtdG9rZW46YWJj");
        assert!(auth_env("file:///x", Some(&Secret::new("abc"))).is_empty());
    }
}
