//! Known secrets never reach a comment in any form terraform can compute from them: a real
//! terraform plan that base64-, URL-, JSON-, UTF-16- and hash-encodes a credential, as a whole
//! and inside longer strings, and a failing plan whose error message holds an encoded
//! credential, through `sluice preview` (the job and report code the server runs).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::Digest as _;

use crate::support::{DataDir, NULL_PROVIDER, Run, TestRepo, sluice, tool_env, tools, unique};

#[test]
fn encoded_forms_of_a_credential_are_redacted_from_the_plan_comment() {
    let tools = tools();
    // Characters that base64's alphabets, URLs and JSON all treat differently.
    let token = format!("{}/a+b&c<d> e?", unique("tok"));
    let data = DataDir::scratch("redact-data");
    let config = data.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!("[[credentials]]\nprojects = [\"*\"]\nenv = {{ TF_VAR_token = \"{token}\" }}\n"),
    )
    .expect("write config");
    let variable = "variable \"token\" {\n  default = \"absent\"\n}\n";
    let repo = TestRepo::new();
    repo.write("README.md", "infrastructure\n");
    repo.commit("base");
    repo.write(
        "encoded/main.tf",
        &format!(
            r#"{NULL_PROVIDER}
{variable}
resource "null_resource" "r" {{
  triggers = {{
    b64        = base64encode(var.token)
    b64_at_1   = base64encode("u:${{var.token}}")
    b64_at_2   = base64encode("Basic ${{var.token}}:x")
    b64_header = base64encode("user=admin;${{var.token}};expires=never")
    url        = urlencode(var.token)
    url_query  = "https://example.com/?t=${{urlencode(var.token)}}&x=1"
    json       = jsonencode({{ token = var.token }})
    json_str   = jsonencode(var.token)
    utf16      = textencodebase64(var.token, "UTF-16LE")
    sha256     = sha256(var.token)
    md5        = md5(var.token)
    b64sha256  = base64sha256(var.token)
    plain      = "not secret"
  }}
}}
"#
        ),
    );
    repo.write(
        "failing/main.tf",
        &format!(
            "{NULL_PROVIDER}\n{variable}\nlocals {{\n  x = file(\"/nonexistent/${{base64encode(var.token)}}\")\n}}\noutput \"x\" {{\n  value = local.x\n}}\n"
        ),
    );
    repo.commit("the pull request");

    let mut env = tool_env(&tools, data.path());
    env.insert("SLUICE_CONFIG".into(), config.display().to_string());
    let path = repo.path().display().to_string();
    let run = Run::from_output(&sluice(
        &["preview", "--base", "HEAD~1", &path],
        &env,
        repo.path(),
    ));
    run.expect_code(1);
    let all = format!("{}\n{}", run.stdout, run.stderr);

    let bytes = token.as_bytes();
    let utf16: Vec<u8> = token.encode_utf16().flat_map(u16::to_le_bytes).collect();
    for (what, form) in [
        ("the token", token.clone()),
        ("base64encode", STANDARD.encode(bytes)),
        ("urlencode", url_query_escape(&token)),
        (
            "jsonencode",
            token
                .replace('&', "\\u0026")
                .replace('<', "\\u003c")
                .replace('>', "\\u003e"),
        ),
        ("textencodebase64 UTF-16LE", STANDARD.encode(&utf16)),
        ("sha256", hex::encode(sha2::Sha256::digest(bytes))),
        ("base64sha256", STANDARD.encode(sha2::Sha256::digest(bytes))),
        // The middle of the token, as base64 inside a longer string carries it at each offset.
        (
            "embedded at offset 1",
            STANDARD.encode(format!("u:{token}"))[4..24].to_string(),
        ),
        (
            "embedded at offset 2",
            STANDARD.encode(format!("Basic {token}:x"))[8..28].to_string(),
        ),
    ] {
        assert!(!all.contains(&form), "{what} ({form}) is posted:\n{all}");
    }
    let encoded = run
        .stdout
        .split("### ")
        .find(|s| s.starts_with("`encoded`"))
        .unwrap_or_else(|| panic!("no section for the encoded project:\n{}", run.stdout));
    for attr in [
        "b64",
        "b64_at_1",
        "b64_at_2",
        "b64_header",
        "url",
        "json_str",
        "utf16",
        "sha256",
        "md5",
        "b64sha256",
    ] {
        let line = encoded
            .lines()
            .find(|l| {
                l.trim_start_matches(['+', ' '])
                    .starts_with(&format!("\"{attr}\""))
            })
            .unwrap_or_else(|| panic!("no line for {attr}:\n{encoded}"));
        assert!(line.contains("***"), "{attr} is not redacted: {line}");
    }
    assert!(encoded.contains("\"not secret\""), "{encoded}");
    let failing = run
        .stdout
        .split("### ")
        .find(|s| s.starts_with("`failing`"))
        .unwrap_or_else(|| panic!("no section for the failing project:\n{}", run.stdout));
    assert!(
        failing.contains("**Plan failed**") && failing.contains("/nonexistent/***"),
        "the error names the path with the encoded token redacted:\n{failing}"
    );
}

/// Go's `url.QueryEscape`, which terraform's `urlencode` is.
fn url_query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The same class through the real server: a credential the server gives a project, which the
/// PR's configuration base64-encodes into an attribute (and into a path in an error), and a
/// commenter pastes encoded into a refused command (which the reply quotes), reaches neither
/// the PR's comments, nor the server's log, nor the audit log — in any of its forms.
#[tokio::test(flavor = "multi_thread")]
async fn a_base64_encoded_credential_reaches_no_comment_log_or_audit_entry() {
    use crate::server::Harness;
    use crate::support::null_project;

    let token = format!("{}/a+b&c<d> e?", unique("srv"));
    let files = [
        ("envs/a/main.tf", null_project("a", "1")),
        ("envs/b/main.tf", null_project("b", "1")),
        ("README.md", "infra\n".to_string()),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut h = Harness::new(&refs).await;
    let config = h.data_dir().join("sluice.toml");
    std::fs::write(
        &config,
        format!("[[credentials]]\nprojects = [\"*\"]\nenv = {{ TF_VAR_token = \"{token}\" }}\n"),
    )
    .expect("write config");
    h.set_env("SLUICE_CONFIG", &config.display().to_string());
    h.start();

    let variable = "variable \"token\" {\n  default = \"absent\"\n}\n";
    let encoded = format!(
        r#"{NULL_PROVIDER}
{variable}
resource "null_resource" "a" {{
  triggers = {{
    b64      = base64encode(var.token)
    b64_at_1 = base64encode("u:${{var.token}}")
    url      = urlencode(var.token)
    plain    = "not secret"
  }}
}}
"#
    );
    let failing = format!(
        "{NULL_PROVIDER}\n{variable}\nlocals {{\n  x = file(\"/nonexistent/${{base64encode(var.token)}}\")\n}}\noutput \"x\" {{\n  value = local.x\n}}\n"
    );
    h.open_pr(
        1,
        "encode",
        &[("envs/a/main.tf", &encoded), ("envs/b/main.tf", &failing)],
    );
    h.deliver(&h.pr_event("opened", 1)).await;
    let plan = h
        .wait_comment(1, "the plan comment", |c| {
            c.contains("Plan:") && c.contains("envs/a")
        })
        .await;
    let b64_line = plan
        .lines()
        .find(|l| l.trim_start_matches(['+', ' ']).starts_with("\"b64\""))
        .unwrap_or_else(|| panic!("no b64 attribute:\n{plan}"));
    assert!(b64_line.contains("\"***\""), "{b64_line}");
    assert!(plan.contains("\"not secret\""), "{plan}");
    h.wait_comment(1, "the failure", |c| c.contains("/nonexistent/***"))
        .await;

    // A commenter pastes the encoded credential into a refused argument.
    let b64 = STANDARD.encode(token.as_bytes());
    h.deliver(&h.comment_event(1, "alice", &format!("sluice plan -- -chdir={b64}")))
        .await;
    let reply = h
        .wait_comment(1, "the refusal", |c| c.contains("is not allowed"))
        .await;
    assert!(reply.contains("`-chdir=***`"), "{reply}");

    let forms = [
        ("the token", token.clone()),
        ("base64encode", b64.clone()),
        ("urlencode", url_query_escape(&token)),
        (
            "embedded at offset 1",
            STANDARD.encode(format!("u:{token}"))[4..24].to_string(),
        ),
    ];
    let comments = h.fake.bot_comments(crate::server::REPO, 1).join("\n----\n");
    let logs = h.server().logs();
    let audit = h.cli(&["audit", "export"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    // No record or log line of this story carries the token today; these checks guard the
    // paths (the store and the log writer redact positively in their own tests).
    for (what, form) in &forms {
        assert!(!comments.contains(form), "{what} in a comment:\n{comments}");
        assert!(!logs.contains(form), "{what} in the server log:\n{logs}");
        assert!(!audit.contains(form), "{what} in the audit log:\n{audit}");
    }
    let verify = h.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "{verify:?}");
}
