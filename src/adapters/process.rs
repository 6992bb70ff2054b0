//! Running one external process the way every tool run in Sluice must be run: an explicit argv
//! (never a shell), an explicit working directory, an environment that starts empty, its own
//! session and process group, a wall-clock timeout, cancellation as SIGINT then SIGKILL to the
//! whole group, and output that is streamed line by line and capped in memory.
//!
//! This module knows nothing about terraform or sandboxes; `sandbox` decides *what* to run and
//! how it is confined ([`Confinement`]: another user, namespaces to join, inherited descriptors,
//! resource limits), and this module applies that between `fork` and `exec`.
#![allow(
    clippy::disallowed_methods,
    reason = "this adapter is where processes start, with their timeouts and caps"
)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Receives output as it is produced, one line at a time (without the newline), for progress
/// displays and live logs. Lines longer than [`MAX_SINK_LINE`] are cut.
pub trait LineSink: Send + Sync {
    fn line(&self, line: &str);

    /// The lines that follow are the output of `step` (a live log keeps steps apart).
    fn begin_step(&self, _step: crate::core::ui::job_log::LogStep) {}

    /// `step`'s process ended after `duration`, successfully or not.
    fn end_step(&self, _step: crate::core::ui::job_log::LogStep, _duration: Duration, _ok: bool) {}
}

/// Longest line handed to a [`LineSink`].
pub const MAX_SINK_LINE: usize = 4096;

/// Where the process's stdout goes.
#[derive(Debug, Clone)]
pub enum Stdout {
    /// Merged with stderr into the capped output.
    Captured,
    /// Written to a file (e.g. `terraform show -json`), refusing more than `cap` bytes.
    File { path: PathBuf, cap: u64 },
}

#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment; nothing is inherited.
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// Time between SIGINT and SIGKILL when stopping early.
    pub grace: Duration,
    /// Bytes of output kept in memory: the first and last halves, the middle is dropped.
    pub output_cap: usize,
    pub stdout: Stdout,
    /// Start the program with SIGINT ignored. Used for sandbox wrappers (bwrap) that would
    /// otherwise die on the group's SIGINT and take terraform down before its graceful stop;
    /// terraform re-arms SIGINT itself (Go's `signal.Notify` overrides an inherited ignore).
    pub ignore_sigint: bool,
    /// How the process is confined before `exec`; the default confines nothing.
    pub confine: Confinement,
}

/// What is done to the child between `fork` and `exec`, in this order: switch to `run_as`
/// (supplementary groups dropped), join `namespaces` (a user namespace first: joining it grants
/// the rights to join the others it owns), set `rlimits`, and let `inherit_fds` survive `exec`
/// under their own numbers (the caller names them in the arguments).
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    /// User and group id to run as. Only root can switch; `None` keeps Sluice's own.
    pub run_as: Option<(u32, u32)>,
    /// Namespaces (an open `/proc/<pid>/ns/*` file and its kind) to join.
    pub namespaces: Vec<(Arc<OwnedFd>, CloneFlags)>,
    /// Soft and hard limit set to the same value.
    pub rlimits: Vec<(Resource, u64)>,
    /// Descriptors the program inherits (they are close-on-exec in Sluice, so no other child
    /// gets them).
    pub inherit_fds: Vec<Arc<OwnedFd>>,
    /// Whatever the process depends on outside itself (a run's network namespace and the
    /// processes serving it): held until the process has ended, then dropped.
    pub keep_alive: Option<KeepAlive>,
}

/// See [`Confinement::keep_alive`].
#[derive(Clone)]
pub struct KeepAlive(pub Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepAlive(..)")
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    /// Killed by a signal it did not handle.
    Signalled(i32),
    /// Stopped by Sluice because it ran past its timeout.
    TimedOut,
    /// Stopped by Sluice because the run was cancelled.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct ProcessOutput {
    pub termination: Termination,
    /// stderr and (when captured) stdout, interleaved in arrival order, capped.
    pub output: String,
    /// Bytes dropped from the middle of `output` by the cap.
    pub omitted_bytes: u64,
    /// True when stdout went to a file and exceeded its cap (the file is then incomplete).
    pub stdout_file_overflow: bool,
    pub duration: Duration,
}

impl ProcessOutput {
    pub fn exit_code(&self) -> Option<i32> {
        match self.termination {
            Termination::Exited(c) => Some(c),
            _ => None,
        }
    }
}

/// Keeps the first and the last `cap / 2` bytes of a stream.
struct CappedBuffer {
    cap_half: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    omitted: u64,
}

impl CappedBuffer {
    fn new(cap: usize) -> Self {
        CappedBuffer {
            cap_half: cap.max(2) / 2,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            omitted: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < self.cap_half {
            let take = (self.cap_half - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.tail.extend(bytes);
        while self.tail.len() > self.cap_half {
            let extra = self.tail.len() - self.cap_half;
            self.tail.drain(..extra);
            self.omitted += extra as u64;
        }
    }

    fn finish(self) -> (String, u64) {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.omitted > 0 {
            out.push_str(&format!(
                "\n[… {} bytes of output omitted: over the output cap …]\n",
                self.omitted
            ));
        }
        let tail: Vec<u8> = self.tail.into_iter().collect();
        out.push_str(&String::from_utf8_lossy(&tail));
        (out, self.omitted)
    }
}

/// Splits a byte stream into lines for a [`LineSink`].
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn feed(&mut self, bytes: &[u8], sink: &dyn LineSink) {
        for &b in bytes {
            if b == b'\n' {
                self.flush(sink);
            } else if self.pending.len() < MAX_SINK_LINE {
                self.pending.push(b);
            }
        }
    }

    fn flush(&mut self, sink: &dyn LineSink) {
        let line = String::from_utf8_lossy(&self.pending);
        sink.line(line.trim_end_matches('\r'));
        self.pending.clear();
    }
}

struct CappedFile {
    file: tokio::fs::File,
    cap: u64,
    written: u64,
}

/// Where chunks of output go: the capped in-memory buffer, the stdout file, the line sink.
struct Collector {
    captured: CappedBuffer,
    stdout_file: Option<CappedFile>,
    overflow: bool,
    out_lines: LineSplitter,
    err_lines: LineSplitter,
    sink: Option<Arc<dyn LineSink>>,
}

impl Collector {
    async fn take(&mut self, chunk: Chunk) -> io::Result<()> {
        match chunk {
            Chunk::Err(bytes) => {
                self.captured.push(&bytes);
                if let Some(s) = &self.sink {
                    self.err_lines.feed(&bytes, s.as_ref());
                }
            }
            Chunk::Out(bytes) => match &mut self.stdout_file {
                Some(f) => {
                    if f.written + bytes.len() as u64 > f.cap {
                        self.overflow = true;
                    } else if !self.overflow {
                        f.file.write_all(&bytes).await?;
                        f.written += bytes.len() as u64;
                    }
                }
                None => {
                    self.captured.push(&bytes);
                    if let Some(s) = &self.sink {
                        self.out_lines.feed(&bytes, s.as_ref());
                    }
                }
            },
        }
        Ok(())
    }

    async fn finish(mut self) -> io::Result<CappedBuffer> {
        if let Some(f) = &mut self.stdout_file {
            f.file.flush().await?;
        }
        if let Some(s) = &self.sink {
            if !self.out_lines.pending.is_empty() {
                self.out_lines.flush(s.as_ref());
            }
            if !self.err_lines.pending.is_empty() {
                self.err_lines.flush(s.as_ref());
            }
        }
        Ok(self.captured)
    }
}

enum Chunk {
    Err(Vec<u8>),
    Out(Vec<u8>),
}

async fn pump(mut r: impl AsyncRead + Unpin, tx: mpsc::Sender<Chunk>, is_err: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = buf[..n].to_vec();
                let msg = if is_err {
                    Chunk::Err(chunk)
                } else {
                    Chunk::Out(chunk)
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// For use between `fork` and `exec`: marks every descriptor above stderr close-on-exec except
/// `keep`, whose close-on-exec flag is cleared — so the program gets stdio and `keep`, and
/// nothing Sluice itself inherited without close-on-exec (a build tool's jobserver pipe, a
/// supervisor's socket). Only async-signal-safe syscalls.
pub fn only_inherit(keep: &[i32]) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: nix::libc::c_uint = 1 << 2;
    // SAFETY: plain syscalls on descriptor numbers.
    unsafe {
        let rc = nix::libc::syscall(
            nix::libc::SYS_close_range,
            3 as nix::libc::c_uint,
            nix::libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        );
        if rc != 0 {
            // Kernels before 5.11: one descriptor at a time, up to the process's limit.
            let mut limit = nix::libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let max = if nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(1 << 16) as i32
            } else {
                1024
            };
            for fd in 3..max {
                nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC);
            }
        }
        for fd in keep {
            if nix::libc::fcntl(*fd, nix::libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// What [`probe`] saw: the exit code and stdout.
#[derive(Debug, Clone)]
pub struct ProbeOutput {
    pub code: Option<i32>,
    pub stdout: String,
}

/// Runs a short helper to completion, synchronously, for start-up checks (`bwrap --help`):
/// explicit argv, an empty environment, stdin closed, stdout captured, killed after `timeout`.
/// Not for anything that reads pull-request content or runs long: that is [`run`].
pub fn probe(
    program: &std::path::Path,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<ProbeOutput> {
    use anyhow::Context;
    let handle = duct::cmd(program, args)
        .full_env(BTreeMap::<String, String>::new())
        .stdin_null()
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .start()
        .with_context(|| format!("cannot start {}", program.display()))?;
    match handle.wait_timeout(timeout)? {
        Some(out) => Ok(ProbeOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }),
        None => {
            let _ = handle.kill();
            anyhow::bail!(
                "{} did not finish within {}s",
                program.display(),
                timeout.as_secs()
            )
        }
    }
}

/// Runs `spec` to completion (or timeout / cancellation). Fails only when the process cannot be
/// started or its stdout file cannot be written; a non-zero exit is a normal [`ProcessOutput`].
pub async fn run(
    spec: &ProcessSpec,
    sink: Option<Arc<dyn LineSink>>,
    cancel: &CancellationToken,
) -> io::Result<ProcessOutput> {
    let started = Instant::now();
    let mut child = command(spec).spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {}: {e}", spec.program.display()),
        )
    })?;
    let pgid = Pid::from_raw(child.id().expect("a just-spawned child has a pid") as i32);

    let (tx, rx) = mpsc::channel::<Chunk>(64);
    let out_task = tokio::spawn(pump(
        child.stdout.take().expect("stdout is piped"),
        tx.clone(),
        false,
    ));
    let err_task = tokio::spawn(pump(
        child.stderr.take().expect("stderr is piped"),
        tx,
        true,
    ));
    let mut out = Collector {
        captured: CappedBuffer::new(spec.output_cap),
        stdout_file: stdout_file(spec).await?,
        overflow: false,
        out_lines: LineSplitter {
            pending: Vec::new(),
        },
        err_lines: LineSplitter {
            pending: Vec::new(),
        },
        sink,
    };
    let ended = supervise(spec, &mut child, pgid, rx, &mut out, cancel).await?;
    if ended.pipes_held_outside {
        // Waiting for the readers would wait for that process, possibly forever (a plain-profile
        // run whose provider detached a child hung the whole job, timeout included). The run
        // is over: stop reading. (Under bwrap such a process dies with the PID namespace.)
        out_task.abort();
        err_task.abort();
    }
    let _ = out_task.await;
    let _ = err_task.await;
    let overflow = out.overflow;
    let captured = out.finish().await?;
    let termination = match ended.stop_reason {
        Some(reason) => reason,
        None => {
            use std::os::unix::process::ExitStatusExt;
            match (ended.status.code(), ended.status.signal()) {
                (Some(code), _) => Termination::Exited(code),
                (None, Some(sig)) => Termination::Signalled(sig),
                (None, None) => Termination::Signalled(0),
            }
        }
    };
    let (output, omitted_bytes) = captured.finish();
    Ok(ProcessOutput {
        termination,
        output,
        omitted_bytes,
        stdout_file_overflow: overflow,
        duration: started.elapsed(),
    })
}

/// The command for `spec`: argv, an empty environment plus `spec.env`, its working dir, piped
/// output, and — between `fork` and `exec` — a session of its own, the [`Confinement`], and
/// death with Sluice.
fn command(spec: &ProcessSpec) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let ignore_sigint = spec.ignore_sigint;
    if let Some((uid, gid)) = spec.confine.run_as {
        // std switches (setgroups(0), setgid, setuid) before the pre_exec closure runs.
        cmd.uid(uid).gid(gid);
    }
    let namespaces: Vec<(i32, CloneFlags)> = spec
        .confine
        .namespaces
        .iter()
        .map(|(fd, kind)| (fd.as_raw_fd(), *kind))
        .collect();
    let rlimits = spec.confine.rlimits.clone();
    let inherit: Vec<i32> = spec
        .confine
        .inherit_fds
        .iter()
        .map(|fd| fd.as_raw_fd())
        .collect();
    // SAFETY: only async-signal-safe calls (setsid, setns, setrlimit, fcntl, prctl, sigaction)
    // between fork and exec; the vectors were built before the fork and are only read.
    unsafe {
        cmd.pre_exec(move || {
            // A new session: its own process group (so the whole tree can be signalled at
            // once) and no controlling terminal (so nothing inside can inject keystrokes).
            nix::unistd::setsid().map_err(io::Error::from)?;
            for (fd, kind) in &namespaces {
                let fd = std::os::fd::BorrowedFd::borrow_raw(*fd);
                nix::sched::setns(fd, *kind).map_err(io::Error::from)?;
            }
            for (resource, limit) in &rlimits {
                nix::sys::resource::setrlimit(*resource, *limit, *limit)
                    .map_err(io::Error::from)?;
            }
            only_inherit(&inherit)?;
            // If Sluice itself dies (a crash, kill -9), the run dies with it instead of living on
            // unsupervised and writing into a job dir that a retry is about to recreate. Set
            // last: a change of credentials (a user namespace joined above) clears it.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            if ignore_sigint {
                nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigIgn)
                    .map_err(io::Error::from)?;
            }
            Ok(())
        });
    }
    cmd
}

/// The file stdout goes to, when it goes to one.
async fn stdout_file(spec: &ProcessSpec) -> io::Result<Option<CappedFile>> {
    let Stdout::File { path, cap } = &spec.stdout else {
        return Ok(None);
    };
    // A new file only, never through a symlink: the path must not be something a run could
    // have prepared (a link to a host file would be truncated and overwritten).
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
    Ok(Some(CappedFile {
        file,
        cap: *cap,
        written: 0,
    }))
}

/// How a supervised process ended.
struct Ended {
    status: std::process::ExitStatus,
    /// Why Sluice stopped it, if it did.
    stop_reason: Option<Termination>,
    /// The pipes stayed open after the group was killed: held by a process that left the
    /// group (`setsid`), which no group signal reaches.
    pipes_held_outside: bool,
}

/// Collects the output of `child` (group `pgid`) until it has exited and its pipes are closed:
/// SIGINT to the group at the timeout or on `cancel`, SIGKILL after the grace, SIGKILL at once
/// when the stdout file overflows.
async fn supervise(
    spec: &ProcessSpec,
    child: &mut tokio::process::Child,
    pgid: Pid,
    mut rx: mpsc::Receiver<Chunk>,
    out: &mut Collector,
    cancel: &CancellationToken,
) -> io::Result<Ended> {
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut stop_reason: Option<Termination> = None;
    let mut exit_status = None;
    let mut interrupted_at: Option<Instant> = None;
    let mut killed = false;
    let mut streams_open = true;
    let mut pipes_held_outside = false;

    loop {
        let grace_left = interrupted_at
            .map(|t| spec.grace.saturating_sub(t.elapsed()))
            .unwrap_or(Duration::MAX);
        tokio::select! {
            chunk = rx.recv(), if streams_open => match chunk {
                Some(chunk) => {
                    out.take(chunk).await?;
                    if out.overflow && !killed {
                        // The stdout file is over its cap: the result is unusable, stop now.
                        let _ = killpg(pgid, Signal::SIGKILL);
                        killed = true;
                    }
                }
                None => streams_open = false,
            },
            status = child.wait(), if exit_status.is_none() => {
                exit_status = Some(status?);
                // The main process is gone. Anything of its group still holding the pipes
                // open is a straggler: give output a moment to drain, then kill the group.
                // (The group exists while such members do, so its id cannot have been reused.)
                if streams_open {
                    let drained = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(chunk) = rx.recv().await {
                            out.take(chunk).await?;
                        }
                        Ok::<(), io::Error>(())
                    })
                    .await;
                    match drained {
                        Ok(result) => result?,
                        Err(_) => {
                            let _ = killpg(pgid, Signal::SIGKILL);
                            pipes_held_outside = true;
                        }
                    }
                    streams_open = false;
                }
            },
            _ = &mut deadline, if stop_reason.is_none() && exit_status.is_none() => {
                stop_reason = Some(Termination::TimedOut);
                let _ = killpg(pgid, Signal::SIGINT);
                interrupted_at = Some(Instant::now());
            },
            _ = cancel.cancelled(), if stop_reason.is_none() && exit_status.is_none() => {
                stop_reason = Some(Termination::Cancelled);
                let _ = killpg(pgid, Signal::SIGINT);
                interrupted_at = Some(Instant::now());
            },
            _ = tokio::time::sleep(grace_left), if interrupted_at.is_some() && !killed && exit_status.is_none() => {
                let _ = killpg(pgid, Signal::SIGKILL);
                killed = true;
            },
        }
        if let Some(status) = exit_status
            && !streams_open
        {
            return Ok(Ended {
                status,
                stop_reason,
                pipes_held_outside,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]),
            cwd: std::env::temp_dir(),
            timeout: Duration::from_secs(20),
            grace: Duration::from_millis(500),
            output_cap: 1024,
            stdout: Stdout::Captured,
            ignore_sigint: false,
            confine: Confinement::default(),
        }
    }

    #[tokio::test]
    async fn captures_exit_code_and_output() {
        let out = run(
            &sh("echo hello; echo oops >&2; exit 3"),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.termination, Termination::Exited(3));
        assert!(out.output.contains("hello") && out.output.contains("oops"));
    }

    #[tokio::test]
    async fn environment_starts_empty() {
        // SAFETY: test-only; the variable name is unique to this test.
        unsafe { std::env::set_var("SLUICE_PROCESS_TEST_SECRET", "leaked") };
        let out = run(&sh("env"), None, &CancellationToken::new())
            .await
            .unwrap();
        assert!(!out.output.contains("leaked"), "{}", out.output);
        assert!(out.output.contains("PATH=/usr/bin:/bin"));
    }

    #[tokio::test]
    async fn output_is_capped_keeping_head_and_tail() {
        let out = run(
            &sh("echo FIRST; i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; echo LAST"),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(out.output.contains("FIRST") && out.output.contains("LAST"));
        assert!(out.omitted_bytes > 0);
        assert!(out.output.contains("bytes of output omitted"));
        assert!(out.output.len() < 1200);
    }

    #[tokio::test]
    async fn timeout_interrupts_then_kills_the_whole_group() {
        // A child that ignores SIGINT and outlives its parent must still be killed.
        let marker = format!("sleep 1{}", std::process::id());
        let mut spec = sh(&format!("trap '' INT; {marker} & {marker}"));
        spec.timeout = Duration::from_millis(300);
        let out = run(&spec, None, &CancellationToken::new()).await.unwrap();
        assert_eq!(out.termination, Termination::TimedOut);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ps = std::process::Command::new("pgrep")
            .arg("-f")
            .arg(&marker)
            .output()
            .unwrap();
        assert!(
            ps.stdout.is_empty(),
            "a process of the group survived: {:?}",
            ps
        );
    }

    #[tokio::test]
    async fn a_detached_process_holding_the_pipes_does_not_hold_up_the_run() {
        // The grandchild leaves the process group and keeps stdout/stderr open for 8 s.
        let out = run(
            &sh("setsid sleep 8 & echo started"),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.termination, Termination::Exited(0));
        assert!(out.output.contains("started"), "{}", out.output);
        assert!(out.duration < Duration::from_secs(6), "{:?}", out.duration);
    }

    #[tokio::test]
    async fn cancel_sends_sigint_first() {
        let mut spec = sh("trap 'echo got-int; exit 7' INT; while true; do sleep 0.05; done");
        spec.grace = Duration::from_secs(5);
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c2.cancel();
        });
        let out = run(&spec, None, &cancel).await.unwrap();
        assert_eq!(out.termination, Termination::Cancelled);
        assert!(out.output.contains("got-int"), "{}", out.output);
        assert!(out.duration < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn missing_binary_is_a_clear_error() {
        let mut spec = sh("true");
        spec.program = "/nonexistent/terraform".into();
        let err = run(&spec, None, &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot start /nonexistent/terraform"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn stdout_to_file_with_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let mut spec = sh("i=0; while [ $i -lt 1000 ]; do echo 0123456789; i=$((i+1)); done");
        spec.stdout = Stdout::File {
            path: path.clone(),
            cap: 100_000,
        };
        let out = run(&spec, None, &CancellationToken::new()).await.unwrap();
        assert!(!out.stdout_file_overflow);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 11_000);

        // An existing file (or a link planted where the output goes) is never overwritten.
        let err = run(&spec, None, &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        std::fs::remove_file(&path).unwrap();
        spec.stdout = Stdout::File {
            path: path.clone(),
            cap: 500,
        };
        let out = run(&spec, None, &CancellationToken::new()).await.unwrap();
        assert!(out.stdout_file_overflow);
        assert!(std::fs::metadata(&path).unwrap().len() <= 500);
    }

    #[tokio::test]
    async fn lines_are_streamed() {
        struct Collect(Mutex<Vec<String>>);
        impl LineSink for Collect {
            fn line(&self, line: &str) {
                self.0.lock().unwrap().push(line.to_string());
            }
        }
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        run(
            &sh("echo a; echo b; printf c"),
            Some(sink.clone()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(*sink.0.lock().unwrap(), vec!["a", "b", "c"]);
    }
}
