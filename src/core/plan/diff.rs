//! The human-readable diff of a plan, rendered from the plan JSON (never scraped from
//! terraform's text output), in terraform's familiar shape:
//!
//! ```text
//! # null_resource.a will be created
//! + resource "null_resource" "a" {
//! +     id       = (known after apply)
//! +     triggers = {
//! +         "x" = "1"
//! +     }
//!   }
//! ```
//!
//! Change markers sit in column 0 so a ```` ```diff ```` fence on GitHub colours them.
//! Destroys and replacements come first, then everything else in address order, then
//! "Changes to Outputs:". Values marked sensitive are never written, not even partially:
//! they appear as `(sensitive value)`.
//!
//! This module owns the diff text only. It is pure, writes into one `String` (the output of a
//! 20,000-resource plan is large, so no per-resource strings are built and joined), and does not
//! redact known secrets (the caller passes the text through `Redactor`) or produce markdown.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::Value;

use super::model::{Action, Change, Plan, ResourceChange, ResourceMode};
use super::summary::plural;

/// Renders the whole diff of `plan`.
pub fn render_diff(plan: &Plan) -> String {
    let mut out = String::new();
    render_diff_into(plan, &mut out);
    out
}

/// Like [`render_diff`], appending to `out`.
pub fn render_diff_into(plan: &Plan, out: &mut String) {
    if plan.errored {
        out.push_str(
            "# Warning: terraform reported errors while planning; this plan is incomplete.\n\n",
        );
    }
    let mut shown: Vec<&ResourceChange> = plan
        .resource_changes
        .iter()
        .filter(|rc| is_shown(rc))
        .collect();
    // Destroys first so a reviewer (and a truncated comment) always sees them.
    shown.sort_by(|a, b| {
        let group = |rc: &ResourceChange| !rc.change.actions.destroys();
        group(a)
            .cmp(&group(b))
            .then_with(|| natural_cmp(&a.address, &b.address))
            .then_with(|| a.deposed.cmp(&b.deposed))
    });

    let outputs: Vec<(&String, &Change)> = plan
        .output_changes
        .iter()
        .filter(|(_, c)| c.actions != Action::NoOp)
        .collect();

    if shown.is_empty() && outputs.is_empty() {
        out.push_str("No changes. Your infrastructure matches the configuration.\n");
        return;
    }

    for (i, rc) in shown.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        Renderer::new(out, &rc.change.replace_paths).resource(rc);
    }

    if !outputs.is_empty() {
        if !shown.is_empty() {
            out.push('\n');
        }
        out.push_str("Changes to Outputs:\n");
        let width = outputs
            .iter()
            .map(|(name, _)| display_key(name, true).chars().count())
            .max()
            .unwrap_or(0);
        let mut r = Renderer::new(out, &[]);
        for (name, change) in outputs {
            let label = label_for(name, true, width);
            let (b, a) = sides(change);
            r.entry(0, &label, b, a, "", true);
        }
    }
}

fn is_shown(rc: &ResourceChange) -> bool {
    if rc.is_hidden_data_delete() {
        return false;
    }
    rc.change.actions != Action::NoOp || rc.change.importing.is_some() || rc.is_moved()
}

/// Orders addresses as people expect: `x[2]` before `x[10]`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|c| **c == b'0').count();
    &d[n.min(d.len().saturating_sub(1))..]
}

/// One side of a change at some path: the value and its sensitivity / unknown marks.
/// `None` means "absent" (treated like `null`).
#[derive(Clone, Copy, Default)]
struct Side<'v> {
    val: Option<&'v Value>,
    sens: Option<&'v Value>,
    unk: Option<&'v Value>,
}

impl<'v> Side<'v> {
    fn of(val: &'v Value) -> Self {
        Side {
            val: Some(val),
            ..Side::default()
        }
    }

    fn sensitive(&self) -> bool {
        matches!(self.sens, Some(Value::Bool(true)))
    }

    fn unknown(&self) -> bool {
        matches!(self.unk, Some(Value::Bool(true)))
    }

    fn present(&self) -> bool {
        self.unknown() || self.val.is_some_and(|v| !v.is_null())
    }

    fn value(&self) -> &'v Value {
        self.val.unwrap_or(&Value::Null)
    }

    /// The side one level down. A mark of `true` on a container covers everything inside it,
    /// so it is inherited: a resource whose whole `before` is sensitive must not leak through
    /// its attributes.
    fn key(&self, k: &str) -> Side<'v> {
        Side {
            val: self.val.and_then(|v| v.get(k)),
            sens: inherit(self.sens, |m| m.get(k)),
            unk: inherit(self.unk, |m| m.get(k)),
        }
    }

    fn index(&self, i: usize) -> Side<'v> {
        Side {
            val: self.val.and_then(|v| v.get(i)),
            sens: inherit(self.sens, |m| m.get(i)),
            unk: inherit(self.unk, |m| m.get(i)),
        }
    }
}

fn inherit<'v>(
    marks: Option<&'v Value>,
    step: impl Fn(&'v Value) -> Option<&'v Value>,
) -> Option<&'v Value> {
    match marks {
        Some(Value::Bool(true)) => marks,
        Some(m) => step(m),
        None => None,
    }
}

fn sides(c: &Change) -> (Side<'_>, Side<'_>) {
    (
        Side {
            val: Some(&c.before),
            sens: Some(&c.before_sensitive),
            unk: None,
        },
        Side {
            val: Some(&c.after),
            sens: Some(&c.after_sensitive),
            unk: Some(&c.after_unknown),
        },
    )
}

/// Any `true` anywhere in a marks tree.
fn any_mark(m: Option<&Value>) -> bool {
    match m {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(o)) => o.values().any(|v| any_mark(Some(v))),
        Some(Value::Array(a)) => a.iter().any(|v| any_mark(Some(v))),
        _ => false,
    }
}

/// Do two marks trees mark the same leaves? (`null`, `false`, `{}` and absent are all "none".)
fn marks_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Bool(true)), other) | (other, Some(Value::Bool(true))) => {
            matches!(other, Some(Value::Bool(true)))
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.iter().all(|(k, v)| marks_eq(Some(v), y.get(k)))
                && y.iter()
                    .all(|(k, v)| x.contains_key(k) || !any_mark(Some(v)))
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            (0..x.len().max(y.len())).all(|i| marks_eq(x.get(i), y.get(i)))
        }
        _ => !any_mark(a) && !any_mark(b),
    }
}

fn same(b: Side<'_>, a: Side<'_>) -> bool {
    !any_mark(a.unk) && b.value() == a.value() && marks_eq(b.sens, a.sens)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Absent,
    Create,
    Delete,
    Update,
    Same,
}

fn kind(b: Side<'_>, a: Side<'_>) -> Kind {
    match (b.present(), a.present()) {
        (false, false) => Kind::Absent,
        (false, true) => Kind::Create,
        (true, false) => Kind::Delete,
        (true, true) if same(b, a) => Kind::Same,
        (true, true) => Kind::Update,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Add,
    Remove,
    Change,
    Keep,
}

impl Mark {
    fn ch(self) -> char {
        match self {
            Mark::Add => '+',
            Mark::Remove => '-',
            Mark::Change => '~',
            Mark::Keep => ' ',
        }
    }
}

/// A step of a path inside a resource's attributes, to match `replace_paths`.
enum Step {
    Key(String),
    Index(usize),
}

/// Attributes of a resource (and objects inside lists, which are nearly always nested blocks)
/// print unquoted like terraform; map keys and JSON object keys print quoted.
fn display_key(k: &str, attrs: bool) -> String {
    let ident = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if attrs && ident {
        k.to_string()
    } else {
        let mut s = String::with_capacity(k.len() + 2);
        quote_into(&mut s, k);
        s
    }
}

fn label_for(k: &str, attrs: bool, width: usize) -> String {
    let key = display_key(k, attrs);
    let pad = width.saturating_sub(key.chars().count());
    let mut s = key;
    s.extend(std::iter::repeat_n(' ', pad));
    s.push_str(" = ");
    s
}

/// Writes `s` as an HCL-style quoted string: `"`, `\` and control characters escaped, and
/// template sequences (`${`, `%{`) doubled so the text reads as a literal.
/// `Redactor` uses the same function to find secrets inside quoted values.
pub(crate) fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    let mut prev = '\0';
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '{' if prev == '$' || prev == '%' => {
                out.push(prev);
                out.push('{');
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
        prev = c;
    }
    out.push('"');
}

/// Strings that hold JSON documents (IAM policies, ...) are diffed structurally, like
/// terraform's `jsonencode(...)` rendering; a one-line JSON diff is unreadable.
fn parse_json_string(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str(s)
        .ok()
        .filter(|v: &Value| v.is_object() || v.is_array())
}

/// Nesting limit for rendering JSON found inside strings (each level is parsed again).
const MAX_JSON_STRING_NESTING: usize = 4;
/// Unchanged lines kept around a change in a multi-line string before the rest is hidden.
const HEREDOC_CONTEXT: usize = 3;

struct Renderer<'o, 'p> {
    out: &'o mut String,
    replace_paths: &'p [Vec<Value>],
    /// Only maintained when `replace_paths` is non-empty (it costs an allocation per key).
    path: Vec<Step>,
    /// > 0 while rendering the parsed content of a JSON string (paths do not apply there).
    json_nesting: usize,
}

impl<'o, 'p> Renderer<'o, 'p> {
    fn new(out: &'o mut String, replace_paths: &'p [Vec<Value>]) -> Self {
        Renderer {
            out,
            replace_paths,
            path: Vec::new(),
            json_nesting: 0,
        }
    }

    fn tracking(&self) -> bool {
        !self.replace_paths.is_empty() && self.json_nesting == 0
    }

    fn push_key(&mut self, k: &str) {
        if self.tracking() {
            self.path.push(Step::Key(k.to_string()));
        }
    }

    fn push_index(&mut self, i: usize) {
        if self.tracking() {
            self.path.push(Step::Index(i));
        }
    }

    fn pop(&mut self) {
        if self.tracking() {
            self.path.pop();
        }
    }

    /// " # forces replacement" when the current path is one of the change's replace paths.
    fn note(&self) -> &'static str {
        if !self.tracking() {
            return "";
        }
        let hit = self.replace_paths.iter().any(|p| {
            p.len() == self.path.len()
                && p.iter()
                    .zip(&self.path)
                    .all(|(want, got)| match (want, got) {
                        (Value::String(w), Step::Key(g)) => w == g,
                        (Value::Number(w), Step::Index(g)) => w.as_u64() == Some(*g as u64),
                        _ => false,
                    })
        });
        if hit { " # forces replacement" } else { "" }
    }

    /// Starts a line: the marker in column 0, a space, then four spaces per level.
    fn begin(&mut self, mark: Mark, depth: usize) {
        self.out.push(mark.ch());
        self.out.push(' ');
        for _ in 0..depth {
            self.out.push_str("    ");
        }
    }

    fn hidden(&mut self, depth: usize, n: usize, what: (&str, &str)) {
        if n == 0 {
            return;
        }
        self.begin(Mark::Keep, depth);
        let _ = writeln!(
            self.out,
            "# ({n} unchanged {} hidden)",
            plural(n, what.0, what.1)
        );
    }

    fn resource(&mut self, rc: &ResourceChange) {
        let action = rc.change.actions;
        let addr = rc.display_address();
        let header = match action {
            Action::Create => "will be created",
            Action::Read => "will be read during apply",
            Action::Update => "will be updated in-place",
            Action::Delete => "will be destroyed",
            Action::DeleteThenCreate | Action::CreateThenDelete => {
                match rc.action_reason.as_deref() {
                    Some("replace_because_tainted") => "is tainted, so must be replaced",
                    Some("replace_by_request") => "will be replaced, as requested",
                    Some("replace_by_triggers") => {
                        "will be replaced due to changes in replace_triggered_by"
                    }
                    _ => "must be replaced",
                }
            }
            Action::Forget => "will be removed from the state but will not be destroyed",
            Action::NoOp if rc.change.importing.is_some() => "will be imported",
            Action::NoOp => "",
        };
        if header.is_empty() {
            // A no-op that is shown is a move.
            let prev = rc.previous_address.as_deref().unwrap_or_default();
            let _ = writeln!(self.out, "# {prev} has moved to {addr}");
        } else {
            let _ = writeln!(self.out, "# {addr} {header}");
        }
        if let Some(why) = reason_note(rc) {
            let _ = writeln!(self.out, "# ({why})");
        }
        if rc.is_moved() && action != Action::NoOp {
            let prev = rc.previous_address.as_deref().unwrap_or_default();
            let _ = writeln!(self.out, "# (moved from {prev})");
        }
        if let Some(imp) = &rc.change.importing
            && action != Action::NoOp
        {
            match &imp.id {
                Some(id) => {
                    self.out.push_str("# (imported from ");
                    quote_into(self.out, id);
                    self.out.push_str(")\n");
                }
                None => self.out.push_str("# (imported)\n"),
            }
        }

        let marker = match action {
            Action::Create => "+",
            Action::Read => "<=",
            Action::Update => "~",
            Action::Delete => "-",
            Action::DeleteThenCreate => "-/+",
            Action::CreateThenDelete => "+/-",
            Action::Forget => ".",
            Action::NoOp => " ",
        };
        let keyword = match rc.mode {
            ResourceMode::Data => "data",
            ResourceMode::Managed | ResourceMode::Other => "resource",
        };
        self.out.push_str(marker);
        self.out.push(' ');
        self.out.push_str(keyword);
        self.out.push(' ');
        quote_into(self.out, &rc.resource_type);
        self.out.push(' ');
        quote_into(self.out, &rc.name);
        self.out.push_str(" {\n");

        let (before, after) = sides(&rc.change);
        match action {
            // A read has no meaningful "before"; terraform shows the data source as new.
            Action::Read => self.children(1, Side::default(), after, true, true),
            // The object stays; show it as unchanged.
            Action::Forget => self.children(1, before, before, true, true),
            _ => self.children(1, before, after, true, true),
        }
        self.begin(Mark::Keep, 0);
        self.out.push_str("}\n");
    }

    /// The entries of an object (a resource's attributes at depth 1), diffed key by key.
    /// Unchanged entries are counted in one "hidden" line, except the attributes people
    /// identify a resource by (`id`, `name`) at the top level.
    fn children(&mut self, depth: usize, b: Side<'_>, a: Side<'_>, attrs: bool, top: bool) {
        let mut keys: Vec<&str> = Vec::new();
        for src in [b.val, a.val, a.unk] {
            if let Some(Value::Object(m)) = src {
                keys.extend(m.keys().map(String::as_str));
            }
        }
        keys.sort_unstable();
        keys.dedup();

        let mut shown: Vec<(&str, Kind)> = Vec::with_capacity(keys.len());
        let mut hidden = 0;
        for k in keys {
            let kind = kind(b.key(k), a.key(k));
            match kind {
                Kind::Absent => {}
                Kind::Same => {
                    let identifying = top
                        && matches!(k, "id" | "name")
                        && !matches!(a.key(k).val, Some(Value::Object(_) | Value::Array(_)));
                    if identifying {
                        shown.push((k, kind));
                    } else {
                        hidden += 1;
                    }
                }
                _ => shown.push((k, kind)),
            }
        }
        let style = self.key_style(attrs);
        let width = shown
            .iter()
            .map(|(k, _)| display_key(k, style).chars().count())
            .max()
            .unwrap_or(0);
        for (k, _) in shown {
            let label = label_for(k, style, width);
            self.push_key(k);
            self.entry(depth, &label, b.key(k), a.key(k), "", false);
            self.pop();
        }
        let what = if attrs {
            ("attribute", "attributes")
        } else {
            ("element", "elements")
        };
        self.hidden(depth, hidden, what);
    }

    /// One keyed entry or list element: picks how to show it from its kind of change.
    /// `quoted_keys_inside` is for output values, whose objects are maps.
    fn entry(
        &mut self,
        depth: usize,
        label: &str,
        b: Side<'_>,
        a: Side<'_>,
        suffix: &str,
        quoted_keys_inside: bool,
    ) {
        // Objects that are list elements are nearly always nested blocks: attributes.
        let attrs = !quoted_keys_inside && label.is_empty();
        let at = At {
            depth,
            label,
            suffix,
            note: self.note(),
        };
        match kind(b, a) {
            Kind::Absent => {}
            Kind::Create => self.value(Mark::Add, Mark::Add, at, a, attrs),
            Kind::Delete => self.value(Mark::Remove, Mark::Remove, at, b, attrs),
            Kind::Same => self.value(Mark::Keep, Mark::Keep, at, a, attrs),
            Kind::Update => self.update(at, b, a, attrs),
        }
    }

    /// Keys print unquoted when they are attributes, or inside JSON (like terraform's
    /// `jsonencode` rendering), and when they look like identifiers.
    fn key_style(&self, attrs: bool) -> bool {
        attrs || self.json_nesting > 0
    }

    /// A whole value with one marker (created, destroyed or unchanged). `open` marks the first
    /// line, `mark` the lines inside and the closing one. `attrs`: an object here holds
    /// attributes (unquoted keys) rather than map keys.
    fn value(&mut self, open: Mark, mark: Mark, at: At<'_>, v: Side<'_>, attrs: bool) {
        let At {
            depth,
            label,
            suffix,
            note,
        } = at;
        if !v.sensitive()
            && !v.unknown()
            && self.json_nesting < MAX_JSON_STRING_NESTING
            && let Value::String(s) = v.value()
            && let Some(parsed) = parse_json_string(s)
        {
            self.json_nesting += 1;
            let label = format!("{label}jsonencode(");
            let suffix = format!("){suffix}");
            let inner = At {
                depth,
                label: &label,
                suffix: &suffix,
                note,
            };
            self.value(open, mark, inner, Side::of(&parsed), true);
            self.json_nesting -= 1;
            return;
        }
        self.begin(open, depth);
        self.out.push_str(label);
        if v.sensitive() {
            let _ = writeln!(self.out, "(sensitive value){suffix}{note}");
            return;
        }
        if v.unknown() {
            let _ = writeln!(self.out, "(known after apply){suffix}{note}");
            return;
        }
        match v.value() {
            Value::String(s) if s.contains('\n') => {
                let _ = writeln!(self.out, "<<-EOT{note}");
                for line in text_lines(s) {
                    self.text_line(mark, depth + 1, line);
                }
                self.begin(mark, depth);
                let _ = writeln!(self.out, "EOT{suffix}");
            }
            Value::Array(items) if !items.is_empty() => {
                let _ = writeln!(self.out, "[{note}");
                for i in 0..items.len() {
                    self.push_index(i);
                    let at = At {
                        depth: depth + 1,
                        label: "",
                        suffix: ",",
                        note: self.note(),
                    };
                    self.value(mark, mark, at, v.index(i), true);
                    self.pop();
                }
                self.begin(mark, depth);
                let _ = writeln!(self.out, "]{suffix}");
            }
            Value::Object(m) if m.values().any(|x| !x.is_null()) || any_mark(v.unk) => {
                let _ = writeln!(self.out, "{{{note}");
                let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
                if let Some(Value::Object(u)) = v.unk {
                    keys.extend(u.keys().map(String::as_str));
                    keys.sort_unstable();
                    keys.dedup();
                }
                keys.retain(|k| v.key(k).present());
                let style = self.key_style(attrs);
                let width = keys
                    .iter()
                    .map(|k| display_key(k, style).chars().count())
                    .max()
                    .unwrap_or(0);
                for k in keys {
                    let label = label_for(k, style, width);
                    self.push_key(k);
                    let at = At {
                        depth: depth + 1,
                        label: &label,
                        suffix: "",
                        note: self.note(),
                    };
                    self.value(mark, mark, at, v.key(k), false);
                    self.pop();
                }
                self.begin(mark, depth);
                let _ = writeln!(self.out, "}}{suffix}");
            }
            other => {
                scalar_into(self.out, other);
                let _ = writeln!(self.out, "{suffix}{note}");
            }
        }
    }

    /// An entry present on both sides whose value differs.
    fn update(&mut self, at: At<'_>, b: Side<'_>, a: Side<'_>, attrs: bool) {
        let At {
            depth,
            label,
            suffix,
            note,
        } = at;
        if b.sensitive() || a.sensitive() {
            self.begin(Mark::Change, depth);
            let _ = writeln!(self.out, "{label}(sensitive value){suffix}{note}");
            return;
        }
        if a.unknown() {
            match b.value() {
                Value::Object(_) | Value::Array(_) => {
                    let suffix = format!(" -> (known after apply){suffix}");
                    let at = At {
                        suffix: &suffix,
                        ..at
                    };
                    self.value(Mark::Change, Mark::Remove, at, b, attrs);
                }
                old => {
                    self.begin(Mark::Change, depth);
                    self.out.push_str(label);
                    scalar_into(self.out, old);
                    let _ = writeln!(self.out, " -> (known after apply){suffix}{note}");
                }
            }
            return;
        }
        match (b.value(), a.value()) {
            (Value::Object(_), Value::Object(_)) => {
                self.begin(Mark::Change, depth);
                let _ = writeln!(self.out, "{label}{{{note}");
                self.children(depth + 1, b, a, attrs, false);
                self.begin(Mark::Keep, depth);
                let _ = writeln!(self.out, "}}{suffix}");
            }
            (Value::Array(_), Value::Array(_)) => {
                self.begin(Mark::Change, depth);
                let _ = writeln!(self.out, "{label}[{note}");
                self.list(depth + 1, b, a);
                self.begin(Mark::Keep, depth);
                let _ = writeln!(self.out, "]{suffix}");
            }
            (Value::String(old), Value::String(new))
                if old.contains('\n') || new.contains('\n') =>
            {
                self.heredoc_diff(at, old, new);
            }
            (Value::String(old), Value::String(new))
                if self.json_nesting < MAX_JSON_STRING_NESTING =>
            {
                match (parse_json_string(old), parse_json_string(new)) {
                    (Some(po), Some(pn)) if po != pn => {
                        self.json_nesting += 1;
                        let label = format!("{label}jsonencode(");
                        let suffix = format!("){suffix}");
                        let inner = At {
                            depth,
                            label: &label,
                            suffix: &suffix,
                            note,
                        };
                        self.update(inner, Side::of(&po), Side::of(&pn), true);
                        self.json_nesting -= 1;
                    }
                    _ => self.scalar_update(at, b.value(), a.value()),
                }
            }
            (old @ (Value::Object(_) | Value::Array(_)), new)
            | (old, new @ (Value::Object(_) | Value::Array(_))) => {
                // The type changed: show the old value going and the new one coming.
                self.value(Mark::Remove, Mark::Remove, at, Side::of(old), attrs);
                self.value(Mark::Add, Mark::Add, at, Side::of(new), attrs);
            }
            (old, new) => self.scalar_update(at, old, new),
        }
    }

    fn scalar_update(&mut self, at: At<'_>, old: &Value, new: &Value) {
        self.begin(Mark::Change, at.depth);
        self.out.push_str(at.label);
        scalar_into(self.out, old);
        self.out.push_str(" -> ");
        scalar_into(self.out, new);
        let _ = writeln!(self.out, "{}{}", at.suffix, at.note);
    }

    /// A list present on both sides: unchanged runs at both ends are hidden; the middle is
    /// compared element by element when both sides have as many, otherwise shown as removed
    /// and added elements. Linear, unlike terraform's LCS, which is fine for plan-sized lists.
    fn list(&mut self, depth: usize, b: Side<'_>, a: Side<'_>) {
        let blen = b.value().as_array().map_or(0, Vec::len);
        let alen = a.value().as_array().map_or(0, Vec::len);
        let mut pre = 0;
        while pre < blen.min(alen) && same(b.index(pre), a.index(pre)) {
            pre += 1;
        }
        let mut post = 0;
        while post < blen.min(alen) - pre
            && same(b.index(blen - 1 - post), a.index(alen - 1 - post))
        {
            post += 1;
        }
        self.hidden(depth, pre, ELEMENTS);
        let (bm, am) = (blen - pre - post, alen - pre - post);
        if bm == am {
            let mut run = 0;
            for j in pre..pre + bm {
                let (bi, ai) = (b.index(j), a.index(j));
                if kind(bi, ai) == Kind::Same {
                    run += 1;
                    continue;
                }
                self.hidden(depth, run, ELEMENTS);
                run = 0;
                self.push_index(j);
                self.entry(depth, "", bi, ai, ",", false);
                self.pop();
            }
            self.hidden(depth, run, ELEMENTS);
        } else {
            for j in pre..pre + bm {
                self.push_index(j);
                let at = At {
                    depth,
                    label: "",
                    suffix: ",",
                    note: self.note(),
                };
                self.value(Mark::Remove, Mark::Remove, at, b.index(j), true);
                self.pop();
            }
            for j in pre..pre + am {
                self.push_index(j);
                let at = At {
                    depth,
                    label: "",
                    suffix: ",",
                    note: self.note(),
                };
                self.value(Mark::Add, Mark::Add, at, a.index(j), true);
                self.pop();
            }
        }
        self.hidden(depth, post, ELEMENTS);
    }

    /// A multi-line string that changed, as a heredoc with removed and added lines between
    /// the common first and last lines (a few of which are kept for context).
    fn heredoc_diff(&mut self, at: At<'_>, old: &str, new: &str) {
        let depth = at.depth;
        let old: Vec<&str> = text_lines(old).collect();
        let new: Vec<&str> = text_lines(new).collect();
        let mut pre = 0;
        while pre < old.len().min(new.len()) && old[pre] == new[pre] {
            pre += 1;
        }
        let mut post = 0;
        while post < old.len().min(new.len()) - pre
            && old[old.len() - 1 - post] == new[new.len() - 1 - post]
        {
            post += 1;
        }
        self.begin(Mark::Change, depth);
        let _ = writeln!(self.out, "{}<<-EOT{}", at.label, at.note);
        let keep_from = pre.saturating_sub(HEREDOC_CONTEXT);
        self.hidden(depth + 1, keep_from, LINES);
        for line in &old[keep_from..pre] {
            self.text_line(Mark::Keep, depth + 1, line);
        }
        for line in &old[pre..old.len() - post] {
            self.text_line(Mark::Remove, depth + 1, line);
        }
        for line in &new[pre..new.len() - post] {
            self.text_line(Mark::Add, depth + 1, line);
        }
        let shown_post = post.min(HEREDOC_CONTEXT);
        for line in &new[new.len() - post..new.len() - post + shown_post] {
            self.text_line(Mark::Keep, depth + 1, line);
        }
        self.hidden(depth + 1, post - shown_post, LINES);
        self.begin(Mark::Keep, depth);
        let _ = writeln!(self.out, "EOT{}", at.suffix);
    }

    fn text_line(&mut self, mark: Mark, depth: usize, line: &str) {
        self.begin(mark, depth);
        self.out.push_str(line);
        self.out.push('\n');
    }
}

const ELEMENTS: (&str, &str) = ("element", "elements");
const LINES: (&str, &str) = ("line", "lines");

/// Where and how one entry is written: its indentation level, the `key = ` label (empty for
/// list elements), what follows the value (`,` in lists, `)` after `jsonencode(`), and the
/// `# forces replacement` note for its first line.
#[derive(Clone, Copy)]
struct At<'l> {
    depth: usize,
    label: &'l str,
    suffix: &'l str,
    note: &'static str,
}

/// The second header line terraform prints to say why (for deletes and deferred reads).
fn reason_note(rc: &ResourceChange) -> Option<String> {
    let index = || match &rc.index {
        Some(Value::String(s)) => {
            let mut q = String::new();
            quote_into(&mut q, s);
            q
        }
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let config_addr = || match &rc.module_address {
        Some(m) => format!("{m}.{}.{}", rc.resource_type, rc.name),
        None => format!("{}.{}", rc.resource_type, rc.name),
    };
    Some(match rc.action_reason.as_deref()? {
        "delete_because_no_resource_config" => {
            format!("because {} is not in configuration", config_addr())
        }
        "delete_because_no_module" => format!(
            "because {} is not in configuration",
            rc.module_address.as_deref().unwrap_or("its module")
        ),
        "delete_because_wrong_repetition" => {
            "because the resource's count or for_each changed".to_string()
        }
        "delete_because_count_index" => {
            format!("because index [{}] is out of range for count", index())
        }
        "delete_because_each_key" => format!("because key [{}] is not in for_each map", index()),
        "read_because_config_unknown" => "config refers to values not yet known".to_string(),
        "read_because_dependency_pending" => {
            "depends on a resource or a module with changes pending".to_string()
        }
        _ => return None,
    })
}

fn scalar_into(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => quote_into(out, s),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(o) if o.values().all(Value::is_null) => out.push_str("{}"),
        // Non-empty containers are rendered structurally by the callers; keep a compact
        // fallback rather than panicking.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// The lines of a multi-line string, without the final empty line of a trailing newline.
fn text_lines(s: &str) -> impl Iterator<Item = &str> {
    s.strip_suffix('\n')
        .unwrap_or(s)
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::model::parse_plan_json;

    fn diff(json: &str) -> String {
        render_diff(&parse_plan_json(json.as_bytes()).expect("plan parses"))
    }

    /// A plan with one resource change, for table tests of value rendering.
    fn one(actions: &str, before: &str, after: &str, extra: &str) -> String {
        let json = format!(
            r#"{{"resource_changes":[{{"address":"t.x","mode":"managed","type":"t","name":"x",
            "change":{{"actions":{actions},"before":{before},"after":{after}{extra}}}}}]}}"#
        );
        diff(&json)
    }

    fn check(got: String, expect: &str) {
        let expect = expect.strip_prefix('\n').unwrap_or(expect);
        assert_eq!(
            got, expect,
            "\n--- got ---\n{got}\n--- expected ---\n{expect}"
        );
    }

    #[test]
    fn brief_example_shape() {
        check(
            one(
                r#"["create"]"#,
                "null",
                r#"{"triggers":{"x":"1"}}"#,
                r#","after_unknown":{"id":true,"triggers":{}}"#,
            ),
            r#"
# t.x will be created
+ resource "t" "x" {
+     id       = (known after apply)
+     triggers = {
+         "x" = "1"
+     }
  }
"#,
        );
    }

    #[test]
    fn updates_hide_unchanged_and_keep_identifying_attributes() {
        check(
            one(
                r#"["update"]"#,
                r#"{"id":"i-1","name":"web","size":1,"zone":"a","tags":{"a":"1","b":"2"}}"#,
                r#"{"id":"i-1","name":"web","size":2,"zone":"a","tags":{"a":"1","b":"3"}}"#,
                "",
            ),
            r#"
# t.x will be updated in-place
~ resource "t" "x" {
      id   = "i-1"
      name = "web"
~     size = 1 -> 2
~     tags = {
~         "b" = "2" -> "3"
          # (1 unchanged element hidden)
      }
      # (1 unchanged attribute hidden)
  }
"#,
        );
    }

    #[test]
    fn sensitive_values_never_print() {
        let got = one(
            r#"["update"]"#,
            r#"{"password":"old-secret","nested":{"token":"tok-old","plain":"a"},"list":["s1","p"]}"#,
            r#"{"password":"new-secret","nested":{"token":"tok-new","plain":"b"},"list":["s2","p"]}"#,
            r#","before_sensitive":{"password":true,"nested":{"token":true},"list":[true,false]},
               "after_sensitive":{"password":true,"nested":{"token":true},"list":[true,false]}"#,
        );
        for secret in ["old-secret", "new-secret", "tok-old", "tok-new", "s1", "s2"] {
            assert!(!got.contains(secret), "{secret} leaked:\n{got}");
        }
        check(
            got,
            r#"
# t.x will be updated in-place
~ resource "t" "x" {
~     list     = [
~         (sensitive value),
          # (1 unchanged element hidden)
      ]
~     nested   = {
~         "plain" = "a" -> "b"
~         "token" = (sensitive value)
      }
~     password = (sensitive value)
  }
"#,
        );
        // A whole value marked sensitive, on create and delete.
        let got = one(
            r#"["delete","create"]"#,
            r#"{"cfg":{"k":"v-old"}}"#,
            r#"{"cfg":{"k":"v-new"}}"#,
            r#","before_sensitive":{"cfg":true},"after_sensitive":{"cfg":true}"#,
        );
        assert!(!got.contains("v-old") && !got.contains("v-new"), "{got}");
        let got = one(
            r#"["delete"]"#,
            r#"{"cfg":"zzz-secret"}"#,
            "null",
            r#","before_sensitive":true"#,
        );
        assert!(!got.contains("zzz-secret"), "{got}");
    }

    #[test]
    fn forces_replacement_notes() {
        check(
            one(
                r#"["delete","create"]"#,
                r#"{"id":"1","ami":"a","tags":{"k":"v"}}"#,
                r#"{"ami":"b","tags":{"k":"w"}}"#,
                r#","after_unknown":{"id":true},"replace_paths":[["ami"],["tags","k"]]"#,
            ),
            r#"
# t.x must be replaced
-/+ resource "t" "x" {
~     ami  = "a" -> "b" # forces replacement
~     id   = "1" -> (known after apply)
~     tags = {
~         "k" = "v" -> "w" # forces replacement
      }
  }
"#,
        );
    }

    #[test]
    fn lists_and_multiline_strings() {
        check(
            one(
                r#"["update"]"#,
                r#"{"l":["a","b","c"],"m":[1,2],"s":"one\ntwo\nthree\n"}"#,
                r#"{"l":["a","x","c"],"m":[1,2,3],"s":"one\n2\nthree\n"}"#,
                "",
            ),
            r#"
# t.x will be updated in-place
~ resource "t" "x" {
~     l = [
          # (1 unchanged element hidden)
~         "b" -> "x",
          # (1 unchanged element hidden)
      ]
~     m = [
          # (2 unchanged elements hidden)
+         3,
      ]
~     s = <<-EOT
          one
-         two
+         2
          three
      EOT
  }
"#,
        );
    }

    #[test]
    fn json_strings_render_structurally() {
        check(
            one(
                r#"["update"]"#,
                r#"{"policy":"{\"Version\":\"1\",\"Action\":[\"a\"]}"}"#,
                r#"{"policy":"{\"Version\":\"1\",\"Action\":[\"a\",\"b\"]}"}"#,
                "",
            ),
            r#"
# t.x will be updated in-place
~ resource "t" "x" {
~     policy = jsonencode({
~         Action = [
              # (1 unchanged element hidden)
+             "b",
          ]
          # (1 unchanged attribute hidden)
      })
  }
"#,
        );
        check(
            one(
                r#"["create"]"#,
                "null",
                r#"{"policy":"[1, {\"a\": null, \"b\": \"${x}\"}]"}"#,
                "",
            ),
            r#"
# t.x will be created
+ resource "t" "x" {
+     policy = jsonencode([
+         1,
+         {
+             b = "$${x}"
+         },
+     ])
  }
"#,
        );
    }

    #[test]
    fn unknown_after_a_known_value() {
        check(
            one(
                r#"["update"]"#,
                r#"{"a":"x","m":{"k":"v"}}"#,
                r#"{}"#,
                r#","after_unknown":{"a":true,"m":true}"#,
            ),
            r#"
# t.x will be updated in-place
~ resource "t" "x" {
~     a = "x" -> (known after apply)
~     m = {
-         "k" = "v"
-     } -> (known after apply)
  }
"#,
        );
    }

    #[test]
    fn quoting_escapes_control_and_template_sequences() {
        let mut s = String::new();
        quote_into(&mut s, "a\"b\\c\td${e}%{f}$g\u{1b}");
        assert_eq!(s, r#""a\"b\\c\td$${e}%%{f}$g\u001b""#);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["a[10]", "a[9]", "a[1]", "b", "a[02]", "a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a", "a[1]", "a[02]", "a[9]", "a[10]", "b"]);
    }

    #[test]
    fn fixture_create() {
        insta::assert_snapshot!(diff(include_str!(
            "../../../tests/fixtures/plans/create.json"
        )));
    }

    #[test]
    fn fixture_mixed() {
        insta::assert_snapshot!(diff(include_str!(
            "../../../tests/fixtures/plans/mixed.json"
        )));
    }

    #[test]
    fn fixture_sensitive() {
        let got = diff(include_str!("../../../tests/fixtures/plans/sensitive.json"));
        assert!(!got.contains("hunter2"), "{got}");
        insta::assert_snapshot!(got);
    }

    #[test]
    fn fixture_aws() {
        let got = diff(include_str!("../../../tests/fixtures/plans/aws_db.json"));
        for secret in [
            "S3cr3t-Legacy-Pass",
            "Old-Main-Password-1",
            "New-Main-Password-2",
        ] {
            assert!(!got.contains(secret), "{secret} leaked:\n{got}");
        }
        insta::assert_snapshot!(got);
    }

    #[test]
    fn fixture_future() {
        insta::assert_snapshot!(diff(include_str!(
            "../../../tests/fixtures/plans/future.json"
        )));
    }

    #[test]
    fn fixture_nochange() {
        check(
            diff(include_str!("../../../tests/fixtures/plans/nochange.json")),
            "No changes. Your infrastructure matches the configuration.\n",
        );
    }
}
