//! A cheap, conservative pre-scan of HCL text from a pull request, run before the HCL parser
//! sees it: how deeply the text nests and how large its objects grow. The parser Sluice uses for
//! module detection (`hcl-edit` 0.8, under `hcl-rs`) is a recursive-descent parser with no depth
//! limit — it descends once per bracket, brace, parenthesis, string template, interpolation,
//! template directive and operator of a chain (`a + b + c` nests) — so ~2,000 nested `[` in a
//! 4 KB file overflow any thread's stack and abort the process. Its objects are vectors searched
//! linearly on every insert, so one object with 100,000 entries takes minutes. This scan refuses
//! such text first; what it accepts parses on a few megabytes of stack, in well under a second
//! per megabyte.
//!
//! The scan follows the lexical rules of that parser: quoted strings with their escapes,
//! `${…}` interpolations and `%{if}`/`%{for}` directives (whose bodies are templates of their
//! own), heredocs (whose end is found exactly where the parser finds it), and `#`, `//` and
//! `/* */` comments. It errs on the side of refusing: every construct the parser recurses into
//! counts at least one level, an operator counts until the expression holding it certainly ends,
//! and text whose structure it cannot follow exactly is reported as [`Refusal::Malformed`] and
//! must not be parsed (the parser would reject it too). Pure: no I/O.

use std::fmt;

/// The bounds one file must stay within before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HclLimits {
    /// Largest file, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting: see [`max_depth`] for what counts.
    pub max_depth: usize,
}

/// The most work one file's objects may cost the parser, in key comparisons (an object of `n`
/// entries costs about `n²/2`): about a third of a second. Roughly one object of 6,000 entries,
/// or many smaller ones; no hand-written configuration comes near it.
pub const OBJECT_WORK: u64 = 20_000_000;

/// Why a file is not parsed. Positions are 1-based (line, column in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than [`HclLimits::max_bytes`].
    TooLarge { bytes: usize, max: usize },
    /// Nests deeper than [`HclLimits::max_depth`] at this position.
    TooDeep {
        line: usize,
        column: usize,
        max: usize,
    },
    /// Its objects hold too many entries for the parser to read quickly ([`OBJECT_WORK`]); the
    /// position is the start of the object that went over.
    ObjectTooLarge { line: usize, column: usize },
    /// Its structure cannot be followed exactly (unbalanced brackets, an unterminated string or
    /// comment, a directive without its `if`/`for`, an empty heredoc): the parser would reject it,
    /// or could read it in a way this scan cannot check. Not parsed; treat as a syntax error.
    Malformed {
        line: usize,
        column: usize,
        what: &'static str,
    },
}

impl Refusal {
    /// True for the refusals that are about size, not syntax: the file may be valid, Sluice
    /// just will not read it.
    pub fn is_bound(&self) -> bool {
        !matches!(self, Refusal::Malformed { .. })
    }

    /// Where the refusal points (0:0: the whole file).
    pub fn position(&self) -> (usize, usize) {
        match self {
            Refusal::TooLarge { .. } => (0, 0),
            Refusal::TooDeep { line, column, .. }
            | Refusal::ObjectTooLarge { line, column }
            | Refusal::Malformed { line, column, .. } => (*line, *column),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooLarge { bytes, max } => write!(
                f,
                "the file is {bytes} bytes; Sluice reads `.tf` files of at most {max} bytes (limits.file_bytes)"
            ),
            Refusal::TooDeep { max, .. } => write!(
                f,
                "brackets, braces, parentheses, string templates and operators nest more than {max} levels deep here (limits.hcl_depth)"
            ),
            Refusal::ObjectTooLarge { .. } => write!(
                f,
                "this object (with the others before it) has too many entries for Sluice to read quickly"
            ),
            Refusal::Malformed { what, .. } => write!(f, "HCL syntax error: {what}"),
        }
    }
}

/// Checks `text` against `limits`: `Ok` when it may be parsed.
pub fn check(text: &str, limits: &HclLimits) -> Result<(), Refusal> {
    if text.len() > limits.max_bytes {
        return Err(Refusal::TooLarge {
            bytes: text.len(),
            max: limits.max_bytes,
        });
    }
    Scanner::new(text, limits.max_depth).run()
}

/// The deepest nesting in `text` as this scan counts it (for tests and measurements): every
/// open bracket, brace, parenthesis, quoted string, heredoc, interpolation, directive tag and
/// directive body counts one, and so does every operator token of an expression that is still
/// open. `Err` when the text is malformed or its objects are too large.
pub fn max_depth(text: &str) -> Result<usize, Refusal> {
    let mut s = Scanner::new(text, usize::MAX);
    s.run()?;
    Ok(s.deepest)
}

/// A frame of the scan: one construct that is open at the current position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The file itself (never closed) or a block's body.
    Body {
        block: bool,
    },
    Paren,
    Bracket,
    /// `{ … }` in an expression.
    Object,
    /// `{for … }`: an expression that may span lines (its `if` condition can).
    ForObject,
    /// `${ … }`.
    Interp,
    /// `%{ … }`, with its keyword.
    Tag(Keyword),
    /// `" … "`.
    Quoted,
    /// A heredoc's body; the delimiter is `text[delim.0..delim.1]`.
    Heredoc {
        delim: (usize, usize),
    },
    /// The body of an `%{if}` or `%{for}` directive: a template that only `${`/`%{` interrupt.
    Template,
}

/// The word after `%{` (and an optional `~`), as the parser matches it: by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    /// `if` or `for`: opens a directive body.
    Opens,
    /// `else`: continues one.
    Else,
    /// `endif` or `endfor`: closes one.
    Ends,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    /// Byte offset where the frame opened.
    start: usize,
    /// Operator tokens of the expression this frame is in the middle of.
    ops: usize,
    /// Body frames: an `=` since the last line break (an attribute: a `{` now opens an object).
    seen_eq: bool,
    /// The last significant byte at this frame's level (a closed child counts as its closer).
    last_sig: u8,
    /// Objects: entries so far, and whether the current one has begun.
    items: u64,
    in_item: bool,
}

impl Frame {
    fn new(kind: Kind, start: usize) -> Frame {
        Frame {
            kind,
            start,
            ops: 0,
            seen_eq: false,
            last_sig: b' ',
            items: 0,
            in_item: false,
        }
    }

    /// Levels this frame adds beyond its operators: every frame but the file itself.
    fn cost(&self) -> usize {
        match self.kind {
            Kind::Body { block: false } => 0,
            _ => 1,
        }
    }
}

/// Operator bytes. A line break after one (or before one) keeps an expression going.
fn is_op(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'?' | b':' | b'='
    )
}

/// What can continue an expression on the next line (when the parser allows line breaks in
/// it): an operator, a traversal (`.x`, `[i]`), or a call's arguments (`f\n(1)`).
fn continues_expr(b: u8) -> bool {
    is_op(b) || matches!(b, b'.' | b'[' | b'(')
}

struct Scanner<'t> {
    text: &'t str,
    b: &'t [u8],
    limit: usize,
    stack: Vec<Frame>,
    depth: usize,
    deepest: usize,
    object_work: u64,
    /// Memo of the last look-ahead to the next significant byte: (from, found at).
    lookahead: Option<(usize, Option<usize>)>,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str, limit: usize) -> Self {
        Scanner {
            text,
            b: text.as_bytes(),
            limit,
            stack: vec![Frame::new(Kind::Body { block: false }, 0)],
            depth: 0,
            deepest: 0,
            object_work: 0,
            lookahead: None,
        }
    }

    fn top(&mut self) -> &mut Frame {
        self.stack
            .last_mut()
            .expect("the file frame is never popped")
    }

    fn at(&self, i: usize, s: &str) -> bool {
        self.b[i..].starts_with(s.as_bytes())
    }

    fn pos(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn malformed(&self, offset: usize, what: &'static str) -> Refusal {
        let (line, column) = self.pos(offset);
        Refusal::Malformed { line, column, what }
    }

    fn grew(&mut self, at: usize) -> Result<(), Refusal> {
        self.deepest = self.deepest.max(self.depth);
        if self.depth > self.limit {
            let (line, column) = self.pos(at);
            return Err(Refusal::TooDeep {
                line,
                column,
                max: self.limit,
            });
        }
        Ok(())
    }

    fn push(&mut self, kind: Kind, at: usize) -> Result<(), Refusal> {
        self.top().in_item = true;
        let f = Frame::new(kind, at);
        self.depth += f.cost();
        self.stack.push(f);
        self.grew(at)
    }

    /// Closes the top frame; `closer` becomes the parent's last significant byte.
    fn pop(&mut self, closer: u8) -> Result<Frame, Refusal> {
        let f = self.stack.pop().expect("only called above the file frame");
        self.depth -= f.cost() + f.ops;
        if f.kind == Kind::Object && f.in_item {
            self.count_item(f.items + 1, f.start)?;
        }
        let parent = self.top();
        parent.last_sig = closer;
        parent.in_item = true;
        Ok(f)
    }

    fn op(&mut self, at: usize) -> Result<(), Refusal> {
        let t = self.top();
        t.ops += 1;
        t.in_item = true;
        self.depth += 1;
        self.grew(at)
    }

    fn reset_ops(&mut self) {
        let t = self
            .stack
            .last_mut()
            .expect("the file frame is never popped");
        self.depth -= t.ops;
        t.ops = 0;
    }

    /// An object's entry ends; `n` is its number. The parser compares it with every earlier key.
    fn count_item(&mut self, n: u64, object_start: usize) -> Result<(), Refusal> {
        self.object_work += n;
        if self.object_work > OBJECT_WORK {
            let (line, column) = self.pos(object_start);
            return Err(Refusal::ObjectTooLarge { line, column });
        }
        Ok(())
    }

    /// Skips spaces, tabs, line breaks and comments from `i`; the offset of the next byte.
    /// `Err` for an unterminated `/*` comment.
    fn skip_ws(&self, mut i: usize) -> Result<usize, usize> {
        while i < self.b.len() {
            match self.b[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'#' => i = self.line_end(i),
                b'/' if self.b.get(i + 1) == Some(&b'/') => i = self.line_end(i),
                b'/' if self.b.get(i + 1) == Some(&b'*') => match find(self.b, i + 2, b"*/") {
                    Some(end) => i = end + 2,
                    None => return Err(i),
                },
                _ => return Ok(i),
            }
        }
        Ok(i)
    }

    fn line_end(&self, i: usize) -> usize {
        self.b[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.b.len(), |n| i + n)
    }

    /// The next significant byte at or after `i` (memoised, so runs of blank lines and
    /// comments are looked through once).
    fn next_sig(&mut self, i: usize) -> Option<u8> {
        if let Some((from, found)) = self.lookahead
            && from <= i
            && found.is_none_or(|f| i <= f)
        {
            return found.map(|f| self.b[f]);
        }
        let found = match self.skip_ws(i) {
            Ok(j) if j < self.b.len() => Some(j),
            Ok(_) => None,
            // An unterminated comment: the parser fails there; say "continues" (keeps counting).
            Err(j) => Some(j),
        };
        self.lookahead = Some((i, found));
        found.map(|f| self.b[f])
    }

    fn run(&mut self) -> Result<(), Refusal> {
        let mut i = 0;
        while i < self.b.len() {
            let top = *self.stack.last().expect("the file frame is never popped");
            i = match top.kind {
                Kind::Quoted => self.quoted(i)?,
                Kind::Heredoc { delim } => self.heredoc(i, delim)?,
                Kind::Template => self.template(i)?,
                _ => self.code(i)?,
            };
        }
        let top = *self.stack.last().expect("the file frame is never popped");
        if self.stack.len() > 1 {
            let what = match top.kind {
                Kind::Quoted => "unterminated string",
                Kind::Heredoc { .. } => "unterminated heredoc",
                Kind::Template => "`%{if}`/`%{for}` without its `%{endif}`/`%{endfor}`",
                _ => "unclosed bracket, brace or parenthesis",
            };
            return Err(self.malformed(top.start, what));
        }
        Ok(())
    }

    /// One token in code (a body, an expression, an interpolation, a directive tag).
    fn code(&mut self, i: usize) -> Result<usize, Refusal> {
        let c = self.b[i];
        match c {
            b' ' | b'\t' | b'\r' => Ok(i + 1),
            b'\n' => {
                self.newline(i)?;
                Ok(i + 1)
            }
            b'#' => Ok(self.line_end(i)),
            b'/' if self.b.get(i + 1) == Some(&b'/') => Ok(self.line_end(i)),
            b'/' if self.b.get(i + 1) == Some(&b'*') => match find(self.b, i + 2, b"*/") {
                Some(end) => Ok(end + 2),
                None => Err(self.malformed(i, "unterminated `/*` comment")),
            },
            b'"' => {
                self.push(Kind::Quoted, i)?;
                Ok(i + 1)
            }
            b'<' => match self.heredoc_start(i) {
                Some((delim, content)) => {
                    // The parser ends a heredoc whose first line starts with its delimiter there
                    // only when no later line does — and then reads the rest as code after all.
                    // Which one it picks depends on the whole text; such (empty) heredocs are not
                    // followed.
                    let mut j = content;
                    while j < self.b.len() && matches!(self.b[j], b' ' | b'\t') {
                        j += 1;
                    }
                    if self.b[j..].starts_with(&self.b[delim.0..delim.1]) {
                        return Err(self.malformed(i, "empty heredoc"));
                    }
                    self.push(Kind::Heredoc { delim }, i)?;
                    Ok(content)
                }
                None => self.operator(i),
            },
            b'[' => {
                self.push(Kind::Bracket, i)?;
                Ok(i + 1)
            }
            b'(' => {
                self.push(Kind::Paren, i)?;
                Ok(i + 1)
            }
            b'{' => {
                let top = *self.stack.last().expect("the file frame is never popped");
                let kind = match top.kind {
                    Kind::Body { .. } if !top.seen_eq => Kind::Body { block: true },
                    _ if self.for_follows(i + 1) => Kind::ForObject,
                    _ => Kind::Object,
                };
                self.push(kind, i)?;
                Ok(i + 1)
            }
            b']' => self.close(i, |k| k == Kind::Bracket),
            b')' => self.close(i, |k| k == Kind::Paren),
            b'}' => self.close(i, |k| {
                matches!(
                    k,
                    Kind::Body { block: true }
                        | Kind::Object
                        | Kind::ForObject
                        | Kind::Interp
                        | Kind::Tag(_)
                )
            }),
            b',' => {
                let top = *self.stack.last().expect("the file frame is never popped");
                if !matches!(top.kind, Kind::Body { .. }) {
                    self.reset_ops();
                    if top.kind == Kind::Object && top.in_item {
                        let t = self.top();
                        t.items += 1;
                        t.in_item = false;
                        let (n, start) = (t.items, t.start);
                        self.count_item(n, start)?;
                    }
                }
                self.top().last_sig = c;
                Ok(i + 1)
            }
            _ if is_op(c) => self.operator(i),
            _ => {
                let t = self.top();
                t.last_sig = c;
                t.in_item = true;
                Ok(i + 1)
            }
        }
    }

    /// An operator token (one or two bytes) at `i`.
    fn operator(&mut self, i: usize) -> Result<usize, Refusal> {
        let c = self.b[i];
        let two = matches!(
            (c, self.b.get(i + 1)),
            (b'=', Some(b'=' | b'>'))
                | (b'!' | b'<' | b'>', Some(b'='))
                | (b'&', Some(b'&'))
                | (b'|', Some(b'|'))
        );
        if c == b'=' && !two {
            self.top().seen_eq = true;
        }
        self.op(i)?;
        let end = if two { i + 2 } else { i + 1 };
        self.top().last_sig = self.b[end - 1];
        Ok(end)
    }

    /// A line break in code. In a body or an object it ends the current attribute or entry —
    /// unless the expression visibly goes on (an operator ends this line or starts the next):
    /// after some terms (a list, for one) the parser lets an expression span lines.
    fn newline(&mut self, i: usize) -> Result<(), Refusal> {
        let top = *self.stack.last().expect("the file frame is never popped");
        if !matches!(top.kind, Kind::Body { .. } | Kind::Object) {
            return Ok(());
        }
        if is_op(top.last_sig) || self.next_sig(i + 1).is_some_and(continues_expr) {
            return Ok(());
        }
        self.reset_ops();
        let t = self.top();
        t.seen_eq = false;
        if t.kind == Kind::Object && t.in_item {
            t.items += 1;
            t.in_item = false;
            let (n, start) = (t.items, t.start);
            self.count_item(n, start)?;
        }
        Ok(())
    }

    fn close(&mut self, i: usize, matches: impl Fn(Kind) -> bool) -> Result<usize, Refusal> {
        let top = *self.stack.last().expect("the file frame is never popped");
        if self.stack.len() == 1 || !matches(top.kind) {
            return Err(self.malformed(i, "unbalanced bracket, brace or parenthesis"));
        }
        if self.object_work > OBJECT_WORK {
            let (line, column) = self.pos(top.start);
            return Err(Refusal::ObjectTooLarge { line, column });
        }
        let closed = self.pop(self.b[i])?;
        if let Kind::Tag(kw) = closed.kind {
            let parent = self.stack.last().expect("a tag has a parent").kind;
            match kw {
                Keyword::Opens => self.push(Kind::Template, i)?,
                Keyword::Ends if parent == Kind::Template => {
                    self.pop(b'}')?;
                }
                // Checked where the tag opened.
                Keyword::Ends | Keyword::Else | Keyword::Other => {}
            }
        }
        Ok(i + 1)
    }

    /// `{` followed by the `for` keyword, as the parser tests it.
    fn for_follows(&self, i: usize) -> bool {
        let Ok(j) = self.skip_ws(i) else {
            return false;
        };
        self.b[j..].starts_with(b"for")
            && self
                .b
                .get(j + 3)
                .is_some_and(|b| matches!(b, b' ' | b'\t' | b'#' | b'/' | b'\n'))
    }

    /// `<<ID` or `<<-ID` then a line break, as the parser's heredoc start: the delimiter's byte
    /// range and where the body starts.
    fn heredoc_start(&self, i: usize) -> Option<((usize, usize), usize)> {
        if !self.at(i, "<<") {
            return None;
        }
        let mut j = i + 2;
        if self.b.get(j) == Some(&b'-') {
            j += 1;
        }
        let rest = self.text.get(j..)?;
        let mut chars = rest.char_indices();
        let (_, first) = chars.next()?;
        if !hcl_primitives::ident::is_id_start(first) {
            return None;
        }
        let len = chars
            .find(|(_, c)| !hcl_primitives::ident::is_id_continue(*c))
            .map_or(rest.len(), |(n, _)| n);
        let end = j + len;
        let content = if self.at(end, "\r\n") {
            end + 2
        } else if self.at(end, "\n") {
            end + 1
        } else {
            return None;
        };
        Some(((j, end), content))
    }

    /// The keyword of a directive tag whose `%{` is at `i`.
    fn keyword(&self, i: usize) -> Keyword {
        let mut j = i + 2;
        if self.b.get(j) == Some(&b'~') {
            j += 1;
        }
        let Ok(j) = self.skip_ws(j) else {
            return Keyword::Other;
        };
        let rest = &self.b[j..];
        if rest.starts_with(b"if") || rest.starts_with(b"for") {
            Keyword::Opens
        } else if rest.starts_with(b"else") {
            Keyword::Else
        } else if rest.starts_with(b"endif") || rest.starts_with(b"endfor") {
            Keyword::Ends
        } else {
            Keyword::Other
        }
    }

    /// `$${` / `%%{` (escapes), `${` and `%{` in any template text. `None`: an ordinary byte.
    fn template_marker(&mut self, i: usize) -> Result<Option<usize>, Refusal> {
        if self.at(i, "$${") || self.at(i, "%%{") {
            return Ok(Some(i + 3));
        }
        if self.at(i, "${") {
            self.push(Kind::Interp, i)?;
            return Ok(Some(i + 2));
        }
        if self.at(i, "%{") {
            let kw = self.keyword(i);
            let in_template = self.stack.last().map(|f| f.kind) == Some(Kind::Template);
            if kw == Keyword::Other || (!in_template && kw != Keyword::Opens) {
                return Err(self.malformed(i, "a template directive without its `%{if}`/`%{for}`"));
            }
            self.push(Kind::Tag(kw), i)?;
            return Ok(Some(i + 2));
        }
        Ok(None)
    }

    fn quoted(&mut self, i: usize) -> Result<usize, Refusal> {
        if let Some(next) = self.template_marker(i)? {
            return Ok(next);
        }
        match self.b[i] {
            b'\\' => Ok((i + 2).min(self.b.len())),
            b'"' => {
                self.pop(b'"')?;
                Ok(i + 1)
            }
            _ => Ok(i + 1),
        }
    }

    fn template(&mut self, i: usize) -> Result<usize, Refusal> {
        Ok(self.template_marker(i)?.unwrap_or(i + 1))
    }

    /// A heredoc's body: it ends at the first line break followed by optional spaces or tabs
    /// and the delimiter (even with more text after it on that line — the parser's rule).
    fn heredoc(&mut self, i: usize, delim: (usize, usize)) -> Result<usize, Refusal> {
        if let Some(next) = self.template_marker(i)? {
            return Ok(next);
        }
        let after_break = if self.at(i, "\r\n") {
            Some(i + 2)
        } else if self.b[i] == b'\n' {
            Some(i + 1)
        } else {
            None
        };
        if let Some(mut j) = after_break {
            while j < self.b.len() && matches!(self.b[j], b' ' | b'\t') {
                j += 1;
            }
            if self.b[j..].starts_with(&self.b[delim.0..delim.1]) {
                self.pop(b'E')?;
                return Ok(j + (delim.1 - delim.0));
            }
        }
        Ok(i + 1)
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|n| from + n)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        match max_depth(text) {
            Ok(d) => d,
            Err(e) => panic!("{text:?}: {e:?}"),
        }
    }

    #[test]
    fn counts_what_the_parser_recurses_into() {
        // (text, depth): the `=` of an attribute counts as an operator of its line.
        let cases: &[(&str, usize)] = &[
            ("x = 1\n", 1),
            ("x = [1]\n", 2),
            ("x = [[1]]\ny = 2\n", 3),
            ("x = ((1))\n", 3),
            ("x = {a = {b = 1}}\n", 5),
            ("x = f(g(h(1)))\n", 4),
            ("x = a + b + c\n", 3),
            ("x = a == b && c != d\n", 4),
            ("x = !!!a\n", 4),
            ("x = a ? b : c ? d : e\n", 5),
            ("x = \"a${b}\"\n", 3),
            ("x = \"${\"${a}\"}\"\n", 5),
            ("x = \"%{if a}b%{endif}\"\n", 4),
            ("a {\n  b {\n    c = 1\n  }\n}\n", 3),
            ("x = <<EOT\nhello ${[1]}\nEOT\n", 4),
            // Line breaks end an attribute; operators reset per line.
            ("x = a + b\ny = c + d\n", 2),
            // Commas end a list's item.
            ("x = [-1, -2, -3]\n", 3),
            // Strings, heredocs and comments hide what is inside them.
            ("x = \"[[[[((((\"\n", 2),
            ("x = <<EOT\n[[[[(((\nEOT\n", 2),
            ("# [[[[\n// ((((\n/* {{{{ */\nx = 1\n", 1),
            ("x = \"a\\\"[[[[\"\n", 2),
            ("x = \"$${[[[[\"\n", 2),
        ];
        for (text, want) in cases {
            assert_eq!(depth(text), *want, "{text:?}");
        }
    }

    #[test]
    fn an_expression_that_goes_on_across_lines_keeps_its_operators() {
        // After a list the parser lets an expression span lines: the operators still nest.
        assert_eq!(depth("x = []\n+ 1\n+ 1\n+ 1\n"), 4);
        assert_eq!(depth("x = [] +\n1 +\n1\n"), 3);
        assert_eq!(depth("x = [a]\n+ b\n.c\n+ d\n.e\n+ f\n"), 4);
        assert_eq!(depth("x = [a] + f\n(1)\n+ g\n(2)\n"), 4);
        assert_eq!(depth("x = [] ?\n1 :\n2\n"), 3);
        // A `for` object's condition can span lines too.
        assert_eq!(depth("x = {for k, v in m : k => v if a\n&& b\n&& c}\n"), 6);
    }

    #[test]
    fn heredoc_ends_where_the_parser_ends_it() {
        // The delimiter at the start of a line (after spaces) ends it, text after it included.
        assert_eq!(depth("x = <<EOT\n  a\n  EOTX\ny = [1]\n"), 2);
        assert_eq!(depth("x = <<-EOT\n  a\n  EOT\n"), 2);
        assert_eq!(depth("x = <<EOT\r\na\r\nEOT\r\n"), 2);
        // Not at the start of a line: part of the text.
        assert_eq!(depth("x = <<EOT\na EOT [[[\nEOT\n"), 2);
        // Inside a directive's body the delimiter does not end it.
        assert_eq!(depth("x = <<EOT\n%{if a}\nEOT\n%{endif}\nEOT\n"), 4);
    }

    #[test]
    fn malformed_text_is_not_followed() {
        for text in [
            "x = [1\n",
            "x = (1]\n",
            "x = \"abc\n",
            "x = 1 /* no end\n",
            "}\n",
            "x = \"%{endif}\"\n",
            "x = \"%{else}\"\n",
            "x = \"%{ bogus }\"\n",
            "x = <<EOT\nEOT\n",
            "x = <<EOT\n  EOT more\nEOT\n",
            "x = <<EOT\nno end\n",
            "x = \"%{if a}b\"\n",
        ] {
            assert!(
                matches!(max_depth(text), Err(Refusal::Malformed { .. })),
                "{text:?}: {:?}",
                max_depth(text)
            );
        }
    }

    #[test]
    fn refusals_name_the_spot() {
        let limits = HclLimits {
            max_bytes: 1 << 20,
            max_depth: 100,
        };
        let deep = format!("x = 1\ny = {}1{}\n", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(
            check(&deep, &limits),
            Err(Refusal::TooDeep {
                line: 2,
                column: 104,
                max: 100
            })
        );
        let big = "#".repeat(200);
        assert_eq!(
            check(
                &big,
                &HclLimits {
                    max_bytes: 100,
                    max_depth: 100
                }
            ),
            Err(Refusal::TooLarge {
                bytes: 200,
                max: 100
            })
        );
        let mut obj = String::from("x = 1\nlocals {\n  m = {\n");
        for i in 0..7000 {
            obj.push_str(&format!("    k{i} = {i}\n"));
        }
        obj.push_str("  }\n}\n");
        assert_eq!(
            check(&obj, &limits),
            Err(Refusal::ObjectTooLarge { line: 3, column: 7 })
        );
        // A block body is not an object: the parser keeps its attributes in a hash set.
        let mut block = String::from("locals {\n");
        for i in 0..20_000 {
            block.push_str(&format!("  k{i} = {i}\n"));
        }
        block.push_str("}\n");
        assert_eq!(check(&block, &limits), Ok(()));
    }

    /// How deeply the parser's tree actually nests, counting the nodes it recurses into.
    struct AstDepth {
        cur: usize,
        max: usize,
    }

    macro_rules! nest {
        ($($method:ident, $walk:ident, $ty:ty;)*) => {
            $(fn $method(&mut self, node: &$ty) {
                self.cur += 1;
                self.max = self.max.max(self.cur);
                hcl::edit::visit::$walk(self, node);
                self.cur -= 1;
            })*
        };
    }

    impl hcl::edit::visit::Visit for AstDepth {
        nest! {
            visit_block, visit_block, hcl::edit::structure::Block;
            visit_array, visit_array, hcl::edit::expr::Array;
            visit_object, visit_object, hcl::edit::expr::Object;
            visit_parenthesis, visit_parenthesis, hcl::edit::expr::Parenthesis;
            visit_func_call, visit_func_call, hcl::edit::expr::FuncCall;
            visit_binary_op, visit_binary_op, hcl::edit::expr::BinaryOp;
            visit_unary_op, visit_unary_op, hcl::edit::expr::UnaryOp;
            visit_conditional, visit_conditional, hcl::edit::expr::Conditional;
            visit_for_expr, visit_for_expr, hcl::edit::expr::ForExpr;
            visit_string_template, visit_string_template, hcl::edit::template::StringTemplate;
            visit_heredoc_template, visit_heredoc_template, hcl::edit::template::HeredocTemplate;
            visit_interpolation, visit_interpolation, hcl::edit::template::Interpolation;
            visit_directive, visit_directive, hcl::edit::template::Directive;
        }
    }

    /// Parses on a thread with a stack of `stack` bytes; `None` when the parser rejects it.
    fn parsed_depth(text: &str, stack: usize) -> Option<usize> {
        let text = text.to_string();
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || {
                let body = hcl::edit::parser::parse_body(&text).ok()?;
                let mut v = AstDepth { cur: 0, max: 0 };
                hcl::edit::visit::Visit::visit_body(&mut v, &body);
                Some(v.max)
            })
            .expect("spawn")
            .join()
            .expect("the parser did not panic")
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn ws(&mut self, lines: bool) -> &'static str {
            let opts: &[&'static str] = if lines {
                &[
                    "",
                    " ",
                    "\n  ",
                    " # c [ { (\n",
                    " /* ] } \" */ ",
                    "\n// x\"\n",
                ]
            } else {
                &["", " ", "  ", " /* [ */ "]
            };
            opts[self.pick(opts.len())]
        }
        fn text(&mut self) -> &'static str {
            let opts = [
                "a", "[[", "]]", "{", "}", "((", "#", "//", "/*", "$${x}", "%%{x}", "$${", "%%{",
                "EOT", " ", "\\\\", "\"", "\"[[", "+", "?", ":", "=", ",", "'",
            ];
            opts[self.pick(opts.len())]
        }
        fn expr(&mut self, d: usize, lines: bool) -> String {
            // Now and then a deep list in code: a scan that mistook the code around it for text
            // (or the reverse) would count far less than the parser nests.
            match self.pick(40) {
                0 => return format!("{}1{}", "[".repeat(120), "]".repeat(120)),
                // A chain of operators over lines (the parser allows it after a list).
                1 => return format!("[1]{}", "\n+ 1".repeat(120)),
                _ => {}
            }
            let k = if d == 0 { self.pick(3) } else { self.pick(17) };
            let e = |g: &mut Gen, l: bool| g.expr(d.saturating_sub(1), l);
            match k {
                0 => "1".into(),
                1 => "var.a".into(),
                2 => {
                    let mut s = String::from("\"");
                    for _ in 0..self.pick(3) {
                        let t = self.text();
                        // Escape what a quoted string cannot hold as is.
                        s.push_str(&t.replace('\\', "\\\\").replace('"', "\\\""));
                    }
                    s.push('"');
                    s
                }
                3 => format!("\"a${{{}}}b\"", e(self, true)),
                4 => format!(
                    "\"%{{if {}}}x{}%{{else}}y%{{endif}}\"",
                    e(self, false),
                    self.text()
                ),
                5 => format!("\"%{{for v in {}}}${{v}}%{{endfor}}\"", e(self, false)),
                6 => {
                    let mut s = format!("<<{}EOT\n", if self.pick(2) == 0 { "" } else { "-" });
                    for _ in 0..1 + self.pick(3) {
                        s.push_str(&format!(
                            "  x {} ${{{}}} {}\n",
                            self.text(),
                            e(self, true),
                            self.text()
                        ));
                    }
                    s.push_str("  EOT");
                    s
                }
                7 => {
                    let n = self.pick(3);
                    let items: Vec<String> = (0..n).map(|_| e(self, true)).collect();
                    let sep = format!(",{}", self.ws(true));
                    format!("[{}{}]", items.join(&sep), self.ws(true))
                }
                8 => {
                    let mut s = String::from("{\n");
                    for i in 0..self.pick(3) {
                        s.push_str(&format!("  k{i} = {}\n", e(self, false)));
                    }
                    s.push('}');
                    s
                }
                9 => format!("({}{}{})", self.ws(true), e(self, true), self.ws(true)),
                10 => format!("f({}, {})", e(self, true), e(self, true)),
                11 => format!("{} + {}", e(self, lines), e(self, lines)),
                12 => format!("!{}", e(self, lines)),
                13 => format!(
                    "{} ? {} : {}",
                    e(self, lines),
                    e(self, lines),
                    e(self, lines)
                ),
                14 => format!("[for x in {} : {}]", e(self, true), e(self, true)),
                15 => format!("{{for k, v in {} : k => {}}}", e(self, true), e(self, true)),
                _ => format!("{}[{}].b", e(self, lines), e(self, true)),
            }
        }
        fn file(&mut self) -> String {
            let mut s = String::new();
            for i in 0..1 + self.pick(3) {
                if self.pick(2) == 0 {
                    s.push_str(&format!("a{i} = {}\n", self.expr(4, false)));
                } else {
                    s.push_str(&format!(
                        "b \"l{i}\" {{\n  x = {}\n  c {{\n    y = {}\n  }}\n}}\n",
                        self.expr(3, false),
                        self.expr(3, false)
                    ));
                }
            }
            s
        }
    }

    /// Whatever the parser reads, this scan follows: generated files (with brackets, quotes,
    /// comment markers and heredoc delimiters inside strings, heredocs and comments, and now and
    /// then a 120-deep list in code) and mutations of them, compared with the depth of the tree
    /// the parser builds. A suffix (`.a`, `+ b`, `? c : d`) wraps an expression the parser has
    /// already finished, so the tree can nest up to four levels per level of recursion; a scan
    /// that mistook code for text would miss whole lists and fall far below that.
    #[test]
    fn never_counts_less_than_the_parser_nests() {
        let mut g = Gen(0x5eed_1234_abcd_0001);
        let mut parsed = 0;
        for case in 0..1500 {
            let mut text = g.file();
            let mutated = case % 3 == 1;
            if mutated {
                // Mutate: drop or insert a tricky fragment somewhere.
                let at = floor_char_boundary(&text, g.pick(text.len() + 1));
                let frag =
                    ["\"", "}", "]", "\n", "${", "%{endif}", "<<EOT\n", "#", "\\"][g.pick(9)];
                text.insert_str(at, frag);
            }
            let Some(tree) = parsed_depth(&text, 64 << 20) else {
                continue;
            };
            parsed += 1;
            match max_depth(&text) {
                Ok(scan) => assert!(
                    4 * scan + 4 >= tree,
                    "scan counted {scan} but the parser nests {tree}:\n{text}"
                ),
                // Not followed (the parser read it, but the scan cannot vouch for it): refused,
                // which is safe — but a generated file is well-formed and must be followed.
                Err(Refusal::Malformed { .. }) if mutated => {}
                Err(other) => panic!("{other:?}:\n{text}"),
            }
        }
        assert!(parsed > 800, "only {parsed} generated files parsed");
    }

    /// What the scan accepts at the default limit parses on a 2 MiB stack (the size of a tokio
    /// blocking thread), for each construct at its deepest; one level more is refused.
    #[test]
    fn accepted_text_parses_on_a_small_stack() {
        let limits = HclLimits {
            max_bytes: 1 << 20,
            max_depth: 100,
        };
        let shapes: &[(&str, &str, &str, &str)] = &[
            // (prefix, open, leaf, close) repeated n times: x = open^n leaf close^n
            ("x = ", "[", "1", "]"),
            ("x = ", "(", "1", ")"),
            ("x = ", "{a = ", "1", "}"),
            ("x = ", "f(", "1", ")"),
            ("x = ", "\"${", "1", "}\""),
            ("x = ", "\"%{if a}", "1", "%{endif}\""),
            ("x = ", "!", "a", ""),
            ("x = ", "- ", "a", ""),
            ("x = ", "1 + ", "1", ""),
            ("x = ", "a ? 1 : ", "1", ""),
            ("x = ", "a[", "1", "]"),
            ("x = ", "[for x in ", "y", " : x]"),
            ("", "a {\n", "", "}\n"),
        ];
        for (prefix, open, leaf, close) in shapes {
            let build = |n: usize| format!("{prefix}{}{leaf}{}\n", open.repeat(n), close.repeat(n));
            // The largest repetition the scan accepts.
            let mut n = 1;
            while check(&build(n + 1), &limits).is_ok() {
                n += 1;
            }
            assert!(n >= 20, "{open:?}: only {n} levels accepted");
            assert!(
                matches!(check(&build(n + 1), &limits), Err(Refusal::TooDeep { .. })),
                "{open:?}"
            );
            assert!(
                parsed_depth(&build(n), 2 << 20).is_some(),
                "{open:?} x{n} does not parse"
            );
        }
    }
}
