//! What GitHub displays of a comment, for the command parser: a command is judged by what its
//! author sees, not by markup that renders as nothing. Saved replies and sync tools append HTML
//! comments, editors leave trailing spaces and `\r`, and copy-paste carries zero-width
//! characters and byte order marks; none of them may turn a one-line command into
//! "conversation", nor glue themselves to a word. Pure; linear in the body's length.

/// Characters that render as nothing: zero-width space, non-joiner and joiner, word joiner,
/// invisible operators (U+2061–U+2064), byte order mark / zero-width no-break space, soft
/// hyphen, left-to-right and right-to-left marks, Arabic letter mark, Mongolian vowel
/// separator. (Bidirectional *overrides* change what is displayed; they are kept, and refused
/// where a value may not hold them.)
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
    )
}

/// The lines of `body` that display something, in order: HTML comments removed (`<!-- … -->`,
/// to the end of the body when never closed, as GitHub hides it), invisible characters
/// ([`is_invisible`]) removed, trailing whitespace (and `\r`) cut, and lines left blank dropped.
pub fn displayed_lines(body: &str) -> Vec<String> {
    let mut text = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("<!--") {
        text.push_str(&rest[..start]);
        match rest[start + 4..].find("-->") {
            Some(end) => rest = &rest[start + 4 + end + 3..],
            None => rest = "",
        }
    }
    text.push_str(rest);
    text.split('\n')
        .map(|line| {
            line.chars()
                .filter(|c| !is_invisible(*c))
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .filter(|line| !line.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_github_does_not_display_is_removed() {
        let cases: &[(&str, &[&str])] = &[
            (
                "sluice apply\n<!-- saved reply: deploy -->",
                &["sluice apply"],
            ),
            ("<!-- a -->sluice plan<!-- b -->", &["sluice plan"]),
            ("sluice plan\n<!--\nmulti\nline\n-->\n", &["sluice plan"]),
            ("sluice plan\n<!-- never closed\nthanks", &["sluice plan"]),
            ("sluice plan   \r\n \t\r\n", &["sluice plan"]),
            ("\u{FEFF}sluice plan", &["sluice plan"]),
            ("sluice\u{200B} plan\n\u{200B}\u{200D}\n", &["sluice plan"]),
            ("sl\u{00AD}uice plan\u{200E}", &["sluice plan"]),
            ("sluice plan\u{2060}\n\u{FEFF}", &["sluice plan"]),
            ("sluice plan\nthanks!", &["sluice plan", "thanks!"]),
            ("sluice plan -p \u{202E}x", &["sluice plan -p \u{202E}x"]),
            ("", &[]),
            ("<!---->", &[]),
        ];
        for (body, want) in cases {
            assert_eq!(displayed_lines(body), *want, "{body:?}");
        }
    }
}
