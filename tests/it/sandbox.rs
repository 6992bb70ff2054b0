//! The sandbox against hostile pull requests (PRODUCT.md §8, threat model): the code of a PR —
//! its HCL and the providers it makes terraform start — tries to read the server's secrets and
//! files, see other processes, and plant files outside its job dir.
//!
//! Every vector runs twice through the real `sluice preview`: under the default `bwrap` profile,
//! where it must be blocked, and under `plain`, where the very same attack must succeed — the
//! proof that the test detects a leak rather than passing because the attack never ran.
//! Evidence is what a PR author would see (the rendered comment on stdout) and the host
//! filesystem. Secrets and files live under cargo's target dir, not `/tmp`, so a private `/tmp`
//! alone cannot make a test pass.

use std::collections::BTreeMap;

use crate::support::{
    Mirror, Run, TestRepo, fake_provider_project, null_project, scratch_dir, sluice, tool_env,
    tools, unique,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Bwrap,
    Plain,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Bwrap => "bwrap",
            Profile::Plain => "plain",
        }
    }
}

/// What a Sluice server has that a PR must not reach: a data dir (with a secret file), a jobs dir
/// (with another job's dir), a home dir, a secret in its environment, and the provider mirror.
struct Server {
    data: tempfile::TempDir,
    jobs: tempfile::TempDir,
    home: tempfile::TempDir,
    mirror: Mirror,
    /// In `SLUICE_TEST_SECRET` of the sluice process and in `<data>/secret.txt`.
    secret: String,
    /// Names a file in the home dir and another job's dir in the jobs dir.
    marker: String,
}

impl Server {
    fn new() -> Server {
        let s = Server {
            data: scratch_dir("server-data"),
            jobs: scratch_dir("server-jobs"),
            home: scratch_dir("server-home"),
            mirror: Mirror::empty(),
            secret: unique("s3cr3t"),
            marker: unique("private"),
        };
        std::fs::write(s.data.path().join("secret.txt"), &s.secret).expect("write secret");
        let other_job = s.jobs.path().join(format!("other-job-{}", s.marker));
        std::fs::create_dir_all(&other_job).expect("mkdir other job");
        std::fs::write(other_job.join("plan.tfplan"), "another PR's plan").expect("write");
        std::fs::write(
            s.home.path().join(format!("{}-ssh-key", s.marker)),
            "key material",
        )
        .expect("write");
        s
    }

    /// Adds the fake provider `spy` to this server's mirror: `script` with `@DATA@`, `@JOBS@`,
    /// `@HOME@`, `@MIRROR@` and `@MARKER@` replaced by this server's paths (an attacker guesses
    /// them).
    fn spy(&self, script: &str) {
        let script = script
            .replace("@DATA@", &self.data.path().display().to_string())
            .replace("@JOBS@", &self.jobs.path().display().to_string())
            .replace("@HOME@", &self.home.path().display().to_string())
            .replace("@MIRROR@", &self.mirror.path().display().to_string())
            .replace("@MARKER@", &self.marker);
        self.mirror.add_fake_provider("spy", &script);
    }

    /// `sluice preview` of `repo` (head vs. its parent) as this server, under `profile`.
    fn preview(&self, repo: &TestRepo, profile: Profile, mirror: &std::path::Path) -> Run {
        let tools = tools();
        let mut env: BTreeMap<String, String> = tool_env(&tools, self.data.path());
        env.insert(
            "SLUICE_PROVIDER_MIRROR".into(),
            mirror.display().to_string(),
        );
        env.insert("SLUICE_RUNNER__PROFILE".into(), profile.name().into());
        env.insert(
            "SLUICE_RUNNER__JOBS_DIR".into(),
            self.jobs.path().display().to_string(),
        );
        env.insert("SLUICE_TEST_SECRET".into(), self.secret.clone());
        env.insert("HOME".into(), self.home.path().display().to_string());
        let path = repo.path().display().to_string();
        Run::from_output(&sluice(
            &["preview", "--base", "HEAD~1", &path],
            &env,
            repo.path(),
        ))
    }

    /// Runs a PR whose project uses the `spy` provider; returns the comment with every run of
    /// whitespace squashed to one space (terraform wraps the report it quotes).
    fn run_spy(&self, profile: Profile) -> String {
        let repo = pr_adding("spy", &fake_provider_project("spy"));
        let run = self.preview(&repo, profile, self.mirror.path());
        // The provider answers terraform's handshake with its report, so the plan fails and
        // terraform quotes the report in its error — which Sluice posts on the PR.
        run.expect_code(1);
        assert!(
            run.stdout
                .contains("Unrecognized remote plugin message: SPY"),
            "the spy provider did not run under {profile:?}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        if profile == Profile::Plain {
            assert!(
                run.stdout.contains("Planned **without a sandbox**"),
                "plain runs are marked on the comment:\n{}",
                run.stdout
            );
        }
        squash(&run.stdout)
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A repository whose head adds `dir/main.tf`.
fn pr_adding(dir: &str, main_tf: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "base\n");
    repo.commit("base");
    repo.write(&format!("{dir}/main.tf"), main_tf);
    repo.commit("the pull request");
    repo
}

#[test]
fn hcl_file_function_cannot_read_the_servers_data_dir() {
    let server = Server::new();
    let secret_file = server.data.path().join("secret.txt");
    let exfil = format!(
        "{}\nresource \"null_resource\" \"exfil\" {{\n  triggers = {{ loot = file(\"{}\") }}\n}}\n",
        crate::support::NULL_PROVIDER,
        secret_file.display()
    );
    let repo = pr_adding("exfil", &exfil);
    let mirror = tools().mirror;

    let sandboxed = server.preview(&repo, Profile::Bwrap, &mirror);
    sandboxed.expect_code(1);
    assert!(
        !sandboxed.stdout.contains(&server.secret),
        "the data dir leaked into the comment:\n{}",
        sandboxed.stdout
    );
    assert!(
        sandboxed.stdout.contains("**Plan failed** during `plan`")
            && sandboxed.stdout.contains("no file exists at"),
        "the file should not exist inside the sandbox:\n{}",
        sandboxed.stdout
    );

    let plain = server.preview(&repo, Profile::Plain, &mirror);
    plain.expect_code(0);
    assert!(
        plain
            .stdout
            .contains(&format!("\"loot\" = \"{}\"", server.secret)),
        "without the sandbox the attack must work, or this test proves nothing:\n{}",
        plain.stdout
    );
}

#[test]
fn provider_cannot_read_the_servers_environment() {
    let server = Server::new();
    // Its own environment, then the environment of each ancestor: terraform, then whatever
    // started terraform.
    server.spy(
        r#"#!/bin/sh
printf 'SPY own=[%s]' "$SLUICE_TEST_SECRET"
p=$PPID
while [ "$p" -gt 1 ] 2>/dev/null; do
  v=$(tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep '^SLUICE_TEST_SECRET=')
  printf ' ancestor-%s=[%s]' "$(cat /proc/$p/comm 2>/dev/null | tr -c 'a-zA-Z0-9\n' _)" "$v"
  p=$(awk '/^PPid:/ {print $2}' /proc/$p/status 2>/dev/null)
done
echo
"#,
    );
    let sandboxed = server.run_spy(Profile::Bwrap);
    assert!(
        !sandboxed.contains(&server.secret),
        "the server's environment leaked into the comment:\n{sandboxed}"
    );
    assert!(sandboxed.contains("SPY own=[]"), "{sandboxed}");

    let plain = server.run_spy(Profile::Plain);
    // Even without a sandbox, runs start from an empty environment...
    assert!(plain.contains("SPY own=[]"), "{plain}");
    // ...but the sluice process above them is readable through /proc.
    assert!(
        plain.contains(&format!(
            "ancestor-sluice=[SLUICE_TEST_SECRET={}]",
            server.secret
        )),
        "without the sandbox the attack must work, or this test proves nothing:\n{plain}"
    );
}

#[test]
fn provider_cannot_see_other_processes_or_their_environ() {
    let server = Server::new();
    server.spy(
        r#"#!/bin/sh
found=$(for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null | grep '^SLUICE_TEST_SECRET='; done | sort -u | tr '\n' ,)
comms=$(cat /proc/[0-9]*/comm 2>/dev/null | tr -c 'a-zA-Z0-9\n' _ | sort -u | tr '\n' ,)
echo "SPY found=[$found] processes=[,$comms]"
"#,
    );
    let sandboxed = server.run_spy(Profile::Bwrap);
    assert!(
        sandboxed.contains("SPY found=[]"),
        "another process's environment was readable:\n{sandboxed}"
    );
    assert!(!sandboxed.contains(&server.secret), "{sandboxed}");
    assert!(
        !sandboxed.contains(",sluice,"),
        "the sluice process is visible from the run:\n{sandboxed}"
    );
    assert!(sandboxed.contains(",terraform,"), "{sandboxed}");

    let plain = server.run_spy(Profile::Plain);
    assert!(
        plain.contains(&format!("SLUICE_TEST_SECRET={}", server.secret)),
        "without the sandbox the attack must work, or this test proves nothing:\n{plain}"
    );
    assert!(plain.contains(",sluice,"), "{plain}");
}

#[test]
fn provider_cannot_list_other_jobs_or_the_servers_home() {
    let server = Server::new();
    server.spy(
        r#"#!/bin/sh
jobs=$(ls '@JOBS@' 2>&1 | tr '\n' ,)
home=$(ls '@HOME@' 2>&1 | tr '\n' ,)
echo "SPY jobs=[$jobs] home=[$home]"
"#,
    );
    let other_job = format!("other-job-{}", server.marker);
    let home_file = format!("{}-ssh-key", server.marker);

    let sandboxed = server.run_spy(Profile::Bwrap);
    assert!(
        !sandboxed.contains(&other_job),
        "another job's dir is visible:\n{sandboxed}"
    );
    assert!(
        !sandboxed.contains(&home_file),
        "the server's home is visible:\n{sandboxed}"
    );
    assert!(
        sandboxed.contains("No such file or directory"),
        "{sandboxed}"
    );

    let plain = server.run_spy(Profile::Plain);
    assert!(
        plain.contains(&other_job) && plain.contains(&home_file),
        "without the sandbox the attack must work, or this test proves nothing:\n{plain}"
    );
}

#[test]
fn provider_cannot_write_outside_its_job_dir() {
    let server = Server::new();
    // Plant a "newer" hashicorp/null in the mirror — a trojan a later init would pick — by the
    // host path and by the path the run sees; and drop a file into the data dir.
    server.spy(
        r#"#!/bin/sh
plant() {
  mkdir -p "$1/registry.terraform.io/hashicorp/null/2.1.99/linux_amd64" 2>&1 &&
  printf '#!/bin/sh\necho trojan\n' > "$1/registry.terraform.io/hashicorp/null/2.1.99/linux_amd64/terraform-provider-null_v2.1.99_x4" 2>&1 &&
  echo planted
}
host=$(plant '@MIRROR@' | tr '\n' ' ')
guest=$(plant /sluice/providers | tr '\n' ' ')
data=$( (echo owned > '@DATA@/planted-@MARKER@') 2>&1 && echo planted)
echo "SPY host-mirror=[$host] guest-mirror=[$guest] data=[$data]"
"#,
    );
    let planted = server
        .data
        .path()
        .join(format!("planted-{}", server.marker));
    let before = server.mirror.fingerprint();

    let sandboxed = server.run_spy(Profile::Bwrap);
    assert_eq!(
        server.mirror.fingerprint(),
        before,
        "the run changed the provider mirror:\n{sandboxed}"
    );
    assert!(
        !planted.exists(),
        "the run wrote into the data dir:\n{sandboxed}"
    );
    assert!(
        sandboxed.contains("Read-only file system"),
        "the mirror is mounted read-only inside the run:\n{sandboxed}"
    );

    let plain = server.run_spy(Profile::Plain);
    assert!(
        planted.exists() && server.mirror.fingerprint() != before,
        "without the sandbox the attack must work, or this test proves nothing:\n{plain}"
    );
    assert!(
        server
            .mirror
            .path()
            .join("registry.terraform.io/hashicorp/null/2.1.99")
            .exists(),
        "{plain}"
    );
}

/// Sanity check for the tests above: a project with an ordinary provider plans under both
/// profiles, so their failures under bwrap come from the sandbox, not from a broken set-up.
#[test]
fn ordinary_project_plans_under_both_profiles() {
    let server = Server::new();
    let repo = pr_adding("ok", &null_project("ok", "1"));
    let mirror = tools().mirror;
    for profile in [Profile::Bwrap, Profile::Plain] {
        let run = server.preview(&repo, profile, &mirror);
        run.expect_code(0);
        assert!(
            run.stdout
                .contains("**Plan: 1 to add, 0 to change, 0 to destroy.**"),
            "{profile:?}:\n{}",
            run.stdout
        );
    }
}
