//! Redaction of known secret values from any text Sluice shows (diffs, terraform errors, apply
//! output) before it leaves the process: every occurrence becomes `***`.
//!
//! This module owns *which* strings count as occurrences of a secret and the one-pass
//! replacement. It does not decide which values are secret (the caller collects them: project
//! variables, credentials, `Plan::sensitive_values`), and it never logs or displays them: its
//! `Debug` shows only how many patterns it holds.

use std::borrow::Cow;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};

use super::diff::quote_into;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "***";

/// Secrets shorter than this (in characters) are ignored. A 1–3 character value ("1", "yes",
/// "eu") occurs all over any terraform output; replacing every occurrence would make the output
/// unreadable while protecting nothing (such a value is trivially guessable anyway).
pub const MIN_SECRET_CHARS: usize = 4;

/// For multi-line secrets each line is also redacted on its own (renderers indent or re-wrap
/// lines, so the whole value rarely appears verbatim), but only lines at least this long, so a
/// lone `}` or blank line of a secret file does not wipe those characters from all output.
pub const MIN_SECRET_LINE_CHARS: usize = 8;

/// Replaces every known secret in a text with [`REDACTED`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Matcher,
    patterns: usize,
    /// Bytes of the longest pattern.
    longest: usize,
}

#[derive(Clone, Default)]
enum Matcher {
    #[default]
    Nothing,
    /// One automaton for all patterns: a single pass over the text whatever their number.
    Automaton(AhoCorasick),
    /// Only if the automaton cannot be built (pattern set beyond its size limits): slow but
    /// never silently lets a secret through.
    Naive(Vec<String>),
}

impl Redactor {
    /// Builds a redactor for `secrets`. Besides each value itself it also matches the forms in
    /// which Sluice's own renderers print it: quoted-and-escaped (`"a\"b"` in a diff), JSON
    /// escaped, trimmed, and line by line for multi-line values.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        for secret in secrets {
            add_variants(&secret, &mut patterns);
        }
        patterns.sort();
        patterns.dedup();
        let count = patterns.len();
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        if patterns.is_empty() {
            return Redactor::default();
        }
        let matcher = match AhoCorasick::builder()
            // Longest wins, so a secret that contains another is replaced whole.
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
        {
            Ok(ac) => Matcher::Automaton(ac),
            Err(_) => {
                // Longest first, for the same reason as above.
                patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
                Matcher::Naive(patterns)
            }
        };
        Redactor {
            matcher,
            patterns: count,
            longest,
        }
    }

    /// A redactor that changes nothing.
    pub fn none() -> Self {
        Redactor::default()
    }

    /// How many strings it looks for (variants included).
    pub fn len(&self) -> usize {
        self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns == 0
    }

    /// `text` with every occurrence of a secret replaced; borrowed when there is none.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.matcher {
            Matcher::Nothing => Cow::Borrowed(text),
            Matcher::Automaton(ac) => {
                let mut matches = ac.find_iter(text).peekable();
                if matches.peek().is_none() {
                    return Cow::Borrowed(text);
                }
                let mut out = String::with_capacity(text.len());
                let mut last = 0;
                for m in matches {
                    out.push_str(&text[last..m.start()]);
                    out.push_str(REDACTED);
                    last = m.end();
                }
                out.push_str(&text[last..]);
                Cow::Owned(out)
            }
            Matcher::Naive(patterns) => {
                let mut text = Cow::Borrowed(text);
                for p in patterns {
                    if text.contains(p.as_str()) {
                        text = Cow::Owned(text.replace(p.as_str(), REDACTED));
                    }
                }
                text
            }
        }
    }

    /// Bytes of the longest string it looks for (0 when it looks for none). Text redacted piece
    /// by piece as it streams must hold back this many bytes minus one at the end of each piece
    /// (see [`Redactor::redact_prefix`]): a secret could start there and end in the next one.
    pub fn longest_pattern_bytes(&self) -> usize {
        self.longest
    }

    /// Redacts the start of `text`, up to byte `cut` (a char boundary, at most `text.len()`),
    /// for streams redacted piece by piece. Returns the redacted prefix and how many bytes of
    /// `text` it covers: `cut`, or more when a secret starts before `cut` and ends after it (it
    /// is replaced whole, never split). Matches are leftmost-longest, as in [`Redactor::redact`].
    ///
    /// When `text.len() - cut >= longest_pattern_bytes() - 1`, every secret starting before
    /// `cut` lies wholly inside `text`, so redacting a stream as `redact_prefix` of what is
    /// pending, keeping the rest for the next piece, gives exactly `redact` of the whole stream.
    pub fn redact_prefix<'t>(&self, text: &'t str, cut: usize) -> (Cow<'t, str>, usize) {
        let cut = cut.min(text.len());
        let mut out = String::new();
        let mut last = 0;
        let mut any = false;
        let take = |start: usize, end: usize, out: &mut String, last: &mut usize| {
            out.push_str(&text[*last..start]);
            out.push_str(REDACTED);
            *last = end;
        };
        match &self.matcher {
            Matcher::Nothing => {}
            Matcher::Automaton(ac) => {
                for m in ac.find_iter(text) {
                    if m.start() >= cut {
                        break;
                    }
                    any = true;
                    take(m.start(), m.end(), &mut out, &mut last);
                }
            }
            Matcher::Naive(patterns) => {
                // Longest first (sorted so in `new`): leftmost-longest by scanning positions.
                let mut i = 0;
                while i < cut {
                    if text.is_char_boundary(i)
                        && let Some(p) = patterns.iter().find(|p| text[i..].starts_with(p.as_str()))
                    {
                        any = true;
                        take(i, i + p.len(), &mut out, &mut last);
                        i += p.len();
                    } else {
                        i += 1;
                    }
                }
            }
        }
        let consumed = last.max(cut);
        if !any {
            return (Cow::Borrowed(&text[..consumed]), consumed);
        }
        out.push_str(&text[last..consumed]);
        (Cow::Owned(out), consumed)
    }

    /// Convenience for owned text: returns it unchanged (no copy) when nothing matched.
    pub fn redact_string(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => s,
        }
    }
}

/// Never shows the secrets, only how many there are.
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

fn long_enough(s: &str, min: usize) -> bool {
    s.chars().nth(min - 1).is_some()
}

fn add_variants(secret: &str, out: &mut Vec<String>) {
    let mut push = |s: &str, min: usize| {
        if long_enough(s, min) {
            out.push(s.to_string());
        }
    };
    push(secret, MIN_SECRET_CHARS);
    push(secret.trim(), MIN_SECRET_CHARS);

    let mut quoted = String::with_capacity(secret.len() + 2);
    quote_into(&mut quoted, secret);
    push(&quoted[1..quoted.len() - 1], MIN_SECRET_CHARS);

    if let Ok(json) = serde_json::to_string(secret) {
        push(&json[1..json.len() - 1], MIN_SECRET_CHARS);
    }

    if secret.contains('\n') {
        for line in secret.lines() {
            push(line.trim(), MIN_SECRET_LINE_CHARS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(secrets: &[&str], input: &str, expect: &str) {
        let r = Redactor::new(secrets.iter().map(|s| s.to_string()));
        assert_eq!(r.redact(input), expect, "secrets {secrets:?}");
    }

    #[test]
    fn table() {
        check(&[], "nothing to hide", "nothing to hide");
        check(&["hunter2"], "pw=hunter2 again hunter2", "pw=*** again ***");
        check(&["hunter2"], "no match here", "no match here");
        // Too short to redact safely.
        check(&["abc", "", "1"], "abc 1 abc", "abc 1 abc");
        check(&["abcd"], "abcd", "***");
        // Overlapping secrets: the longest wins.
        check(
            &["secret", "secret-key"],
            "a secret-key b secret",
            "a *** b ***",
        );
        // Escaped forms, as Sluice's diff and JSON print them.
        check(&[r#"pa"ss\word"#], r#"p = "pa\"ss\\word""#, r#"p = "***""#);
        check(&["tab\there"], r#"v = "tab\there""#, r#"v = "***""#);
        // Multi-line secrets, indented line by line in a heredoc.
        check(
            &["-----BEGIN KEY-----\nAAAAB3NzaC1yc2E\n}\n-----END KEY-----\n"],
            "k = <<-EOT\n    -----BEGIN KEY-----\n    AAAAB3NzaC1yc2E\n    }\n    -----END KEY-----\nEOT",
            "k = <<-EOT\n    ***\n    ***\n    }\n    ***\nEOT",
        );
        // Multibyte text around and inside secrets.
        check(&["pässwörd"], "→pässwörd←", "→***←");
        // Surrounding whitespace in the configured value does not defeat it.
        check(&["  spacey-secret\n"], "x spacey-secret y", "x *** y");
    }

    #[test]
    fn redact_prefix_never_splits_a_secret() {
        let secrets = ["hunter2", "hunter2-long", "pässwörd"];
        let auto = Redactor::new(secrets.iter().map(|s| s.to_string()));
        let mut naive_patterns: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        naive_patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let naive = Redactor {
            matcher: Matcher::Naive(naive_patterns),
            patterns: 3,
            longest: auto.longest_pattern_bytes(),
        };
        assert_eq!(auto.longest_pattern_bytes(), "hunter2-long".len());
        // (text, cut, redacted prefix, bytes covered)
        let cases: &[(&str, usize, &str, usize)] = &[
            ("abc hunter2 def", 15, "abc *** def", 15),
            // The cut falls inside a secret: the secret is taken whole.
            ("abc hunter2 def", 6, "abc ***", 11),
            // A secret starting at the cut is left for later.
            ("abc hunter2 def", 4, "abc ", 4),
            // The longer secret wins even though the shorter one ends before the cut.
            ("x hunter2-long y", 10, "x ***", 14),
            ("→pässwörd←", 4, "→***", 13),
            ("nothing here", 5, "nothi", 5),
        ];
        for (text, cut, want, covered) in cases {
            for r in [&auto, &naive] {
                let (got, n) = r.redact_prefix(text, *cut);
                assert_eq!(
                    (got.as_ref(), n),
                    (*want, *covered),
                    "{text:?} cut at {cut}"
                );
            }
        }
        assert!(matches!(
            auto.redact_prefix("clean text", 3),
            (Cow::Borrowed("cle"), 3)
        ));
    }

    #[test]
    fn borrowed_when_clean() {
        let r = Redactor::new(vec!["hunter2".to_string()]);
        assert!(matches!(r.redact("clean"), Cow::Borrowed(_)));
        assert!(matches!(Redactor::none().redact("x"), Cow::Borrowed(_)));
        assert_eq!(r.redact_string("a hunter2".into()), "a ***");
    }

    #[test]
    fn debug_does_not_show_secrets() {
        let r = Redactor::new(vec!["hunter2".to_string()]);
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("patterns"), "{dbg}");
    }

    #[test]
    fn many_secrets_over_megabytes_in_one_pass() {
        let secrets: Vec<String> = (0..2_000).map(|i| format!("secret-{i:05}-x")).collect();
        let r = Redactor::new(secrets.clone());
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str("some ordinary terraform output line ");
            if i % 1000 == 0 {
                text.push_str(&secrets[i / 1000]);
            }
            text.push('\n');
        }
        assert!(text.len() > 3_000_000);
        let out = r.redact(&text);
        assert!(!out.contains("secret-"));
        assert_eq!(out.matches(REDACTED).count(), 100);
    }
}
