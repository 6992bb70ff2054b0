//! The sandbox against a PR that tries to break out (PRODUCT.md §8): an escape probe
//! (`tests/fixtures/sandbox/escape_probe.c`, built here with the system C compiler) is committed
//! as a provider and run by `sluice preview` exactly as PR code runs — started by terraform, in
//! the job of a plan. It tries each escape and writes what happened to a report in its job dir
//! (kept with `--keep-job-dirs`), which the tests read.
//!
//! Every guarantee is checked twice when the suite runs as root (as CI does): with `sluice`
//! started by root — runs must switch to the unprivileged sandbox user — and with `sluice`
//! started by an unprivileged user (`sltest`, made by `scripts/install-test-tools`). Run as an
//! ordinary user, the suite checks that user's case.
//!
//! The same probe run without the sandbox (and, as root, under the bubblewrap flags Sluice used
//! before this hardening) reports the escapes as working: the proof that a "blocked" here comes
//! from the sandbox, not from a probe that cannot detect anything.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{
    Mirror, Run, TestRepo, fake_provider_project, scratch_dir, sluice_command, tool_env, tools,
    unique, world_readable,
};

/// Who starts `sluice` in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starter {
    /// The suite's own user, root.
    Root,
    /// An unprivileged user (uid, gid): `sltest` when the suite runs as root, else the suite's
    /// own user.
    User(u32, u32),
}

impl Starter {
    /// Root and an unprivileged user when the suite runs as root; the suite's user otherwise.
    pub fn all() -> Vec<Starter> {
        if nix::unistd::geteuid().is_root() {
            vec![Starter::Root, Starter::unprivileged()]
        } else {
            vec![Starter::unprivileged()]
        }
    }

    /// An unprivileged user: `sltest` when the suite runs as root.
    pub fn unprivileged() -> Starter {
        if !nix::unistd::geteuid().is_root() {
            return Starter::User(
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            );
        }
        let user = nix::unistd::User::from_name("sltest")
            .expect("reading the user database")
            .expect(
                "the sandbox tests need an unprivileged user `sltest` when run as root: \
                 run scripts/install-test-tools (it creates one), or `useradd --system sltest`",
            );
        Starter::User(user.uid.as_raw(), user.gid.as_raw())
    }

    /// Gives `path` (and everything in it) to this user, so a `sluice` it starts can use it.
    pub fn own(self, path: &Path) {
        if let Starter::User(uid, gid) = self
            && nix::unistd::geteuid().is_root()
        {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(path)
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown -R {}", path.display());
        }
    }

    /// Makes `cmd` run as this user.
    pub fn apply(self, cmd: &mut Command) {
        if let Starter::User(uid, gid) = self
            && nix::unistd::geteuid().is_root()
        {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
    }
}

/// The escape probe, compiled once per test run.
pub fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox/escape_probe.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("escape-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir probe dir");
        let bin = dir.join("escape-probe");
        let out = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("the sandbox tests build their escape probe with `cc`: install gcc (apt-get install gcc)");
        assert!(
            out.status.success(),
            "building the escape probe failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        world_readable(&dir);
        bin
    })
}

/// Adds the probe to `mirror` as provider `sluice-test/probe`.
fn add_probe(mirror: &Mirror) {
    let dir = mirror
        .path()
        .join("registry.terraform.io/sluice-test/probe/1.0.0/linux_amd64");
    std::fs::create_dir_all(&dir).expect("mkdir provider dir");
    let bin = dir.join("terraform-provider-probe_v1.0.0");
    std::fs::copy(probe_binary(), &bin).expect("copy probe");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for d in bin.ancestors().skip(1) {
        if d == mirror.path().parent().expect("mirror has a parent") {
            break;
        }
        world_readable(d);
    }
}

/// A server's world for one probe run: data dir (with a secret), jobs dir, home, a mirror
/// holding the probe, all owned by whoever starts `sluice`.
pub struct World {
    pub starter: Starter,
    pub base: tempfile::TempDir,
    pub mirror: Mirror,
    pub secret: String,
}

impl World {
    pub fn new(starter: Starter) -> World {
        let base = scratch_dir("probe-world");
        world_readable(base.path());
        let secret = unique("s3cr3t");
        for d in ["data", "home"] {
            std::fs::create_dir_all(base.path().join(d)).expect("mkdir");
        }
        std::fs::write(base.path().join("data/secret.txt"), &secret).expect("write secret");
        std::fs::write(base.path().join("home/marker"), &secret).expect("write marker");
        starter.own(base.path());
        let mirror = Mirror::empty();
        add_probe(&mirror);
        World {
            starter,
            base,
            mirror,
            secret,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.base.path().join("data")
    }
    pub fn jobs(&self) -> PathBuf {
        self.base.path().join("jobs")
    }
    pub fn home(&self) -> PathBuf {
        self.base.path().join("home")
    }

    /// `sluice preview` of a PR adding the probe project with `conf` as its `probe.conf`, with
    /// the extra settings `env`; returns the run and the probe's report.
    pub fn run_probe(&self, conf: &str, env: &[(&str, String)]) -> (Run, Report) {
        // Job dirs are kept for the report: start from none, so the report found is this run's.
        let _ = std::fs::remove_dir_all(self.jobs());
        let repo = TestRepo::new();
        repo.write("README.md", "base\n");
        repo.commit("base");
        repo.write("probe/main.tf", &fake_provider_project("probe"));
        repo.write("probe/probe.conf", conf);
        repo.commit("the pull request");
        self.starter.own(repo.path());

        let tools = tools();
        let mut vars: BTreeMap<String, String> = tool_env(&tools, &self.data());
        vars.insert(
            "SLUICE_PROVIDER_MIRROR".into(),
            self.mirror.path().display().to_string(),
        );
        vars.insert(
            "SLUICE_RUNNER__JOBS_DIR".into(),
            self.jobs().display().to_string(),
        );
        vars.insert("SLUICE_TEST_SECRET".into(), self.secret.clone());
        vars.insert("HOME".into(), self.home().display().to_string());
        for (k, v) in env {
            vars.insert(k.to_string(), v.clone());
        }
        let path = repo.path().display().to_string();
        let mut cmd = sluice_command(
            &["preview", "--keep-job-dirs", "--base", "HEAD~1", &path],
            &vars,
            repo.path(),
        );
        self.starter.apply(&mut cmd);
        let run = Run::from_output(&cmd.output().expect("sluice runs"));
        assert!(
            run.stdout
                .contains("Unrecognized remote plugin message: SPY probe finished"),
            "the probe did not run to its end ({:?}):\n{}\n{}",
            self.starter,
            run.stdout,
            run.stderr
        );
        let report = find_report(&self.jobs()).unwrap_or_else(|| {
            panic!(
                "no probe report under {}:\n{}\n{}",
                self.jobs().display(),
                run.stdout,
                run.stderr
            )
        });
        (run, Report::parse(&report))
    }
}

fn find_report(dir: &Path) -> Option<String> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(r) = find_report(&path) {
                return Some(r);
            }
        } else if path.file_name().is_some_and(|n| n == "probe-report.txt") {
            return std::fs::read_to_string(&path).ok();
        }
    }
    None
}

/// The probe's report: one result per check, plus the mountinfo lines and inherited fds.
#[derive(Debug)]
pub struct Report {
    pub checks: BTreeMap<String, String>,
    pub mountinfo: Vec<String>,
    pub fds: Vec<String>,
    pub text: String,
}

impl Report {
    pub fn parse(text: &str) -> Report {
        let mut checks = BTreeMap::new();
        let mut mountinfo = Vec::new();
        let mut fds = Vec::new();
        for line in text.lines() {
            let (check, rest) = line.split_once(' ').unwrap_or((line, ""));
            match check {
                "mountinfo" => mountinfo.push(rest.to_string()),
                "fd" => fds.push(rest.to_string()),
                _ => {
                    checks.insert(check.to_string(), rest.to_string());
                }
            }
        }
        assert!(
            checks.contains_key("done"),
            "the report is incomplete:\n{text}"
        );
        Report {
            checks,
            mountinfo,
            fds,
            text: text.to_string(),
        }
    }

    /// The result of `check` (panics with the whole report when it is missing).
    #[track_caller]
    pub fn get(&self, check: &str) -> &str {
        self.checks
            .get(check)
            .unwrap_or_else(|| panic!("no {check} in the report:\n{}", self.text))
    }

    /// Asserts `check` was refused with `errno` (e.g. `EPERM`).
    #[track_caller]
    pub fn refused(&self, check: &str, errno: &str, starter: Starter) {
        let got = self.get(check);
        assert!(
            got.starts_with(&format!("errno={errno}")),
            "{check}: expected errno={errno}, got {got:?} ({starter:?}):\n{}",
            self.text
        );
    }

    /// Asserts `check` was refused, whatever the errno.
    #[track_caller]
    pub fn blocked(&self, check: &str, starter: Starter) {
        let got = self.get(check);
        assert!(
            got.starts_with("errno="),
            "{check} worked: {got:?} ({starter:?}):\n{}",
            self.text
        );
    }

    /// Asserts `check` worked (the probe could do it).
    #[track_caller]
    pub fn worked(&self, check: &str, context: &str) {
        let got = self.get(check);
        assert!(
            got.starts_with("ok"),
            "{check} should work {context}, got {got:?}:\n{}",
            self.text
        );
    }
}

/// Settings that make every limit small enough for the probe to reach quickly, but large
/// enough for terraform.
fn small_limits() -> Vec<(&'static str, String)> {
    vec![
        ("SLUICE_RUNNER__LIMITS__PROCESSES", "64".into()),
        (
            "SLUICE_RUNNER__LIMITS__FILE_SIZE_BYTES",
            (8u64 << 20).to_string(),
        ),
        (
            "SLUICE_RUNNER__LIMITS__ADDRESS_SPACE_BYTES",
            (2u64 << 30).to_string(),
        ),
        ("SLUICE_RUNNER__LIMITS__OPEN_FILES", "256".into()),
        ("SLUICE_RUNNER__LIMITS__TMP_BYTES", (4u64 << 20).to_string()),
        (
            "SLUICE_RUNNER__LIMITS__DEV_SHM_BYTES",
            (2u64 << 20).to_string(),
        ),
    ]
}

/// What the probe reaches for besides syscalls: limits and host files.
fn probe_conf(world: &World) -> String {
    format!(
        "procs 200\nfsize {}\naddrspace {}\nnofile 1000\ntmpfill {}\n\
         readfile data_secret {}/secret.txt\nreadfile home_marker {}/marker\n\
         readfile shadow /etc/shadow\nreadfile passwd /etc/passwd\n",
        20u64 << 20,
        4u64 << 30,
        32u64 << 20,
        world.data().display(),
        world.home().display()
    )
}

fn core_pattern() -> String {
    std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default()
}

#[test]
fn escapes_fail_whoever_starts_sluice() {
    for starter in Starter::all() {
        let world = World::new(starter);
        let pattern_before = core_pattern();
        let mirror_before = world.mirror.fingerprint();
        let (_, r) = world.run_probe(&probe_conf(&world), &small_limits());

        // Never root, never a capability, and the same unprivileged identity either way.
        assert_eq!(r.get("uid"), "65534 euid 65534 gid 65534", "{starter:?}");
        assert_eq!(r.get("cap_effective"), "0000000000000000", "{starter:?}");
        assert_eq!(r.get("cap_bounding"), "0000000000000000", "{starter:?}");

        // Namespaces: none can be made or joined (the filter answers first, with EPERM;
        // clone3 with ENOSYS so C libraries fall back to clone, whose flags are checked).
        for check in [
            "unshare_user",
            "clone_newuser",
            "unshare_mount",
            "unshare_net",
            "setns",
        ] {
            r.refused(check, "EPERM", starter);
        }
        r.refused("clone3", "ENOSYS", starter);

        // Mounts: a read-only bind stays read-only; nothing new can be mounted.
        for check in [
            "remount_usr_rw",
            "remount_providers_rw",
            "mount_tmpfs",
            "chroot",
        ] {
            r.refused(check, "EPERM", starter);
        }
        r.refused("write_providers", "EROFS", starter);
        r.refused("write_usr", "EROFS", starter);
        assert_eq!(
            world.mirror.fingerprint(),
            mirror_before,
            "the run changed the mirror ({starter:?})"
        );

        // /proc/sys is not writable (core_pattern runs a program as host root on a crash).
        r.blocked("write_core_pattern", starter);
        r.blocked("open_sysrq_trigger", starter);
        assert_eq!(core_pattern(), pattern_before);

        // The syscalls of the classic escapes, refused by the seccomp filter (EPERM also where
        // this kernel would have said ENOSYS or allowed them to any user).
        for check in [
            "keyctl",
            "add_key",
            "bpf_prog_load",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "name_to_handle_at",
            "open_by_handle_at",
            "socket_vsock",
            "socket_netlink_audit",
            // The kernel reads int arguments from the low 32 bits: high bits change nothing.
            "socket_netlink_audit_high",
            "socket_netlink_audit_high_family",
            "socket_vsock_high",
            "ioctl_tiocsti_high",
            "kexec_load",
            "init_module",
            "delete_module",
            "reboot",
            "swapon",
            "ptrace_attach_child",
            "process_vm_readv_child",
            "ptrace_seize_parent",
        ] {
            r.refused(check, "EPERM", starter);
        }
        // Not a blanket ban on sockets: Go reads interfaces through routing netlink.
        r.worked("socket_netlink_route", "inside the sandbox");
        // No terminal to inject keystrokes into.
        r.blocked("ioctl_tiocsti", starter);
        r.blocked("open_dev_tty", starter);

        // Resource limits of the run.
        let count = |check: &str| -> u64 {
            r.get(check)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{check}: {:?}", r.get(check)))
        };
        assert!(
            r.get("procs").ends_with("errno=EAGAIN"),
            "procs: {:?} ({starter:?})",
            r.get("procs")
        );
        assert!(count("procs") < 64, "procs: {:?}", r.get("procs"));
        assert!(
            r.get("fsize").ends_with("errno=EFBIG"),
            "fsize: {:?}",
            r.get("fsize")
        );
        assert!(count("fsize") <= 8 << 20, "fsize: {:?}", r.get("fsize"));
        assert!(
            r.get("addrspace").ends_with("errno=ENOMEM"),
            "{:?}",
            r.get("addrspace")
        );
        assert!(
            r.get("nofile").ends_with("errno=EMFILE"),
            "{:?}",
            r.get("nofile")
        );
        assert!(count("nofile") < 256, "nofile: {:?}", r.get("nofile"));
        assert_eq!(r.get("core_limit"), "0");
        // /tmp and /dev/shm are tmpfs of the configured sizes, the rest of /dev read-only.
        for (check, cap) in [("tmp_fill", 4u64 << 20), ("shm_fill", 2u64 << 20)] {
            assert!(
                r.get(check).ends_with("errno=ENOSPC"),
                "{check}: {:?} ({starter:?})",
                r.get(check)
            );
            assert!(count(check) <= cap, "{check}: {:?}", r.get(check));
        }
        r.refused("write_dev", "EROFS", starter);

        // Terraform (the provider's parent) is out of reach through /proc: its stdout, which
        // Sluice reads the plan from, and its environment (credentials). It runs from an
        // execute-only copy, so the kernel made it non-dumpable; and it is PID 1, no reaper
        // holding its stdout is there.
        for check in ["engine_stdout", "pid1_stdout", "engine_environ"] {
            r.refused(check, "EACCES", starter);
        }
        // What init installed is read-only for the rest of the job.
        for check in ["write_data_dir", "write_lock_file"] {
            r.refused(check, "EROFS", starter);
        }

        // Host files outside the binds do not exist in the run.
        for check in ["data_secret", "home_marker", "shadow", "passwd"] {
            r.refused(check, "ENOENT", starter);
        }
        assert!(!r.text.contains(&world.secret), "{starter:?}:\n{}", r.text);

        // No descriptor from outside (a directory one would lead out through ".."): only
        // terraform's pipes to its provider and /dev/null.
        for fd in &r.fds {
            let target = fd.split(" -> ").nth(1).unwrap_or("");
            assert!(
                target == "/dev/null"
                    || target.starts_with("pipe:")
                    || target.starts_with("socket:"),
                "inherited fd {fd} ({starter:?})"
            );
        }

        // The mount table names no host path but the run's own job dir, the engine and the
        // mirror (as bind sources), and system paths: not the data dir, not the server's
        // home, not the CLI config or plan file (they are copied in).
        let data = world.data().display().to_string();
        let home = world.home().display().to_string();
        for m in &r.mountinfo {
            assert!(
                !m.contains(&data) && !m.contains(&home),
                "{m} ({starter:?})"
            );
            assert!(
                !m.contains(".etc") && !m.contains(".out"),
                "{m} ({starter:?})"
            );
        }
        assert!(
            r.mountinfo.iter().any(|m| m.contains(" /sluice/work ")),
            "{:?}",
            r.mountinfo
        );
        // Field 4 of each line is the path of what is mounted, inside its filesystem: the one
        // piece of host layout a mount table gives away. Only the job dir (under the jobs dir),
        // the engine, the mirror and system paths may appear.
        let jobs = world.jobs().display().to_string();
        let mirror = world.mirror.path().display().to_string();
        let engine = tools().terraform.display().to_string();
        for m in &r.mountinfo {
            let root = m.split(' ').nth(3).unwrap_or("");
            let system = ["/usr", "/etc", "/lib", "/bin", "/sbin"]
                .iter()
                .any(|p| root == *p || root.starts_with(&format!("{p}/")));
            // Device nodes of /dev, and /proc entries bubblewrap covers read-only.
            let pseudo = [
                "/null",
                "/zero",
                "/full",
                "/random",
                "/urandom",
                "/tty",
                "/irq",
                "/bus",
                "/sys",
                "/sysrq-trigger",
            ]
            .contains(&root);
            let bwrap_own =
                root == "/" || root.starts_with("/newroot") || root.starts_with("/bindfile");
            assert!(
                system
                    || pseudo
                    || bwrap_own
                    || root.starts_with(&format!("{jobs}/"))
                    || root == mirror
                    || root == engine,
                "a mount of {root:?} shows a host path ({starter:?}):\n{}",
                r.mountinfo.join("\n")
            );
        }
    }
}

/// The control: the probe, started without the sandbox by an unprivileged user, reports the
/// escapes an unprivileged user can make on this machine — so each "refused" above is the
/// sandbox's doing. Run as root under the bubblewrap flags Sluice used before (`--unshare-all
/// --die-with-parent`, nothing else), it reports the escapes of the issue that started this:
/// a read-only bind remounted writable and written, `/proc/sys` writable, new user namespaces.
#[test]
fn the_probe_detects_the_escapes_it_looks_for() {
    let starter = Starter::unprivileged();
    let dir = scratch_dir("probe-control");
    world_readable(dir.path());
    std::fs::write(
        dir.path().join("probe.conf"),
        format!(
            "procs 200\nfsize {}\naddrspace {}\nnofile 1000\ntmpfill {}\n",
            20u64 << 20,
            4u64 << 30,
            8u64 << 20
        ),
    )
    .expect("write conf");
    starter.own(dir.path());
    let mut cmd = Command::new(probe_binary());
    cmd.current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    starter.apply(&mut cmd);
    let out = cmd.output().expect("probe runs");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(dir.path().join("probe-report.txt")).expect("report");
    let r = Report::parse(&text);
    let context = "for an unprivileged user without the sandbox";
    let mut allowed = vec![
        "unshare_user",
        "clone_newuser",
        "clone3",
        "keyctl",
        "add_key",
        "userfaultfd",
        "name_to_handle_at",
        "socket_netlink_audit",
        "socket_netlink_audit_high",
        "socket_netlink_audit_high_family",
        "ptrace_attach_child",
        "process_vm_readv_child",
    ];
    if std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").is_ok_and(|v| v.trim() == "0")
    {
        allowed.push("io_uring_setup");
    }
    for check in allowed {
        r.worked(check, context);
    }
    // Where this kernel refuses on its own, it does not say EPERM (perf_event_paranoid says
    // EACCES, a missing vsock EAFNOSUPPORT): the sandbox's EPERM is its filter's.
    for check in ["socket_vsock", "perf_event_open"] {
        assert_ne!(r.get(check), "errno=EPERM", "{check}: {text}");
    }
    for check in [
        "procs",
        "fsize",
        "addrspace",
        "nofile",
        "tmp_fill",
        "shm_fill",
    ] {
        assert!(
            r.get(check).ends_with("ok"),
            "{check} was limited {context}: {text}"
        );
    }

    if !nix::unistd::geteuid().is_root() {
        return;
    }
    // The flags before the hardening, run by root, with the probe's mirror bound read-only.
    let mirror = Mirror::empty();
    add_probe(&mirror);
    let work = scratch_dir("probe-legacy");
    let before = mirror.fingerprint();
    let pattern_before = core_pattern();
    let mut legacy = Command::new("bwrap");
    legacy.args(["--unshare-all", "--die-with-parent"]);
    for p in ["/usr", "/bin", "/sbin", "/lib", "/lib64"] {
        legacy.args(["--ro-bind-try", p, p]);
    }
    legacy
        .args([
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind",
        ])
        .arg(work.path())
        .arg("/sluice/work")
        .arg("--ro-bind")
        .arg(mirror.path())
        .arg("/sluice/providers")
        .args(["--chdir", "/sluice/work", "--"])
        .arg(
            Path::new(
                "/sluice/providers/registry.terraform.io/sluice-test/probe/1.0.0/linux_amd64",
            )
            .join("terraform-provider-probe_v1.0.0"),
        )
        .stdin(std::process::Stdio::null());
    let out = legacy.output().expect("bwrap runs");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(work.path().join("probe-report.txt")).expect("report");
    let r = Report::parse(&text);
    let context = "as root under the old bubblewrap flags";
    for check in [
        "remount_providers_rw",
        "write_providers",
        "mount_tmpfs",
        "write_core_pattern",
        "unshare_user",
        "keyctl",
    ] {
        r.worked(check, context);
    }
    assert_eq!(
        core_pattern(),
        pattern_before,
        "the probe must write back what it read"
    );
    // The remount happened in the run's own mount namespace; the mirror itself was not written
    // (the probe removes what it plants), and no capability was dropped.
    assert_eq!(mirror.fingerprint(), before);
    assert_ne!(r.get("cap_effective"), "0000000000000000", "{text}");
}

/// The plan forger (`tests/fixtures/sandbox/plan_forger.c`), compiled once per test run.
fn forger_binary() -> &'static Path {
    static FORGER: OnceLock<PathBuf> = OnceLock::new();
    FORGER.get_or_init(|| {
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox/plan_forger.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("plan-forger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir forger dir");
        let bin = dir.join("forger");
        let out = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("building the plan forger needs `cc`");
        assert!(
            out.status.success(),
            "building the plan forger failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        world_readable(&dir);
        bin
    })
}

/// A mirror whose `hashicorp/null` starts `./forger <terraform's pid>` of the project (the
/// code of the PR) in the background each time terraform starts it — as a provider such as
/// `hashicorp/external` runs a program the PR names — then runs the real provider.
fn mirror_running_pr_code() -> Mirror {
    let mirror = Mirror::copy_of(&tools());
    let dir = mirror
        .path()
        .join("registry.terraform.io/hashicorp/null/2.1.2/linux_amd64");
    let bin = dir.join("terraform-provider-null_v2.1.2_x4");
    std::fs::rename(&bin, dir.join("real-null")).expect("move the real provider");
    std::fs::write(
        &bin,
        "#!/bin/sh\n[ -x ./forger ] && ./forger \"$PPID\" </dev/null >/dev/null 2>&1 &\n\
         exec \"$(dirname \"$0\")/real-null\" \"$@\"\n",
    )
    .expect("write the wrapper");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    mirror
}

/// `sluice preview` (runner `profile`) of a PR whose project plans `null_resource.real` and
/// commits the forger with `conf` as its `forger.conf`; returns the run and the forger's report
/// from plan time (kept job dirs), if it wrote one.
fn run_forger(starter: Starter, profile: &str, conf: &str) -> (Run, String) {
    let base = scratch_dir("forger-world");
    world_readable(base.path());
    std::fs::create_dir_all(base.path().join("data")).expect("mkdir data");
    let mirror = mirror_running_pr_code();
    let repo = TestRepo::new();
    repo.write("README.md", "base\n");
    repo.commit("base");
    repo.write("p/main.tf", &crate::support::null_project("real", "1"));
    repo.write("p/forger.conf", conf);
    std::fs::copy(forger_binary(), repo.path().join("p/forger")).expect("copy forger");
    std::fs::set_permissions(
        repo.path().join("p/forger"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    repo.commit("the pull request");
    starter.own(base.path());
    starter.own(repo.path());

    let jobs = base.path().join("jobs");
    let mut vars = tool_env(&tools(), &base.path().join("data"));
    vars.insert(
        "SLUICE_PROVIDER_MIRROR".into(),
        mirror.path().display().to_string(),
    );
    vars.insert("SLUICE_RUNNER__JOBS_DIR".into(), jobs.display().to_string());
    vars.insert("SLUICE_RUNNER__PROFILE".into(), profile.to_string());
    vars.insert("HOME".into(), base.path().display().to_string());
    let path = repo.path().display().to_string();
    let mut cmd = sluice_command(
        &[
            "preview",
            "--keep-job-dirs",
            "--format",
            "terminal",
            "--base",
            "HEAD~1",
            &path,
        ],
        &vars,
        repo.path(),
    );
    starter.apply(&mut cmd);
    let run = Run::from_output(&cmd.output().expect("sluice runs"));
    let report = find_named(&jobs, "forger-report.txt").unwrap_or_default();
    (run, report)
}

fn find_named(dir: &Path, name: &str) -> Option<String> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() && !path.is_symlink() {
            if let Some(r) = find_named(&path, name) {
                return Some(r);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return std::fs::read_to_string(&path).ok();
        }
    }
    None
}

/// Code of the PR running during `plan` tries to change what `show -json` loads (swap the
/// provider init installed, rewrite the lock file), and during `show` tries to write a forged
/// plan into terraform's stdout. Whoever starts Sluice, the sandbox stops both: the plan shown
/// is the real one.
#[test]
fn a_run_cannot_change_the_plan_sluice_shows() {
    for starter in Starter::all() {
        let (run, report) = run_forger(starter, "bwrap", "swap\nforge\n");
        let all = format!("{}\n{}", run.stdout, run.stderr);
        assert!(
            all.contains("null_resource.real") && !all.contains("forged"),
            "{starter:?}: the shown plan is not the real one:\n{all}\nreport:\n{report}"
        );
        for (check, errno) in [
            ("swap_provider", "EROFS"),
            ("write_lock_file", "EROFS"),
            ("plan_stdout", "EACCES"),
            ("plan_stdout_pid1", "EACCES"),
        ] {
            assert!(
                report.contains(&format!("{check} errno={errno}\n")),
                "{starter:?}: {check}: expected {errno}:\n{report}\n{all}"
            );
        }
    }
}

/// The control: without the sandbox (runner profile `plain`) the same PR code swaps the
/// provider — and Sluice, which checks what init installed before every later command, fails
/// the job closed — or, alone, forges the plan shown: the test above can see both attacks.
#[test]
fn the_forger_works_without_the_sandbox() {
    let starter = Starter::unprivileged();
    let (run, report) = run_forger(starter, "plain", "swap\n");
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(report.contains("swap_provider ok\n"), "{report}\n{all}");
    assert!(
        all.contains("what `init` installed changed") && !all.contains("forged"),
        "{all}"
    );

    let (run, _) = run_forger(starter, "plain", "forge\n");
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(all.contains("null_resource.forged"), "{all}");
}
