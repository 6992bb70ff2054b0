//! The grammar of the words after `sluice drift`, commented on a drift issue: `ack`,
//! `accept --until YYYY-MM-DD [--reason "…"]`, `check`, `remediate`, `help`.
//!
//! [`parse_drift_args`] is what the PR-comment parser calls for a `drift` command (with the
//! words after `drift`, split as a shell would); [`parse_drift`] does the splitting itself.
//! Either returns the command or a markdown reply (usage, or an error that says what was wrong
//! and how to write it). `today` (UTC) comes in as an argument, so `--until` in the past is
//! refused here, before anything is recorded. Who may run these is not decided here.
//! Everything a reply echoes from the comment goes through `text::echo`.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::text::{code, echo};

/// The longest `--reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// How far ahead `--until` may be: an exception is a decision to look again, not forever.
pub const MAX_ACCEPT_DAYS: i64 = 366;

/// A drift command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum DriftCommand {
    /// Someone is looking into it.
    Ack,
    /// An exception until the end of `until` (UTC).
    Accept {
        until: NaiveDate,
        reason: Option<String>,
    },
    /// Check the project again now.
    Check,
    /// Open a PR that applies Git's state again (planned and gated like any PR).
    Remediate,
}

impl DriftCommand {
    pub fn name(&self) -> &'static str {
        match self {
            DriftCommand::Ack => "ack",
            DriftCommand::Accept { .. } => "accept",
            DriftCommand::Check => "check",
            DriftCommand::Remediate => "remediate",
        }
    }

    /// The comment that asks for exactly this command, for audit entries and hints.
    pub fn canonical(&self, bot_name: &str) -> String {
        match self {
            DriftCommand::Accept { until, reason } => {
                let mut s = format!("{bot_name} drift accept --until {until}");
                if let Some(r) = reason {
                    s.push_str(" --reason ");
                    s.push_str(&shell_words::quote(r));
                }
                s
            }
            other => format!("{bot_name} drift {}", other.name()),
        }
    }
}

/// What to do with the words after `drift`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftParsed {
    Command(DriftCommand),
    /// Markdown to post back: usage or an error.
    Reply(String),
}

const SUBCOMMANDS: [&str; 5] = ["ack", "accept", "check", "remediate", "help"];

/// The usage reply.
pub fn drift_usage(bot_name: &str) -> String {
    let n = bot_name;
    format!(
        "**Sluice drift commands.** Comment one on this drift issue, on a line by itself:\n\n\
         | Command | What it does |\n|---|---|\n\
         | `{n} drift ack` | Acknowledge the drift: someone is looking into it |\n\
         | `{n} drift accept --until YYYY-MM-DD [--reason \"…\"]` | Accept it as an exception through the end of that day (UTC, at most {MAX_ACCEPT_DAYS} days ahead); a different drift, or new values, re-open it |\n\
         | `{n} drift check` | Check this project again now |\n\
         | `{n} drift remediate` | Open a pull request that applies Git's state again; it is planned and gated like any other |\n\
         | `{n} drift help` | Show this message |\n"
    )
}

/// Parses `rest`, the text after `sluice drift`, split by the comment grammar's own tokenizer
/// (`command::split_words`: shell quoting, typographic quotes, pasted spaces).
pub fn parse_drift(bot_name: &str, rest: &str, today: NaiveDate) -> DriftParsed {
    match crate::core::command::split_words(rest) {
        Ok(words) => parse_drift_args(bot_name, &words, today),
        Err(_) => DriftParsed::Reply(error(
            bot_name,
            None,
            "this command has an unclosed quote (`'` or `\"`); quote the reason the way a shell \
             would, e.g. `--reason \"waiting for the vendor\"`."
                .to_string(),
        )),
    }
}

/// Parses the words after `drift`. Total: never panics.
pub fn parse_drift_args(bot_name: &str, args: &[String], today: NaiveDate) -> DriftParsed {
    match parse(args, today) {
        Ok(c) => DriftParsed::Command(c),
        Err(Answer::Usage) => DriftParsed::Reply(drift_usage(bot_name)),
        Err(Answer::Misuse { sub, message }) => DriftParsed::Reply(error(bot_name, sub, message)),
    }
}

enum Answer {
    Usage,
    Misuse {
        sub: Option<&'static str>,
        message: String,
    },
}

fn misuse(sub: &'static str, message: impl Into<String>) -> Answer {
    Answer::Misuse {
        sub: Some(sub),
        message: message.into(),
    }
}

fn synopsis(sub: &str) -> String {
    match sub {
        "accept" => "drift accept --until YYYY-MM-DD [--reason \"…\"]".to_string(),
        other => format!("drift {other}"),
    }
}

fn error(bot_name: &str, sub: Option<&str>, message: String) -> String {
    let help = code(&format!("{bot_name} drift help"));
    match sub {
        Some(sub) => format!(
            "**Error:** {message}\n\nUsage: {}\n\nRun {help} for all drift commands.",
            code(&format!("{bot_name} {}", synopsis(sub)))
        ),
        None => format!("**Error:** {message}\n\nRun {help} for all drift commands."),
    }
}

fn is_help(w: &str) -> bool {
    matches!(w, "-h" | "--help")
}

fn parse(args: &[String], today: NaiveDate) -> Result<DriftCommand, Answer> {
    let Some((first, rest)) = args.split_first() else {
        return Err(Answer::Usage);
    };
    if is_help(first) {
        return Err(Answer::Usage);
    }
    let word = first.to_ascii_lowercase();
    let sub: &'static str = match SUBCOMMANDS.iter().find(|s| **s == word) {
        Some(s) => s,
        None => {
            let hint = suggest(&word, &SUBCOMMANDS)
                .map(|s| format!(" Did you mean `drift {s}`?"))
                .unwrap_or_default();
            return Err(Answer::Misuse {
                sub: None,
                message: format!(
                    "unknown drift command {}.{hint} Drift commands: `ack`, `accept`, `check`, \
                     `remediate`, `help`.",
                    echo(first)
                ),
            });
        }
    };
    if rest.iter().any(|a| is_help(a)) || sub == "help" {
        return Err(Answer::Usage);
    }
    match sub {
        "accept" => parse_accept(rest, today),
        _ => {
            if let Some(arg) = rest.first() {
                return Err(misuse(
                    sub,
                    format!(
                        "`drift {sub}` takes no flags or arguments, but got {}.",
                        echo(arg)
                    ),
                ));
            }
            Ok(match sub {
                "ack" => DriftCommand::Ack,
                "check" => DriftCommand::Check,
                _ => DriftCommand::Remediate,
            })
        }
    }
}

fn parse_accept(args: &[String], today: NaiveDate) -> Result<DriftCommand, Answer> {
    let mut until: Option<NaiveDate> = None;
    let mut reason: Option<String> = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if !arg.starts_with('-') || arg == "-" {
            let hint = if looks_like_date(arg) {
                format!(" Did you mean `--until {}`?", arg.trim())
            } else {
                " Give the date with `--until` and quote the reason after `--reason`.".to_string()
            };
            return Err(misuse(
                "accept",
                format!("unexpected argument {}.{hint}", echo(arg)),
            ));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg.as_str(), None),
        };
        let flag = match name {
            "--until" => "--until",
            "--reason" => "--reason",
            other => {
                let hint = suggest(other.trim_start_matches('-'), &["until", "reason"])
                    .map(|s| format!(" Did you mean `--{s}`?"))
                    .unwrap_or_default();
                return Err(misuse(
                    "accept",
                    format!("unknown flag {} for `drift accept`.{hint}", echo(arg)),
                ));
            }
        };
        let value = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(next) if !(next.starts_with("--") && next.len() > 2) => {
                    i += 1;
                    next.as_str()
                }
                _ => "",
            },
        };
        if value.trim().is_empty() {
            return Err(misuse("accept", format!("`{flag}` needs a value.")));
        }
        if flag == "--until" {
            if until.is_some() {
                return Err(misuse("accept", "`--until` is given twice; give it once."));
            }
            until = Some(parse_until(value, today)?);
        } else {
            if reason.is_some() {
                return Err(misuse("accept", "`--reason` is given twice; give it once."));
            }
            reason = Some(parse_reason(value)?);
        }
    }
    let Some(until) = until else {
        return Err(misuse(
            "accept",
            format!(
                "`drift accept` needs `--until YYYY-MM-DD`: an exception always ends (at most \
                 {MAX_ACCEPT_DAYS} days ahead, e.g. `--until {}`).",
                today + Duration::days(30)
            ),
        ));
    };
    Ok(DriftCommand::Accept { until, reason })
}

fn looks_like_date(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn parse_until(value: &str, today: NaiveDate) -> Result<NaiveDate, Answer> {
    let v = value.trim();
    let date = if looks_like_date(v) {
        NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
    } else {
        None
    };
    let Some(date) = date else {
        return Err(misuse(
            "accept",
            format!(
                "{} is not a date; write it as YYYY-MM-DD, e.g. `--until {}`.",
                echo(v),
                today + Duration::days(30)
            ),
        ));
    };
    if date < today {
        return Err(misuse(
            "accept",
            format!(
                "`--until {date}` is in the past (today is {today}, UTC); give today or a later \
                 date."
            ),
        ));
    }
    let last = today + Duration::days(MAX_ACCEPT_DAYS);
    if date > last {
        return Err(misuse(
            "accept",
            format!(
                "`--until {date}` is too far ahead: an exception lasts at most {MAX_ACCEPT_DAYS} \
                 days (until {last}); accept it again when it runs out."
            ),
        ));
    }
    Ok(date)
}

fn parse_reason(value: &str) -> Result<String, Answer> {
    let r = value.trim();
    if r.chars().any(char::is_control) {
        return Err(misuse("accept", "the reason contains control characters."));
    }
    let n = r.chars().count();
    if n > MAX_REASON_CHARS {
        return Err(misuse(
            "accept",
            format!("the reason is {n} characters long; keep it to {MAX_REASON_CHARS}."),
        ));
    }
    Ok(r.to_string())
}

/// The closest of `options` to a mistyped word, if close enough.
fn suggest(given: &str, options: &[&'static str]) -> Option<&'static str> {
    if given.is_empty() || given.chars().count() > 40 {
        return None;
    }
    let given = given.to_lowercase();
    options
        .iter()
        .map(|o| (strsim::osa_distance(&given, o), *o))
        .filter(|(d, o)| *d <= if o.len() <= 4 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, 15).unwrap()
    }

    fn parse_ok(s: &str) -> DriftCommand {
        match parse_drift("sluice", s, today()) {
            DriftParsed::Command(c) => c,
            DriftParsed::Reply(r) => panic!("{s}: {r}"),
        }
    }

    fn reply(s: &str) -> String {
        match parse_drift("sluice", s, today()) {
            DriftParsed::Reply(r) => r,
            DriftParsed::Command(c) => panic!("{s}: parsed as {c:?}"),
        }
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn commands() {
        let cases: Vec<(&str, DriftCommand)> = vec![
            ("ack", DriftCommand::Ack),
            ("ACK", DriftCommand::Ack),
            ("check", DriftCommand::Check),
            ("remediate", DriftCommand::Remediate),
            (
                "accept --until 2027-01-31",
                DriftCommand::Accept {
                    until: date("2027-01-31"),
                    reason: None,
                },
            ),
            (
                "accept --until=2027-01-15 --reason 'vendor fix pending'",
                DriftCommand::Accept {
                    until: date("2027-01-15"),
                    reason: Some("vendor fix pending".into()),
                },
            ),
            (
                r#"accept --reason="ticket OPS-12" --until 2028-01-16"#,
                DriftCommand::Accept {
                    until: date("2028-01-16"),
                    reason: Some("ticket OPS-12".into()),
                },
            ),
            // The PR grammar's tokenizer: typographic quotes, as phones type them …
            (
                "accept --until 2027-01-15 --reason “vendor fix pending”",
                DriftCommand::Accept {
                    until: date("2027-01-15"),
                    reason: Some("vendor fix pending".into()),
                },
            ),
            (
                "accept --until 2027-01-15 --reason „bob’s ticket“",
                DriftCommand::Accept {
                    until: date("2027-01-15"),
                    reason: Some("bob’s ticket".into()),
                },
            ),
            (
                "accept --until 2027-01-15 --reason ‘waiting’",
                DriftCommand::Accept {
                    until: date("2027-01-15"),
                    reason: Some("waiting".into()),
                },
            ),
            // … and a non-breaking space pasted between words.
            (
                "accept\u{a0}--until\u{a0}2027-01-15",
                DriftCommand::Accept {
                    until: date("2027-01-15"),
                    reason: None,
                },
            ),
        ];
        for (input, want) in cases {
            let got = parse_ok(input);
            assert_eq!(got, want, "{input}");
            // The canonical form parses back to the same command.
            let canon = got.canonical("sluice");
            let rest = canon.strip_prefix("sluice drift ").unwrap();
            assert_eq!(parse_ok(rest), got, "{canon}");
        }
    }

    /// Drift commands and PR commands split their words with one tokenizer: the same line
    /// gives the same words, quotes of every kind included.
    #[test]
    fn one_tokenizer_with_the_pr_grammar() {
        for line in [
            "accept --until 2027-01-15 --reason “a b”",
            "accept --until 2027-01-15 --reason 'a “b” c'",
            "accept --until 2027-01-15 --reason «x y»",
            "ack\u{a0}now",
        ] {
            let words = crate::core::command::split_words(line).unwrap();
            let from_drift = parse_drift("sluice", line, today());
            let from_words = parse_drift_args("sluice", &words, today());
            assert_eq!(from_drift, from_words, "{line}");
        }
        assert!(crate::core::command::split_words("accept --reason “open").is_err());
        assert!(reply("accept --until 2027-01-15 --reason “open").contains("unclosed quote"));
    }

    #[test]
    fn usage() {
        assert_eq!(reply(""), drift_usage("sluice"));
        assert_eq!(reply("help"), drift_usage("sluice"));
        assert_eq!(reply("accept -h"), drift_usage("sluice"));
        insta::assert_snapshot!(drift_usage("sluice"), @r#"
        **Sluice drift commands.** Comment one on this drift issue, on a line by itself:

        | Command | What it does |
        |---|---|
        | `sluice drift ack` | Acknowledge the drift: someone is looking into it |
        | `sluice drift accept --until YYYY-MM-DD [--reason "…"]` | Accept it as an exception through the end of that day (UTC, at most 366 days ahead); a different drift, or new values, re-open it |
        | `sluice drift check` | Check this project again now |
        | `sluice drift remediate` | Open a pull request that applies Git's state again; it is planned and gated like any other |
        | `sluice drift help` | Show this message |
        "#);
    }

    #[test]
    fn errors() {
        insta::assert_snapshot!(reply("accept --until 2027-01-14"), @r#"
        **Error:** `--until 2027-01-14` is in the past (today is 2027-01-15, UTC); give today or a later date.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until tomorrow"), @r#"
        **Error:** `tomorrow` is not a date; write it as YYYY-MM-DD, e.g. `--until 2027-02-14`.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until 2027-02-30"), @r#"
        **Error:** `2027-02-30` is not a date; write it as YYYY-MM-DD, e.g. `--until 2027-02-14`.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until 27-01-31"), @r#"
        **Error:** `27-01-31` is not a date; write it as YYYY-MM-DD, e.g. `--until 2027-02-14`.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until 2029-01-31"), @r#"
        **Error:** `--until 2029-01-31` is too far ahead: an exception lasts at most 366 days (until 2028-01-16); accept it again when it runs out.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept"), @r#"
        **Error:** `drift accept` needs `--until YYYY-MM-DD`: an exception always ends (at most 366 days ahead, e.g. `--until 2027-02-14`).

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --reason 'later'"), @r#"
        **Error:** `drift accept` needs `--until YYYY-MM-DD`: an exception always ends (at most 366 days ahead, e.g. `--until 2027-02-14`).

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until"), @r#"
        **Error:** `--until` needs a value.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until 2027-01-31 --until 2027-02-01"), @r#"
        **Error:** `--until` is given twice; give it once.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept 2027-01-31"), @r#"
        **Error:** unexpected argument `2027-01-31`. Did you mean `--until 2027-01-31`?

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --util 2027-01-31"), @r#"
        **Error:** unknown flag `--util` for `drift accept`. Did you mean `--until`?

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until 2027-01-31 --force"), @r#"
        **Error:** unknown flag `--force` for `drift accept`.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply(&format!("accept --until 2027-01-31 --reason '{}'", "x".repeat(501))), @r#"
        **Error:** the reason is 501 characters long; keep it to 500.

        Usage: `sluice drift accept --until YYYY-MM-DD [--reason "…"]`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("accept --until 2027-01-31 --reason 'unclosed"), @r#"
        **Error:** this command has an unclosed quote (`'` or `"`); quote the reason the way a shell would, e.g. `--reason "waiting for the vendor"`.

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("ack now"), @r#"
        **Error:** `drift ack` takes no flags or arguments, but got `now`.

        Usage: `sluice drift ack`

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("acept --until 2027-01-31"), @r#"
        **Error:** unknown drift command `acept`. Did you mean `drift accept`? Drift commands: `ack`, `accept`, `check`, `remediate`, `help`.

        Run `sluice drift help` for all drift commands.
        "#);
        insta::assert_snapshot!(reply("fix `everything`"), @r#"
        **Error:** unknown drift command `fix`. Drift commands: `ack`, `accept`, `check`, `remediate`, `help`.

        Run `sluice drift help` for all drift commands.
        "#);
    }
}
