//! The hidden markers that let Sluice find its own comments and reviews again: an HTML comment on
//! the first line of every body it posts (`<!-- sluice:sticky pr=12 -->`), invisible in the
//! rendered markdown.
//!
//! A marker says what the object is (the sticky summary, one of its detail slots, a review or a
//! review comment), for which PR and head commit, and whether it was superseded. The app finds
//! the object by its stored id first; the marker is how it recognises (or re-finds) it when the
//! store has no id or a human deleted the comment. Markers are only trusted on comments authored
//! by Sluice itself: anyone can type one. This module renders and parses them; it does not
//! decide what to do with a found object.

use std::fmt;

/// What a marked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    /// The one summary comment per PR.
    Sticky,
    /// Follow-up comment `slot` (1-based) of the sticky summary, for details that do not fit.
    Detail { slot: u32 },
    /// The review body of one push's plan review.
    Review,
    /// A line or file comment of such a review.
    ReviewComment,
}

/// A parsed marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    pub pr: u64,
    /// The head commit the body is about (reviews and their comments).
    pub head: Option<String>,
    /// The body was replaced by a note pointing at a newer one.
    pub superseded: bool,
}

const PREFIX: &str = "<!-- sluice:";
const SUFFIX: &str = " -->";

impl fmt::Display for Marker {
    /// `<!-- sluice:review pr=12 head=0123abc… superseded -->`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        match self.kind {
            MarkerKind::Sticky => f.write_str("sticky")?,
            MarkerKind::Detail { slot } => write!(f, "detail slot={slot}")?,
            MarkerKind::Review => f.write_str("review")?,
            MarkerKind::ReviewComment => f.write_str("review-comment")?,
        }
        write!(f, " pr={}", self.pr)?;
        if let Some(head) = &self.head {
            write!(f, " head={head}")?;
        }
        if self.superseded {
            f.write_str(" superseded")?;
        }
        f.write_str(SUFFIX)
    }
}

impl Marker {
    pub fn new(kind: MarkerKind, pr: u64) -> Self {
        Marker {
            kind,
            pr,
            head: None,
            superseded: false,
        }
    }

    pub fn with_head(mut self, head: &str) -> Self {
        self.head = Some(head.to_string());
        self
    }

    pub fn superseded(mut self) -> Self {
        self.superseded = true;
        self
    }

    /// The marker on the first line of `body`, if it carries one Sluice wrote. Only the first
    /// line (at most 300 bytes) is looked at, so any body costs the same.
    pub fn parse(body: &str) -> Option<Marker> {
        let line = body.lines().next()?.trim_end();
        if line.len() > 300 {
            return None;
        }
        let inner = line.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        let mut words = inner.split(' ');
        let kind_word = words.next()?;
        let mut slot = None;
        let mut pr = None;
        let mut head = None;
        let mut superseded = false;
        for w in words {
            match w.split_once('=') {
                Some(("slot", v)) => slot = Some(v.parse().ok()?),
                Some(("pr", v)) => pr = Some(v.parse().ok()?),
                Some(("head", v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    head = Some(v.to_string())
                }
                None if w == "superseded" => superseded = true,
                _ => return None,
            }
        }
        let kind = match (kind_word, slot) {
            ("sticky", None) => MarkerKind::Sticky,
            ("detail", Some(slot)) => MarkerKind::Detail { slot },
            ("review", None) => MarkerKind::Review,
            ("review-comment", None) => MarkerKind::ReviewComment,
            _ => return None,
        };
        Some(Marker {
            kind,
            pr: pr?,
            head,
            superseded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let table = [
            (
                Marker::new(MarkerKind::Sticky, 12),
                "<!-- sluice:sticky pr=12 -->",
            ),
            (
                Marker::new(MarkerKind::Detail { slot: 3 }, 12).superseded(),
                "<!-- sluice:detail slot=3 pr=12 superseded -->",
            ),
            (
                Marker::new(MarkerKind::Review, 7).with_head(sha),
                "<!-- sluice:review pr=7 head=0123456789abcdef0123456789abcdef01234567 -->",
            ),
            (
                Marker::new(MarkerKind::ReviewComment, 7)
                    .with_head(sha)
                    .superseded(),
                "<!-- sluice:review-comment pr=7 head=0123456789abcdef0123456789abcdef01234567 superseded -->",
            ),
        ];
        for (marker, text) in table {
            assert_eq!(marker.to_string(), text);
            assert_eq!(Marker::parse(&format!("{text}\nbody text")), Some(marker));
        }
    }

    #[test]
    fn anything_else_is_no_marker() {
        for body in [
            "",
            "plain comment",
            "text first\n<!-- sluice:sticky pr=12 -->",
            "<!-- sluice:sticky -->",
            "<!-- sluice:sticky pr=x -->",
            "<!-- sluice:detail pr=1 -->",
            "<!-- sluice:sticky pr=1 slot=2 -->",
            "<!-- sluice:review pr=1 head=not-hex -->",
            "<!-- sluice:review pr=1 extra -->",
            "<!-- sluice:other pr=1 -->",
            "<!-- sluice:sticky pr=1 --> trailing",
            &format!("<!-- sluice:sticky pr=1 {} -->", "x".repeat(400)),
        ] {
            assert_eq!(Marker::parse(body), None, "{body:?}");
        }
    }
}
