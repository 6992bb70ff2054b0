//! The arguments and the go/no-go of Atlantis' state commands, `import ADDRESS ID` and
//! `state rm ADDRESS...` (PRODUCT.md §19): Terraform resource addresses read by Terraform's
//! grammar (<https://developer.hashicorp.com/terraform/cli/state/resource-addressing>), the
//! engine's argv for them (through the workflow's `import` / `state_rm` stage:
//! `workflow::step_plan` appends them as the comment's arguments), and why such a run must not
//! start — the project has a plan not applied yet, another pull request holds its lock, or the
//! apply gate refuses.
//!
//! Pure: the caller gathers the plans, locks and gate refusals. Nothing here runs terraform.
//! The comment grammar (`core::command`) reads the words; `app::bot::state` asks [`refusal`]
//! and queues the run; the reply texts are `core::reply::state`.

use std::fmt;

use crate::core::types::{CommitSha, PrNumber, ProjectName};

/// Longest address or import ID accepted, in bytes.
pub const MAX_ARG_BYTES: usize = 1024;

/// Most addresses one `state rm` may name.
pub const MAX_STATE_RM_ADDRESSES: usize = 100;

/// One key of an instance index: `[0]` or `["eu-west-1"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceKey {
    Int(u64),
    Str(String),
}

/// `module.NAME[KEY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleStep {
    pub name: String,
    pub key: Option<InstanceKey>,
}

/// `[data.]TYPE.NAME[KEY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    pub data: bool,
    pub kind: String,
    pub name: String,
    pub key: Option<InstanceKey>,
}

/// A Terraform address: a module path, then (optionally, for `state rm`) a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub module: Vec<ModuleStep>,
    pub resource: Option<ResourceSpec>,
    /// As typed (it is what terraform gets).
    pub text: String,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why an argument is not what the command needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ArgError {
    pub message: String,
    pub hint: String,
}

fn arg_error(message: String, hint: &str) -> ArgError {
    ArgError {
        message,
        hint: hint.to_string(),
    }
}

const ADDRESS_HINT: &str = "write a resource address as terraform does: `TYPE.NAME`, \
     `TYPE.NAME[0]`, `TYPE.NAME[\"key\"]`, `module.NAME.TYPE.NAME`";

/// Reads `text` as a Terraform address. `import` needs a managed resource (no `data.`, a
/// resource part); `state rm` also takes data resources and whole modules.
pub fn parse_address(text: &str, for_import: bool) -> Result<Address, ArgError> {
    let bad = |why: String| {
        arg_error(
            format!("`{}` is not a resource address: {why}", shown(text)),
            ADDRESS_HINT,
        )
    };
    if text.is_empty() {
        return Err(arg_error("the address is empty".to_string(), ADDRESS_HINT));
    }
    if text.len() > MAX_ARG_BYTES {
        return Err(arg_error(
            format!("the address is longer than {MAX_ARG_BYTES} bytes"),
            ADDRESS_HINT,
        ));
    }
    let mut rest = text;
    let mut module = Vec::new();
    let mut resource = None;
    while !rest.is_empty() {
        let (first, after) =
            identifier(rest).ok_or_else(|| bad(format!("expected a name at `{}`", shown(rest))))?;
        if first == "module" {
            let after = after
                .strip_prefix('.')
                .ok_or_else(|| bad("`module` must be followed by `.NAME`".to_string()))?;
            let (name, after) = identifier(after)
                .ok_or_else(|| bad("expected the module's name after `module.`".to_string()))?;
            let (key, after) = instance_key(after).map_err(bad)?;
            module.push(ModuleStep {
                name: name.to_string(),
                key,
            });
            rest = match after.strip_prefix('.') {
                Some(r) if !r.is_empty() => r,
                Some(_) => return Err(bad("it ends with `.`".to_string())),
                None if after.is_empty() => "",
                None => return Err(bad(format!("unexpected `{}`", shown(after)))),
            };
            continue;
        }
        let (data, kind, after) = if first == "data" {
            let after = after
                .strip_prefix('.')
                .ok_or_else(|| bad("`data` must be followed by `.TYPE.NAME`".to_string()))?;
            let (kind, after) = identifier(after)
                .ok_or_else(|| bad("expected a resource type after `data.`".to_string()))?;
            (true, kind, after)
        } else {
            (false, first, after)
        };
        let after = after.strip_prefix('.').ok_or_else(|| {
            bad(format!(
                "the resource type `{kind}` must be followed by `.NAME`"
            ))
        })?;
        let (name, after) = identifier(after)
            .ok_or_else(|| bad(format!("expected a resource name after `{kind}.`")))?;
        let (key, after) = instance_key(after).map_err(bad)?;
        if !after.is_empty() {
            return Err(bad(format!(
                "unexpected `{}` after the resource",
                shown(after)
            )));
        }
        resource = Some(ResourceSpec {
            data,
            kind: kind.to_string(),
            name: name.to_string(),
            key,
        });
        rest = "";
    }
    if for_import {
        match &resource {
            None => {
                return Err(arg_error(
                    format!(
                        "`{}` names a module; `import` needs a resource",
                        shown(text)
                    ),
                    ADDRESS_HINT,
                ));
            }
            Some(r) if r.data => {
                return Err(arg_error(
                    format!(
                        "`{}` is a data source; only managed resources are imported",
                        shown(text)
                    ),
                    "drop `data.`: import the managed resource the data source reads",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(Address {
        module,
        resource,
        text: text.to_string(),
    })
}

/// A Terraform identifier at the start of `s` (a letter or `_`, then letters, digits, `_`, `-`).
fn identifier(s: &str) -> Option<(&str, &str)> {
    let first = s.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// An optional `[N]` or `["key"]` at the start of `s`.
fn instance_key(s: &str) -> Result<(Option<InstanceKey>, &str), String> {
    let Some(inner) = s.strip_prefix('[') else {
        return Ok((None, s));
    };
    if let Some(q) = inner.strip_prefix('"') {
        let mut key = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let after = &q[i + 1..];
                    let after = after
                        .strip_prefix(']')
                        .ok_or_else(|| "a string key must be closed by `\"]`".to_string())?;
                    return Ok((Some(InstanceKey::Str(key)), after));
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => key.push(e),
                    _ => return Err("only `\\\"` and `\\\\` may be escaped in a key".to_string()),
                },
                c if c.is_control() => return Err("a key holds a control character".to_string()),
                c => key.push(c),
            }
        }
        return Err("a string key is not closed".to_string());
    }
    let end = inner
        .find(']')
        .ok_or_else(|| "an index `[` is not closed".to_string())?;
    let n = inner[..end].parse::<u64>().map_err(|_| {
        format!(
            "the index `[{}]` is neither a whole number nor a quoted string",
            shown(&inner[..end])
        )
    })?;
    Ok((Some(InstanceKey::Int(n)), &inner[end + 1..]))
}

/// `s` safe to quote in a reply: at most 80 characters, control characters as `?`.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(80)
        .map(|c| if c.is_control() || c == '`' { '?' } else { c })
        .collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// A state command's arguments, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateCommand {
    /// `import ADDRESS ID`.
    Import { address: Address, id: String },
    /// `state rm ADDRESS...`.
    StateRm { addresses: Vec<Address> },
}

impl StateCommand {
    /// `import`'s positional arguments (the words after the flags): exactly an address and an ID.
    pub fn import(args: &[&str]) -> Result<StateCommand, ArgError> {
        const HINT: &str =
            "write `import ADDRESS ID`, e.g. `import aws_s3_bucket.logs my-logs-bucket`";
        match args {
            [address, id] => {
                let address = parse_address(address, true)?;
                if id.is_empty() || id.len() > MAX_ARG_BYTES || id.chars().any(char::is_control) {
                    return Err(arg_error(
                        format!(
                            "the import ID must be 1 to {MAX_ARG_BYTES} bytes without control characters"
                        ),
                        HINT,
                    ));
                }
                Ok(StateCommand::Import {
                    address,
                    id: id.to_string(),
                })
            }
            [] => Err(arg_error(
                "`import` needs an address and an ID".to_string(),
                HINT,
            )),
            [_] => Err(arg_error(
                "`import` needs an ID after the address".to_string(),
                HINT,
            )),
            more => Err(arg_error(
                format!(
                    "`import` takes an address and an ID, but got {} words",
                    more.len()
                ),
                "quote nothing: an ID with spaces is not supported; pass terraform options after `--`",
            )),
        }
    }

    /// `state rm`'s positional arguments: one or more addresses.
    pub fn state_rm(args: &[&str]) -> Result<StateCommand, ArgError> {
        if args.is_empty() {
            return Err(arg_error(
                "`state rm` needs at least one address".to_string(),
                "write `state rm ADDRESS...`, e.g. `state rm null_resource.a`",
            ));
        }
        if args.len() > MAX_STATE_RM_ADDRESSES {
            return Err(arg_error(
                format!("`state rm` takes at most {MAX_STATE_RM_ADDRESSES} addresses"),
                "remove them in several comments",
            ));
        }
        // With several addresses, the error says which one (1-based, as typed).
        let addresses = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                parse_address(a, false).map_err(|mut e| {
                    if args.len() > 1 {
                        e.message = format!("address {} of {}: {}", i + 1, args.len(), e.message);
                    }
                    e
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StateCommand::StateRm { addresses })
    }

    /// The comment word (`import`, `state rm`).
    pub fn name(&self) -> &'static str {
        match self {
            StateCommand::Import { .. } => "import",
            StateCommand::StateRm { .. } => "state rm",
        }
    }

    /// The arguments the workflow's `import` / `state_rm` stage appends (Atlantis'
    /// `$COMMENT_ARGS`): `ADDRESS ID`, or the addresses.
    pub fn comment_args(&self) -> Vec<String> {
        match self {
            StateCommand::Import { address, id } => vec![address.text.clone(), id.clone()],
            StateCommand::StateRm { addresses } => {
                addresses.iter().map(|a| a.text.clone()).collect()
            }
        }
    }
}

/// What the caller knows about the project when a state command is asked for.
#[derive(Debug, Clone, Copy)]
pub struct StateFacts<'a> {
    pub project: &'a ProjectName,
    pub pr: PrNumber,
    /// The commit of this pull request's current plan of the project, when one is not applied.
    pub unapplied_plan: Option<&'a CommitSha>,
    /// The pull request holding the project's lock, if any.
    pub lock_holder: Option<PrNumber>,
    /// What the apply gate refuses (approvals, policies, mergeability), as for `apply`.
    pub gate_refusals: &'a [String],
}

/// Why a state command does not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRefusal {
    /// Changing the state under a saved plan would make that plan apply something else.
    UnappliedPlan {
        sha: CommitSha,
    },
    LockedByOtherPr {
        pr: PrNumber,
    },
    Gate(Vec<String>),
}

/// The first reason `command` must not run for the project, in the order a user fixes them:
/// the lock, the unapplied plan, then the gate.
pub fn refusal(facts: &StateFacts) -> Option<StateRefusal> {
    if let Some(holder) = facts.lock_holder.filter(|h| *h != facts.pr) {
        return Some(StateRefusal::LockedByOtherPr { pr: holder });
    }
    if let Some(sha) = facts.unapplied_plan {
        return Some(StateRefusal::UnappliedPlan { sha: sha.clone() });
    }
    if !facts.gate_refusals.is_empty() {
        return Some(StateRefusal::Gate(facts.gate_refusals.to_vec()));
    }
    None
}

impl StateRefusal {
    /// The reply's sentence for `command` on `project`, with how to proceed.
    pub fn message(&self, command: &str, project: &ProjectName, bot: &str) -> String {
        match self {
            StateRefusal::LockedByOtherPr { pr } => format!(
                "`{command}` was not run: project `{project}` is locked by {pr}. Wait until {pr} is \
                 merged or closed, or until it runs `{bot} unlock`."
            ),
            StateRefusal::UnappliedPlan { sha } => format!(
                "`{command}` was not run: project `{project}` has a plan of commit `{}` that is not \
                 applied, and changing the state under it would make it apply something else. \
                 Apply it (`{bot} apply -p {project}`) or discard it (`{bot} unlock`), then \
                 comment `{command}` again.",
                sha.short()
            ),
            StateRefusal::Gate(reasons) => {
                let mut s = format!(
                    "`{command}` was not run: it needs what `apply` needs, and project `{project}` \
                     does not have it yet:\n"
                );
                for r in reasons {
                    s.push_str(&format!("\n* {r}"));
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_address(text: &str, for_import: bool) -> String {
        match parse_address(text, for_import) {
            Ok(a) => {
                let r = a.resource.map(|r| {
                    format!(
                        "{}{}.{}{:?}",
                        if r.data { "data " } else { "" },
                        r.kind,
                        r.name,
                        r.key
                    )
                });
                format!(
                    "ok modules={:?} resource={r:?}",
                    a.module
                        .iter()
                        .map(|m| format!("{}{:?}", m.name, m.key))
                        .collect::<Vec<_>>()
                )
            }
            Err(e) => format!("error: {e}\n  hint: {}", e.hint),
        }
    }

    #[test]
    fn addresses_read_by_terraforms_grammar() {
        let cases = [
            ("null_resource.a", true),
            ("null_resource.a[0]", true),
            ("aws_instance.web[\"eu-west-1\"]", true),
            ("module.net.aws_vpc.main", true),
            ("module.env[\"prod\"].module.net[2].aws_vpc.main", true),
            ("module.net", false),
            ("data.aws_ami.ubuntu", false),
            ("module.net", true),
            ("data.aws_ami.ubuntu", true),
            ("null_resource", true),
            ("null_resource.", true),
            ("1bad.a", true),
            ("null_resource.a[x]", true),
            ("null_resource.a[\"x]", true),
            ("null_resource.a.b", true),
            ("module..x", true),
            ("-lock=false", true),
            ("", true),
        ];
        let out: Vec<String> = cases
            .iter()
            .map(|(t, imp)| format!("{t} (import={imp}): {}", check_address(t, *imp)))
            .collect();
        insta::assert_snapshot!(out.join("\n"), @r#"
        null_resource.a (import=true): ok modules=[] resource=Some("null_resource.aNone")
        null_resource.a[0] (import=true): ok modules=[] resource=Some("null_resource.aSome(Int(0))")
        aws_instance.web["eu-west-1"] (import=true): ok modules=[] resource=Some("aws_instance.webSome(Str(\"eu-west-1\"))")
        module.net.aws_vpc.main (import=true): ok modules=["netNone"] resource=Some("aws_vpc.mainNone")
        module.env["prod"].module.net[2].aws_vpc.main (import=true): ok modules=["envSome(Str(\"prod\"))", "netSome(Int(2))"] resource=Some("aws_vpc.mainNone")
        module.net (import=false): ok modules=["netNone"] resource=None
        data.aws_ami.ubuntu (import=false): ok modules=[] resource=Some("data aws_ami.ubuntuNone")
        module.net (import=true): error: `module.net` names a module; `import` needs a resource
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        data.aws_ami.ubuntu (import=true): error: `data.aws_ami.ubuntu` is a data source; only managed resources are imported
          hint: drop `data.`: import the managed resource the data source reads
        null_resource (import=true): error: `null_resource` is not a resource address: the resource type `null_resource` must be followed by `.NAME`
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        null_resource. (import=true): error: `null_resource.` is not a resource address: expected a resource name after `null_resource.`
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        1bad.a (import=true): error: `1bad.a` is not a resource address: expected a name at `1bad.a`
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        null_resource.a[x] (import=true): error: `null_resource.a[x]` is not a resource address: the index `[x]` is neither a whole number nor a quoted string
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        null_resource.a["x] (import=true): error: `null_resource.a["x]` is not a resource address: a string key is not closed
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        null_resource.a.b (import=true): error: `null_resource.a.b` is not a resource address: unexpected `.b` after the resource
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        module..x (import=true): error: `module..x` is not a resource address: expected the module's name after `module.`
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        -lock=false (import=true): error: `-lock=false` is not a resource address: expected a name at `-lock=false`
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
         (import=true): error: the address is empty
          hint: write a resource address as terraform does: `TYPE.NAME`, `TYPE.NAME[0]`, `TYPE.NAME["key"]`, `module.NAME.TYPE.NAME`
        "#);
    }

    #[test]
    fn import_and_state_rm_arguments() {
        let ok = StateCommand::import(&["null_resource.a", "1234"]).unwrap();
        assert_eq!(ok.comment_args(), ["null_resource.a", "1234"]);
        assert_eq!(ok.name(), "import");
        let rm = StateCommand::state_rm(&["null_resource.a", "module.x"]).unwrap();
        assert_eq!(rm.comment_args(), ["null_resource.a", "module.x"]);
        let errs: Vec<String> = [
            StateCommand::import(&[]),
            StateCommand::import(&["null_resource.a"]),
            StateCommand::import(&["null_resource.a", "1", "2"]),
            StateCommand::import(&["null_resource.a", "a\nb"]),
            StateCommand::import(&["null_resource", "1"]),
            StateCommand::state_rm(&[]),
            StateCommand::state_rm(&["ok.a", "not ok"]),
        ]
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
        insta::assert_snapshot!(errs.join("\n"), @"
        `import` needs an address and an ID
        `import` needs an ID after the address
        `import` takes an address and an ID, but got 3 words
        the import ID must be 1 to 1024 bytes without control characters
        `null_resource` is not a resource address: the resource type `null_resource` must be followed by `.NAME`
        `state rm` needs at least one address
        address 2 of 2: `not ok` is not a resource address: the resource type `not` must be followed by `.NAME`
        ");
    }

    #[test]
    fn refusals_in_the_order_a_user_fixes_them() {
        let project = ProjectName::new("envs/a").unwrap();
        let sha = CommitSha::new("0123456789abcdef0123456789abcdef01234567").unwrap();
        let pr = PrNumber::new(1).unwrap();
        let other = PrNumber::new(2).unwrap();
        let gate = vec!["1 approval is required, 0 given".to_string()];
        let facts = |lock: Option<PrNumber>, plan: Option<&CommitSha>, gate: &[String]| {
            refusal(&StateFacts {
                project: &project,
                pr,
                unapplied_plan: plan,
                lock_holder: lock,
                gate_refusals: gate,
            })
        };
        let out: Vec<String> = [
            facts(Some(other), Some(&sha), &gate),
            facts(Some(pr), Some(&sha), &gate),
            facts(None, None, &gate),
        ]
        .into_iter()
        .map(|r| r.unwrap().message("import", &project, "sluice"))
        .collect();
        assert_eq!(
            facts(Some(pr), None, &[]),
            None,
            "this PR's own lock is fine"
        );
        insta::assert_snapshot!(out.join("\n---\n"), @"
        `import` was not run: project `envs/a` is locked by #2. Wait until #2 is merged or closed, or until it runs `sluice unlock`.
        ---
        `import` was not run: project `envs/a` has a plan of commit `0123456` that is not applied, and changing the state under it would make it apply something else. Apply it (`sluice apply -p envs/a`) or discard it (`sluice unlock`), then comment `import` again.
        ---
        `import` was not run: it needs what `apply` needs, and project `envs/a` does not have it yet:

        * 1 approval is required, 0 given
        ");
    }
}
