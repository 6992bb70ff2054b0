//! The PR-comment command parser (PRODUCT.md §4): turns the body of a pull-request comment into
//! a [`Command`] to run, a markdown [`Parsed::Reply`] to post back (usage, errors, "did you
//! mean"), or [`Parsed::Ignore`] for ordinary conversation.
//!
//! It owns the comment grammar and every rule about what a comment may *ask for*: which commands
//! exist and are enabled, their flags, how targets are validated, and which extra terraform
//! arguments are refused. It must not do I/O, look at the repository, decide which projects a
//! target selects (`core::target::select` does that) or who may run what (policy does that). Every
//! input, however long or strange, gets one of the three answers in time linear in its length,
//! and nothing here panics on user input. Everything a reply echoes back from the comment is
//! truncated and put in inline code with backticks neutralised, so a comment can never break
//! (or inject markdown or @-mentions into) the bot's reply.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::displayed;
use crate::core::state_command::{ArgError, StateCommand};
pub use crate::core::target::Targets;
use crate::core::target::{DirTarget, DirTargetError};
use crate::core::types::{InvalidValue, ProjectName, Workspace};

/// Longest command line (after the bot name) that is parsed at all. GitHub comments can be 64 KiB
/// and the parser must stay cheap on anything; no real command comes close to this.
pub const MAX_COMMAND_LEN: usize = 10_000;

/// A first word longer than this (in bytes) is no bot name, alias or near-miss of one.
const MAX_FIRST_WORD: usize = 256;

/// How many characters of user text a reply echoes back before cutting it off with `…`.
const ECHO_LIMIT: usize = 100;

/// Words people type out of habit instead of the bot name (`terraform plan`, `tofu apply`,
/// `atlantis plan` when migrating); they get a "did you mean" instead of silence.
const HABIT_WORDS: [&str; 3] = ["terraform", "tofu", "atlantis"];

/// The commands Sluice understands. Closed: every consumer handles them in one `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Plan,
    Apply,
    Unlock,
    ApprovePolicies,
    Help,
    Version,
    /// On a merged pull request: open a pull request reverting it (PRODUCT.md §15).
    Rollback,
    /// Atlantis' `import ADDRESS ID` (`core::state_command`).
    Import,
    /// Atlantis' `state rm ADDRESS...`: two words in a comment, `state_rm` in the server's
    /// `enabled_commands`.
    StateRm,
}

impl CommandKind {
    /// Every command, in the order usage lists them.
    pub const ALL: [CommandKind; 9] = [
        CommandKind::Plan,
        CommandKind::Apply,
        CommandKind::Import,
        CommandKind::StateRm,
        CommandKind::Unlock,
        CommandKind::ApprovePolicies,
        CommandKind::Rollback,
        CommandKind::Version,
        CommandKind::Help,
    ];

    /// The word typed in a comment (`sluice approve_policies`).
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::Plan => "plan",
            CommandKind::Apply => "apply",
            CommandKind::Unlock => "unlock",
            CommandKind::ApprovePolicies => "approve_policies",
            CommandKind::Help => "help",
            CommandKind::Version => "version",
            CommandKind::Rollback => "rollback",
            CommandKind::Import => "import",
            CommandKind::StateRm => "state rm",
        }
    }

    /// The command named `word`, case-insensitively (phones capitalise the first letter).
    /// `state rm` is two words in a comment and `state_rm` in configuration: this takes the
    /// latter (the comment parser reads `state` and `rm` itself).
    pub fn from_name(word: &str) -> Option<CommandKind> {
        if word.eq_ignore_ascii_case("state_rm") {
            return Some(CommandKind::StateRm);
        }
        CommandKind::ALL
            .into_iter()
            .filter(|k| *k != CommandKind::StateRm)
            .find(|k| word.eq_ignore_ascii_case(k.name()))
    }

    /// Whether the command changes a project's state without a plan (`import`, `state rm`):
    /// it takes positional arguments ([`Command::state_args`]) and names one project.
    pub fn is_state_command(self) -> bool {
        matches!(self, CommandKind::Import | CommandKind::StateRm)
    }

    /// Whether the command accepts `-p` / `-d` / `-w` / `--verbose`.
    fn takes_targets(self) -> bool {
        matches!(
            self,
            CommandKind::Plan
                | CommandKind::Apply
                | CommandKind::ApprovePolicies
                | CommandKind::Import
                | CommandKind::StateRm
        )
    }

    /// Whether the command takes terraform arguments after `--` ([`extra_args_of`]): `plan`,
    /// `import` and `state rm`. `apply` applies the saved plan as it was reviewed, and
    /// `approve_policies` only records an override, so arguments to either would be silently
    /// lost.
    fn takes_extra_args(self) -> bool {
        !extra_args_of(self).is_empty()
    }

    fn summary(self) -> &'static str {
        match self {
            CommandKind::Plan => "Plan every project this PR changes, or only the targeted ones",
            CommandKind::Apply => {
                "Apply the saved plans not applied yet, or only the targeted ones"
            }
            CommandKind::Unlock => "Release this PR's locks and discard its plans",
            CommandKind::ApprovePolicies => "Override failing policies (policy owners only)",
            CommandKind::Version => "Show the terraform/tofu version of each project",
            CommandKind::Rollback => {
                "On a merged pull request: open a pull request that reverts it"
            }
            CommandKind::Help => "Show this message",
            CommandKind::Import => {
                "Import an existing resource into one project's state (needs what `apply` needs)"
            }
            CommandKind::StateRm => {
                "Remove resources from one project's state (needs what `apply` needs)"
            }
        }
    }

    /// One-line synopsis, used by usage and by error replies about this command.
    pub(crate) fn synopsis(self, bot_name: &str) -> String {
        let targets = "[-p PROJECT | [-d DIR] [-w WORKSPACE]]";
        let name = self.name();
        match self {
            CommandKind::Plan => {
                format!("{bot_name} {name} {targets} [--destroy] [--verbose] [-- TERRAFORM_ARGS]")
            }
            CommandKind::Apply => format!("{bot_name} {name} {targets} [--verbose]"),
            CommandKind::Import => {
                format!("{bot_name} {name} {targets} ADDRESS ID [-- TERRAFORM_ARGS]")
            }
            CommandKind::StateRm => {
                format!("{bot_name} {name} {targets} ADDRESS... [-- TERRAFORM_ARGS]")
            }
            CommandKind::ApprovePolicies => {
                format!("{bot_name} {name} {targets} [--policy-set NAME]... [--verbose]")
            }
            CommandKind::Unlock
            | CommandKind::Version
            | CommandKind::Help
            | CommandKind::Rollback => {
                format!("{bot_name} {name}")
            }
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the parser needs to know about this server; built by the edge from server config.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    /// The word that starts a command (`sluice`; `atlantis` for teams migrating). Compared
    /// case-insensitively. An empty name matches nothing (config validation should refuse it).
    pub bot_name: &'a str,
    /// The bot's GitHub login (`sluice[bot]` for an App), so `@sluice plan` works; `None` when
    /// unknown, in which case only the bare name is accepted.
    pub bot_login: Option<&'a str>,
    /// Commands this server runs. `help` always works, listed or not: a bot that stays silent
    /// on `sluice help` looks broken, and usage reveals nothing.
    pub enabled: &'a [CommandKind],
}

impl<'a> ParseContext<'a> {
    /// A context with every command enabled and no known login.
    pub fn new(bot_name: &'a str) -> Self {
        ParseContext {
            bot_name,
            bot_login: None,
            enabled: &CommandKind::ALL,
        }
    }

    pub fn is_enabled(&self, kind: CommandKind) -> bool {
        kind == CommandKind::Help || self.enabled.contains(&kind)
    }

    /// Enabled commands in usage order, `help` last.
    fn enabled_kinds(&self) -> impl Iterator<Item = CommandKind> + '_ {
        CommandKind::ALL.into_iter().filter(|k| self.is_enabled(*k))
    }

    /// The login users type after `@`: `sluice` for the App login `sluice[bot]`.
    fn mention_name(&self) -> Option<&'a str> {
        self.bot_login
            .map(|login| login.strip_suffix("[bot]").unwrap_or(login))
            .filter(|m| !m.is_empty())
    }
}

/// A validated command, ready to become jobs. Only [`parse_comment`] checks the rules; one read
/// back with serde (e.g. from the store) is trusted as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub kind: CommandKind,
    pub targets: Targets,
    pub verbose: bool,
    /// Arguments after `--`, passed to terraform as argv entries (never through a shell).
    /// Only `plan` and `apply` have any; the blocked ones (see [`blocked_extra_arg`]) never
    /// appear here.
    pub extra_args: Vec<String>,
    /// `approve_policies --policy-set NAME`, in the order given, without duplicates. Empty means
    /// every failing policy set.
    pub policy_sets: Vec<String>,
    /// `plan --destroy` (or `plan -- -destroy`): a destroy plan (`terraform plan -destroy`) of
    /// the one project targeted by `-p` or an exact `-d` — never of every affected project.
    /// A project the pull request removes is planned from the base commit's configuration.
    #[serde(default)]
    pub destroy: bool,
    /// `import` / `state rm`: the words that are neither flags nor after `--` — `ADDRESS ID`,
    /// or the addresses — as typed; [`Command::state_command`] checks them.
    #[serde(default)]
    pub state_args: Vec<String>,
}

impl Command {
    fn new(kind: CommandKind) -> Self {
        Command {
            kind,
            targets: Targets::default(),
            verbose: false,
            extra_args: Vec::new(),
            policy_sets: Vec::new(),
            destroy: false,
            state_args: Vec::new(),
        }
    }

    /// The checked arguments of `import` / `state rm`; `None` for other commands. Checked where
    /// the command runs (`app::bot::state`), so that a refusal is audited like the others.
    pub fn state_command(&self) -> Option<Result<StateCommand, ArgError>> {
        let args: Vec<&str> = self.state_args.iter().map(String::as_str).collect();
        match self.kind {
            CommandKind::Import => Some(StateCommand::import(&args)),
            CommandKind::StateRm => Some(StateCommand::state_rm(&args)),
            _ => None,
        }
    }

    /// The comment that asks for exactly this command, in canonical form (long flags, quoted
    /// where needed) — for "next commands to type" hints and audit entries.
    pub fn canonical(&self, bot_name: &str) -> String {
        let mut words = vec![bot_name.to_string(), self.kind.name().to_string()];
        let mut flag = |name: &str, value: &str| {
            let quoted = shell_words::quote(value).into_owned();
            // A value that starts with `-` is read as a flag unless it is attached with `=`.
            if quoted.starts_with('-') {
                words.push(format!("{name}={quoted}"));
            } else {
                words.push(name.to_string());
                words.push(quoted);
            }
        };
        if let Some(p) = &self.targets.project {
            flag("-p", p.as_str());
        }
        if let Some(d) = &self.targets.dir {
            flag("-d", d.as_str());
        }
        if let Some(w) = &self.targets.workspace {
            flag("-w", w.as_str());
        }
        for set in &self.policy_sets {
            flag("--policy-set", set);
        }
        if self.destroy {
            words.push("--destroy".to_string());
        }
        if self.verbose {
            words.push("--verbose".to_string());
        }
        words.extend(
            self.state_args
                .iter()
                .map(|a| shell_words::quote(a).into_owned()),
        );
        if !self.extra_args.is_empty() {
            words.push("--".to_string());
            words.extend(
                self.extra_args
                    .iter()
                    .map(|a| shell_words::quote(a).into_owned()),
            );
        }
        words.join(" ")
    }
}

/// The comment that runs `kind` on one project (`sluice apply -p 'envs/eu west'`), for the
/// hints Sluice prints: written by [`Command::canonical`], with the grammar's own quoting, so it
/// parses back to exactly this project whatever its name holds.
pub fn project_hint(bot_name: &str, kind: CommandKind, project: &ProjectName) -> String {
    let mut command = Command::new(kind);
    command.targets.project = Some(project.clone());
    command.canonical(bot_name)
}

/// `sluice approve_policies -p PROJECT --policy-set SET`: the override hint a failing policy
/// prints, written by [`Command::canonical`] like [`project_hint`], so it parses back to that
/// project and policy set.
pub fn approve_policies_hint(bot_name: &str, project: &ProjectName, policy_set: &str) -> String {
    let mut command = Command::new(CommandKind::ApprovePolicies);
    command.targets.project = Some(project.clone());
    command.policy_sets = vec![policy_set.to_string()];
    command.canonical(bot_name)
}

/// What to do with a comment.
#[allow(
    clippy::large_enum_variant,
    reason = "one per comment, matched once where it is read: boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not addressed to the bot (or a multi-line comment): say nothing.
    Ignore,
    Command(Command),
    /// Markdown to post back: usage, an error, a "did you mean".
    Reply(String),
}

/// Reads one PR comment. Total: never panics, linear in `body.len()`.
///
/// The comment is read as GitHub displays it (`core::displayed`: HTML comments, invisible
/// characters, trailing whitespace and blank lines removed). A command is a comment of one
/// displayed line (Atlantis' rule); a comment of several lines is conversation — but when one
/// of its lines starts with the bot's name (outside code blocks and quotes), it was addressed to
/// Sluice, and the reply says why it was not run.
pub fn parse_comment(ctx: &ParseContext, body: &str) -> Parsed {
    let lines = displayed::displayed_lines(body);
    match lines.as_slice() {
        [] => Parsed::Ignore,
        [line] => parse_line(ctx, line.trim()),
        several => match addressed_line(ctx, several) {
            Some(line) => Parsed::Reply(several_lines(ctx, line, several.len())),
            None => Parsed::Ignore,
        },
    }
}

/// The first displayed line, outside fenced code blocks and block quotes, whose first word is
/// the bot's name or login.
fn addressed_line<'l>(ctx: &ParseContext, lines: &'l [String]) -> Option<&'l str> {
    let mut fenced = false;
    for line in lines {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            // A fence closed on its own line (```sluice plan```) is inline: still addressed.
            let inline = line.len() > 6 && line.ends_with("```");
            if !inline {
                fenced = !fenced;
                continue;
            }
        }
        if fenced || line.starts_with('>') {
            continue;
        }
        let first = trim_backticks(line)
            .split(char::is_whitespace)
            .next()
            .unwrap_or("");
        if first.len() <= MAX_FIRST_WORD && addresses_bot(ctx, first) {
            return Some(line);
        }
    }
    None
}

/// Why a comment addressed to Sluice was not run: it has other lines.
fn several_lines(ctx: &ParseContext, line: &str, count: usize) -> String {
    format!(
        "**Not run:** Sluice runs a command only when it is the whole comment, on one line; this \
         comment shows {count} lines, one of them {}. Comment the command by itself, and \
         anything else in another comment.\n\nRun {} for all commands and flags.",
        echo(line),
        code(&format!("{} help", ctx.bot_name)),
    )
}

/// Reads one displayed line.
fn parse_line(ctx: &ParseContext, line: &str) -> Parsed {
    let line = trim_backticks(line);
    // The first word is only ever compared with short names, so its end is looked for in the
    // first MAX_FIRST_WORD characters only: a megabyte without a space costs nothing.
    let space = line
        .char_indices()
        .take(MAX_FIRST_WORD + 1)
        .find(|(_, c)| c.is_whitespace());
    let (first, rest) = match space {
        Some((i, c)) => (&line[..i], line[i + c.len_utf8()..].trim_start()),
        None if line.len() <= MAX_FIRST_WORD => (line, ""),
        None => return Parsed::Ignore,
    };
    if first.is_empty() {
        return Parsed::Ignore;
    }
    if !addresses_bot(ctx, first) {
        return match did_you_mean_name(ctx, first, rest) {
            Some(reply) => Parsed::Reply(reply),
            None => Parsed::Ignore,
        };
    }
    match parse_command(ctx, rest) {
        Ok(command) => Parsed::Command(command),
        Err(answer) => Parsed::Reply(answer.render(ctx)),
    }
}

/// The usage reply (markdown), listing only the commands enabled on this server.
pub fn usage(ctx: &ParseContext) -> String {
    let n = ctx.bot_name;
    let mut out = String::from("**Sluice commands.** Comment one command on a line by itself, ");
    match ctx.mention_name() {
        Some(m) => out.push_str(&format!("starting with `{n}` or `@{m}`:\n\n")),
        None => out.push_str(&format!("starting with `{n}`:\n\n")),
    }
    out.push_str("| Command | What it does |\n|---|---|\n");
    for kind in ctx.enabled_kinds() {
        out.push_str(&format!("| `{n} {}` | {} |\n", kind.name(), kind.summary()));
    }

    let targeted: Vec<String> = ctx
        .enabled_kinds()
        .filter(|k| k.takes_targets())
        .map(|k| format!("`{k}`"))
        .collect();
    if !targeted.is_empty() {
        out.push_str(&format!("\nFlags for {}:\n", join_words(&targeted)));
        out.push_str("* `-p`, `--project NAME` — only this project (not with `-d` or `-w`)\n");
        out.push_str(
            "* `-d`, `--dir DIR` — only projects in this directory, relative to the repository \
             root; may be a glob such as `envs/*`\n",
        );
        out.push_str("* `-w`, `--workspace NAME` — only this workspace\n");
        out.push_str("* `--verbose` — include the full terraform output\n");
        if ctx.is_enabled(CommandKind::Plan) {
            out.push_str(
                "* `--destroy` — `plan` only, with `-p` (or an exact `-d`): a destroy plan of that \
                 project; for a project this PR removes, from the base branch's configuration\n",
            );
        }
        if ctx.is_enabled(CommandKind::ApprovePolicies) {
            out.push_str(
                "* `--policy-set NAME` — `approve_policies` only: override just this policy set \
                 (repeatable)\n",
            );
        }
        let with_extra: Vec<String> = ctx
            .enabled_kinds()
            .filter(|k| k.takes_extra_args())
            .map(|k| format!("`{k}`"))
            .collect();
        if !with_extra.is_empty() {
            let lists: Vec<String> = ctx
                .enabled_kinds()
                .filter(|k| k.takes_extra_args())
                .map(|k| {
                    let names: Vec<String> = extra_args_of(k)
                        .iter()
                        .map(|(n, _)| format!("`-{n}`"))
                        .collect();
                    format!("`{k}`: {}", join_words(&names))
                })
                .collect();
            out.push_str(&format!(
                "* `-- ARGS` — {} only: terraform arguments, each once after one `--` ({})\n",
                join_words(&with_extra),
                lists.join("; ")
            ));
        }
        let examples: Vec<String> = [
            (CommandKind::Plan, "plan -p network"),
            (CommandKind::Plan, "plan -d envs/prod -w blue"),
            (CommandKind::Plan, "plan -d 'envs/*' -- -target=module.db"),
            (CommandKind::Apply, "apply"),
            (
                CommandKind::Import,
                "import -p network aws_vpc.main vpc-0a1b2c",
            ),
            (CommandKind::StateRm, "state rm -p network aws_vpc.old"),
        ]
        .into_iter()
        .filter(|(k, _)| ctx.is_enabled(*k))
        .map(|(_, e)| format!("`{n} {e}`"))
        .collect();
        if !examples.is_empty() {
            out.push_str(&format!("\nExamples: {}\n", examples.join(", ")));
        }
    }

    let disabled: Vec<String> = CommandKind::ALL
        .into_iter()
        .filter(|k| !ctx.is_enabled(*k))
        .map(|k| format!("`{k}`"))
        .collect();
    if !disabled.is_empty() {
        out.push_str(&format!(
            "\nDisabled on this server: {}.\n",
            disabled.join(", ")
        ));
    }
    out
}

/// Why an extra terraform argument is refused, or `None` when it may pass. Matches `-x`,
/// `--x`, `-x=v` and `--x=v`, case-insensitively and with `_` for `-`, because a comment must not
/// get past the check with a spelling terraform (Go's flag package) might still accept.
///
/// * `-chdir`: would run terraform in a directory other than the project Sluice planned, locked
///   and sandboxed for.
/// * `-plugin-dir`: would load providers — arbitrary binaries — from a path the PR chooses
///   instead of the trusted, read-only provider cache.
/// * `-state`, `-state-out`, `-backup`: read or write state files outside the configured backend,
///   so a comment could clobber, fork or exfiltrate state.
/// * `-out`: Sluice saves the plan itself; a second plan file would break the guarantee that what
///   is applied is exactly the reviewed, hashed plan.
///
/// Arguments not named here are still only passed when `plan` takes them ([`PLAN_ARGS`]); this
/// list gives the refusal its reason.
pub fn blocked_extra_arg(arg: &str) -> Option<&'static str> {
    let flag = arg.trim().strip_prefix('-')?;
    let flag = flag.trim_start_matches('-');
    let name = flag.split_once('=').map_or(flag, |(name, _)| name);
    match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "chdir" => Some(
            "it would run terraform in another directory than the project Sluice planned and locked",
        ),
        "plugin-dir" => Some(
            "it would load providers from a directory of the PR's choosing instead of the trusted provider cache",
        ),
        "state" | "state-out" | "backup" => {
            Some("it reads or writes state files outside the project's configured backend")
        }
        "out" => Some(
            "Sluice saves the plan itself, so that what is applied is exactly the plan that was reviewed",
        ),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Recognising the bot's name

/// Strips surrounding back-ticks (`` `sluice plan` ``, ```` ```sluice plan``` ````). Trailing
/// back-ticks are only removed as far as leading ones were, so an argument ending in one survives.
fn trim_backticks(line: &str) -> &str {
    let inner = line.trim_start_matches('`');
    let lead = line.len() - inner.len();
    if lead == 0 {
        return line;
    }
    let trail = (inner.len() - inner.trim_end_matches('`').len()).min(lead);
    inner[..inner.len() - trail].trim()
}

/// Case-insensitive comparison without allocating: it stops at the first difference, so a 1 MB
/// first word costs nothing.
fn eq_ci(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// `sluice`, or `@login` / `@login[bot]` when the login is known.
fn addresses_bot(ctx: &ParseContext, word: &str) -> bool {
    if !ctx.bot_name.is_empty() && eq_ci(word, ctx.bot_name) {
        return true;
    }
    match (word.strip_prefix('@'), ctx.bot_login, ctx.mention_name()) {
        (Some(mention), Some(login), Some(base)) => eq_ci(mention, login) || eq_ci(mention, base),
        _ => false,
    }
}

/// The largest edit distance still treated as a typo of a word this long: short words are too
/// easy to hit by accident (every 2-letter word is within 2 edits of `tf`).
fn typo_budget(word: &str) -> usize {
    match word.chars().count() {
        0..=2 => 0,
        3..=4 => 1,
        _ => 2,
    }
}

/// "Did you mean" for comments that look like a command but do not start with the bot's name:
/// `terraform plan`, `tofu apply`, `atlantis plan`, `slice plan`. Only when the second word is a
/// command and nothing but flags follows, so that ordinary sentences ("Sluice's plan looks
/// wrong", "terraform plan output is odd") stay ignored. `help` does not count: "Terraform help
/// wanted" is conversation. A word starting with `@` is a mention of someone else (maybe another
/// bot) and is never second-guessed.
fn did_you_mean_name(ctx: &ParseContext, first: &str, rest: &str) -> Option<String> {
    // Bounded before any distance computation: the comment may be 1 MB without a space.
    if first.starts_with('@') || first.len() > 64 || ctx.bot_name.is_empty() {
        return None;
    }
    let mut words = rest.splitn(2, char::is_whitespace);
    let kind = CommandKind::from_name(words.next()?).filter(|k| *k != CommandKind::Help)?;
    let after = words.next().unwrap_or("").trim_start();
    if !(after.is_empty() || after.starts_with('-')) {
        return None;
    }
    let word = first.to_lowercase();
    let name = ctx.bot_name.to_lowercase();
    let habit = HABIT_WORDS.contains(&word.as_str());
    let near = |target: &str| strsim::osa_distance(&word, target) <= typo_budget(target);
    let near_login = ctx.mention_name().is_some_and(|m| near(&m.to_lowercase()));
    if !(habit || near(&name) || near_login) {
        return None;
    }
    let suggestion = format!("{} {}", ctx.bot_name, kind.name());
    Some(format!(
        "Did you mean {}? Sluice only reads comments that start with {}{}, not {}.\n\n\
         Run {} for all commands and flags.",
        code(&suggestion),
        code(ctx.bot_name),
        ctx.mention_name()
            .map(|m| format!(" or {}", code(&format!("@{m}"))))
            .unwrap_or_default(),
        echo(first),
        code(&format!("{} help", ctx.bot_name)),
    ))
}

// ---------------------------------------------------------------------------------------------
// Parsing what follows the name

/// Everything that is not a command: each becomes one reply.
#[derive(Debug)]
enum Answer {
    Usage,
    TooLong {
        len: usize,
    },
    Unbalanced,
    MissingCommand {
        flag: String,
    },
    UnknownCommand {
        given: String,
        suggestion: Option<CommandKind>,
    },
    Disabled(CommandKind),
    /// A mistake in a known command's flags or arguments; `message` is markdown, built with
    /// [`echo`] for anything the user typed. The reply adds the command's synopsis.
    Misuse {
        kind: CommandKind,
        message: String,
    },
}

impl Answer {
    fn misuse(kind: CommandKind, message: impl Into<String>) -> Self {
        Answer::Misuse {
            kind,
            message: message.into(),
        }
    }

    fn render(&self, ctx: &ParseContext) -> String {
        let n = ctx.bot_name;
        let help = code(&format!("{n} help"));
        let enabled = || {
            let names: Vec<String> = ctx.enabled_kinds().map(|k| format!("`{k}`")).collect();
            format!(
                "Enabled commands: {}. Run {help} for usage.",
                names.join(", ")
            )
        };
        match self {
            Answer::Usage => usage(ctx),
            Answer::TooLong { len } => format!(
                "**Error:** this command is {len} bytes long; Sluice reads commands of up to \
                 {MAX_COMMAND_LEN} bytes.\n\nRun {help} for usage."
            ),
            Answer::Unbalanced => format!(
                "**Error:** this command has an unclosed quote (`'` or `\"`); quote values the way \
                 a shell would, e.g. `{n} plan -d \"envs/my dir\"`.\n\nRun {help} for usage."
            ),
            Answer::MissingCommand { flag } => format!(
                "**Error:** expected a command after `{n}`, found the flag {}.\n\n{}",
                echo(flag),
                enabled()
            ),
            Answer::UnknownCommand { given, suggestion } => {
                let hint = suggestion
                    .map(|k| format!(" Did you mean {}?", code(&format!("{n} {k}"))))
                    .unwrap_or_default();
                format!(
                    "**Error:** unknown command {}.{hint}\n\n{}",
                    echo(given),
                    enabled()
                )
            }
            Answer::Disabled(kind) => format!(
                "**Error:** {} is disabled on this server.\n\n{}",
                code(&format!("{n} {kind}")),
                enabled()
            ),
            Answer::Misuse { kind, message } => format!(
                "**Error:** {message}\n\nUsage: {}\n\nRun {help} for all commands and flags.",
                code(&kind.synopsis(n))
            ),
        }
    }
}

fn parse_command(ctx: &ParseContext, rest: &str) -> Result<Command, Answer> {
    if rest.len() > MAX_COMMAND_LEN {
        return Err(Answer::TooLong { len: rest.len() });
    }
    let words = split_words(rest).map_err(|Unbalanced| Answer::Unbalanced)?;
    let Some((first, args)) = words.split_first() else {
        return Err(Answer::Usage);
    };
    if is_help_flag(first) {
        return Err(Answer::Usage);
    }
    if first.starts_with('-') && first.len() > 1 {
        return Err(Answer::MissingCommand {
            flag: first.clone(),
        });
    }
    // `state rm`: Terraform's two words (Atlantis supports only `rm` of `state`).
    let state_rm = "state_rm".to_string();
    let (first, args) = if eq_ci(first, "state") {
        match args.split_first() {
            Some((sub, rest)) if eq_ci(sub, "rm") => (&state_rm, rest),
            Some((sub, _)) if is_help_flag(sub) => return Err(Answer::Usage),
            other => {
                let got = other.map_or_else(|| "nothing".to_string(), |(w, _)| echo(w));
                return Err(Answer::misuse(
                    CommandKind::StateRm,
                    format!("`state` is followed by `rm` (the one state command), but got {got}."),
                ));
            }
        }
    } else {
        (first, args)
    };
    let Some(kind) = CommandKind::from_name(first) else {
        return Err(Answer::UnknownCommand {
            given: first.clone(),
            suggestion: suggest_command(ctx, first),
        });
    };
    if !ctx.is_enabled(kind) {
        return Err(Answer::Disabled(kind));
    }
    match kind {
        CommandKind::Help if args.is_empty() => Err(Answer::Usage),
        // `sluice unlock -h` asks how to use unlock; usage is the answer.
        CommandKind::Unlock | CommandKind::Version | CommandKind::Help | CommandKind::Rollback
            if args.iter().any(|a| is_help_flag(a)) =>
        {
            Err(Answer::Usage)
        }
        CommandKind::Unlock | CommandKind::Version | CommandKind::Help | CommandKind::Rollback => {
            match args.first() {
                None => Ok(Command::new(kind)),
                Some(arg) => Err(Answer::misuse(
                    kind,
                    format!(
                        "`{kind}` takes no flags or arguments, but got {}.",
                        echo(arg)
                    ),
                )),
            }
        }
        CommandKind::Plan
        | CommandKind::Apply
        | CommandKind::ApprovePolicies
        | CommandKind::Import
        | CommandKind::StateRm => parse_targeted(kind, args),
    }
}

/// An unclosed quote: the words of a command cannot be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unbalanced;

/// The words of a command line, split as a shell would (quotes, backslashes) — the one
/// tokenizer of every comment grammar (`sluice …` on a pull request, `sluice drift …` on a drift
/// issue). Typographic quotes count as the quotes they stand for, and spaces other than ASCII
/// space and tab (a non-breaking space pasted from chat or docs) as spaces: shell-words splits on
/// those two only, and would otherwise glue `plan` and `-p` into one unknown word. (Inside
/// quotes too: no valid flag value contains one, and terraform arguments with exotic spaces are
/// rarer than pasted commands.)
pub fn split_words(line: &str) -> Result<Vec<String>, Unbalanced> {
    let odd_space = |c: char| c.is_whitespace() && c != ' ' && c != '\t';
    let normalised: Cow<str> = if line.contains(odd_space) {
        Cow::Owned(
            line.chars()
                .map(|c| if odd_space(c) { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(line)
    };
    shell_words::split(&typographic_quotes(&normalised)).map_err(|_| Unbalanced)
}

/// Typographic quotes, as phones and rich editors type them, read as the quotes they stand
/// for: `“…”`, `„…“`, `«…»` as `"…"`; `‘…’`, `‚…‘` as `'…'`. A `’` inside a word (`bob’s`) is an
/// apostrophe and stays: only one that ends a word closes a quote, and only when one was opened.
fn typographic_quotes(line: &str) -> Cow<'_, str> {
    const ALL: [char; 7] = ['“', '”', '„', '«', '»', '‘', '‚'];
    if !line.contains(ALL) && !line.contains('’') {
        return Cow::Borrowed(line);
    }
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut single_open = false;
    for (i, c) in chars.iter().enumerate() {
        let ends_word = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        match c {
            '“' | '”' | '„' | '«' | '»' => out.push('"'),
            '‘' | '‚' if !single_open => {
                single_open = true;
                out.push('\'');
            }
            '‘' | '’' if single_open && ends_word => {
                single_open = false;
                out.push('\'');
            }
            c => out.push(*c),
        }
    }
    Cow::Owned(out)
}

fn is_help_flag(word: &str) -> bool {
    word == "-h" || word == "--help"
}

/// The enabled command closest to a mistyped one (`pln` → `plan`), if any is close enough.
fn suggest_command(ctx: &ParseContext, given: &str) -> Option<CommandKind> {
    if given.chars().count() > 40 {
        return None;
    }
    let given = given.to_lowercase();
    ctx.enabled_kinds()
        .map(|k| (strsim::osa_distance(&given, k.name()), k))
        .filter(|(d, k)| *d <= typo_budget(k.name()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Project,
    Dir,
    Workspace,
    Verbose,
    PolicySet,
    Destroy,
}

impl Flag {
    const ALL: [Flag; 6] = [
        Flag::Project,
        Flag::Dir,
        Flag::Workspace,
        Flag::Verbose,
        Flag::PolicySet,
        Flag::Destroy,
    ];

    fn long(self) -> &'static str {
        match self {
            Flag::Project => "--project",
            Flag::Dir => "--dir",
            Flag::Workspace => "--workspace",
            Flag::Verbose => "--verbose",
            Flag::PolicySet => "--policy-set",
            Flag::Destroy => "--destroy",
        }
    }

    fn short(self) -> Option<&'static str> {
        match self {
            Flag::Project => Some("-p"),
            Flag::Dir => Some("-d"),
            Flag::Workspace => Some("-w"),
            Flag::Verbose | Flag::PolicySet | Flag::Destroy => None,
        }
    }

    /// `-p/--project`: how errors name a flag whichever spelling was typed.
    fn display(self) -> String {
        match self.short() {
            Some(s) => format!("`{s}`/`{}`", self.long()),
            None => format!("`{}`", self.long()),
        }
    }

    fn available(self, kind: CommandKind) -> bool {
        match self {
            Flag::PolicySet => kind == CommandKind::ApprovePolicies,
            Flag::Destroy => kind == CommandKind::Plan,
            _ => true,
        }
    }

    fn lookup(name: &str, kind: CommandKind) -> Option<Flag> {
        Flag::ALL
            .into_iter()
            .find(|f| f.available(kind) && (f.long() == name || f.short() == Some(name)))
    }

    /// The flag a mistyped one probably meant: `--projet`, `-project`, `--Dir`, `-v`.
    fn suggest(typed: &str, kind: CommandKind) -> Option<Flag> {
        let bare = typed.trim_start_matches('-').to_ascii_lowercase();
        if bare.is_empty() || bare.chars().count() > 40 {
            return None;
        }
        if bare == "v" {
            return Some(Flag::Verbose);
        }
        Flag::ALL
            .into_iter()
            .filter(|f| f.available(kind))
            .find(|f| {
                let long = f.long().trim_start_matches('-');
                let short = f.short().map(|s| s.trim_start_matches('-'));
                strsim::osa_distance(&bare, long) <= typo_budget(long)
                    || short == Some(bare.as_str())
            })
    }
}

fn parse_targeted(kind: CommandKind, args: &[String]) -> Result<Command, Answer> {
    let (flags, extra) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], Some(&args[i + 1..])),
        None => (args, None),
    };
    let mut command = Command::new(kind);
    let mut seen: Vec<Flag> = Vec::new();
    let mut i = 0;
    while let Some(arg) = flags.get(i) {
        i += 1;
        if is_help_flag(arg) {
            return Err(Answer::Usage);
        }
        if kind.is_state_command() && (!arg.starts_with('-') || arg == "-") {
            command.state_args.push(arg.clone());
            continue;
        }
        if !arg.starts_with('-') || arg == "-" {
            return Err(Answer::misuse(
                kind,
                format!(
                    "unexpected argument {}; values go after a flag (`-p`, `-d`, `-w`) and \
                     terraform arguments after `--`.",
                    echo(arg)
                ),
            ));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg.as_str(), None),
        };
        let Some(flag) = Flag::lookup(name, kind) else {
            let hint = match Flag::suggest(name, kind) {
                Some(f) => format!(" Did you mean {}?", f.display()),
                None if name == "--policy-set" => {
                    " `--policy-set` is only for `approve_policies`.".to_string()
                }
                None if name == "--destroy" => {
                    " `--destroy` is only for `plan`: plan the destroy, then apply that plan."
                        .to_string()
                }
                None => String::new(),
            };
            return Err(Answer::misuse(
                kind,
                format!("unknown flag {} for `{kind}`.{hint}", echo(arg)),
            ));
        };
        if flag != Flag::PolicySet && seen.contains(&flag) {
            return Err(Answer::misuse(
                kind,
                format!("{} is given twice; give it once.", flag.display()),
            ));
        }
        seen.push(flag);

        if matches!(flag, Flag::Verbose | Flag::Destroy) {
            if inline.is_some() {
                return Err(Answer::misuse(
                    kind,
                    format!(
                        "{} takes no value; write just `{}`.",
                        flag.display(),
                        flag.long()
                    ),
                ));
            }
            match flag {
                Flag::Destroy => command.destroy = true,
                _ => command.verbose = true,
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            // The next word is the value unless it looks like a flag: no valid project,
            // workspace or policy set starts with `-`, and `-d -w x` is far more likely a
            // forgotten value than a directory named `-w`.
            None => match flags.get(i) {
                Some(next) if !(next.starts_with('-') && next.len() > 1) => {
                    i += 1;
                    next.as_str()
                }
                _ => "",
            },
        };
        if value.is_empty() {
            return Err(Answer::misuse(
                kind,
                format!("{} needs a value.", flag.display()),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(Answer::misuse(
                kind,
                format!(
                    "the value of {} contains control characters.",
                    flag.display()
                ),
            ));
        }
        match flag {
            Flag::Project => {
                let p = ProjectName::new(value).map_err(|e| invalid(kind, value, &e))?;
                command.targets.project = Some(p);
            }
            Flag::Workspace => {
                let w = Workspace::new(value).map_err(|e| invalid(kind, value, &e))?;
                command.targets.workspace = Some(w);
            }
            Flag::Dir => command.targets.dir = Some(validate_dir(kind, value)?),
            Flag::PolicySet => {
                let set = validate_policy_set(kind, value)?;
                if !command.policy_sets.contains(&set) {
                    command.policy_sets.push(set);
                }
            }
            Flag::Verbose | Flag::Destroy => {}
        }
    }

    let t = &command.targets;
    if t.project.is_some() && (t.dir.is_some() || t.workspace.is_some()) {
        return Err(Answer::misuse(
            kind,
            "`-p` cannot be combined with `-d` or `-w`: a project already names its directory and \
             workspace.",
        ));
    }

    if let Some(extra) = extra {
        check_extra_args(kind, extra)?;
        command.extra_args = extra.to_vec();
    }
    destroy_rules(&mut command)?;
    Ok(command)
}

/// `--destroy` and terraform's own `-- -destroy` are one thing: a destroy plan, written
/// `--destroy` (so the run, its comment and its audit entry know it). It names one project —
/// `-p`, or `-d` with an exact directory — since destroying every project a change affects is
/// never what a pull request means; and `-refresh-only` contradicts it.
fn destroy_rules(command: &mut Command) -> Result<(), Answer> {
    let kind = command.kind;
    let in_extra = |a: &String| {
        let bare = a.trim_start_matches('-');
        a.starts_with('-') && bare == "destroy"
    };
    if command.extra_args.iter().any(in_extra) {
        if command.destroy {
            return Err(Answer::misuse(
                kind,
                "`--destroy` and `-- -destroy` ask for the same destroy plan; give `--destroy` once.",
            ));
        }
        command.destroy = true;
        command.extra_args.retain(|a| !in_extra(a));
    }
    if !command.destroy {
        return Ok(());
    }
    let t = &command.targets;
    let exact_dir = matches!(t.dir, Some(DirTarget::Exact(_)));
    if t.project.is_none() && !exact_dir {
        let why = if t.dir.is_some() {
            "a destroy plan names one directory, not a glob"
        } else {
            "a destroy plan names the project it destroys"
        };
        return Err(Answer::misuse(
            kind,
            format!(
                "{why}: write `plan -p PROJECT --destroy` (or `-d DIR` with an exact directory)."
            ),
        ));
    }
    if command.extra_args.iter().any(|a| {
        let bare = a.trim_start_matches('-');
        bare == "refresh-only"
    }) {
        return Err(Answer::misuse(
            kind,
            "`--destroy` and `-refresh-only` contradict each other: a refresh-only plan changes no resource.",
        ));
    }
    Ok(())
}

/// How a terraform argument `plan` takes is written (Go's `flag` package: `-name`,
/// `-name=value`, and for a non-boolean `-name value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgValue {
    /// A switch: `-destroy`.
    None,
    /// `-lock` or `-lock=false`.
    Bool,
    /// `-target=ADDR` or `-target ADDR`.
    Required,
}

/// The terraform arguments `plan` takes after `--` (terraform's `plan` options that choose
/// what is planned or how the state is read), and nothing else: the others either change
/// where terraform runs, reads or writes (`-chdir`, `-state`, `-out`, …: see
/// [`blocked_extra_arg`]), break how Sluice reads the result (`-json`, `-detailed-exitcode`,
/// `-no-color`, `-input`), or write files (`-generate-config-out`). `apply` takes none: it
/// applies the saved plan exactly as reviewed. Source: `terraform plan -help` (1.0–1.9).
const PLAN_ARGS: [(&str, ArgValue); 11] = [
    ("target", ArgValue::Required),
    ("replace", ArgValue::Required),
    ("var", ArgValue::Required),
    ("var-file", ArgValue::Required),
    ("destroy", ArgValue::None),
    ("refresh-only", ArgValue::None),
    ("refresh", ArgValue::Bool),
    ("lock", ArgValue::Bool),
    ("lock-timeout", ArgValue::Required),
    ("parallelism", ArgValue::Required),
    ("compact-warnings", ArgValue::None),
];

/// The terraform arguments `import` takes after `--`: the variables its configuration reads and
/// how it locks the state (`terraform import -help`, 1.0–1.9). Never `-config` (the project is
/// the configuration) nor `-state`/`-backup` ([`blocked_extra_arg`]).
const IMPORT_ARGS: [(&str, ArgValue); 5] = [
    ("var", ArgValue::Required),
    ("var-file", ArgValue::Required),
    ("lock", ArgValue::Bool),
    ("lock-timeout", ArgValue::Required),
    ("ignore-remote-version", ArgValue::None),
];

/// The terraform arguments `state rm` takes after `--` (`terraform state rm -help`).
const STATE_RM_ARGS: [(&str, ArgValue); 4] = [
    ("dry-run", ArgValue::None),
    ("lock", ArgValue::Bool),
    ("lock-timeout", ArgValue::Required),
    ("ignore-remote-version", ArgValue::None),
];

/// The terraform arguments `kind` takes after `--`; empty for commands that take none.
fn extra_args_of(kind: CommandKind) -> &'static [(&'static str, ArgValue)] {
    match kind {
        CommandKind::Plan => &PLAN_ARGS,
        CommandKind::Import => &IMPORT_ARGS,
        CommandKind::StateRm => &STATE_RM_ARGS,
        _ => &[],
    }
}

/// The words after `--`, by the command's grammar: `plan`, `import` and `state rm` take their
/// own list ([`extra_args_of`]), each with its value; `apply` and `approve_policies` take none.
/// The first word that does not fit is named in the refusal.
fn check_extra_args(kind: CommandKind, extra: &[String]) -> Result<(), Answer> {
    let refuse = |message: String| Err(Answer::misuse(kind, message));
    let allowed = extra_args_of(kind);
    match kind {
        CommandKind::Plan | CommandKind::Import | CommandKind::StateRm => {}
        CommandKind::Apply => {
            let got = extra
                .first()
                .map_or_else(|| "`--`".to_string(), |a| echo(a));
            return refuse(format!(
                "`apply` takes no terraform arguments (got {got}): it applies the saved plan \
                 exactly as it was reviewed. To apply part of a change, plan that part (`plan \
                 -- -target=ADDRESS`) and apply that plan."
            ));
        }
        _ => {
            return refuse(format!(
                "`{kind}` does not run terraform, so it takes no arguments after `--`."
            ));
        }
    }
    let mut words = extra.iter();
    while let Some(arg) = words.next() {
        if arg.chars().any(char::is_control) {
            return refuse(format!(
                "the terraform argument {} contains control characters.",
                echo(arg)
            ));
        }
        if arg == "--" {
            return refuse(
                "a second `--`: everything after the first `--` is terraform arguments, \
                 written once."
                    .to_string(),
            );
        }
        if let Some(why) = blocked_extra_arg(arg) {
            return refuse(format!(
                "the terraform argument {} is not allowed: {why}.",
                echo(arg)
            ));
        }
        let Some(flag) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return refuse(format!(
                "unexpected word {} after `--`: terraform arguments are flags such as \
                 `-target=ADDRESS`, and a value goes right after its flag (`-var 'name=value'`).",
                echo(arg)
            ));
        };
        // Go's flag package reads `--name` as `-name`.
        let flag = flag.strip_prefix('-').unwrap_or(flag);
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        let Some((_, value)) = allowed.iter().find(|(n, _)| *n == name) else {
            let names: Vec<String> = allowed.iter().map(|(n, _)| format!("`-{n}`")).collect();
            return refuse(format!(
                "the terraform argument {} is not one `{kind}` takes; it takes {}.",
                echo(arg),
                join_words(&names)
            ));
        };
        let value = match (value, inline) {
            (ArgValue::None, None) | (ArgValue::Bool, None) => continue,
            (ArgValue::None, Some(_)) => {
                return refuse(format!("`-{name}` takes no value, but got {}.", echo(arg)));
            }
            (ArgValue::Bool, Some(v)) if v == "true" || v == "false" => continue,
            (ArgValue::Bool, Some(_)) => {
                return refuse(format!(
                    "`-{name}` is `true` or `false` (`-{name}=false`), but got {}.",
                    echo(arg)
                ));
            }
            (ArgValue::Required, Some(v)) => v,
            (ArgValue::Required, None) => match words.next() {
                Some(v) if v.chars().any(char::is_control) => {
                    return refuse(format!(
                        "the terraform argument {} contains control characters.",
                        echo(v)
                    ));
                }
                Some(v) if v != "--" => v.as_str(),
                _ => "",
            },
        };
        if value.is_empty() {
            return refuse(format!("`-{name}` needs a value (`-{name}=VALUE`)."));
        }
        if name == "var-file" && (value.starts_with('/') || value.split('/').any(|s| s == "..")) {
            return refuse(format!(
                "the var file {} is not allowed: give a path inside the project, without `..`.",
                echo(value)
            ));
        }
    }
    Ok(())
}

/// `-d`: inside the repository, normalised, and — when it is a glob — compiled here, once
/// (`core::target::DirTarget`). Stricter than `ProjectDir` (which rejects `..` segments only):
/// in a glob, `..` could still climb out, and no real project directory needs it.
fn validate_dir(kind: CommandKind, raw: &str) -> Result<DirTarget, Answer> {
    DirTarget::parse(raw).map_err(|e| match e {
        DirTargetError::LeavesRepository => Answer::misuse(
            kind,
            format!(
                "directory {} is not allowed: `..` could leave the repository; give the path \
                 from the repository root.",
                echo(raw)
            ),
        ),
        DirTargetError::Invalid(e) => invalid(kind, raw, &e),
        DirTargetError::BadGlob { kind: why, .. } => Answer::misuse(
            kind,
            format!("directory glob {} is invalid: {}.", echo(raw), plain(&why)),
        ),
    })
}

/// Policy set names are identifiers from policy files: letters, digits, `-`, `_`, `.`, `/`, `:`.
fn validate_policy_set(kind: CommandKind, raw: &str) -> Result<String, Answer> {
    let ok = raw.chars().count() <= 100
        && !raw.starts_with('-')
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Answer::misuse(
            kind,
            format!(
                "policy set {} is not a policy set name (letters, digits, `-`, `_`, `.`, `/`, `:`).",
                echo(raw)
            ),
        ))
    }
}

/// A value rejected by a `types` constructor. Its message quotes the raw value in back-ticks;
/// that quote is swapped for a safe [`echo`], so a value containing back-ticks or 10 KB of text
/// cannot break or flood the reply. The rest of the message is the constructor's own markdown,
/// whose only other user-derived text is an offending character printed with `{:?}` — which
/// for a back-tick is `'`'`, and would open a code span.
fn invalid(kind: CommandKind, raw: &str, err: &InvalidValue) -> Answer {
    // Control characters were refused before any constructor ran, so NUL cannot occur in `raw`
    // and is free to mark the spot.
    let marked = err.0.replace(&format!("`{raw}`"), "\u{0}");
    let parts: Vec<String> = marked
        .split('\u{0}')
        .map(|part| part.replace("'`'", "'ˋ'").replace('<', "&lt;"))
        .collect();
    Answer::misuse(kind, format!("{}.", parts.join(&echo(raw))))
}

// ---------------------------------------------------------------------------------------------
// Markdown helpers

/// Inline code for trusted text (bot name, synopses).
fn code(s: &str) -> String {
    if s.is_empty() {
        return "`\"\"`".to_string();
    }
    format!("`{s}`")
}

/// Inline code for text the user typed: at most [`ECHO_LIMIT`] characters, then neutralised
/// (a code span has no escape for back-ticks, so they are replaced by a look-alike).
fn echo(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(ECHO_LIMIT).map(neutral).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    code(&out)
}

/// Text derived from user input that appears outside code spans.
fn plain(s: &str) -> String {
    s.chars()
        .map(neutral)
        .collect::<String>()
        .replace('<', "&lt;")
}

fn neutral(c: char) -> char {
    match c {
        '`' => 'ˋ',
        // Bidirectional overrides could make the echo read differently from what was typed.
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
        c if c.is_control() => '\u{FFFD}',
        c => c,
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[CommandKind] = &CommandKind::ALL;

    fn ctx() -> ParseContext<'static> {
        ParseContext {
            bot_name: "sluice",
            bot_login: Some("sluice[bot]"),
            enabled: ALL,
        }
    }

    /// `import` and `state rm`: Atlantis' flags anywhere among the positional words, terraform
    /// options after `--` by each command's own list, `state` only with `rm`; the positional
    /// words are kept as typed (checked where the command runs, so refusals are audited) and
    /// written back by `canonical` so they parse to the same command.
    #[test]
    fn state_commands_grammar() {
        let ctx = ctx();
        let lines = [
            "sluice import null_resource.x 1234",
            "sluice import -p envs/a null_resource.x 1234 -- -lock=false -var region=eu",
            "sluice import null_resource.x -d envs/a -w blue 'id with space'",
            "sluice STATE RM module.net null_resource.a[0] -- -dry-run",
            "sluice state rm -p a 'aws_instance.web[\"eu\"]'",
            "sluice state",
            "sluice state list",
            "sluice import a.b c -- -state=other.tfstate",
            "sluice import a.b c -- -target=x",
            "sluice state rm a.b -- -var x=1",
            "sluice import a.b c --destroy",
        ];
        let out: Vec<String> = lines
            .iter()
            .map(|l| {
                let parsed = parse_comment(&ctx, l);
                let args = match &parsed {
                    Parsed::Command(c) => format!(" args={:?}", c.state_args),
                    _ => String::new(),
                };
                format!("{l}\n  => {}{args}", show(&ctx, &parsed))
            })
            .collect();
        insta::assert_snapshot!(out.join("\n"), @r#"
        sluice import null_resource.x 1234
          => import p=- d=- w=- v=false extra=[] args=["null_resource.x", "1234"]
        sluice import -p envs/a null_resource.x 1234 -- -lock=false -var region=eu
          => import p=envs/a d=- w=- v=false extra=["-lock=false", "-var", "region=eu"] args=["null_resource.x", "1234"]
        sluice import null_resource.x -d envs/a -w blue 'id with space'
          => import p=- d=envs/a w=blue v=false extra=[] args=["null_resource.x", "id with space"]
        sluice STATE RM module.net null_resource.a[0] -- -dry-run
          => state rm p=- d=- w=- v=false extra=["-dry-run"] args=["module.net", "null_resource.a[0]"]
        sluice state rm -p a 'aws_instance.web["eu"]'
          => state rm p=a d=- w=- v=false extra=[] args=["aws_instance.web[\"eu\"]"]
        sluice state
          => reply: **Error:** `state` is followed by `rm` (the one state command), but got nothing.
        sluice state list
          => reply: **Error:** `state` is followed by `rm` (the one state command), but got `list`.
        sluice import a.b c -- -state=other.tfstate
          => reply: **Error:** the terraform argument `-state=other.tfstate` is not allowed: it reads or writes state files outside the project's configured backend.
        sluice import a.b c -- -target=x
          => reply: **Error:** the terraform argument `-target=x` is not one `import` takes; it takes `-var`, `-var-file`, `-lock`, `-lock-timeout` and `-ignore-remote-version`.
        sluice state rm a.b -- -var x=1
          => reply: **Error:** the terraform argument `-var` is not one `state rm` takes; it takes `-dry-run`, `-lock`, `-lock-timeout` and `-ignore-remote-version`.
        sluice import a.b c --destroy
          => reply: **Error:** unknown flag `--destroy` for `import`. `--destroy` is only for `plan`: plan the destroy, then apply that plan.
        "#);
        for l in &lines[..5] {
            let Parsed::Command(c) = parse_comment(&ctx, l) else {
                panic!("{l} parses");
            };
            let again = parse_comment(&ctx, &c.canonical("sluice"));
            assert_eq!(again, Parsed::Command(c.clone()), "{l} round-trips");
        }
        assert_eq!(
            CommandKind::from_name("state_rm"),
            Some(CommandKind::StateRm)
        );
        assert_eq!(CommandKind::from_name("state rm"), None);
        assert_eq!(CommandKind::from_name("Import"), Some(CommandKind::Import));
    }

    /// Compact, readable form of a parse result: `ignore`, `usage`, `reply: <first line>`, or
    /// the command with every field.
    fn show(ctx: &ParseContext, parsed: &Parsed) -> String {
        match parsed {
            Parsed::Ignore => "ignore".to_string(),
            Parsed::Reply(r) if *r == usage(ctx) => "usage".to_string(),
            Parsed::Reply(r) => format!("reply: {}", r.lines().next().unwrap_or("")),
            Parsed::Command(c) if !c.kind.takes_targets() => c.kind.to_string(),
            Parsed::Command(c) => {
                let opt = |v: Option<&str>| v.unwrap_or("-").to_string();
                let t = &c.targets;
                let tail = if c.kind == CommandKind::ApprovePolicies {
                    format!("sets={:?}", c.policy_sets)
                } else {
                    format!("extra={:?}", c.extra_args)
                };
                let destroy = if c.destroy { " destroy" } else { "" };
                format!(
                    "{}{destroy} p={} d={} w={} v={} {tail}",
                    c.kind,
                    opt(t.project.as_ref().map(|p| p.as_str())),
                    opt(t.dir.as_ref().map(|d| d.as_str())),
                    opt(t.workspace.as_ref().map(|w| w.as_str())),
                    c.verbose,
                )
            }
        }
    }

    /// The one helper every case goes through. Also checks the properties that hold for every
    /// input: replies stay short, and a parsed command survives a round trip through its
    /// canonical form.
    fn check_in(ctx: &ParseContext, input: &str, expected: &str) -> Result<(), String> {
        let parsed = parse_comment(ctx, input);
        if let Parsed::Reply(r) = &parsed {
            assert!(
                r.len() < 4000,
                "reply too long for {input:.60?}: {} bytes",
                r.len()
            );
        }
        if let Parsed::Command(c) = &parsed {
            let again = parse_comment(ctx, &c.canonical(ctx.bot_name));
            assert_eq!(
                again,
                parsed,
                "round trip of {input:?} via {}",
                c.canonical("sluice")
            );
        }
        let got = show(ctx, &parsed);
        if got == expected {
            Ok(())
        } else {
            Err(format!(
                "input:    {:.120?}\nexpected: {expected}\ngot:      {got}\n",
                input
            ))
        }
    }

    fn check(input: &str, expected: &str) -> Result<(), String> {
        check_in(&ctx(), input, expected)
    }

    /// Runs every case and reports all failures at once.
    fn run(results: impl IntoIterator<Item = Result<(), String>>) -> usize {
        let mut count = 0;
        let failures: Vec<String> = results
            .into_iter()
            .inspect(|_| count += 1)
            .filter_map(Result::err)
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
        count
    }

    const P: &str = "p=- d=- w=- v=false extra=[]";

    #[test]
    fn grammar_table() {
        let plain_plan = format!("plan {P}");
        let cases: &[(&str, &str)] = &[
            // The commands, bare.
            ("sluice plan", &plain_plan),
            ("sluice apply", "apply p=- d=- w=- v=false extra=[]"),
            ("sluice unlock", "unlock"),
            ("sluice version", "version"),
            ("sluice rollback", "rollback"),
            ("Sluice Rollback", "rollback"),
            (
                "sluice approve_policies",
                "approve_policies p=- d=- w=- v=false sets=[]",
            ),
            // Usage.
            ("sluice", "usage"),
            ("sluice help", "usage"),
            ("sluice -h", "usage"),
            ("sluice --help", "usage"),
            ("sluice plan -h", "usage"),
            ("sluice plan -p net --help", "usage"),
            ("sluice unlock --help", "usage"),
            ("sluice rollback -h", "usage"),
            (
                "sluice help plan",
                "reply: **Error:** `help` takes no flags or arguments, but got `plan`.",
            ),
            // Every flag form.
            ("sluice plan -p net", "plan p=net d=- w=- v=false extra=[]"),
            (
                "sluice plan --project net",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan --project=net",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            ("sluice plan -p=net", "plan p=net d=- w=- v=false extra=[]"),
            (
                "sluice plan -d envs/prod",
                "plan p=- d=envs/prod w=- v=false extra=[]",
            ),
            (
                "sluice plan --dir=envs/prod",
                "plan p=- d=envs/prod w=- v=false extra=[]",
            ),
            (
                "sluice plan -w blue",
                "plan p=- d=- w=blue v=false extra=[]",
            ),
            (
                "sluice plan --workspace=blue",
                "plan p=- d=- w=blue v=false extra=[]",
            ),
            ("sluice plan --verbose", "plan p=- d=- w=- v=true extra=[]"),
            (
                "sluice apply -d envs/prod -w blue --verbose",
                "apply p=- d=envs/prod w=blue v=true extra=[]",
            ),
            (
                "sluice apply --verbose -w=blue --dir envs/prod",
                "apply p=- d=envs/prod w=blue v=true extra=[]",
            ),
            (
                "sluice approve_policies -p net --verbose",
                "approve_policies p=net d=- w=- v=true sets=[]",
            ),
            // Directory normalisation, quoting, globs.
            (
                "sluice plan -d ./envs/prod/",
                "plan p=- d=envs/prod w=- v=false extra=[]",
            ),
            (
                "sluice plan -d /envs//prod",
                "plan p=- d=envs/prod w=- v=false extra=[]",
            ),
            ("sluice plan -d /", "plan p=- d=. w=- v=false extra=[]"),
            (
                "sluice plan -d \"envs/my dir\"",
                "plan p=- d=envs/my dir w=- v=false extra=[]",
            ),
            (
                "sluice plan --dir='envs/my dir'",
                "plan p=- d=envs/my dir w=- v=false extra=[]",
            ),
            (
                "sluice plan -d 'envs/*'",
                "plan p=- d=envs/* w=- v=false extra=[]",
            ),
            (
                "sluice plan -d ./envs/**/net/",
                "plan p=- d=envs/**/net w=- v=false extra=[]",
            ),
            (
                "sluice plan -d 'envs/{prod,staging}'",
                "plan p=- d=envs/{prod,staging} w=- v=false extra=[]",
            ),
            (
                "sluice plan -d 'envs/[ab'",
                "reply: **Error:** directory glob `envs/[ab` is invalid: unclosed character class; missing ']'.",
            ),
            (
                "sluice plan -d 'envs/{a,b'",
                "reply: **Error:** directory glob `envs/{a,b` is invalid: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?).",
            ),
            (
                "sluice plan -d ../secrets",
                "reply: **Error:** directory `../secrets` is not allowed: `..` could leave the repository; give the path from the repository root.",
            ),
            (
                "sluice plan -d envs/../../x",
                "reply: **Error:** directory `envs/../../x` is not allowed: `..` could leave the repository; give the path from the repository root.",
            ),
            (
                "sluice plan -d 'envs/*/..'",
                "reply: **Error:** directory `envs/*/..` is not allowed: `..` could leave the repository; give the path from the repository root.",
            ),
            (
                "sluice plan -d 'envs\\prod'",
                "reply: **Error:** directory `envs\\prod` contains `\\`; use `/` between directories.",
            ),
            (
                "sluice plan -d 'a\u{7}b'",
                "reply: **Error:** the value of `-d`/`--dir` contains control characters.",
            ),
            // Workspace and project validation.
            (
                "sluice plan -w a/b",
                "reply: **Error:** workspace `a/b` is not allowed: it contains '/'; use letters, digits, '-', '_' and '.'.",
            ),
            (
                "sluice plan -w .",
                "reply: **Error:** workspace `.` is not allowed: it must not be `.` or contain `..`.",
            ),
            (
                "sluice plan -w a..b",
                "reply: **Error:** workspace `a..b` is not allowed: it must not be `.` or contain `..`.",
            ),
            (
                "sluice plan -w '~x'",
                "reply: **Error:** workspace `~x` is not allowed: it must not start with `-` or `~`.",
            ),
            (
                "sluice plan -w '$HOME'",
                "reply: **Error:** workspace `$HOME` is not allowed: it contains '$'; use letters, digits, '-', '_' and '.'.",
            ),
            (
                "sluice plan -w 'a b'",
                "reply: **Error:** workspace `a b` is not allowed: it contains ' '; use letters, digits, '-', '_' and '.'.",
            ),
            (
                "sluice plan -w 'a\\b'",
                "reply: **Error:** workspace `a\\b` is not allowed: it contains '\\\\'; use letters, digits, '-', '_' and '.'.",
            ),
            // Any name Sluice derives from a directory can be typed (quoted as a shell would, or
            // with the typographic quotes phones type).
            (
                "sluice plan -p 'net work'",
                "plan p=net work d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p 'a`b'",
                "plan p=a`b d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p “envs/eu west”",
                "plan p=envs/eu west d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p ‘envs/eu west’",
                "plan p=envs/eu west d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p „envs/eu west“",
                "plan p=envs/eu west d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p «envs/eu west»",
                "plan p=envs/eu west d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -d “envs/eu west” -w blue",
                "plan p=- d=envs/eu west w=blue v=false extra=[]",
            ),
            (
                "sluice plan --project=“a b”",
                "plan p=a b d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p bob’s",
                "plan p=bob’s d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p ‘bob’s dir’",
                "plan p=bob’s dir d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p envs/café+1@eu(2)",
                "plan p=envs/café+1@eu(2) d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p “envs/eu west",
                "reply: **Error:** this command has an unclosed quote (`'` or `\"`); quote values the way a shell would, e.g. `sluice plan -d \"envs/my dir\"`.",
            ),
            (
                "sluice plan -p envs/prod:blue",
                "plan p=envs/prod:blue d=- w=- v=false extra=[]",
            ),
            // Combinations, repeats, missing values, unknown flags, positionals.
            (
                "sluice plan -p net -d envs",
                "reply: **Error:** `-p` cannot be combined with `-d` or `-w`: a project already names its directory and workspace.",
            ),
            (
                "sluice plan -w blue -p net",
                "reply: **Error:** `-p` cannot be combined with `-d` or `-w`: a project already names its directory and workspace.",
            ),
            (
                "sluice plan -p net -p db",
                "reply: **Error:** `-p`/`--project` is given twice; give it once.",
            ),
            (
                "sluice plan --project net -p net",
                "reply: **Error:** `-p`/`--project` is given twice; give it once.",
            ),
            (
                "sluice plan -d a --dir=b",
                "reply: **Error:** `-d`/`--dir` is given twice; give it once.",
            ),
            (
                "sluice plan --verbose --verbose",
                "reply: **Error:** `--verbose` is given twice; give it once.",
            ),
            (
                "sluice plan --verbose=true",
                "reply: **Error:** `--verbose` takes no value; write just `--verbose`.",
            ),
            (
                "sluice plan -p",
                "reply: **Error:** `-p`/`--project` needs a value.",
            ),
            (
                "sluice plan -p -d envs",
                "reply: **Error:** `-p`/`--project` needs a value.",
            ),
            (
                "sluice plan --project=",
                "reply: **Error:** `-p`/`--project` needs a value.",
            ),
            (
                "sluice plan -d ''",
                "reply: **Error:** `-d`/`--dir` needs a value.",
            ),
            (
                "sluice plan -w -- -x",
                "reply: **Error:** `-w`/`--workspace` needs a value.",
            ),
            (
                "sluice plan --foo",
                "reply: **Error:** unknown flag `--foo` for `plan`.",
            ),
            (
                "sluice plan --projet net",
                "reply: **Error:** unknown flag `--projet` for `plan`. Did you mean `-p`/`--project`?",
            ),
            (
                "sluice plan -project net",
                "reply: **Error:** unknown flag `-project` for `plan`. Did you mean `-p`/`--project`?",
            ),
            (
                "sluice plan --Dir envs",
                "reply: **Error:** unknown flag `--Dir` for `plan`. Did you mean `-d`/`--dir`?",
            ),
            (
                "sluice plan -v",
                "reply: **Error:** unknown flag `-v` for `plan`. Did you mean `--verbose`?",
            ),
            (
                "sluice plan -pnet",
                "reply: **Error:** unknown flag `-pnet` for `plan`.",
            ),
            (
                "sluice plan --policy-set x",
                "reply: **Error:** unknown flag `--policy-set` for `plan`. `--policy-set` is only for `approve_policies`.",
            ),
            (
                "sluice plan net",
                "reply: **Error:** unexpected argument `net`; values go after a flag (`-p`, `-d`, `-w`) and terraform arguments after `--`.",
            ),
            (
                "sluice plan -p net extra",
                "reply: **Error:** unexpected argument `extra`; values go after a flag (`-p`, `-d`, `-w`) and terraform arguments after `--`.",
            ),
            (
                "sluice plan -",
                "reply: **Error:** unexpected argument `-`; values go after a flag (`-p`, `-d`, `-w`) and terraform arguments after `--`.",
            ),
            // approve_policies.
            (
                "sluice approve_policies --policy-set a --policy-set b",
                "approve_policies p=- d=- w=- v=false sets=[\"a\", \"b\"]",
            ),
            (
                "sluice approve_policies --policy-set=a --policy-set a -p net",
                "approve_policies p=net d=- w=- v=false sets=[\"a\"]",
            ),
            (
                "sluice approve_policies --policy-set 'no deletes'",
                "reply: **Error:** policy set `no deletes` is not a policy set name (letters, digits, `-`, `_`, `.`, `/`, `:`).",
            ),
            (
                "sluice approve_policies --policy-set",
                "reply: **Error:** `--policy-set` needs a value.",
            ),
            (
                "sluice approve_policies -- -target=x",
                "reply: **Error:** `approve_policies` does not run terraform, so it takes no arguments after `--`.",
            ),
            // Extra terraform arguments.
            (
                "sluice plan -- -target=module.db",
                "plan p=- d=- w=- v=false extra=[\"-target=module.db\"]",
            ),
            (
                "sluice plan -p net -- -var 'x=a b' -lock=false",
                "plan p=net d=- w=- v=false extra=[\"-var\", \"x=a b\", \"-lock=false\"]",
            ),
            (
                "sluice apply -- -h",
                "reply: **Error:** `apply` takes no terraform arguments (got `-h`): it applies the saved plan exactly as it was reviewed. To apply part of a change, plan that part (`plan -- -target=ADDRESS`) and apply that plan.",
            ),
            ("sluice plan --", &plain_plan),
            (
                "sluice plan -- -chdir=/tmp",
                "reply: **Error:** the terraform argument `-chdir=/tmp` is not allowed: it would run terraform in another directory than the project Sluice planned and locked.",
            ),
            (
                "sluice plan -- --chdir /tmp",
                "reply: **Error:** the terraform argument `--chdir` is not allowed: it would run terraform in another directory than the project Sluice planned and locked.",
            ),
            (
                "sluice plan -- -CHDIR=x",
                "reply: **Error:** the terraform argument `-CHDIR=x` is not allowed: it would run terraform in another directory than the project Sluice planned and locked.",
            ),
            (
                "sluice plan -- -target=a ' -chdir=x'",
                "reply: **Error:** the terraform argument ` -chdir=x` is not allowed: it would run terraform in another directory than the project Sluice planned and locked.",
            ),
            (
                "sluice plan -- -plugin-dir=/tmp/p",
                "reply: **Error:** the terraform argument `-plugin-dir=/tmp/p` is not allowed: it would load providers from a directory of the PR's choosing instead of the trusted provider cache.",
            ),
            (
                "sluice plan -- --plugin-dir x",
                "reply: **Error:** the terraform argument `--plugin-dir` is not allowed: it would load providers from a directory of the PR's choosing instead of the trusted provider cache.",
            ),
            (
                "sluice plan -- --Plugin_Dir=x",
                "reply: **Error:** the terraform argument `--Plugin_Dir=x` is not allowed: it would load providers from a directory of the PR's choosing instead of the trusted provider cache.",
            ),
            (
                "sluice plan -- -state=other.tfstate",
                "reply: **Error:** the terraform argument `-state=other.tfstate` is not allowed: it reads or writes state files outside the project's configured backend.",
            ),
            (
                "sluice plan -- -state-out=x",
                "reply: **Error:** the terraform argument `-state-out=x` is not allowed: it reads or writes state files outside the project's configured backend.",
            ),
            (
                "sluice plan -- -backup=x",
                "reply: **Error:** the terraform argument `-backup=x` is not allowed: it reads or writes state files outside the project's configured backend.",
            ),
            (
                "sluice plan -- -out=x.tfplan",
                "reply: **Error:** the terraform argument `-out=x.tfplan` is not allowed: Sluice saves the plan itself, so that what is applied is exactly the plan that was reviewed.",
            ),
            (
                "sluice apply -- -target=null_resource.a",
                "reply: **Error:** `apply` takes no terraform arguments (got `-target=null_resource.a`): it applies the saved plan exactly as it was reviewed. To apply part of a change, plan that part (`plan -- -target=ADDRESS`) and apply that plan.",
            ),
            (
                "sluice apply -p net -- -replace=a.b",
                "reply: **Error:** `apply` takes no terraform arguments (got `-replace=a.b`): it applies the saved plan exactly as it was reviewed. To apply part of a change, plan that part (`plan -- -target=ADDRESS`) and apply that plan.",
            ),
            (
                "sluice apply --",
                "reply: **Error:** `apply` takes no terraform arguments (got `--`): it applies the saved plan exactly as it was reviewed. To apply part of a change, plan that part (`plan -- -target=ADDRESS`) and apply that plan.",
            ),
            (
                "sluice apply -- -chdir=x",
                "reply: **Error:** `apply` takes no terraform arguments (got `-chdir=x`): it applies the saved plan exactly as it was reviewed. To apply part of a change, plan that part (`plan -- -target=ADDRESS`) and apply that plan.",
            ),
            (
                "sluice plan -- -target=null_resource.a -- -destroy",
                "reply: **Error:** a second `--`: everything after the first `--` is terraform arguments, written once.",
            ),
            (
                "sluice plan -- --",
                "reply: **Error:** a second `--`: everything after the first `--` is terraform arguments, written once.",
            ),
            (
                "sluice plan -- destroy",
                "reply: **Error:** unexpected word `destroy` after `--`: terraform arguments are flags such as `-target=ADDRESS`, and a value goes right after its flag (`-var 'name=value'`).",
            ),
            (
                "sluice plan -- -target=a b",
                "reply: **Error:** unexpected word `b` after `--`: terraform arguments are flags such as `-target=ADDRESS`, and a value goes right after its flag (`-var 'name=value'`).",
            ),
            (
                "sluice plan -- -destroy main.tfplan",
                "reply: **Error:** unexpected word `main.tfplan` after `--`: terraform arguments are flags such as `-target=ADDRESS`, and a value goes right after its flag (`-var 'name=value'`).",
            ),
            (
                "sluice plan -- -",
                "reply: **Error:** unexpected word `-` after `--`: terraform arguments are flags such as `-target=ADDRESS`, and a value goes right after its flag (`-var 'name=value'`).",
            ),
            (
                "sluice plan -- -json",
                "reply: **Error:** the terraform argument `-json` is not one `plan` takes; it takes `-target`, `-replace`, `-var`, `-var-file`, `-destroy`, `-refresh-only`, `-refresh`, `-lock`, `-lock-timeout`, `-parallelism` and `-compact-warnings`.",
            ),
            (
                "sluice plan -- -detailed-exitcode",
                "reply: **Error:** the terraform argument `-detailed-exitcode` is not one `plan` takes; it takes `-target`, `-replace`, `-var`, `-var-file`, `-destroy`, `-refresh-only`, `-refresh`, `-lock`, `-lock-timeout`, `-parallelism` and `-compact-warnings`.",
            ),
            (
                "sluice plan -- -generate-config-out=g.tf",
                "reply: **Error:** the terraform argument `-generate-config-out=g.tf` is not one `plan` takes; it takes `-target`, `-replace`, `-var`, `-var-file`, `-destroy`, `-refresh-only`, `-refresh`, `-lock`, `-lock-timeout`, `-parallelism` and `-compact-warnings`.",
            ),
            (
                "sluice plan -- -Target=a",
                "reply: **Error:** the terraform argument `-Target=a` is not one `plan` takes; it takes `-target`, `-replace`, `-var`, `-var-file`, `-destroy`, `-refresh-only`, `-refresh`, `-lock`, `-lock-timeout`, `-parallelism` and `-compact-warnings`.",
            ),
            (
                "sluice plan -- -input=true",
                "reply: **Error:** the terraform argument `-input=true` is not one `plan` takes; it takes `-target`, `-replace`, `-var`, `-var-file`, `-destroy`, `-refresh-only`, `-refresh`, `-lock`, `-lock-timeout`, `-parallelism` and `-compact-warnings`.",
            ),
            (
                "sluice plan -- -destroy=yes",
                "reply: **Error:** `-destroy` takes no value, but got `-destroy=yes`.",
            ),
            (
                "sluice plan -- -lock=no",
                "reply: **Error:** `-lock` is `true` or `false` (`-lock=false`), but got `-lock=no`.",
            ),
            (
                "sluice plan -- -target",
                "reply: **Error:** `-target` needs a value (`-target=VALUE`).",
            ),
            (
                "sluice plan -- -target=",
                "reply: **Error:** `-target` needs a value (`-target=VALUE`).",
            ),
            (
                "sluice plan -- -var-file=/etc/passwd",
                "reply: **Error:** the var file `/etc/passwd` is not allowed: give a path inside the project, without `..`.",
            ),
            (
                "sluice plan -- -var-file ../secrets.tfvars",
                "reply: **Error:** the var file `../secrets.tfvars` is not allowed: give a path inside the project, without `..`.",
            ),
            (
                "sluice plan -- -target null_resource.a --replace=a.b -lock=false -refresh=true -var-file=prod.tfvars -lock-timeout 30s -parallelism=4 -compact-warnings -refresh-only",
                "plan p=- d=- w=- v=false extra=[\"-target\", \"null_resource.a\", \"--replace=a.b\", \"-lock=false\", \"-refresh=true\", \"-var-file=prod.tfvars\", \"-lock-timeout\", \"30s\", \"-parallelism=4\", \"-compact-warnings\", \"-refresh-only\"]",
            ),
            // Destroy plans: one project, named; `-- -destroy` is the same request.
            (
                "sluice plan -p net --destroy",
                "plan destroy p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan --destroy -p net",
                "plan destroy p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p net -- -destroy",
                "plan destroy p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p net -- --destroy",
                "plan destroy p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -d envs/a -w blue --destroy -- -target=null_resource.a",
                "plan destroy p=- d=envs/a w=blue v=false extra=[\"-target=null_resource.a\"]",
            ),
            (
                "sluice plan -p 'envs/eu west' --destroy",
                "plan destroy p=envs/eu west d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan --destroy",
                "reply: **Error:** a destroy plan names the project it destroys: write `plan -p PROJECT --destroy` (or `-d DIR` with an exact directory).",
            ),
            (
                "sluice plan -- -destroy",
                "reply: **Error:** a destroy plan names the project it destroys: write `plan -p PROJECT --destroy` (or `-d DIR` with an exact directory).",
            ),
            (
                "sluice plan -w blue --destroy",
                "reply: **Error:** a destroy plan names the project it destroys: write `plan -p PROJECT --destroy` (or `-d DIR` with an exact directory).",
            ),
            (
                "sluice plan -d 'envs/*' --destroy",
                "reply: **Error:** a destroy plan names one directory, not a glob: write `plan -p PROJECT --destroy` (or `-d DIR` with an exact directory).",
            ),
            (
                "sluice plan -p net --destroy --destroy",
                "reply: **Error:** `--destroy` is given twice; give it once.",
            ),
            (
                "sluice plan -p net --destroy -- -destroy",
                "reply: **Error:** `--destroy` and `-- -destroy` ask for the same destroy plan; give `--destroy` once.",
            ),
            (
                "sluice plan -p net --destroy=yes",
                "reply: **Error:** `--destroy` takes no value; write just `--destroy`.",
            ),
            (
                "sluice plan -p net --destroy -- -refresh-only",
                "reply: **Error:** `--destroy` and `-refresh-only` contradict each other: a refresh-only plan changes no resource.",
            ),
            (
                "sluice apply -p net --destroy",
                "reply: **Error:** unknown flag `--destroy` for `apply`. `--destroy` is only for `plan`: plan the destroy, then apply that plan.",
            ),
            (
                "sluice approve_policies -p net --destroy",
                "reply: **Error:** unknown flag `--destroy` for `approve_policies`. `--destroy` is only for `plan`: plan the destroy, then apply that plan.",
            ),
            (
                "sluice plan -- -var 'x=a\tb'",
                "reply: **Error:** the terraform argument `x=a�b` contains control characters.",
            ),
            (
                "sluice unlock -- -x",
                "reply: **Error:** `unlock` takes no flags or arguments, but got `--`.",
            ),
            (
                "sluice version -p net",
                "reply: **Error:** `version` takes no flags or arguments, but got `-p`.",
            ),
            (
                "sluice unlock now",
                "reply: **Error:** `unlock` takes no flags or arguments, but got `now`.",
            ),
            // `rollback` reverts the pull request it is commented on: no number, no flags
            // (`--pr N` is the command line's).
            (
                "sluice rollback --pr 3",
                "reply: **Error:** `rollback` takes no flags or arguments, but got `--pr`.",
            ),
            (
                "sluice rollback 3",
                "reply: **Error:** `rollback` takes no flags or arguments, but got `3`.",
            ),
            // Name forms: case, @login, back-ticks, whitespace.
            ("Sluice Plan", &plain_plan),
            (
                "SLUICE APPLY -p net",
                "apply p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice PLAN -P net",
                "reply: **Error:** unknown flag `-P` for `plan`. Did you mean `-p`/`--project`?",
            ),
            ("@sluice plan", &plain_plan),
            ("@sluice[bot] plan", &plain_plan),
            ("@Sluice[BOT] unlock", "unlock"),
            ("@sluice", "usage"),
            ("@someone plan", "ignore"),
            ("@sluicebot plan", "ignore"),
            ("`sluice plan`", &plain_plan),
            (
                "```sluice plan -p net```",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            ("` sluice unlock `", "unlock"),
            ("`sluice plan", &plain_plan),
            (
                "sluice plan -- -var 'x=`y`'",
                "plan p=- d=- w=- v=false extra=[\"-var\", \"x=`y`\"]",
            ),
            ("  sluice plan  \n\n  \n", &plain_plan),
            ("\r\n\nsluice plan\r\n", &plain_plan),
            (
                "sluice\tplan\t-p\tnet",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice\u{a0}plan\u{a0}-p\u{a0}net",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            ("sluice plan # after the fix", &plain_plan),
            // What GitHub does not display is not read; conversation addressed to Sluice is
            // answered with why it was not run, other conversation stays silent.
            (
                "sluice apply\n<!-- saved reply: deploy -->",
                "apply p=- d=- w=- v=false extra=[]",
            ),
            (
                "<!-- synced by bot -->\nsluice plan -p net\n<!-- id: 42 -->\n",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan<!-- x --> -p net",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice apply\n<!-- never closed\nsecond line",
                "apply p=- d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan   \r\n   \r\n\t",
                "plan p=- d=- w=- v=false extra=[]",
            ),
            ("\u{FEFF}sluice plan", "plan p=- d=- w=- v=false extra=[]"),
            (
                "\u{200B}sluice\u{200B} apply\u{200D}",
                "apply p=- d=- w=- v=false extra=[]",
            ),
            (
                "sluice plan -p\u{200B} net\n\u{2060}\n",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            (
                "sluice pl\u{00AD}an\u{200E}",
                "plan p=- d=- w=- v=false extra=[]",
            ),
            ("sluice unlock\n\u{FEFF}\n<!-- -->\n \u{200C}", "unlock"),
            (
                "sluice plan\nthanks!",
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `sluice plan`. Comment the command by itself, and anything else in another comment.",
            ),
            (
                "sluice plan\r\nsecond line",
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `sluice plan`. Comment the command by itself, and anything else in another comment.",
            ),
            (
                "Please run:\nsluice plan",
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `sluice plan`. Comment the command by itself, and anything else in another comment.",
            ),
            (
                "@sluice apply\nfor the release",
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `@sluice apply`. Comment the command by itself, and anything else in another comment.",
            ),
            (
                "sluice apply\n<!-- a -->\nshipping it",
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `sluice apply`. Comment the command by itself, and anything else in another comment.",
            ),
            (
                "`sluice plan -p net`\nthen apply",
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `ˋsluice plan -p netˋ`. Comment the command by itself, and anything else in another comment.",
            ),
            ("```\nsluice plan\n```", "ignore"),
            ("> sluice plan\nwhy did this fail?", "ignore"),
            ("we should\nrun terraform plan", "ignore"),
            ("<!-- sluice plan -->", "ignore"),
            ("```\nsluice plan\n```", "ignore"),
            ("I think sluice plan is broken", "ignore"),
            ("LGTM", "ignore"),
            ("", "ignore"),
            ("   \n\t \n ", "ignore"),
            ("``", "ignore"),
            ("sluiceplan", "ignore"),
            ("> sluice plan", "ignore"),
            // Did you mean: habits and near-misses of the name (punctuation after the name is a
            // near-miss too: `sluice: plan` is clearly meant for the bot).
            (
                "terraform plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `terraform`.",
            ),
            (
                "Terraform Apply -target=x",
                "reply: Did you mean `sluice apply`? Sluice only reads comments that start with `sluice` or `@sluice`, not `Terraform`.",
            ),
            (
                "tofu plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `tofu`.",
            ),
            (
                "atlantis unlock",
                "reply: Did you mean `sluice unlock`? Sluice only reads comments that start with `sluice` or `@sluice`, not `atlantis`.",
            ),
            (
                "slice plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `slice`.",
            ),
            (
                "sluce apply -p net",
                "reply: Did you mean `sluice apply`? Sluice only reads comments that start with `sluice` or `@sluice`, not `sluce`.",
            ),
            (
                "lsuice plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `lsuice`.",
            ),
            (
                "sluice, plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `sluice,`.",
            ),
            (
                "sluice: plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `sluice:`.",
            ),
            (
                "sluicy: plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `sluicy:`.",
            ),
            ("terraform plan output looks odd", "ignore"),
            ("terraform help", "ignore"),
            ("terraform is great", "ignore"),
            ("sluice's plan looks wrong", "ignore"),
            ("slice the cake", "ignore"),
            ("juice plan tomorrow?", "ignore"),
            (
                "sliced plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `sliced`.",
            ),
            ("spliced plan", "ignore"),
            ("@slice plan", "ignore"),
            // Commands: near-misses, unknown, misplaced flags.
            (
                "sluice pln",
                "reply: **Error:** unknown command `pln`. Did you mean `sluice plan`?",
            ),
            (
                "sluice aply -p net",
                "reply: **Error:** unknown command `aply`. Did you mean `sluice apply`?",
            ),
            (
                "sluice approve-policies",
                "reply: **Error:** unknown command `approve-policies`. Did you mean `sluice approve_policies`?",
            ),
            (
                "sluice plän",
                "reply: **Error:** unknown command `plän`. Did you mean `sluice plan`?",
            ),
            (
                "sluice deploy",
                "reply: **Error:** unknown command `deploy`.",
            ),
            ("sluice 🚀", "reply: **Error:** unknown command `🚀`."),
            (
                "sluice `rm` -rf",
                "reply: **Error:** unknown command `ˋrmˋ`.",
            ),
            (
                "sluice -p net",
                "reply: **Error:** expected a command after `sluice`, found the flag `-p`.",
            ),
            (
                "sluice plan -d 'envs/my dir",
                "reply: **Error:** this command has an unclosed quote (`'` or `\"`); quote values the way a shell would, e.g. `sluice plan -d \"envs/my dir\"`.",
            ),
            (
                "sluice plan -p \u{202E}ten",
                "reply: **Error:** project name `\u{FFFD}ten` contains '\\u{202e}', which no project name holds.",
            ),
        ];
        let n = run(cases.iter().map(|(input, expected)| check(input, expected)));
        assert!(n >= 60, "only {n} cases");
    }

    #[test]
    fn long_and_hostile_input() {
        let mb = "a".repeat(1 << 20);
        let long_word = "x".repeat(500);
        let echoed = format!("`{}…`", "x".repeat(ECHO_LIMIT));
        let too_long = |len: usize| {
            format!(
                "reply: **Error:** this command is {len} bytes long; Sluice reads commands of up \
                 to {MAX_COMMAND_LEN} bytes."
            )
        };
        let cases = [
            // 1 MB single line addressed to the bot: a short error, nothing echoed.
            check(&format!("sluice plan -- {mb}"), &too_long(mb.len() + 8)),
            check(&format!("sluice {mb}"), &too_long(mb.len())),
            check(&format!("@sluice plan -p {mb}"), &too_long(mb.len() + 8)),
            // 1 MB that is not addressed to the bot, or is multi-line: nothing.
            check(&mb, "ignore"),
            check(
                &format!("sluice plan\n{mb}"),
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `sluice plan`. Comment the command by itself, and anything else in another comment.",
            ),
            check(
                &format!("{mb}\nsluice plan"),
                "reply: **Not run:** Sluice runs a command only when it is the whole comment, on one line; this comment shows 2 lines, one of them `sluice plan`. Comment the command by itself, and anything else in another comment.",
            ),
            check(&format!("@{mb} plan"), "ignore"),
            check(&format!("{mb} plan"), "ignore"),
            check(&"`".repeat(1 << 20), "ignore"),
            check(&" ".repeat(1 << 20), "ignore"),
            // A near-miss followed by a huge flag still gets a short answer.
            check(
                &format!("terraform plan -{mb}"),
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with \
                 `sluice` or `@sluice`, not `terraform`.",
            ),
            // Echoed user text is cut at ECHO_LIMIT characters.
            check(
                &format!("sluice {long_word}"),
                &format!("reply: **Error:** unknown command {echoed}."),
            ),
            check(
                &format!("sluice plan -- -chdir={long_word}"),
                &format!(
                    "reply: **Error:** the terraform argument `-chdir={}…` is not allowed: it \
                     would run terraform in another directory than the project Sluice planned \
                     and locked.",
                    "x".repeat(ECHO_LIMIT - "-chdir=".len())
                ),
            ),
            check(
                &format!("sluice plan -w {long_word}"),
                &format!(
                    "reply: **Error:** workspace {echoed} is not allowed: it is longer than 90 \
                     characters."
                ),
            ),
        ];
        run(cases);
    }

    #[test]
    fn restricted_server() {
        let ctx = ParseContext {
            bot_name: "sluice",
            bot_login: None,
            enabled: &[CommandKind::Plan, CommandKind::Unlock],
        };
        let c = |input: &str, expected: &str| check_in(&ctx, input, expected);
        let n = run([
            c("sluice plan", &format!("plan {P}")),
            c("sluice unlock", "unlock"),
            c(
                "sluice apply -p net",
                "reply: **Error:** `sluice apply` is disabled on this server.",
            ),
            c(
                "sluice approve_policies",
                "reply: **Error:** `sluice approve_policies` is disabled on this server.",
            ),
            c(
                "sluice version",
                "reply: **Error:** `sluice version` is disabled on this server.",
            ),
            c("sluice help", "usage"),
            c("sluice", "usage"),
            // Suggestions only name enabled commands.
            c("sluice aply", "reply: **Error:** unknown command `aply`."),
            c(
                "sluice unlok",
                "reply: **Error:** unknown command `unlok`. Did you mean `sluice unlock`?",
            ),
            // Without a known login, no @-mention is taken as a command.
            c("@sluice plan", "ignore"),
            c(
                "terraform plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice`, not `terraform`.",
            ),
        ]);
        assert_eq!(n, 11);
    }

    #[test]
    fn other_names_and_logins() {
        let atlantis = ParseContext::new("atlantis");
        let custom = ParseContext {
            bot_name: "sluice",
            bot_login: Some("infra-bot"),
            enabled: ALL,
        };
        run([
            check_in(
                &atlantis,
                "atlantis plan -p net",
                "plan p=net d=- w=- v=false extra=[]",
            ),
            check_in(
                &atlantis,
                "Atlantis apply",
                "apply p=- d=- w=- v=false extra=[]",
            ),
            check_in(
                &atlantis,
                "terraform plan",
                "reply: Did you mean `atlantis plan`? Sluice only reads comments that start with `atlantis`, not `terraform`.",
            ),
            check_in(
                &atlantis,
                "atlantas plan",
                "reply: Did you mean `atlantis plan`? Sluice only reads comments that start with `atlantis`, not `atlantas`.",
            ),
            check_in(&atlantis, "sluice plan", "ignore"),
            check_in(
                &atlantis,
                "atlantis pln",
                "reply: **Error:** unknown command `pln`. Did you mean `atlantis plan`?",
            ),
            check_in(&custom, "@infra-bot plan", &format!("plan {P}")),
            check_in(&custom, "@INFRA-BOT unlock", "unlock"),
            check_in(&custom, "sluice plan", &format!("plan {P}")),
            check_in(
                &custom,
                "infra-bot plan",
                "reply: Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@infra-bot`, not `infra-bot`.",
            ),
            check_in(&ParseContext::new(""), "plan", "ignore"),
            check_in(&ParseContext::new(""), "", "ignore"),
        ]);
    }

    /// Every combination of awkward fragments: no panic, and every reply is short.
    #[test]
    fn never_panics() {
        let fragments = [
            "sluice",
            "@sluice[bot]",
            "`",
            "\"",
            "'",
            "\\",
            "--",
            "-",
            "-p",
            "-d=",
            "-w",
            "=",
            "plan",
            "approve_policies",
            "unlock",
            "..",
            "*",
            "[",
            "{",
            "\u{0}",
            "\u{202E}",
            "é",
            "🚀",
            "\u{a0}",
            "\n",
            "\r",
            " ",
            "#",
            "-chdir",
            "terraform",
            "slice",
        ];
        let mut count = 0;
        for a in fragments {
            for b in fragments {
                for c in fragments {
                    for d in [" net", "\n"] {
                        let input = format!("{a} {b}{c} {b}{d}");
                        if let Parsed::Reply(r) = parse_comment(&ctx(), &input) {
                            assert!(r.len() < 4000, "{input:?}");
                        }
                        count += 1;
                    }
                }
            }
        }
        assert!(count > 50_000);
    }

    #[test]
    fn blocked_extra_args_every_spelling() {
        for arg in [
            "-chdir",
            "--chdir",
            "-chdir=x",
            "--chdir=x",
            "-CHDIR",
            "---chdir",
            " -chdir",
            "-plugin-dir",
            "--plugin-dir=x",
            "-PLUGIN-DIR=x",
            "-plugin_dir",
            "-state",
            "--state=x",
            "-state-out=x",
            "-backup=x",
            "-out=p",
        ] {
            assert!(
                blocked_extra_arg(arg).is_some(),
                "{arg:?} should be blocked"
            );
        }
        for arg in [
            "-target=x",
            "-var",
            "x=-chdir",
            "chdir",
            "-lock=false",
            "-replace=a.b",
            "-outx",
            "-chdir-ish",
            "",
            "-",
            "--",
        ] {
            assert!(blocked_extra_arg(arg).is_none(), "{arg:?} should pass");
        }
    }

    /// Every hint Sluice prints for a project is written by the grammar and parses back to
    /// that project, for names derived from any directory a repository can hold.
    #[test]
    fn project_hints_parse_back_to_their_project() {
        let names = [
            "envs/eu west",
            "envs/café",
            "envs/Zürich/db",
            "envs/東京",
            "svc+1",
            "team@eu",
            "app (legacy)",
            "bob’s dir",
            "it's",
            "a\"b",
            "a`b",
            "$HOME/#1",
            "x=y",
            "envs/eu west:blue",
            "root",
            "-edge",
            "--x",
            "-p",
            "envs/-x",
        ];
        for name in names {
            let name = ProjectName::new(name).unwrap();
            for kind in [
                CommandKind::Plan,
                CommandKind::Apply,
                CommandKind::ApprovePolicies,
            ] {
                let hint = project_hint("sluice", kind, &name);
                let Parsed::Command(c) = parse_comment(&ctx(), &hint) else {
                    panic!("{hint:?} does not parse");
                };
                assert_eq!(
                    (c.kind, c.targets.project.as_ref()),
                    (kind, Some(&name)),
                    "{hint}"
                );
            }
        }
        assert_eq!(
            project_hint(
                "sluice",
                CommandKind::Apply,
                &ProjectName::new("envs/eu west").unwrap()
            ),
            "sluice apply -p 'envs/eu west'"
        );
        for name in names {
            let name = ProjectName::new(name).unwrap();
            for set in ["prod-needs-two", "team/no-destroy", "a.b:c_d"] {
                let hint = approve_policies_hint("sluice", &name, set);
                let Parsed::Command(c) = parse_comment(&ctx(), &hint) else {
                    panic!("{hint:?} does not parse");
                };
                assert_eq!(
                    (c.kind, c.targets.project.as_ref(), c.policy_sets.as_slice()),
                    (
                        CommandKind::ApprovePolicies,
                        Some(&name),
                        &[set.to_string()][..]
                    ),
                    "{hint}"
                );
            }
        }
    }

    #[test]
    fn targets_helpers() {
        let Parsed::Command(c) = parse_comment(&ctx(), "sluice plan -d 'envs/*'") else {
            panic!("expected a command");
        };
        assert!(c.targets.dir_is_glob());
        assert!(!c.targets.is_all());
        assert_eq!(c.canonical("sluice"), "sluice plan -d 'envs/*'");
        let Parsed::Command(c) = parse_comment(&ctx(), "sluice plan") else {
            panic!("expected a command");
        };
        assert!(c.targets.is_all());
        assert!(!c.targets.dir_is_glob());
    }

    /// `plan`, `apply` and `approve_policies` read the same flags into the same targets — one
    /// compiled `DirTarget` — and refuse the same bad ones with the same words.
    #[test]
    fn the_targeted_commands_read_targets_alike() {
        for flags in [
            "-d 'envs/*'",
            "-d 'envs/**'",
            "-d 'envs/[ab]'",
            "-d ./envs/a/ -w blue",
            "-p net",
            "-d 'envs/[x'",
            "-p net -d envs/a",
            "-d envs/../x",
        ] {
            let answers: Vec<String> = ["plan", "apply", "approve_policies"]
                .iter()
                .map(
                    |cmd| match parse_comment(&ctx(), &format!("sluice {cmd} {flags}")) {
                        Parsed::Command(c) => format!("{:?}", c.targets),
                        Parsed::Reply(r) => r.lines().next().unwrap_or("").to_string(),
                        Parsed::Ignore => "ignore".to_string(),
                    },
                )
                .collect();
            assert!(
                answers.iter().all(|a| a == &answers[0]),
                "{flags}: {answers:#?}"
            );
        }
    }

    /// What users actually see, for reviewers: usage and representative replies.
    #[test]
    fn replies_users_see() {
        let restricted = ParseContext {
            bot_name: "sluice",
            bot_login: None,
            enabled: &[CommandKind::Plan, CommandKind::Unlock],
        };
        let reply = |ctx: &ParseContext, input: &str| match parse_comment(ctx, input) {
            Parsed::Reply(r) => r,
            other => panic!("expected a reply to {input:?}, got {other:?}"),
        };
        insta::assert_snapshot!(usage(&ctx()), @"
        **Sluice commands.** Comment one command on a line by itself, starting with `sluice` or `@sluice`:

        | Command | What it does |
        |---|---|
        | `sluice plan` | Plan every project this PR changes, or only the targeted ones |
        | `sluice apply` | Apply the saved plans not applied yet, or only the targeted ones |
        | `sluice import` | Import an existing resource into one project's state (needs what `apply` needs) |
        | `sluice state rm` | Remove resources from one project's state (needs what `apply` needs) |
        | `sluice unlock` | Release this PR's locks and discard its plans |
        | `sluice approve_policies` | Override failing policies (policy owners only) |
        | `sluice rollback` | On a merged pull request: open a pull request that reverts it |
        | `sluice version` | Show the terraform/tofu version of each project |
        | `sluice help` | Show this message |

        Flags for `plan`, `apply`, `import`, `state rm` and `approve_policies`:
        * `-p`, `--project NAME` — only this project (not with `-d` or `-w`)
        * `-d`, `--dir DIR` — only projects in this directory, relative to the repository root; may be a glob such as `envs/*`
        * `-w`, `--workspace NAME` — only this workspace
        * `--verbose` — include the full terraform output
        * `--destroy` — `plan` only, with `-p` (or an exact `-d`): a destroy plan of that project; for a project this PR removes, from the base branch's configuration
        * `--policy-set NAME` — `approve_policies` only: override just this policy set (repeatable)
        * `-- ARGS` — `plan`, `import` and `state rm` only: terraform arguments, each once after one `--` (`plan`: `-target`, `-replace`, `-var`, `-var-file`, `-destroy`, `-refresh-only`, `-refresh`, `-lock`, `-lock-timeout`, `-parallelism` and `-compact-warnings`; `import`: `-var`, `-var-file`, `-lock`, `-lock-timeout` and `-ignore-remote-version`; `state rm`: `-dry-run`, `-lock`, `-lock-timeout` and `-ignore-remote-version`)

        Examples: `sluice plan -p network`, `sluice plan -d envs/prod -w blue`, `sluice plan -d 'envs/*' -- -target=module.db`, `sluice apply`, `sluice import -p network aws_vpc.main vpc-0a1b2c`, `sluice state rm -p network aws_vpc.old`
        ");
        insta::assert_snapshot!(usage(&restricted), @"
        **Sluice commands.** Comment one command on a line by itself, starting with `sluice`:

        | Command | What it does |
        |---|---|
        | `sluice plan` | Plan every project this PR changes, or only the targeted ones |
        | `sluice unlock` | Release this PR's locks and discard its plans |
        | `sluice help` | Show this message |

        Flags for `plan`:
        * `-p`, `--project NAME` — only this project (not with `-d` or `-w`)
        * `-d`, `--dir DIR` — only projects in this directory, relative to the repository root; may be a glob such as `envs/*`
        * `-w`, `--workspace NAME` — only this workspace
        * `--verbose` — include the full terraform output
        * `--destroy` — `plan` only, with `-p` (or an exact `-d`): a destroy plan of that project; for a project this PR removes, from the base branch's configuration
        * `-- ARGS` — `plan` only: terraform arguments, each once after one `--` (`plan`: `-target`, `-replace`, `-var`, `-var-file`, `-destroy`, `-refresh-only`, `-refresh`, `-lock`, `-lock-timeout`, `-parallelism` and `-compact-warnings`)

        Examples: `sluice plan -p network`, `sluice plan -d envs/prod -w blue`, `sluice plan -d 'envs/*' -- -target=module.db`

        Disabled on this server: `apply`, `import`, `state rm`, `approve_policies`, `rollback`, `version`.
        ");
        insta::assert_snapshot!(reply(&ctx(), "sluice plan --projet net"), @"
        **Error:** unknown flag `--projet` for `plan`. Did you mean `-p`/`--project`?

        Usage: `sluice plan [-p PROJECT | [-d DIR] [-w WORKSPACE]] [--destroy] [--verbose] [-- TERRAFORM_ARGS]`

        Run `sluice help` for all commands and flags.
        ");
        insta::assert_snapshot!(reply(&ctx(), "sluice plan -p net -d envs/prod"), @"
        **Error:** `-p` cannot be combined with `-d` or `-w`: a project already names its directory and workspace.

        Usage: `sluice plan [-p PROJECT | [-d DIR] [-w WORKSPACE]] [--destroy] [--verbose] [-- TERRAFORM_ARGS]`

        Run `sluice help` for all commands and flags.
        ");
        insta::assert_snapshot!(reply(&ctx(), "sluice apply -- -chdir=/etc"), @"
        **Error:** `apply` takes no terraform arguments (got `-chdir=/etc`): it applies the saved plan exactly as it was reviewed. To apply part of a change, plan that part (`plan -- -target=ADDRESS`) and apply that plan.

        Usage: `sluice apply [-p PROJECT | [-d DIR] [-w WORKSPACE]] [--verbose]`

        Run `sluice help` for all commands and flags.
        ");
        insta::assert_snapshot!(reply(&restricted, "sluice apply"), @r#"
        **Error:** `sluice apply` is disabled on this server.

        Enabled commands: `plan`, `unlock`, `help`. Run `sluice help` for usage.
        "#);
        insta::assert_snapshot!(reply(&ctx(), "sluice pln"), @"
        **Error:** unknown command `pln`. Did you mean `sluice plan`?

        Enabled commands: `plan`, `apply`, `import`, `state rm`, `unlock`, `approve_policies`, `rollback`, `version`, `help`. Run `sluice help` for usage.
        ");
        insta::assert_snapshot!(reply(&ctx(), "terraform plan"), @r#"
        Did you mean `sluice plan`? Sluice only reads comments that start with `sluice` or `@sluice`, not `terraform`.

        Run `sluice help` for all commands and flags.
        "#);
        insta::assert_snapshot!(reply(&ctx(), &format!("sluice plan -- {}", "a".repeat(1 << 20))), @r#"
        **Error:** this command is 1048584 bytes long; Sluice reads commands of up to 10000 bytes.

        Run `sluice help` for usage.
        "#);
        insta::assert_snapshot!(reply(&ctx(), "sluice plan -w 'x`</details>@org/team'"), @"
        **Error:** workspace `xˋ</details>@org/team` is not allowed: it contains 'ˋ'; use letters, digits, '-', '_' and '.'.

        Usage: `sluice plan [-p PROJECT | [-d DIR] [-w WORKSPACE]] [--destroy] [--verbose] [-- TERRAFORM_ARGS]`

        Run `sluice help` for all commands and flags.
        ");
    }
}
