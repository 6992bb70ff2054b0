//! Benchmarks for the targets of PRODUCT.md §12, each measured side by side in one run: the two
//! sides of a ratio are interleaved round by round (order alternating) and compared by their
//! medians, so a machine that gets busier half-way slows both sides alike.
//!
//! * overhead: `sluice preview --all --jobs 1` on the example repo (3 projects) vs. a shell
//!   script running the same terraform commands with the same mirror, directly and inside bwrap
//!   with the mounts and flags of the sandbox before its hardening.
//! * hardening: what the hardened sandbox costs per run — the same plan (`init`, `plan -out`,
//!   `show -json` of one project) and a single `terraform version`, each run through the real
//!   sandbox code (`Sandbox::process_spec` + the process adapter) with the hardened `bwrap`
//!   profile (network on, and off), the `plain` profile, and bwrap with the flags it had before
//!   (`--unshare-all --die-with-parent` and the same mounts).
//! * parallelism: 6 projects, `--jobs 2` vs `--jobs 1`.
//! * detection: `affected_projects` on a 5,000-project monorepo with 1,000 changed files.
//! * render: a 20,000-resource plan: parse → summary → diff → comments, time and peak RSS (in a
//!   child process, so the figure is that work's alone).
//! * redaction: redacting that plan's diff of its sensitive values and 50 credentials, matching
//!   every encoded form of each secret vs. only the forms printed as is (the redactor before
//!   encodings were covered): the automaton's build time and one pass over the text.
//!
//! Run with `cargo bench` (needs `scripts/install-test-tools`). `cargo bench -- --quick` runs
//! fewer rounds; `cargo bench --bench sluice_bench -- hardening` (or `overhead`, `parallelism`,
//! `detection`, `render`, `redaction`) runs only the parts named.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::too_many_lines,
    reason = "benchmarks start the binary and tools themselves, and a failed unwrap is a failed run"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use sluice::adapters::process::{self, Confinement, ProcessSpec, Stdout, Termination};
use sluice::adapters::sandbox::{Invocation, Sandbox};
use sluice::config::RunnerSettings;
use sluice::core::plan::{
    CommandName, CommentLimits, PlanSummary, ProjectOutcome, ProjectReport, Redactor,
    RenderContext, parse_plan_json, render_comments, render_diff, synthetic_plan_json,
};
use sluice::core::projects::{affected_projects, synthetic_changes, synthetic_monorepo};
use sluice::core::repo_config::parse_repo_config;
use sluice::core::types::{CommitSha, ProjectDir, ProjectName, Workspace};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const RENDER_CHILD: &str = "--render-child";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == RENDER_CHILD) {
        render_child(Path::new(
            args.get(i + 1).expect("--render-child PLAN_JSON"),
        ));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let parts: Vec<&str> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.contains(&part);
    let tools = Tools::find();
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir");
    println!(
        "sluice bench: binary {SLUICE}, {} cores, load average {}{}\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average(),
        if quick { ", quick" } else { "" }
    );

    let mut results = Vec::new();
    if wanted("overhead") {
        results.extend(overhead(&tools, scratch.path(), if quick { 2 } else { 5 }));
    }
    if wanted("hardening") {
        results.extend(hardening(&tools, scratch.path(), if quick { 2 } else { 5 }));
    }
    if wanted("parallelism") {
        results.push(parallelism(
            &tools,
            scratch.path(),
            if quick { 2 } else { 3 },
        ));
    }
    if wanted("detection") {
        results.extend(detection(if quick { 5 } else { 25 }));
    }
    if wanted("render") {
        results.extend(render(scratch.path()));
    }
    if wanted("redaction") {
        results.extend(redaction(if quick { 3 } else { 11 }));
    }

    println!(
        "\n{:<44} {:>14} {:>12}  result",
        "benchmark", "measured", "goal"
    );
    println!("{}", "-".repeat(82));
    let mut all_ok = true;
    for r in &results {
        all_ok &= r.ok;
        println!(
            "{:<44} {:>14} {:>12}  {}",
            r.name,
            r.measured,
            r.goal,
            if r.ok { "ok" } else { "NOT OK" }
        );
    }
    println!("\nload average at the end: {}", load_average());
    println!(
        "{}",
        if all_ok {
            "all targets met"
        } else {
            "some targets NOT met"
        }
    );
}

struct Outcome {
    name: String,
    measured: String,
    goal: String,
    ok: bool,
}

// ---------------------------------------------------------------------------------------------
// Tools, repositories, timing

struct Tools {
    terraform: PathBuf,
    mirror: PathBuf,
    bwrap: PathBuf,
}

impl Tools {
    fn find() -> Tools {
        let dir = std::env::var_os("SLUICE_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"));
        let terraform = dir.join("bin/terraform");
        let mirror = dir.join("providers");
        if !terraform.is_file() || !mirror.join("registry.terraform.io/hashicorp/null").is_dir() {
            eprintln!(
                "sluice bench: terraform 1.0.3 and the null provider are missing from {}: run scripts/install-test-tools",
                dir.display()
            );
            std::process::exit(2);
        }
        let bwrap = ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                eprintln!(
                    "sluice bench: bubblewrap (bwrap) is missing: run scripts/install-test-tools"
                );
                std::process::exit(2);
            });
        Tools {
            terraform: canonical(&terraform),
            mirror: canonical(&mirror),
            bwrap,
        }
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// A git repository at `dir` with the files of `populate` committed on `main`.
fn make_repo(dir: &Path, populate: impl FnOnce(&Path)) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(dir, &["init", "-q", "-b", "main"]);
    populate(dir);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "bench"]);
    dir.to_path_buf()
}

/// CPU time the whole machine has spent busy so far (the `cpu` line of `/proc/stat`, all but
/// idle and iowait). Per-process accounting cannot be used: bwrap does not reap its sandbox's
/// init, so the CPU of sandboxed runs never reaches this process's `cutime`. The machine's
/// figure includes other load — which is the point: it shows how much CPU the runs could get.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal, in clock ticks (100 per second).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Duration::from_millis(busy * 10)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs `cmd`, which must succeed; returns its wall time.
fn timed(cmd: &mut Command, what: &str) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2
    }
}

/// One side of a comparison: runs once, returns its wall time.
type Side<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// Runs each side once untimed (warm-up), then `rounds` rounds of all sides, in an order that
/// rotates every round; returns each side's median. Also prints how busy the machine was during
/// each run, in cores (see [`machine_busy`]).
fn interleaved(rounds: usize, sides: &mut [(&str, Side<'_>)]) -> Vec<Duration> {
    for (_, run) in sides.iter_mut() {
        run();
    }
    let n = sides.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); n];
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let before = machine_busy();
            let t = (sides[i].1)();
            cpu[i].push(machine_busy().saturating_sub(before));
            times[i].push(t);
        }
        let line: Vec<String> = sides
            .iter()
            .zip(&times)
            .zip(&cpu)
            .map(|(((name, _), t), c)| {
                format!(
                    "{name} {:.2}s (machine {:.1} cores busy)",
                    t[round].as_secs_f64(),
                    c[round].as_secs_f64() / t[round].as_secs_f64()
                )
            })
            .collect();
        println!("  round {}: {}", round + 1, line.join(", "));
    }
    times.into_iter().map(median).collect()
}

fn sluice_preview(tools: &Tools, data: &Path, repo: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(SLUICE);
    cmd.arg("preview")
        .args(args)
        .arg(repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SLUICE_TERRAFORM_BIN", &tools.terraform)
        .env("SLUICE_PROVIDER_MIRROR", &tools.mirror)
        .env("SLUICE_DATA_DIR", data);
    cmd
}

// ---------------------------------------------------------------------------------------------
// Overhead: sluice preview vs. the same terraform commands by hand

/// The raw side: a bash script that exports the commit into a fresh dir (as Sluice exports it
/// into a fresh job dir), then runs, per project, the commands Sluice runs — with the same CLI
/// configuration (filesystem mirror only) and environment; `sandboxed` wraps each terraform
/// command in bwrap with the mounts of Sluice's bwrap profile.
fn raw_script(
    tools: &Tools,
    repo: &Path,
    work: &Path,
    projects: &[&str],
    sandboxed: bool,
) -> String {
    let rc_host = work.with_extension("terraformrc");
    let mirror_seen = if sandboxed {
        "/sluice/providers".to_string()
    } else {
        tools.mirror.display().to_string()
    };
    std::fs::write(
        &rc_host,
        format!(
            "disable_checkpoint = true\nprovider_installation {{\n  filesystem_mirror {{\n    path = \"{mirror_seen}\"\n  }}\n}}\n"
        ),
    )
    .expect("write terraformrc");
    let (work_seen, tf, rc_seen) = if sandboxed {
        (
            "/sluice/work".to_string(),
            "/sluice/bin/terraform".to_string(),
            "/sluice/etc/terraformrc".to_string(),
        )
    } else {
        (
            work.display().to_string(),
            tools.terraform.display().to_string(),
            rc_host.display().to_string(),
        )
    };
    let mut s = String::from("#!/bin/bash\nset -euo pipefail\n");
    s += &format!(
        "rm -rf '{w}' && mkdir -p '{w}/repo' && mkdir -p '{w}.home'\n",
        w = work.display()
    );
    s += &format!(
        "git -C '{}' archive HEAD | tar -x -C '{}/repo'\n",
        repo.display(),
        work.display()
    );
    let env = format!(
        "env -i PATH=/usr/local/bin:/usr/bin:/bin HOME={home} LANG=C.UTF-8 TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE={rc_seen}",
        home = if sandboxed {
            "/tmp".to_string()
        } else {
            format!("{}.home", work.display())
        }
    );
    for dir in projects {
        let cwd = format!("{work_seen}/repo/{dir}");
        let wrap = if sandboxed {
            let mut b = vec![
                tools.bwrap.display().to_string(),
                "--unshare-all --die-with-parent --hostname sluice --share-net".to_string(),
            ];
            for p in [
                "/usr",
                "/bin",
                "/sbin",
                "/lib",
                "/lib32",
                "/lib64",
                "/etc/ssl",
                "/etc/ca-certificates",
                "/etc/pki",
                "/etc/resolv.conf",
                "/etc/hosts",
                "/etc/localtime",
            ] {
                b.push(format!("--ro-bind-try {p} {p}"));
            }
            b.push("--proc /proc --dev /dev --tmpfs /tmp".to_string());
            b.push(format!("--bind '{}' /sluice/work", work.display()));
            b.push(format!(
                "--ro-bind '{}' /sluice/bin/terraform",
                tools.terraform.display()
            ));
            b.push(format!(
                "--ro-bind '{}' /sluice/providers",
                tools.mirror.display()
            ));
            b.push(format!(
                "--ro-bind '{}' /sluice/etc/terraformrc",
                rc_host.display()
            ));
            b.push(format!("--chdir '{cwd}' --"));
            b.join(" ")
        } else {
            String::new()
        };
        let cd = if sandboxed {
            String::new()
        } else {
            format!("cd '{cwd}' && ")
        };
        let plan = format!("{work_seen}/plan-{}.tfplan", dir.replace('/', "-"));
        s += &format!("({cd}{env} {wrap} {tf} init -input=false -no-color >/dev/null)\n");
        s += &format!(
            "({cd}{env} {wrap} {tf} plan -input=false -no-color -detailed-exitcode -out={plan} >/dev/null) || [ $? -eq 2 ]\n"
        );
        s += &format!(
            "({cd}{env} {wrap} {tf} show -json -no-color {plan} > '{}/plan-{}.json')\n",
            work.display(),
            dir.replace('/', "-")
        );
    }
    s
}

fn overhead(tools: &Tools, scratch: &Path, rounds: usize) -> Vec<Outcome> {
    println!(
        "overhead: sluice preview --all --jobs 1 (example repo, 3 projects) vs. raw terraform"
    );
    let repo = make_repo(&scratch.join("example"), |dir| {
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-infra"),
            dir,
        )
    });
    let projects = [
        "envs/prod/database",
        "envs/prod/network",
        "envs/staging/network",
    ];
    let data = scratch.join("overhead-data");
    let raw_plain = scratch.join("raw-plain.sh");
    let raw_bwrap = scratch.join("raw-bwrap.sh");
    std::fs::write(
        &raw_plain,
        raw_script(
            tools,
            &repo,
            &scratch.join("raw-plain-work"),
            &projects,
            false,
        ),
    )
    .expect("write script");
    std::fs::write(
        &raw_bwrap,
        raw_script(
            tools,
            &repo,
            &scratch.join("raw-bwrap-work"),
            &projects,
            true,
        ),
    )
    .expect("write script");

    let medians = interleaved(
        rounds,
        &mut [
            (
                "sluice",
                Box::new(|| {
                    timed(
                        &mut sluice_preview(tools, &data, &repo, &["--all", "--jobs", "1"]),
                        "sluice preview",
                    )
                }),
            ),
            (
                "raw",
                Box::new(|| timed(Command::new("bash").arg(&raw_plain), "raw script")),
            ),
            (
                "raw in bwrap",
                Box::new(|| timed(Command::new("bash").arg(&raw_bwrap), "raw bwrap script")),
            ),
        ],
    );
    let (s, raw, raw_bwrap) = (medians[0], medians[1], medians[2]);
    println!(
        "  median: sluice {:.2}s, raw {:.2}s, raw in bwrap {:.2}s\n",
        s.as_secs_f64(),
        raw.as_secs_f64(),
        raw_bwrap.as_secs_f64()
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let vs_raw = ratio(s, raw);
    let vs_bwrap = ratio(s, raw_bwrap);
    vec![
        Outcome {
            name: "overhead: sluice ÷ raw terraform".into(),
            measured: format!("{vs_raw:.3}"),
            goal: "≤ 1.10".into(),
            ok: vs_raw <= 1.10,
        },
        Outcome {
            name: "overhead: sluice ÷ raw terraform in bwrap".into(),
            measured: format!("{vs_bwrap:.3}"),
            goal: "≤ 1.10".into(),
            ok: vs_bwrap <= 1.10,
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Hardening: the per-run cost of the hardened sandbox

/// How one side runs a terraform command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    Plain,
    /// bwrap with the flags of the sandbox before its hardening.
    OldBwrap,
    Hardened {
        network: bool,
    },
}

/// What the hardening benchmark runs terraform with.
struct Rig<'a> {
    rt: tokio::runtime::Runtime,
    tools: &'a Tools,
    plain: Sandbox,
    hardened: Sandbox,
    hardened_offline: Sandbox,
}

impl Rig<'_> {
    /// Runs `terraform ARGS` in `job_dir/cwd` the way `isolation` says, through the process
    /// adapter; panics unless it exits with one of `ok`.
    fn run(
        &self,
        isolation: Isolation,
        job_dir: &Path,
        cwd: &str,
        args: &[&str],
        stdout: Stdout,
        ok: &[i32],
    ) {
        let (rig, rt, tools) = (self, &self.rt, self.tools);
        let rc = job_dir.with_extension("terraformrc");
        let inv = Invocation {
            job_dir,
            cwd,
            engine: &tools.terraform,
            mirror: Some(&tools.mirror),
            cli_config: Some(&rc),
            inputs: vec![],
            read_only: vec![],
            work_read_only: false,
            program: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: BTreeMap::new(),
            network: matches!(
                isolation,
                Isolation::Hardened { network: true } | Isolation::OldBwrap
            ),
            timeout: Duration::from_secs(600),
            grace: Duration::from_secs(5),
            output_cap: 1 << 20,
            stdout,
        };
        let spec = match isolation {
            Isolation::Plain => rt.block_on(rig.plain.process_spec(&inv)),
            Isolation::Hardened { network: true } => rt.block_on(rig.hardened.process_spec(&inv)),
            Isolation::Hardened { network: false } => {
                rt.block_on(rig.hardened_offline.process_spec(&inv))
            }
            Isolation::OldBwrap => Ok(old_bwrap_spec(tools, &inv, &rc)),
        }
        .expect("process spec");
        let out = rt
            .block_on(process::run(&spec, None, &CancellationToken::new()))
            .expect("the engine runs");
        assert!(
            matches!(out.termination, Termination::Exited(c) if ok.contains(&c)),
            "terraform {args:?} failed: {:?}\n{}",
            out.termination,
            out.output
        );
    }
}

/// The bwrap invocation of commit 1f28589, before the hardening: every namespace but the
/// network, host paths bound by name, nothing else.
fn old_bwrap_spec(tools: &Tools, inv: &Invocation<'_>, rc: &Path) -> ProcessSpec {
    let mut a: Vec<String> = [
        "--unshare-all",
        "--die-with-parent",
        "--hostname",
        "sluice",
        "--share-net",
    ]
    .map(String::from)
    .to_vec();
    for p in [
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/pki",
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/localtime",
    ] {
        a.extend(["--ro-bind-try".into(), p.into(), p.into()]);
    }
    a.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(String::from));
    a.extend([
        "--bind".into(),
        inv.job_dir.display().to_string(),
        "/sluice/work".into(),
        "--ro-bind".into(),
        tools.terraform.display().to_string(),
        "/sluice/bin/terraform".into(),
        "--ro-bind".into(),
        tools.mirror.display().to_string(),
        "/sluice/providers".into(),
        "--ro-bind".into(),
        rc.display().to_string(),
        "/sluice/etc/terraformrc".into(),
        "--chdir".into(),
        format!("/sluice/work/{}", inv.cwd),
        "--".into(),
        "/sluice/bin/terraform".into(),
    ]);
    a.extend(inv.args.iter().cloned());
    let mut env: BTreeMap<String, String> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("TF_IN_AUTOMATION", "1"),
        ("TF_INPUT", "0"),
        ("CHECKPOINT_DISABLE", "1"),
        ("TF_CLI_CONFIG_FILE", "/sluice/etc/terraformrc"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    env.extend(inv.env.clone());
    ProcessSpec {
        program: "bwrap".into(),
        args: a.into_iter().map(Into::into).collect(),
        env,
        cwd: inv.job_dir.to_path_buf(),
        timeout: inv.timeout,
        grace: inv.grace,
        output_cap: inv.output_cap,
        stdout: inv.stdout.clone(),
        ignore_sigint: true,
        confine: Confinement::default(),
    }
}

fn hardening(tools: &Tools, scratch: &Path, rounds: usize) -> Vec<Outcome> {
    println!(
        "hardening: one project's init + plan + show -json, and `terraform version`, per isolation"
    );
    let settings = |profile: &str, network: bool| RunnerSettings {
        profile: profile.into(),
        network,
        ..RunnerSettings::default()
    };
    let rig = Rig {
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
        tools,
        plain: Sandbox::from_settings(&settings("plain", true)).expect("plain sandbox"),
        hardened: Sandbox::from_settings(&settings("bwrap", true)).expect("hardened sandbox"),
        hardened_offline: Sandbox::from_settings(&settings("bwrap", false))
            .expect("hardened sandbox, no network"),
    };
    let repo = make_repo(&scratch.join("hardening-repo"), |dir| {
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-infra"),
            dir,
        )
    });
    let project = "envs/prod/database";
    let jobs = scratch.join("hardening-jobs");
    std::fs::create_dir_all(&jobs).expect("mkdir");
    // As root, runs of the hardened sandbox use the sandbox user, which must pass through.
    for dir in [scratch, jobs.as_path()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .expect("chmod");
    }
    let round = std::cell::Cell::new(0usize);
    // A fresh export of the commit per run, as Sluice makes a fresh job dir per job.
    let fresh_job = |side: &str, isolation: Isolation| -> PathBuf {
        round.set(round.get() + 1);
        let job = jobs.join(format!("{side}-{}", round.get()));
        std::fs::create_dir_all(job.join("repo")).expect("mkdir job");
        let archive = Command::new("git")
            .args(["-C"])
            .arg(&repo)
            .args(["archive", "HEAD"])
            .output()
            .expect("git archive");
        let mut tar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(job.join("repo"))
            .stdin(Stdio::piped())
            .spawn()
            .expect("tar");
        use std::io::Write;
        tar.stdin
            .take()
            .expect("piped")
            .write_all(&archive.stdout)
            .expect("tar input");
        assert!(tar.wait().expect("tar").success());
        let mirror = match isolation {
            Isolation::Plain => tools.mirror.display().to_string(),
            _ => "/sluice/providers".to_string(),
        };
        std::fs::write(
            job.with_extension("terraformrc"),
            sluice::adapters::terraform::cli_config_text(Some(Path::new(&mirror))),
        )
        .expect("write terraformrc");
        job
    };
    let cwd = format!("repo/{project}");
    let plan_side = |side: &'static str, isolation: Isolation| -> Side<'_> {
        let (rig, fresh_job, cwd) = (&rig, &fresh_job, &cwd);
        Box::new(move || {
            let job = fresh_job(side, isolation);
            let start = Instant::now();
            let plan_path = match isolation {
                Isolation::Plain => job.join("plan.tfplan").display().to_string(),
                _ => "/sluice/work/plan.tfplan".to_string(),
            };
            let run = |args: &[&str], stdout: Stdout, ok: &[i32]| {
                rig.run(isolation, &job, cwd, args, stdout, ok)
            };
            run(
                &["init", "-input=false", "-no-color"],
                Stdout::Captured,
                &[0],
            );
            run(
                &[
                    "plan",
                    "-input=false",
                    "-no-color",
                    "-detailed-exitcode",
                    &format!("-out={plan_path}"),
                ],
                Stdout::Captured,
                &[0, 2],
            );
            run(
                &["show", "-json", "-no-color", &plan_path],
                Stdout::File {
                    path: job.join("plan.json"),
                    cap: 1 << 30,
                },
                &[0],
            );
            let took = start.elapsed();
            let _ = std::fs::remove_dir_all(&job);
            took
        })
    };
    let version_side = |side: &'static str, isolation: Isolation| -> Side<'_> {
        let (rig, fresh_job) = (&rig, &fresh_job);
        Box::new(move || {
            let job = fresh_job(side, isolation);
            let start = Instant::now();
            for _ in 0..5 {
                rig.run(
                    isolation,
                    &job,
                    "repo",
                    &["version"],
                    Stdout::Captured,
                    &[0],
                );
            }
            let took = start.elapsed() / 5;
            let _ = std::fs::remove_dir_all(&job);
            took
        })
    };
    // The set-up alone: what `process_spec` does before the engine starts — for the hardened
    // sandbox, the job dir hand-over, the run's user namespace, and with network slirp4netns and
    // the egress rules. Sequential, 20 times each, median.
    let setup = |sandbox: &Sandbox, network: bool| -> Duration {
        let job = fresh_job("setup", Isolation::Hardened { network: true });
        let rc = job.with_extension("terraformrc");
        let inv = Invocation {
            job_dir: &job,
            cwd: "repo",
            engine: &tools.terraform,
            mirror: Some(&tools.mirror),
            cli_config: Some(&rc),
            inputs: vec![],
            read_only: vec![],
            work_read_only: false,
            program: None,
            args: vec!["version".into()],
            env: BTreeMap::new(),
            network,
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            output_cap: 1 << 20,
            stdout: Stdout::Captured,
        };
        let mut times = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            let spec = rig.rt.block_on(sandbox.process_spec(&inv)).expect("spec");
            times.push(start.elapsed());
            drop(spec);
        }
        let _ = std::fs::remove_dir_all(&job);
        median(times)
    };
    let setup_net = setup(&rig.hardened, true);
    let setup_offline = setup(&rig.hardened_offline, false);
    println!(
        "  set-up of one hardened run (median of 20): {:.1} ms with network, {:.1} ms without",
        setup_net.as_secs_f64() * 1000.0,
        setup_offline.as_secs_f64() * 1000.0
    );
    let sides = [
        ("plain", Isolation::Plain),
        ("old bwrap", Isolation::OldBwrap),
        ("hardened", Isolation::Hardened { network: true }),
        (
            "hardened, no network",
            Isolation::Hardened { network: false },
        ),
    ];
    println!("  one command (`terraform version`, mean of 5 per round):");
    let version = interleaved(
        rounds,
        &mut sides.map(|(name, iso)| (name, version_side(name, iso))),
    );
    println!("  the same plan (init + plan + show -json):");
    let plan = interleaved(
        rounds,
        &mut sides.map(|(name, iso)| (name, plan_side(name, iso))),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  median per command: plain {:.0} ms, old bwrap {:.0} ms, hardened {:.0} ms, hardened without network {:.0} ms",
        ms(version[0]),
        ms(version[1]),
        ms(version[2]),
        ms(version[3])
    );
    println!(
        "  median per plan: plain {:.2}s, old bwrap {:.2}s, hardened {:.2}s, hardened without network {:.2}s\n",
        plan[0].as_secs_f64(),
        plan[1].as_secs_f64(),
        plan[2].as_secs_f64(),
        plan[3].as_secs_f64()
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let vs_old = ratio(plan[2], plan[1]);
    let vs_plain = ratio(plan[2], plan[0]);
    vec![
        Outcome {
            name: "hardening: plan, hardened ÷ old bwrap flags".into(),
            measured: format!("{vs_old:.3}"),
            goal: "≤ 1.15".into(),
            ok: vs_old <= 1.15,
        },
        Outcome {
            name: "hardening: plan, hardened ÷ plain".into(),
            measured: format!("{vs_plain:.3}"),
            goal: "—".into(),
            ok: true,
        },
        Outcome {
            name: "hardening: set-up per command (network)".into(),
            measured: format!("{:.0} ms", ms(setup_net)),
            goal: "—".into(),
            ok: true,
        },
        Outcome {
            name: "hardening: one command, hardened − old".into(),
            measured: format!("{:+.0} ms", ms(version[2]) - ms(version[1])),
            goal: "—".into(),
            ok: true,
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Parallelism

fn parallelism(tools: &Tools, scratch: &Path, rounds: usize) -> Outcome {
    println!("parallelism: 6 projects, --jobs 2 vs --jobs 1");
    let repo = make_repo(&scratch.join("six"), |dir| {
        for i in 0..6 {
            let p = dir.join(format!("svc-{i}"));
            std::fs::create_dir_all(&p).expect("mkdir");
            let mut tf = String::from(
                "terraform {\n  required_providers {\n    null = {\n      source  = \"hashicorp/null\"\n      version = \"~> 2.1\"\n    }\n  }\n}\n",
            );
            for r in 0..5 {
                tf += &format!(
                    "resource \"null_resource\" \"r{r}\" {{\n  triggers = {{ svc = \"{i}\", n = \"{r}\" }}\n}}\n"
                );
            }
            std::fs::write(p.join("main.tf"), tf).expect("write");
        }
    });
    let data = scratch.join("parallel-data");
    let medians = interleaved(
        rounds,
        &mut [
            (
                "--jobs 1",
                Box::new(|| {
                    timed(
                        &mut sluice_preview(tools, &data, &repo, &["--all", "--jobs", "1"]),
                        "sluice preview --jobs 1",
                    )
                }),
            ),
            (
                "--jobs 2",
                Box::new(|| {
                    timed(
                        &mut sluice_preview(tools, &data, &repo, &["--all", "--jobs", "2"]),
                        "sluice preview --jobs 2",
                    )
                }),
            ),
        ],
    );
    let speedup = medians[0].as_secs_f64() / medians[1].as_secs_f64();
    println!(
        "  median: --jobs 1 {:.2}s, --jobs 2 {:.2}s, speedup {speedup:.2}×\n",
        medians[0].as_secs_f64(),
        medians[1].as_secs_f64()
    );
    // Two plans at once cannot beat two cores, and terraform is multi-threaded (one plan
    // already keeps more than one core partly busy): on an otherwise idle 2-core machine 1.5×
    // is what "scales with cores" can mean. Other load on the machine lowers it; the
    // "machine … cores busy" figures show whether the runs had the machine to themselves.
    Outcome {
        name: "parallelism: --jobs 2 speed-up over --jobs 1".into(),
        measured: format!("{speedup:.2}×"),
        goal: "≥ 1.50×".into(),
        ok: speedup >= 1.5,
    }
}

// ---------------------------------------------------------------------------------------------
// Project detection (pure)

fn detection(runs: usize) -> Vec<Outcome> {
    println!("detection: 5,000 projects, 1,000 changed files, {runs} runs each");
    let seed = 42;
    let snap = synthetic_monorepo(5_000, seed);
    let changes = synthetic_changes(&snap, 1_000, seed);
    let glob_yaml = "version: 1\nprojects:\n  - dir: envs/prod/*/*\n    autoplan:\n      when_modified: [\"**/*.tf\", \"**/*.tfvars\", \"templates/**\", \"../../../../modules/**/*.tf\"]\n  - dir: envs/staging/*/*\n  - dir: envs/dev/*/*\n";
    let (config, diags) = parse_repo_config("sluice.yaml", glob_yaml);
    let config = config.unwrap_or_else(|| panic!("bench config does not parse: {diags:?}"));

    let mut outcomes = Vec::new();
    for (label, cfg) in [("nearest-dir rule", None), ("glob config", Some(&config))] {
        let mut times = Vec::with_capacity(runs);
        let mut found = 0;
        for _ in 0..runs {
            let start = Instant::now();
            let d = affected_projects(&snap, cfg, &changes);
            times.push(start.elapsed());
            found = d.projects.len();
            std::hint::black_box(d);
        }
        let m = median(times).as_secs_f64() * 1000.0;
        println!("  {label}: {found} projects affected, median {m:.1} ms");
        outcomes.push(Outcome {
            name: format!("detection, {label}"),
            measured: format!("{m:.1} ms"),
            goal: "≤ 100 ms".into(),
            ok: m <= 100.0,
        });
    }
    println!();
    outcomes
}

// ---------------------------------------------------------------------------------------------
// Render and split a 20,000-resource plan, with its peak memory

/// Runs in a child process (the bench binary re-executed with `--render-child PLAN_JSON`), so
/// its peak RSS is this work's, not the benchmark's: read the plan JSON as Sluice reads
/// `terraform show -json` output, and on to the comments. Prints `key=value` lines.
fn render_child(plan_json: &Path) {
    let t = Instant::now();
    let json = std::fs::read(plan_json).expect("read plan JSON");
    let json_len = json.len();
    let plan = parse_plan_json(&json).expect("synthetic plan parses");
    drop(json);
    let summary = PlanSummary::from_plan(&plan);
    let redactor = Redactor::new(["synthetic-new-db-password".to_string()]);
    let diff = redactor.redact(&render_diff(&plan)).into_owned();
    drop(plan);
    let diff_len = diff.len();
    let report = ProjectReport {
        project: ProjectName::new("big").expect("valid"),
        dir: ProjectDir::new("envs/prod/big").expect("valid"),
        workspace: Workspace::default(),
        outcome: ProjectOutcome::Planned {
            summary,
            diff,
            plan_sha256: "0".repeat(64),
        },
        notes: Vec::new(),
        destroy_plan: false,
    };
    let ctx = RenderContext {
        bot_name: "sluice".into(),
        command: CommandName::Plan,
        head_sha: Some(CommitSha::new(&"a".repeat(40)).expect("valid")),
        log_url: Some("https://sluice.example.com/runs/1".into()),
        limits: CommentLimits::default(),
        after_merge: Default::default(),
    };
    let comments = render_comments(&ctx, &[report]);
    let took = t.elapsed();
    let chars: usize = comments.iter().map(|c| c.len()).sum();
    println!("render_ms={}", took.as_millis());
    println!("json_bytes={json_len}");
    println!("diff_bytes={diff_len}");
    println!("comments={}", comments.len());
    println!("comment_bytes={chars}");
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/self/status");
    println!("peak_rss_kb={hwm}");
}

fn render(scratch: &Path) -> Vec<Outcome> {
    println!("render: 20,000-resource plan → parse → summary → diff → comments (child process)");
    let start = Instant::now();
    let plan_json = scratch.join("plan-20k.json");
    std::fs::write(&plan_json, synthetic_plan_json(20_000)).expect("write plan JSON");
    let generated = start.elapsed();
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .arg(RENDER_CHILD)
        .arg(&plan_json)
        .output()
        .expect("re-exec the bench");
    assert!(
        out.status.success(),
        "render child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let kv: BTreeMap<&str, u64> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
        .collect();
    let get = |k: &str| {
        *kv.get(k)
            .unwrap_or_else(|| panic!("{k} missing from:\n{text}"))
    };
    let rss_mb = get("peak_rss_kb") as f64 / 1024.0;
    println!(
        "  plan JSON {:.1} MB (generated in {} ms), diff {:.1} MB, {} comment(s) of {:.0} kB in all",
        get("json_bytes") as f64 / 1e6,
        generated.as_millis(),
        get("diff_bytes") as f64 / 1e6,
        get("comments"),
        get("comment_bytes") as f64 / 1e3
    );
    println!(
        "  read → parse → comments {} ms, peak RSS {rss_mb:.0} MB (the whole child process)\n",
        get("render_ms")
    );
    vec![
        Outcome {
            name: "render + split 20k resources, time".into(),
            measured: format!("{} ms", get("render_ms")),
            goal: "—".into(),
            ok: true,
        },
        Outcome {
            name: "render + split 20k resources, peak RSS".into(),
            measured: format!("{rss_mb:.0} MB"),
            goal: "≤ 200 MB".into(),
            ok: rss_mb <= 200.0,
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Redaction: what matching every encoded form of every secret costs

fn redaction(rounds: usize) -> Vec<Outcome> {
    println!(
        "redaction: a 20,000-resource diff, of its sensitive values and 50 credentials; every \
         encoded form vs. the forms printed as is"
    );
    let plan = parse_plan_json(synthetic_plan_json(20_000).as_bytes()).expect("synthetic plan");
    let mut text = render_diff(&plan);
    let mut secrets = plan.sensitive_values();
    secrets.extend((0..50).map(|i| format!("credential-{i:03}-{}", "k7Qz".repeat(8))));
    // Terraform's own output around it, holding a few secrets as is and encoded.
    for (i, s) in secrets.iter().enumerate().step_by(97) {
        use base64::Engine as _;
        text.push_str(&format!(
            "line {i}: token={s} b64={}\n",
            base64::engine::general_purpose::STANDARD.encode(s)
        ));
    }
    let build = |encodings: bool| {
        let t = Instant::now();
        let r = if encodings {
            Redactor::new(secrets.clone())
        } else {
            Redactor::without_encodings(secrets.clone())
        };
        (t.elapsed(), r)
    };
    let (old_build, old) = build(false);
    let (new_build, new) = build(true);
    println!(
        "  {} secrets: {} patterns built in {:.1} ms (as printed only: {} in {:.1} ms); text {:.1} MB",
        secrets.len(),
        new.len(),
        new_build.as_secs_f64() * 1000.0,
        old.len(),
        old_build.as_secs_f64() * 1000.0,
        text.len() as f64 / 1e6
    );
    let pass = |r: &Redactor| {
        let t = Instant::now();
        std::hint::black_box(r.redact(&text));
        t.elapsed()
    };
    let medians = interleaved(
        rounds,
        &mut [
            ("as printed", Box::new(|| pass(&old))),
            ("every form", Box::new(|| pass(&new))),
        ],
    );
    let ratio = medians[1].as_secs_f64() / medians[0].as_secs_f64();
    println!(
        "  one pass: every form {:.1} ms, as printed {:.1} ms: ratio {ratio:.2}\n",
        medians[1].as_secs_f64() * 1000.0,
        medians[0].as_secs_f64() * 1000.0
    );
    vec![
        Outcome {
            name: "redaction, every encoded form ÷ as printed".into(),
            measured: format!("{ratio:.2}"),
            goal: "≤ 2.00".into(),
            ok: ratio <= 2.0,
        },
        Outcome {
            name: "redaction, automaton build".into(),
            measured: format!("{:.0} ms", new_build.as_secs_f64() * 1000.0),
            goal: "—".into(),
            ok: true,
        },
    ]
}
