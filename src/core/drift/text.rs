//! Small markdown helpers shared by the drift replies and reports: inline code that survives
//! backticks, echoes of user text that cannot inject markdown or mentions, table cells, links.
//! Pure string functions.

/// How many characters of user text a reply echoes before cutting it off with `…`.
pub(crate) const ECHO_LIMIT: usize = 100;

/// An inline code span that survives backticks in its content.
pub(crate) fn code(s: &str) -> String {
    if s.is_empty() {
        return "`\"\"`".to_string();
    }
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    if longest == 0 {
        format!("`{s}`")
    } else {
        let fence = "`".repeat(longest + 1);
        format!("{fence} {s} {fence}")
    }
}

/// Inline code for text a person typed: at most [`ECHO_LIMIT`] characters, one line, with
/// backticks, bidirectional overrides and control characters neutralised.
pub(crate) fn echo(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(ECHO_LIMIT).map(neutral).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    code(&out)
}

/// User text shown outside code spans (a reason): neutralised, `<` escaped, `@` kept from
/// mentioning anyone, markdown emphasis and links defused, one line.
pub(crate) fn plain(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(one.len());
    for c in one.chars().map(neutral) {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A zero-width joiner after `@` keeps GitHub from turning it into a mention.
            '@' => out.push_str("@\u{200d}"),
            '*' | '_' | '[' | ']' | '|' | '\\' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn neutral(c: char) -> char {
    match c {
        '`' => 'ˋ',
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
        c if c.is_control() => '\u{FFFD}',
        c => c,
    }
}

/// Text safe inside a table cell: one line, pipes escaped.
pub(crate) fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// A URL as a markdown autolink; characters that would end it are percent-encoded.
pub(crate) fn link(url: &str) -> String {
    let mut s = String::from("<");
    for c in url.chars() {
        match c {
            '<' => s.push_str("%3C"),
            '>' => s.push_str("%3E"),
            ' ' => s.push_str("%20"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s.push('>');
    s
}

/// `n thing` / `n things`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_break_out() {
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(echo("x`y"), "`xˋy`");
        assert_eq!(echo(&"a".repeat(150)), format!("`{}…`", "a".repeat(100)));
        assert_eq!(
            plain("ping @ops <b>*now*</b> [x](y)\nnext"),
            "ping @\u{200d}ops &lt;b&gt;\\*now\\*&lt;/b&gt; \\[x\\](y) next"
        );
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(link("https://x/a b>"), "<https://x/a%20b%3E>");
        assert_eq!(count(1, "resource", "resources"), "1 resource");
        assert_eq!(count(2, "resource", "resources"), "2 resources");
    }
}
