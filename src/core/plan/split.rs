//! Splitting a markdown document into comment bodies that each fit GitHub's limit.
//!
//! GitHub rejects comments over 65,536 characters. Lengths here are UTF-8 **bytes**, which is
//! never less than the character count, so a part that fits in bytes fits in characters.
//! Cuts happen between lines. A part that ends inside a code fence and/or `<details>` block
//! closes them, and the next part reopens them (`<details><summary>… (continued)</summary>` and
//! the same fence line), so every part renders on its own. A single line longer than a part is
//! hard-wrapped on a `char` boundary. Each part gets a header and footer from the caller
//! (e.g. "(part 2 of 3)"), and the byte limit holds for the whole body, frame included.
//!
//! This module knows just enough markdown to do that (fences per CommonMark, `<details>` lines
//! outside fences). It does not decide what to drop when there are too many parts: that is the
//! renderer's call (see `render`), since only it knows which text matters.

/// What the caller puts around part `i` of `n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub head: String,
    pub tail: String,
}

impl Frame {
    /// Bytes the frame adds to a body.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appended to a `<summary>` when a `<details>` block is reopened in the next part.
pub const CONTINUED: &str = " (continued)";

/// Splits `blocks` (concatenated, they form the document) into bodies of at most `max_bytes`
/// bytes, each wrapped in `frame(i, n)` (1-based). A block that fits in a part is moved whole to
/// the next part rather than cut, when the current part has nothing open; so small sections
/// (one project each) are not torn across comments.
///
/// Always returns at least one body. The limit holds whenever `max_bytes` leaves room for the
/// frame plus a few hundred bytes; below that, bodies are cut at `max_bytes` as a last resort.
pub fn split_markdown<B: AsRef<str>>(
    blocks: &[B],
    max_bytes: usize,
    frame: impl Fn(usize, usize) -> Frame,
) -> Vec<String> {
    // The frame's size depends on the part numbers; reserve room for the widest numbers of
    // the current digit count, and retry with one more digit if there are more parts.
    let mut digits = 1u32;
    loop {
        let n_max = 10usize.saturating_pow(digits) - 1;
        let reserve = [1, n_max.saturating_sub(1).max(1), n_max]
            .iter()
            .map(|&i| frame(i, n_max).len())
            .max()
            .unwrap_or(0);
        let chunks = split_chunks(blocks, max_bytes.saturating_sub(reserve));
        if chunks.len() > n_max && digits < 19 {
            digits += 1;
            continue;
        }
        let n = chunks.len();
        return chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                let f = frame(i + 1, n);
                let mut body = String::with_capacity(f.len() + chunk.len());
                body.push_str(&f.head);
                body.push_str(&chunk);
                body.push_str(&f.tail);
                // Last resort (limits too small for the frame): GitHub's limit is hard.
                truncate_to(&mut body, max_bytes);
                body
            })
            .collect();
    }
}

/// Cuts `s` to at most `max` bytes on a `char` boundary.
pub(crate) fn truncate_to(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn split_chunks<B: AsRef<str>>(blocks: &[B], budget: usize) -> Vec<String> {
    let mut s = Splitter {
        budget,
        chunks: Vec::new(),
        cur: String::new(),
        floor: 0,
        st: State::default(),
    };
    for block in blocks {
        let block = block.as_ref();
        if s.st.is_closed() && s.cur.len() > s.floor && s.cur.len() + block.len() > budget
            // Only when the block fits a part of its own; otherwise filling this part first
            // wastes no more space than cutting the block anyway.
            && block.len() <= budget
        {
            s.flush();
        }
        for line in block.split_inclusive('\n') {
            if line.ends_with('\n') {
                s.push_line(line);
            } else {
                s.push_line(&format!("{line}\n"));
            }
        }
    }
    s.finish()
}

struct Splitter {
    budget: usize,
    chunks: Vec<String>,
    cur: String,
    /// Length of the reopening text at the start of `cur`: a part holding only that is empty.
    floor: usize,
    st: State,
}

impl Splitter {
    fn fits(&self, line: &str, effect: &Effect) -> bool {
        self.cur.len() + line.len() + self.st.close_len_after(effect) <= self.budget
    }

    fn push_line(&mut self, line: &str) {
        let effect = self.st.effect(line);
        if self.fits(line, &effect) {
            self.append(line, effect);
            return;
        }
        if self.cur.len() > self.floor {
            self.flush();
            if self.fits(line, &effect) {
                self.append(line, effect);
                return;
            }
        }
        self.hard_wrap(line);
    }

    fn append(&mut self, line: &str, effect: Effect) {
        self.cur.push_str(line);
        self.st.apply(effect);
    }

    /// Closes what is open, ends the part, and starts the next one by reopening it.
    fn flush(&mut self) {
        self.st.close_into(&mut self.cur);
        self.chunks.push(std::mem::take(&mut self.cur));
        self.st.reopen_into(&mut self.cur);
        self.floor = self.cur.len();
    }

    /// A line too long for any part: cut into pieces that each fit a fresh part. Pieces after
    /// the first are plain content; a cut is moved so no piece starts with a character that
    /// could make it a fence or an HTML line (`` ` ``, `~`, `<`) or indentation.
    fn hard_wrap(&mut self, line: &str) {
        const SLACK: usize = 64;
        let content = line.strip_suffix('\n').unwrap_or(line);
        let room = self
            .budget
            .saturating_sub(self.st.reopen_len() + self.st.close_len() + SLACK)
            .max(16);
        let mut rest = content;
        let mut first = true;
        let mut piece_buf = String::new();
        while !rest.is_empty() {
            let cut = wrap_cut(rest, room);
            let (piece, tail) = rest.split_at(cut);
            piece_buf.clear();
            piece_buf.push_str(piece);
            piece_buf.push('\n');
            let effect = if first {
                self.st.effect(&piece_buf)
            } else {
                Effect::None
            };
            if !self.fits(&piece_buf, &effect) && self.cur.len() > self.floor {
                self.flush();
            }
            // Fits by construction (or the budget is below any workable size and the last
            // resort in `split_markdown` applies).
            self.append(&piece_buf, effect);
            rest = tail;
            first = false;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.cur.len() > self.floor || self.chunks.is_empty() {
            self.st.close_into(&mut self.cur);
            self.chunks.push(self.cur);
        }
        self.chunks
    }
}

/// Where to cut `s` so the first piece has at most `room` bytes: on a char boundary, and
/// preferably where the next piece does not start with a markdown-significant character.
fn wrap_cut(s: &str, room: usize) -> usize {
    if s.len() <= room {
        return s.len();
    }
    let mut cut = room;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let max_cut = cut;
    let risky = |c: char| matches!(c, '`' | '~' | '<' | ' ' | '\t');
    for _ in 0..64 {
        match s[cut..].chars().next() {
            Some(c) if risky(c) => {}
            _ => return cut,
        }
        // Step back one char.
        match s[..cut].char_indices().next_back() {
            Some((i, _)) if i > 0 => cut = i,
            _ => break,
        }
    }
    // No good place nearby (e.g. a line of backticks): cut at the limit anyway.
    if max_cut == 0 {
        s.chars().next().map_or(s.len(), char::len_utf8)
    } else {
        max_cut
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fence {
    /// The opening line as written (reused to reopen), with its newline.
    open: String,
    ch: u8,
    len: usize,
}

/// What is open at the current point of the document.
#[derive(Debug, Default)]
struct State {
    fence: Option<Fence>,
    /// The lines that reopen each enclosing `<details>`, outermost first.
    details: Vec<String>,
}

#[derive(Debug)]
enum Effect {
    None,
    OpenFence(Fence),
    CloseFence,
    OpenDetails(String),
    CloseDetails,
}

const CLOSE_DETAILS: &str = "</details>\n";
/// Reopen lines longer than this are replaced by a generic one, to keep them cheap.
const MAX_REOPEN_LINE: usize = 200;

impl State {
    fn is_closed(&self) -> bool {
        self.fence.is_none() && self.details.is_empty()
    }

    fn effect(&self, line: &str) -> Effect {
        if let Some(f) = &self.fence {
            return if closes_fence(line, f) {
                Effect::CloseFence
            } else {
                Effect::None
            };
        }
        if let Some(f) = opens_fence(line) {
            return Effect::OpenFence(f);
        }
        let t = line.trim();
        if t.starts_with("</details>") {
            return if self.details.is_empty() {
                Effect::None
            } else {
                Effect::CloseDetails
            };
        }
        if let Some(rest) = t.strip_prefix("<details")
            && (rest.starts_with('>') || rest.starts_with(char::is_whitespace))
            && !rest.contains("</details>")
        {
            return Effect::OpenDetails(reopen_details_line(t));
        }
        Effect::None
    }

    fn apply(&mut self, e: Effect) {
        match e {
            Effect::None => {}
            Effect::OpenFence(f) => self.fence = Some(f),
            Effect::CloseFence => self.fence = None,
            Effect::OpenDetails(l) => self.details.push(l),
            Effect::CloseDetails => {
                self.details.pop();
            }
        }
    }

    fn close_len(&self) -> usize {
        self.fence.as_ref().map_or(0, |f| f.len + 1) + self.details.len() * CLOSE_DETAILS.len()
    }

    /// `close_len` of the state after `e`, without building it.
    fn close_len_after(&self, e: &Effect) -> usize {
        let details = self.details.len() * CLOSE_DETAILS.len();
        match e {
            Effect::None => self.close_len(),
            Effect::OpenFence(f) => f.len + 1 + details,
            Effect::CloseFence => details,
            Effect::OpenDetails(_) => self.close_len() + CLOSE_DETAILS.len(),
            Effect::CloseDetails => self.close_len() - CLOSE_DETAILS.len(),
        }
    }

    fn close_into(&self, out: &mut String) {
        if let Some(f) = &self.fence {
            for _ in 0..f.len {
                out.push(f.ch as char);
            }
            out.push('\n');
        }
        for _ in &self.details {
            out.push_str(CLOSE_DETAILS);
        }
    }

    fn reopen_len(&self) -> usize {
        self.details.iter().map(String::len).sum::<usize>()
            + self.fence.as_ref().map_or(0, |f| f.open.len())
    }

    fn reopen_into(&self, out: &mut String) {
        for d in &self.details {
            out.push_str(d);
        }
        if let Some(f) = &self.fence {
            out.push_str(&f.open);
        }
    }
}

/// A CommonMark fence opener: up to 3 spaces, then 3+ backticks or tildes; a backtick fence's
/// info string may not contain a backtick.
fn opens_fence(line: &str) -> Option<Fence> {
    let body = line.trim_end_matches(['\n', '\r']);
    let indent = body.len() - body.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &body[indent..];
    let ch = *rest.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = rest.bytes().take_while(|&b| b == ch).count();
    if len < 3 || (ch == b'`' && rest[len..].contains('`')) {
        return None;
    }
    let open = if body.len() > MAX_REOPEN_LINE {
        format!("{}\n", &rest[..len])
    } else {
        format!("{body}\n")
    };
    Some(Fence { open, ch, len })
}

/// A closing fence: up to 3 spaces, at least as many of the same character, then only spaces.
fn closes_fence(line: &str, f: &Fence) -> bool {
    let body = line.trim_end_matches(['\n', '\r']);
    let indent = body.len() - body.trim_start_matches(' ').len();
    if indent > 3 {
        return false;
    }
    let rest = &body[indent..];
    let len = rest.bytes().take_while(|&b| b == f.ch).count();
    len >= f.len && rest[len..].trim().is_empty()
}

/// `<details><summary>Show output</summary>` reopens as
/// `<details><summary>Show output (continued)</summary>`, followed by the blank line GitHub
/// needs before markdown inside an HTML block.
fn reopen_details_line(line: &str) -> String {
    let reopened = match line.find("</summary>") {
        _ if line.len() > MAX_REOPEN_LINE => "<details><summary>(continued)</summary>".to_string(),
        Some(i) if line[..i].ends_with(CONTINUED) => line.to_string(),
        Some(i) => format!("{}{CONTINUED}{}", &line[..i], &line[i..]),
        None => line.to_string(),
    };
    format!("{reopened}\n\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that a part renders on its own: every fence it opens it closes, and `<details>`
    /// opens and closes balance (never closing more than it opened). Written independently of
    /// `State`, from the CommonMark rules for the fences Sluice writes.
    pub(crate) fn assert_balanced(part: &str) {
        let mut fence: Option<(char, usize)> = None;
        let mut depth = 0i64;
        for line in part.lines() {
            let run = |c: char| line.chars().take_while(|&x| x == c).count();
            match fence {
                Some((c, n)) => {
                    if run(c) >= n && line.trim_start_matches(c).trim().is_empty() {
                        fence = None;
                    }
                }
                None => {
                    let (b, t) = (run('`'), run('~'));
                    if b >= 3 && !line[b..].contains('`') {
                        fence = Some(('`', b));
                    } else if t >= 3 {
                        fence = Some(('~', t));
                    } else if line.starts_with("<details") {
                        depth += 1;
                    } else if line.starts_with("</details>") {
                        depth -= 1;
                        assert!(depth >= 0, "closes a <details> it did not open:\n{part}");
                    }
                }
            }
        }
        assert!(fence.is_none(), "fence left open:\n{part}");
        assert_eq!(depth, 0, "<details> left open:\n{part}");
    }

    fn no_frame(_: usize, _: usize) -> Frame {
        Frame::default()
    }

    fn numbered(i: usize, n: usize) -> Frame {
        Frame {
            head: format!("HEAD (part {i} of {n})\n\n"),
            tail: if i < n {
                format!("\nTAIL {i}\n")
            } else {
                String::new()
            },
        }
    }

    /// A tiny deterministic generator (xorshift), so the property test needs no crate.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A document of paragraphs and folded ```diff blocks, with multibyte text and the odd
    /// giant line. Every content line carries a unique token `[#n]` so tests can check that
    /// nothing is lost or duplicated.
    fn document(rng: &mut Rng, blocks: usize) -> Vec<String> {
        let words = [
            "plan",
            "résumé",
            "漢字",
            "🚀",
            "null_resource.a",
            "=",
            "\"x\"",
        ];
        let mut token = 0;
        let mut line = |rng: &mut Rng, out: &mut String, prefix: &str| {
            let len = if rng.below(50) == 0 {
                3_000 + rng.below(20_000)
            } else {
                rng.below(120)
            };
            out.push_str(prefix);
            let _ = std::fmt::Write::write_fmt(out, format_args!("[#{token}] "));
            token += 1;
            let start = out.len();
            while out.len() - start < len {
                out.push_str(words[rng.below(words.len())]);
                out.push(' ');
            }
            out.push('\n');
        };
        (0..blocks)
            .map(|b| {
                let mut s = String::new();
                if b > 0 {
                    s.push_str("---\n\n");
                }
                s.push_str("### project\n\n");
                line(rng, &mut s, "");
                if rng.below(3) > 0 {
                    s.push_str("\n<details><summary>Show output</summary>\n\n```diff\n");
                    for _ in 0..rng.below(400) {
                        let prefix = ["+ ", "- ", "~ ", "  "][rng.below(4)];
                        line(rng, &mut s, prefix);
                    }
                    s.push_str("```\n\n</details>\n");
                }
                s.push_str("\n* next: `sluice apply -p x`\n");
                s
            })
            .collect()
    }

    fn tokens(text: &str) -> Vec<usize> {
        let mut v: Vec<usize> = text
            .match_indices("[#")
            .filter_map(|(i, _)| {
                let rest = &text[i + 2..];
                let end = rest.find(']')?;
                rest[..end].parse().ok()
            })
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn property_every_part_fits_and_balances() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for case in 0..150 {
            let count = 1 + rng.below(8);
            let blocks = document(&mut rng, count);
            let max = 1_024 + rng.below(if case % 3 == 0 { 4_000 } else { 70_000 });
            let parts = split_markdown(&blocks, max, numbered);
            let n = parts.len();
            for (i, p) in parts.iter().enumerate() {
                assert!(
                    p.len() <= max,
                    "case {case}: part {i} has {} > {max}",
                    p.len()
                );
                assert!(p.starts_with(&format!("HEAD (part {} of {n})", i + 1)));
                assert_balanced(p);
            }
            // Nothing lost or duplicated (tokens are short; a hard wrap never cuts one because
            // they sit at the start of a line).
            let want: Vec<usize> = tokens(&blocks.concat());
            assert_eq!(tokens(&parts.concat()), want, "case {case}, max {max}");
        }
    }

    #[test]
    fn small_document_is_one_part() {
        let parts = split_markdown(&["hello\n"], 65_536, numbered);
        assert_eq!(parts, ["HEAD (part 1 of 1)\n\nhello\n"]);
        let parts = split_markdown::<&str>(&[], 65_536, no_frame);
        assert_eq!(parts, [""]);
    }

    #[test]
    fn reopens_details_and_fence() {
        let mut doc = String::from("intro\n<details><summary>Show output</summary>\n\n```diff\n");
        for i in 0..40 {
            doc.push_str(&format!("+ line {i:02} of the diff\n"));
        }
        doc.push_str("```\n</details>\n\noutro\n");
        let parts = split_markdown(&[doc], 400, numbered);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.len() <= 400);
            assert_balanced(p);
        }
        insta::assert_snapshot!(parts[1], @r"
        HEAD (part 2 of 4)

        <details><summary>Show output (continued)</summary>

        ```diff
        + line 13 of the diff
        + line 14 of the diff
        + line 15 of the diff
        + line 16 of the diff
        + line 17 of the diff
        + line 18 of the diff
        + line 19 of the diff
        + line 20 of the diff
        + line 21 of the diff
        + line 22 of the diff
        + line 23 of the diff
        + line 24 of the diff
        + line 25 of the diff
        ```
        </details>

        TAIL 2
        ");
    }

    #[test]
    fn one_giant_line_is_hard_wrapped_on_char_boundaries() {
        let giant: String = "é漢🚀`<~ ".repeat(20_000);
        let doc = format!("```\n{giant}\n```\n");
        let parts = split_markdown(&[doc.as_str()], 5_000, numbered);
        assert!(parts.len() > 20);
        let mut rebuilt = String::new();
        for p in &parts {
            assert!(p.len() <= 5_000);
            assert_balanced(p);
            let body = p.split_once("\n\n").expect("head").1;
            let body = body.split("\nTAIL").next().expect("body");
            let inner = body
                .strip_prefix("```\n")
                .and_then(|b| b.strip_suffix("```\n"))
                .expect("each part is one fenced block");
            rebuilt.push_str(&inner.replace('\n', ""));
        }
        assert_eq!(rebuilt, giant, "all characters kept, in order");
    }

    #[test]
    fn small_sections_move_whole_to_the_next_part() {
        let blocks: Vec<String> = (0..30)
            .map(|i| format!("### project {i}\n\nPlan: 1 to add.\n\n"))
            .collect();
        let parts = split_markdown(&blocks, 200, no_frame);
        for p in &parts {
            assert!(p.len() <= 200);
            // Each part starts at a section, never in the middle of one.
            assert!(p.starts_with("### project"), "{p:?}");
        }
    }

    #[test]
    fn fences_follow_commonmark() {
        let check = |line: &str, expect: bool| {
            assert_eq!(opens_fence(line).is_some(), expect, "{line:?}");
        };
        check("```\n", true);
        check("```diff\n", true);
        check("   ~~~~\n", true);
        check("    ```\n", false); // indented code, not a fence
        check("``\n", false);
        check("``` a`b\n", false); // backtick in a backtick fence's info string
        let f = opens_fence("````\n").unwrap();
        assert!(!closes_fence("```\n", &f));
        assert!(closes_fence("`````  \n", &f));
        assert!(!closes_fence("```` x\n", &f));
    }

    #[test]
    fn part_count_with_many_digits() {
        let doc = "word ".repeat(40_000) + "\n";
        let parts = split_markdown(&[doc.as_str()], 150, numbered);
        assert!(parts.len() >= 10, "{}", parts.len());
        let n = parts.len();
        for (i, p) in parts.iter().enumerate() {
            assert!(p.len() <= 150);
            assert!(p.starts_with(&format!("HEAD (part {} of {n})", i + 1)));
        }
    }
}
