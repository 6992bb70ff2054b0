//! Redaction of known secret values from any text Sluice shows (diffs, terraform errors, apply
//! output, log lines, dead-letter reasons) before it leaves the process: every occurrence becomes
//! `***`.
//!
//! This module owns *which* strings count as occurrences of a secret and the one-pass
//! replacement. It does not decide which values are secret (the caller collects them: project
//! variables, credentials, `Plan::sensitive_values`), and it never logs or displays them: its
//! `Debug` shows only how many patterns it holds.
//!
//! # What counts as an occurrence
//!
//! A PR's configuration can print a secret it was given in any form a terraform function
//! produces, so each secret (and its trimmed value) is matched
//!
//! * as is, and line by line for multi-line values;
//! * escaped: quoted as Sluice's diff prints strings, JSON-escaped the way `serde_json`, Go's
//!   `encoding/json` (terraform's `jsonencode`: `<`, `>`, `&`, U+2028/U+2029 as `\u…`, with and
//!   without `\b`/`\f`) and ASCII-only encoders write it, and each of those quoted again (a JSON
//!   document inside a string attribute);
//! * percent-encoded (`urlencode`: unreserved characters kept, space as `+` or `%20`, hex digits
//!   in upper and lower case, and the path-segment variant);
//! * in hexadecimal (lower and upper case);
//! * in base64, standard and URL-safe alphabets, with and without padding: the whole value, and
//!   — for a secret inside a longer encoded string — the characters that depend only on the
//!   secret at each of the three byte alignments (plus the tail when the secret ends the string);
//!   the same for its UTF-16LE bytes (`textencodebase64(…, "UTF-16LE")`);
//! * as the unsalted hashes terraform computes of it (`md5`, `sha1`, `sha256`, `sha512` in
//!   hex, `base64sha256`, `base64sha512`): a fast hash of a guessable secret (a password) lets
//!   anyone test guesses offline, and a reviewer loses nothing when a changed hash shows as `***`.
//!
//! Not covered (documented in README.md): compressed or encrypted forms (`base64gzip`,
//! `rsadecrypt`, …), hashes of a longer string that contains the secret, salted hashes
//! (`bcrypt`), any other transformation (`upper`, `reverse`, `substr`, `replace`, …), encodings
//! wrapped over several lines (MIME/PEM base64 at 64 or 76 columns), encoded forms shorter than
//! [`MIN_ENCODED_CHARS`] (a 4–5 character secret inside a longer base64 string at an unaligned
//! offset), and secrets shorter than [`MIN_SECRET_CHARS`].
//!
//! All forms go into one Aho-Corasick automaton, so the text is still read once whatever their
//! number (`cargo bench --bench sluice_bench -- redaction` measures the cost).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use sha2::Digest as _;

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

/// Encoded forms shorter than this (in characters) are not matched: a handful of base64
/// characters occurs by chance in any long base64 text (a `user_data` blob), and the secret
/// they come from is at most 4–5 characters long, guessable anyway.
pub const MIN_ENCODED_CHARS: usize = 6;

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
    /// Builds a redactor for `secrets`, matching every form listed in the module doc.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Self::build(secrets, true)
    }

    /// Only the forms Sluice's own renderers print (as is, escaped, line by line), without the
    /// encoded ones: what redaction matched before encodings were covered. For the benchmark
    /// that measures what the encodings cost; never for output.
    #[doc(hidden)]
    pub fn without_encodings(secrets: impl IntoIterator<Item = String>) -> Self {
        Self::build(secrets, false)
    }

    fn build(secrets: impl IntoIterator<Item = String>, encodings: bool) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        for secret in secrets {
            add_variants(&secret, &mut patterns);
            if encodings {
                let trimmed = secret.trim();
                add_encodings(secret.as_bytes(), &mut patterns);
                if trimmed != secret {
                    add_encodings(trimmed.as_bytes(), &mut patterns);
                }
                if long_enough(trimmed, MIN_SECRET_CHARS) {
                    add_escapes(trimmed, &mut patterns);
                }
            }
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

/// The forms Sluice's own renderers print a secret in.
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

/// The encoded forms of a secret's bytes (`bytes` is at least [`MIN_SECRET_CHARS`] long when it
/// reaches here through [`add_variants`]' rules; shorter ones are skipped).
fn add_encodings(bytes: &[u8], out: &mut Vec<String>) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if !long_enough(text, MIN_SECRET_CHARS) {
        return;
    }
    let mut push = |s: String| {
        if s.len() >= MIN_ENCODED_CHARS {
            out.push(s);
        }
    };
    let hex = hex::encode(bytes);
    push(hex.to_ascii_uppercase());
    push(hex);
    for p in percent_forms(text) {
        push(p);
    }
    base64_forms(bytes, &mut push);
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64_forms(&utf16, &mut push);
    push(hex::encode(md5::Md5::digest(bytes)));
    push(hex::encode(sha1::Sha1::digest(bytes)));
    let sha256 = sha2::Sha256::digest(bytes);
    push(hex::encode(sha256));
    push(STANDARD.encode(sha256));
    let sha512 = sha2::Sha512::digest(bytes);
    push(hex::encode(sha512));
    push(STANDARD.encode(sha512));
}

/// Base64 of `bytes` in the standard and URL-safe alphabets, padded and not: the whole, and the
/// characters that depend on `bytes` alone when they sit at byte offset `k` (mod 3) of a longer
/// encoded string, with and without the tail that ends such a string.
fn base64_forms(bytes: &[u8], push: &mut impl FnMut(String)) {
    let url = |s: &str| s.replace('+', "-").replace('/', "_");
    for whole in [
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ] {
        push(whole);
    }
    for k in 0..3usize {
        let mut shifted = vec![0u8; k];
        shifted.extend_from_slice(bytes);
        let padded = STANDARD.encode(&shifted);
        // Character i carries bits [6i, 6i + 6): it depends on `bytes` alone when those bits
        // lie within bytes k .. k + len.
        let first = (8 * k).div_ceil(6);
        let end = (8 * (k + bytes.len())) / 6;
        if end <= first {
            continue;
        }
        let core = &padded[first..end];
        push(core.to_string());
        push(url(core));
        if k > 0 {
            // The secret ends the encoded string: its last characters (and padding) are its own.
            let tail = &padded[first..];
            push(tail.to_string());
            push(url(tail));
            let bare = tail.trim_end_matches('=');
            push(bare.to_string());
            push(url(bare));
        }
    }
}

/// Percent-encodings of `text` that differ from it: RFC 3986 (unreserved characters kept,
/// `%20`), HTML forms and Go's `url.QueryEscape` (terraform's `urlencode`: `+` for a space),
/// both with lower-case hex too, and Go's `url.PathEscape` (also keeps `$&+,/:;=@`).
fn percent_forms(text: &str) -> Vec<String> {
    fn encode(text: &str, keep: &dyn Fn(u8) -> bool, space: &str, upper: bool) -> String {
        let mut out = String::with_capacity(text.len() * 3);
        for &b in text.as_bytes() {
            if b == b' ' {
                out.push_str(space);
            } else if keep(b) {
                out.push(b as char);
            } else if upper {
                let _ = write!(out, "%{b:02X}");
            } else {
                let _ = write!(out, "%{b:02x}");
            }
        }
        out
    }
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-_.~".contains(&b);
    let path = |b: u8| unreserved(b) || b"$&+,/:;=@".contains(&b);
    let mut out = Vec::new();
    for upper in [true, false] {
        out.push(encode(text, &unreserved, "%20", upper));
        out.push(encode(text, &unreserved, "+", upper));
    }
    out.push(encode(text, &path, "%20", true));
    out.retain(|p| p != text);
    out
}

/// How a JSON encoder escapes a string.
#[derive(Clone, Copy)]
struct JsonStyle {
    /// `<`, `>`, `&`, U+2028 and U+2029 as `\u…` (Go's `encoding/json`, terraform's `jsonencode`).
    html: bool,
    /// Every non-ASCII character as `\u…` (surrogate pairs beyond the BMP): Python's default.
    ascii: bool,
    /// Backspace and form feed as `\b` / `\f` (else `\u0008` / `\u000c`, older Go).
    short_bf: bool,
}

fn json_escape(s: &str, style: JsonStyle) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' if style.short_bf => out.push_str("\\b"),
            '\u{c}' if style.short_bf => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if style.html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if style.ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The secret as other JSON encoders escape it, and each JSON form quoted again the way the
/// diff prints a string (a JSON document held in a string attribute).
fn add_escapes(secret: &str, out: &mut Vec<String>) {
    let mut forms: Vec<String> = Vec::new();
    for html in [false, true] {
        for ascii in [false, true] {
            for short_bf in [false, true] {
                forms.push(json_escape(
                    secret,
                    JsonStyle {
                        html,
                        ascii,
                        short_bf,
                    },
                ));
            }
        }
    }
    forms.sort();
    forms.dedup();
    for f in forms {
        let mut quoted = String::with_capacity(f.len() + 8);
        quote_into(&mut quoted, &f);
        out.push(quoted[1..quoted.len() - 1].to_string());
        out.push(f);
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
        // The encoded forms count too (a SHA-512 in hex is 128 bytes).
        assert!(auto.longest_pattern_bytes() >= "hunter2-long".len());
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

    /// Whether any 3 consecutive bytes of `secret` can be read back from what `out` left in
    /// the clear, base64-decoding every run of text between redactions at every offset and in
    /// both alphabets. Independent of how the redactor finds encodings.
    fn base64_leaks(out: &str, secret: &[u8]) -> Option<String> {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        for run in out.split(REDACTED) {
            let run = run.trim_end_matches('=');
            for shift in 0..4.min(run.len() + 1) {
                let body = &run[shift..];
                let body = &body[..body.len() / 4 * 4];
                for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    let Ok(bytes) = engine.decode(body) else {
                        continue;
                    };
                    if let Some(w) = secret
                        .windows(3)
                        .find(|w| bytes.windows(3).any(|b| b == *w))
                    {
                        return Some(format!("{run:?} decodes to {bytes:?}, holding {w:?}"));
                    }
                }
            }
        }
        None
    }

    /// The class of "an encoded form of a known secret is posted in clear": every form a
    /// terraform function (or a common encoder) produces cheaply is redacted — at every byte
    /// alignment inside a longer base64 string, in both alphabets, with or without padding.
    #[test]
    fn encoded_forms_of_secrets_are_redacted() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use sha2::Digest as _;
        // `+`, `/`, `?` and `&` matter to base64's alphabets, URLs and HTML-safe JSON.
        let secret = "tok?en/Ab+c&d<e>~f g\u{e9}\u{2028}h\"i";
        let r = Redactor::new([secret.to_string()]);
        let b = secret.as_bytes();
        let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let forms: Vec<(&str, String)> = vec![
            ("base64encode", STANDARD.encode(b)),
            ("unpadded", STANDARD_NO_PAD.encode(b)),
            ("url-safe", URL_SAFE.encode(b)),
            ("url-safe unpadded", URL_SAFE_NO_PAD.encode(b)),
            ("textencodebase64 UTF-16LE", STANDARD.encode(&utf16)),
            ("hex", hex::encode(b)),
            ("HEX", hex::encode_upper(b)),
            (
                "urlencode (Go QueryEscape)",
                "tok%3Fen%2FAb%2Bc%26d%3Ce%3E~f+g%C3%A9%E2%80%A8h%22i".to_string(),
            ),
            (
                "encodeURIComponent-style %20",
                "tok%3Fen%2FAb%2Bc%26d%3Ce%3E~f%20g%C3%A9%E2%80%A8h%22i".to_string(),
            ),
            (
                "lower-case percent",
                "tok%3fen%2fAb%2bc%26d%3ce%3e~f+g%c3%a9%e2%80%a8h%22i".to_string(),
            ),
            (
                "jsonencode (Go)",
                r#""tok?en/Ab+c\u0026d\u003ce\u003e~f gé\u2028h\"i""#.to_string(),
            ),
            (
                "JSON, ASCII only",
                r#""tok?en/Ab+c&d<e>~f g\u00e9\u2028h\"i""#.to_string(),
            ),
            (
                "jsonencode inside a quoted string",
                r#""{\"t\":\"tok?en/Ab+c\\u0026d\\u003ce\\u003e~f gé\\u2028h\\\"i\"}""#.to_string(),
            ),
            ("md5", hex::encode(md5::Md5::digest(b))),
            ("sha1", hex::encode(sha1::Sha1::digest(b))),
            ("sha256", hex::encode(sha2::Sha256::digest(b))),
            ("sha512", hex::encode(sha2::Sha512::digest(b))),
            ("base64sha256", STANDARD.encode(sha2::Sha256::digest(b))),
            ("base64sha512", STANDARD.encode(sha2::Sha512::digest(b))),
        ];
        for (what, form) in &forms {
            let text = format!("value = {form} # end");
            let out = r.redact(&text);
            assert!(out.contains(REDACTED), "{what}: {form} not redacted");
            for leftover in out.split(REDACTED).flat_map(str::split_whitespace) {
                assert!(
                    leftover.len() <= 4
                        || ["value", "#", "end", r#""{\"t\":\""#, r#"\"}""#].contains(&leftover),
                    "{what}: {leftover:?} of {form:?} left in {out:?}"
                );
            }
        }
        // Inside a longer base64 string, at each byte alignment, ending it or not, padded or
        // not, in both alphabets (and for the UTF-16LE bytes): nothing of it can be decoded.
        for bytes in [b.to_vec(), utf16] {
            for prefix in ["", "x", "xy", "xyz", "user:"] {
                for suffix in ["", "!", "!?", "\n", ":0123456789"] {
                    let mut whole = prefix.as_bytes().to_vec();
                    whole.extend_from_slice(&bytes);
                    whole.extend_from_slice(suffix.as_bytes());
                    for encoded in [
                        STANDARD.encode(&whole),
                        STANDARD_NO_PAD.encode(&whole),
                        URL_SAFE.encode(&whole),
                        URL_SAFE_NO_PAD.encode(&whole),
                    ] {
                        let out = r.redact(&encoded);
                        if let Some(leak) = base64_leaks(&out, &bytes) {
                            panic!("{prefix:?} + secret + {suffix:?} = {encoded}: {out}: {leak}");
                        }
                    }
                }
            }
        }
        // Surrounding whitespace in the configured value: its trimmed value's forms count too.
        let spaced = Redactor::new(["  spacey-secret\n".to_string()]);
        let enc = STANDARD.encode("spacey-secret");
        assert_eq!(spaced.redact(&format!("v={enc}")), "v=***");
        // Plain alphanumeric secrets have no percent or JSON form of their own: no empty or
        // duplicate patterns. Short secrets: their encodings are long enough to match.
        check(
            &["abcd"],
            &format!("x={}", STANDARD.encode("abcd")),
            "x=***",
        );
        check(&["abcd"], &format!("x={}", hex::encode("abcd")), "x=***");
        // What is not covered (documented): a 4–5 character secret inside a longer base64
        // string at an unaligned offset (its forms there are under 6 characters), and hashes of
        // a longer string holding the secret.
        let unaligned = STANDARD.encode("xabcd!");
        check(&["abcd"], &unaligned, &unaligned);
        let salted = hex::encode(sha2::Sha256::digest("user:hunter2-secret"));
        check(&["hunter2-secret"], &salted, &salted);
    }

    #[test]
    fn encodings_do_not_redact_ordinary_text() {
        let r = Redactor::new(["correct-horse-battery".to_string()]);
        let text = "resource \"null_resource\" \"x\" { triggers = { v = \"Y29ycmVjdA==\" } }\n";
        assert!(matches!(r.redact(text), Cow::Borrowed(_)));
        // Every pattern is at least as long as the shortest allowed form.
        let patterns = patterns_of("correct-horse-battery");
        assert!(
            patterns
                .iter()
                .all(|p| p.chars().count() >= MIN_SECRET_CHARS)
        );
        assert!(patterns.len() > 20, "{}", patterns.len());
    }

    /// The patterns [`Redactor::new`] builds for one secret.
    fn patterns_of(secret: &str) -> Vec<String> {
        let mut out = Vec::new();
        add_variants(secret, &mut out);
        add_encodings(secret.as_bytes(), &mut out);
        add_escapes(secret, &mut out);
        out.sort();
        out.dedup();
        out
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
