//! A conservative pre-scan of `.tf` text from a pull request, run before the HCL parser sees it.
//!
//! The parser (`hcl-edit` 0.8, re-exported by `hcl-rs` 0.18 as `hcl::edit`) is recursive
//! descent without a depth limit: it recurses once per bracket, brace, parenthesis, string
//! template, interpolation, template directive and binary operator of a chain (`a + b + c`
//! nests to the right), so a few thousand nested `[` in a small file overflow a thread's stack
//! and abort the process. Its objects are vectors searched on every insert, so one object with
//! 100,000 entries takes minutes. This scan refuses such text; what it accepts parses in a few
//! hundred kilobytes of stack and linear-ish time.
//!
//! The scan lexes what changes the meaning of brackets (quoted strings with escapes, `${…}` and
//! `%{…}` templates, heredocs, `#`, `//` and `/* */` comments) and errs on the side of refusing:
//! every operator character counts one level until a `,` or the end of the line (outside
//! brackets) ends the expression, `-` inside names included; text it cannot follow (unbalanced
//! brackets, unterminated strings or comments) is refused as [`Unread::Malformed`] — the
//! parser would reject it too. Pure: no I/O.

use std::fmt;

/// The bounds one file must stay within before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HclBounds {
    /// Largest file, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting, counting brackets, templates and operators (see the module docs).
    pub max_depth: usize,
}

impl Default for HclBounds {
    /// 1 MiB and 100 levels: far above hand-written configuration, far below what hurts.
    fn default() -> Self {
        HclBounds {
            max_bytes: 1 << 20,
            max_depth: 100,
        }
    }
}

/// The most work one file's objects may cost the parser, in key comparisons (an object of `n`
/// entries costs about `n²/2`): about 6,000 entries in one object. Block bodies are counted
/// like objects, which only makes the bound stricter.
pub const OBJECT_WORK: u64 = 20_000_000;

/// Why a file is not parsed. Lines are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// Larger than [`HclBounds::max_bytes`].
    TooLarge { bytes: usize, max: usize },
    /// Nests deeper than [`HclBounds::max_depth`] at this line.
    TooDeep { line: usize, max: usize },
    /// An object (or block body) with too many entries for the parser ([`OBJECT_WORK`]).
    ObjectTooLarge { line: usize },
    /// Structure the scan cannot follow (the parser would reject it too).
    Malformed { line: usize, what: &'static str },
    /// The parser rejected the text.
    Syntax { line: usize, message: String },
}

impl fmt::Display for Unread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unread::TooLarge { bytes, max } => {
                write!(
                    f,
                    "the file has {bytes} bytes, more than the {max} Sluice reads"
                )
            }
            Unread::TooDeep { line, max } => write!(
                f,
                "line {line} nests brackets, templates and operators more than {max} levels deep"
            ),
            Unread::ObjectTooLarge { line } => {
                write!(
                    f,
                    "the object at line {line} has too many entries to read quickly"
                )
            }
            Unread::Malformed { line, what } => write!(f, "syntax error at line {line}: {what}"),
            Unread::Syntax { line, message } => write!(f, "syntax error at line {line}: {message}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Brace,
    Bracket,
    Paren,
    /// `${ … }` or `%{ … }`.
    Interp,
    Quoted,
    Heredoc,
}

#[derive(Debug)]
struct Frame<'a> {
    kind: Kind,
    /// Operators seen since the expression in this frame last ended.
    ops: usize,
    /// Entries so far (braces only).
    entries: u64,
    /// Open `%{if}`/`%{for}` directives (literal frames only).
    directives: usize,
    /// The heredoc's closing marker.
    marker: &'a str,
}

impl<'a> Frame<'a> {
    fn new(kind: Kind) -> Self {
        Frame {
            kind,
            ops: 0,
            entries: 0,
            directives: 0,
            marker: "",
        }
    }

    fn is_literal(&self) -> bool {
        matches!(self.kind, Kind::Quoted | Kind::Heredoc)
    }
}

/// Checks `text` against `bounds`; `Ok` means the parser may read it.
pub fn check(text: &str, bounds: &HclBounds) -> Result<(), Unread> {
    if text.len() > bounds.max_bytes {
        return Err(Unread::TooLarge {
            bytes: text.len(),
            max: bounds.max_bytes,
        });
    }
    Scan {
        b: text.as_bytes(),
        text,
        i: 0,
        line: 1,
        // The top level: an expression frame that is never closed.
        stack: vec![Frame::new(Kind::Brace)],
        extra: 0,
        work: 0,
        max_depth: bounds.max_depth,
    }
    .run()
}

struct Scan<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    line: usize,
    stack: Vec<Frame<'a>>,
    /// Sum of `ops` and `directives` over the stack.
    extra: usize,
    work: u64,
    max_depth: usize,
}

impl<'a> Scan<'a> {
    fn malformed(&self, what: &'static str) -> Unread {
        Unread::Malformed {
            line: self.line,
            what,
        }
    }

    fn top(&mut self) -> &mut Frame<'a> {
        self.stack
            .last_mut()
            .expect("the top level is never popped")
    }

    fn depth_check(&self) -> Result<(), Unread> {
        if self.stack.len() + self.extra > self.max_depth {
            return Err(Unread::TooDeep {
                line: self.line,
                max: self.max_depth,
            });
        }
        Ok(())
    }

    fn push(&mut self, frame: Frame<'a>) -> Result<(), Unread> {
        self.stack.push(frame);
        self.depth_check()
    }

    fn pop(&mut self, closes: &[Kind], what: &'static str) -> Result<(), Unread> {
        if self.stack.len() < 2 || !closes.contains(&self.top().kind) {
            return Err(self.malformed(what));
        }
        let f = self.stack.pop().expect("checked above");
        self.extra -= f.ops + f.directives;
        Ok(())
    }

    /// The expression in the top frame ended (`,` or a line end where newlines end one).
    fn end_expression(&mut self) -> Result<(), Unread> {
        let top = self.top();
        let ops = std::mem::take(&mut top.ops);
        let brace = top.kind == Kind::Brace;
        if brace {
            top.entries += 1;
        }
        let entries = top.entries;
        self.extra -= ops;
        if brace && self.stack.len() > 1 {
            self.work += entries;
            if self.work > OBJECT_WORK {
                return Err(Unread::ObjectTooLarge { line: self.line });
            }
        }
        Ok(())
    }

    fn op(&mut self) -> Result<(), Unread> {
        self.top().ops += 1;
        self.extra += 1;
        self.depth_check()
    }

    fn run(mut self) -> Result<(), Unread> {
        while self.i < self.b.len() {
            if self.stack.last().is_some_and(Frame::is_literal) {
                self.literal()?;
            } else {
                self.expression()?;
            }
        }
        match self.stack.last().map(|f| f.kind) {
            _ if self.stack.len() == 1 => Ok(()),
            Some(Kind::Quoted) => Err(self.malformed("unterminated string")),
            Some(Kind::Heredoc) => Err(self.malformed("unterminated heredoc")),
            _ => Err(self.malformed("unclosed bracket, brace or parenthesis")),
        }
    }

    /// One token of expression text.
    fn expression(&mut self) -> Result<(), Unread> {
        let c = self.b[self.i];
        let next = self.b.get(self.i + 1).copied();
        self.i += 1;
        match c {
            b'\n' => {
                self.line += 1;
                if self.top().kind == Kind::Brace {
                    self.end_expression()?;
                }
            }
            b'#' => self.skip_line(),
            b'/' if next == Some(b'/') => self.skip_line(),
            b'/' if next == Some(b'*') => {
                self.i += 1;
                loop {
                    match self.b.get(self.i) {
                        None => return Err(self.malformed("unterminated comment")),
                        Some(b'*') if self.b.get(self.i + 1) == Some(&b'/') => {
                            self.i += 2;
                            break;
                        }
                        Some(b'\n') => self.line += 1,
                        Some(_) => {}
                    }
                    self.i += 1;
                }
            }
            b'"' => self.push(Frame::new(Kind::Quoted))?,
            b'<' if next == Some(b'<') => match self.heredoc_marker() {
                Some(marker) => {
                    let mut f = Frame::new(Kind::Heredoc);
                    f.marker = marker;
                    self.push(f)?;
                }
                None => {
                    self.i += 1;
                    self.op()?;
                    self.op()?;
                }
            },
            b'{' => self.push(Frame::new(Kind::Brace))?,
            b'[' => self.push(Frame::new(Kind::Bracket))?,
            b'(' => self.push(Frame::new(Kind::Paren))?,
            b'}' => self.pop(&[Kind::Brace, Kind::Interp], "unexpected `}`")?,
            b']' => self.pop(&[Kind::Bracket], "unexpected `]`")?,
            b')' => self.pop(&[Kind::Paren], "unexpected `)`")?,
            b',' => self.end_expression()?,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'!' | b'&' | b'|' | b'?' => {
                self.op()?
            }
            b'=' if next == Some(b'=') => {
                self.i += 1;
                self.op()?;
            }
            _ => {}
        }
        Ok(())
    }

    fn skip_line(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
    }

    /// After `<<`: `-`? IDENT, then the end of the line. On success the scan is past the line
    /// end and the marker is returned.
    fn heredoc_marker(&mut self) -> Option<&'a str> {
        let mut j = self.i + 1;
        if self.b.get(j) == Some(&b'-') {
            j += 1;
        }
        let start = j;
        while self
            .b
            .get(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        {
            j += 1;
        }
        if j == start || self.b[start].is_ascii_digit() {
            return None;
        }
        let marker = &self.text[start..j];
        while self
            .b
            .get(j)
            .is_some_and(|c| *c == b' ' || *c == b'\t' || *c == b'\r')
        {
            j += 1;
        }
        if self.b.get(j) != Some(&b'\n') {
            return None;
        }
        self.i = j + 1;
        self.line += 1;
        Some(marker)
    }

    /// Literal text of a quoted string or heredoc, up to its end or an interpolation.
    fn literal(&mut self) -> Result<(), Unread> {
        let kind = self.top().kind;
        if kind == Kind::Heredoc && self.at_line_start() {
            let end = self.b[self.i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(self.b.len(), |p| self.i + p);
            let marker = self.top().marker;
            if self.text[self.i..end].trim() == marker {
                self.i = end;
                return self.pop(&[Kind::Heredoc], "unexpected heredoc end");
            }
        }
        let c = self.b[self.i];
        let next = self.b.get(self.i + 1).copied();
        self.i += 1;
        match c {
            b'\\' if kind == Kind::Quoted => {
                if next == Some(b'\n') {
                    return Err(self.malformed("line break in a quoted string"));
                }
                self.i += 1;
            }
            b'"' if kind == Kind::Quoted => {
                self.pop(&[Kind::Quoted], "unexpected `\"`")?;
            }
            b'\n' => {
                if kind == Kind::Quoted {
                    return Err(self.malformed("line break in a quoted string"));
                }
                self.line += 1;
            }
            // `$${` and `%%{` are escapes for a literal `${` / `%{`.
            b'$' | b'%' if next == Some(c) && self.b.get(self.i + 1) == Some(&b'{') => {
                self.i += 2;
            }
            b'$' if next == Some(b'{') => {
                self.i += 1;
                self.push(Frame::new(Kind::Interp))?;
            }
            b'%' if next == Some(b'{') => {
                self.i += 1;
                let word = self.directive_word();
                let top = self.top();
                match word {
                    "if" | "for" => {
                        top.directives += 1;
                        self.extra += 1;
                    }
                    "endif" | "endfor" if top.directives > 0 => {
                        top.directives -= 1;
                        self.extra -= 1;
                    }
                    _ => {}
                }
                self.push(Frame::new(Kind::Interp))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn at_line_start(&self) -> bool {
        self.i == 0 || self.b[self.i - 1] == b'\n'
    }

    /// The keyword after `%{` (and an optional `~`), without consuming it.
    fn directive_word(&self) -> &'a str {
        let rest = &self.text[self.i..];
        let rest = rest.strip_prefix('~').unwrap_or(rest).trim_start();
        let len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        &rest[..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_with(text: &str, max_depth: usize) -> String {
        let bounds = HclBounds {
            max_bytes: 1 << 20,
            max_depth,
        };
        match check(text, &bounds) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ordinary_configuration_is_read() {
        let table = [
            include_str!("../../../tests/fixtures/plans/src/module_replace/main.tf"),
            include_str!("../../../tests/fixtures/plans/src/module_replace/modules/app/main.tf"),
            include_str!("../../../tests/fixtures/plans/src/mixed/main.tf"),
            include_str!("../../../tests/fixtures/plans/src/create/main.tf"),
            "locals {\n  a = [for x in var.xs : upper(x) if x != \"\"]\n  b = { for k, v in var.m : k => v... }\n}\n",
            "x = <<-EOT\n  hello ${var.name} }]) \" unbalanced in text\n  %{ if var.on }on%{ endif }\n  EOT\ny = 1\n",
            "x = \"a $${literal} %%{literal} \\\" ${join(\"-\", [\"a\", \"b\"])}\"\n",
            "/* a { comment [ */\n# another {\n// and ( one\nz = 1 - 2 - 3\n",
            "policy = <<EOF\n{\"Version\": \"2012-10-17\"}\nEOF\n",
        ];
        for text in table {
            assert_eq!(check_with(text, 100), "ok", "{text}");
            hcl::edit::parser::parse_body(text).expect("the parser reads it too");
        }
    }

    #[test]
    fn refusals_say_why_and_where() {
        let deep = format!("x = {}1{}\n", "[".repeat(2_000), "]".repeat(2_000));
        let chain = format!("x = 1{}\n", " + 1".repeat(5_000));
        let directives = format!("x = <<EOT\n{}\nEOT\n", "%{ if a }".repeat(200));
        let mut wide = String::from("x = {\n");
        for i in 0..10_000 {
            wide.push_str(&format!("  k{i} = {i}\n"));
        }
        wide.push_str("}\n");
        let table: [(&str, usize, &str); 10] = [
            (
                &deep,
                100,
                "line 1 nests brackets, templates and operators more than 100 levels deep",
            ),
            (
                &chain,
                100,
                "line 1 nests brackets, templates and operators more than 100 levels deep",
            ),
            (
                &directives,
                100,
                "line 2 nests brackets, templates and operators more than 100 levels deep",
            ),
            (
                "a = [1,\n2,\n3 + (4\n]\n",
                100,
                "syntax error at line 4: unexpected `]`",
            ),
            (
                "a = \"x\n",
                100,
                "syntax error at line 1: line break in a quoted string",
            ),
            (
                "a = \"x",
                100,
                "syntax error at line 1: unterminated string",
            ),
            (
                "a = <<EOT\nx\n",
                100,
                "syntax error at line 3: unterminated heredoc",
            ),
            ("/* x", 100, "syntax error at line 1: unterminated comment"),
            (
                "b {\n  a = [\n",
                100,
                "syntax error at line 3: unclosed bracket, brace or parenthesis",
            ),
            (
                &wide,
                100,
                "the object at line 6326 has too many entries to read quickly",
            ),
        ];
        for (text, depth, want) in table {
            assert_eq!(check_with(text, depth), want);
        }
        // Operators end with the expression: many short ones are fine.
        let many = "x = 1 + 2 + 3\n".repeat(10_000);
        assert_eq!(check_with(&many, 10), "ok");
        let list = format!("x = [{}]\n", "1 + 1, ".repeat(10_000));
        assert_eq!(check_with(&list, 10), "ok");
        let big = "#".repeat(2 << 20);
        assert_eq!(
            check(&big, &HclBounds::default()).unwrap_err().to_string(),
            "the file has 2097152 bytes, more than the 1048576 Sluice reads"
        );
    }

    /// What the scan accepts, the parser reads on a small stack: the scan's bound is what makes
    /// parsing PR text safe.
    #[test]
    fn accepted_text_parses_on_a_small_stack() {
        let nearly = format!("x = {}1{}\n", "[".repeat(95), "]".repeat(95));
        let chain = format!("x = 1{}\n", " + 1".repeat(90));
        for text in [nearly, chain] {
            assert_eq!(check_with(&text, 100), "ok");
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || hcl::edit::parser::parse_body(&text).is_ok())
                .unwrap()
                .join()
                .map(|parsed| assert!(parsed))
                .expect("parses without overflowing a 1 MiB stack");
        }
    }
}
