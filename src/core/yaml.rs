//! Reading YAML config files node by node, with positions: the shared reader behind
//! `sluice.yaml`/`atlantis.yaml` ([`super::repo_config`]) and policy files ([`super::policy`]).
//!
//! It owns the loader (duplicate keys rejected, quoted values never coerced, no tags; anchors
//! refused in Sluice's own files and expanded in files written for Atlantis, see [`Anchors`]), the
//! wording of type errors and unknown keys (with did-you-mean), and collects every problem as a
//! [`Diagnostic`] instead of stopping at the first — so every config file Sluice reads reports
//! errors the same way. It knows no schema and does no I/O: callers hand it text.
//!
//! The text may come from a pull request, so the loader walks the event parser's stream with an
//! explicit stack (nothing recurses while reading) and refuses, with the position where it
//! happens, nesting deeper than [`MAX_DEPTH`] and more than [`MAX_NODES`] values — counted
//! *after* aliases are expanded, so no "billion laughs" file gets past its first expensive alias.
//! Lists a schema reads element by element are capped with [`Reader::at_most`].

use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use serde::Serialize;
use yaml_rust2::parser::{Event, Parser};

use super::diag::Diagnostic;

/// Deepest nesting of mappings and lists in a configuration or policy file. Real files nest
/// five or six levels; the loader recurses once per level.
pub const MAX_DEPTH: usize = 32;

/// Most values (scalars, mappings, lists) in one configuration or policy file.
pub const MAX_NODES: usize = 100_000;

/// A 1-based position in the config file (0:0 when unknown, e.g. for an empty file).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, serde::Deserialize,
)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A value together with where it was written, so later stages (glob expansion, detection) can
/// point their diagnostics at the right spot in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

/// How the parser treats a key it finds.
#[derive(Clone, Copy)]
pub(crate) enum Key {
    Known,
    /// Harmless to ignore: a warning saying so, with the reason.
    Ignored(&'static str),
    /// Would change what runs if ignored: an error saying it is not supported, with the reason.
    Unsupported(&'static str),
}
use Key::{Ignored, Known, Unsupported};

/// Collects diagnostics for one file while its nodes are read.
pub(crate) struct Reader<'f> {
    pub file: &'f str,
    /// The hint given when the file is not a mapping (e.g. "start with `version: 1`, then
    /// `projects:`"), which depends on the kind of file.
    pub top_level_hint: String,
    pub diags: Vec<Diagnostic>,
}

pub(crate) fn pos_of_span(span: &marked_yaml::Span) -> Pos {
    span.start().map_or(Pos::default(), |m| Pos {
        line: m.line(),
        column: m.column(),
    })
}

pub(crate) fn pos(node: &Node) -> Pos {
    pos_of_span(node.span())
}

/// A plain `~`, `null` or nothing: YAML's "no value".
pub(crate) fn is_null(s: &MarkedScalarNode) -> bool {
    s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

pub(crate) fn describe(node: &Node) -> String {
    match node {
        Node::Scalar(s) if is_null(s) => "no value".to_string(),
        Node::Scalar(s) if !s.may_coerce() => format!("the quoted string `\"{}\"`", s.as_str()),
        Node::Scalar(s) => format!("`{}`", s.as_str()),
        Node::Mapping(_) => "a mapping".to_string(),
        Node::Sequence(_) => "a list".to_string(),
    }
}

/// Which YAML features beyond plain mappings, lists and scalars a file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchors {
    /// Anchors and aliases (`&x`, `*x`) are refused: Sluice's own files, where every value has
    /// exactly one position.
    Refuse,
    /// Anchors, aliases and merge keys (`<<: *x`) are expanded, as Atlantis' YAML library does,
    /// for files written for Atlantis (`atlantis.yaml`, `repos.yaml`). The expanded tree stays
    /// within [`MAX_NODES`] values and [`MAX_DEPTH`] levels: an alias that would go past either
    /// (the "billion laughs" file) is refused where it occurs, before it is copied. Expanded
    /// values keep the position of their anchor, so a diagnostic points at the text that is wrong.
    Expand,
}

/// Most closing brackets re-indented in one file (see [`load_tree`]).
const MAX_BRACKET_FIXES: usize = 256;

/// Why a file could not be loaded, at the position where it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LoadFailure {
    TopLevel(Pos),
    AnchorRefused(Pos),
    Tag(Pos),
    KeyNotScalar(Pos),
    DuplicateKey {
        at: Pos,
        key: String,
        first: Pos,
    },
    Syntax {
        at: Pos,
        info: String,
    },
    TooDeep(Pos),
    TooManyValues(Pos),
    /// An alias or merge whose expansion goes past the bounds.
    Expansion {
        at: Pos,
        nested: bool,
    },
    BadMerge(Pos),
    SelfAlias(Pos),
}

/// A complete value with what it costs once expanded.
#[derive(Clone)]
struct Built {
    node: Node,
    /// Values it holds, itself included.
    size: usize,
    /// Nested mappings and lists, itself included (0 for a scalar).
    height: usize,
}

// At most MAX_DEPTH frames are open at once, so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Open {
    /// `key` is set while its value is being read.
    Mapping {
        map: MarkedMappingNode,
        key: Option<MarkedScalarNode>,
        /// Mappings named by `<<` keys, in the order they apply (earlier wins).
        merges: Vec<Node>,
    },
    Sequence(Vec<Node>),
}

struct Frame {
    open: Open,
    start: marked_yaml::Marker,
    anchor: usize,
    size: usize,
    height: usize,
}

enum Attempt {
    Done(Node),
    /// A closing bracket the event parser refused for its indentation, at this character index.
    Reindent {
        index: usize,
        line: usize,
        col: usize,
    },
    Failed(LoadFailure),
}

/// Loads `text` into a tree, walking the event parser's stream with an explicit stack (the parser
/// keeps its own; nothing here recurses, so no file can exhaust the stack), bounding depth and
/// values as it goes.
///
/// One known disagreement between the event parser and Go's YAML library (which Atlantis and
/// most tools use) is smoothed over: a flow list or mapping whose closing `]`/`}` sits at its
/// key's indentation after a quoted value (`when_modified: [\n  "*.tf"\n]`) is valid YAML, yet
/// the parser calls it "invalid indentation". When the parser says so *at a closing bracket*, the
/// bracket is indented by one space and the text read again; inside a flow collection indentation
/// carries no meaning, and a bracket the parser was reading is never inside a block scalar, so
/// no value changes. Positions are mapped back to the original columns.
fn load_tree(text: &str, anchors: Anchors) -> Result<Node, LoadFailure> {
    let mut text = std::borrow::Cow::Borrowed(text);
    // (line, 0-based column in the edited text) of every inserted space.
    let mut inserted: Vec<(usize, usize)> = Vec::new();
    loop {
        match load_once(&text, anchors, &inserted) {
            Attempt::Done(node) => return Ok(node),
            Attempt::Failed(f) => return Err(f),
            Attempt::Reindent { index, line, col } => {
                let byte = text.char_indices().nth(index).map(|(b, _)| b);
                let is_closer = byte.is_some_and(|b| matches!(text.as_bytes()[b], b']' | b'}'));
                match byte {
                    Some(b) if is_closer && inserted.len() < MAX_BRACKET_FIXES => {
                        text.to_mut().insert(b, ' ');
                        inserted.push((line, col));
                    }
                    _ => {
                        let at = original_pos(line, col, &inserted);
                        return Err(LoadFailure::Syntax {
                            at,
                            info: "invalid indentation".to_string(),
                        });
                    }
                }
            }
        }
    }
}

/// The 1-based position in the original text of a 0-based column in the edited text.
fn original_pos(line: usize, col: usize, inserted: &[(usize, usize)]) -> Pos {
    let shift = inserted
        .iter()
        .filter(|(l, c)| *l == line && *c < col)
        .count();
    Pos {
        line,
        column: col - shift + 1,
    }
}

fn load_once(text: &str, anchors: Anchors, inserted: &[(usize, usize)]) -> Attempt {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchored: std::collections::HashMap<usize, Built> = std::collections::HashMap::new();
    let mut nodes = 0usize;
    let mut root: Option<Built> = None;
    let fail = |f: LoadFailure| Attempt::Failed(f);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(e) => e,
            Err(e) => {
                let m = e.marker();
                if e.info() == "invalid indentation" {
                    return Attempt::Reindent {
                        index: m.index(),
                        line: m.line(),
                        col: m.col(),
                    };
                }
                return fail(LoadFailure::Syntax {
                    at: original_pos(m.line(), m.col(), inserted),
                    info: e.info().to_string(),
                });
            }
        };
        let at = original_pos(mark.line(), mark.col(), inserted);
        let marker = marked_yaml::Marker::new(0, mark.index(), at.line, at.column);
        let (anchor, tagged) = match &event {
            Event::Scalar(_, _, a, t) => (*a, t.is_some()),
            Event::SequenceStart(a, t) | Event::MappingStart(a, t) => (*a, t.is_some()),
            _ => (0, false),
        };
        if anchors == Anchors::Refuse && (anchor != 0 || matches!(event, Event::Alias(_))) {
            return fail(LoadFailure::AnchorRefused(at));
        }
        if tagged {
            return fail(LoadFailure::Tag(at));
        }
        let built = match event {
            Event::StreamStart | Event::DocumentStart | Event::Nothing => continue,
            // Only the first document is read, as Go's YAML library does.
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if let Some(Frame {
                    open: Open::Mapping { key: None, .. },
                    ..
                }) = stack.last()
                {
                    return fail(LoadFailure::KeyNotScalar(at));
                }
                if stack.is_empty() && matches!(event, Event::SequenceStart(..)) {
                    return fail(LoadFailure::TopLevel(at));
                }
                nodes += 1;
                if stack.len() + 1 > MAX_DEPTH {
                    return fail(LoadFailure::TooDeep(at));
                }
                if nodes > MAX_NODES {
                    return fail(LoadFailure::TooManyValues(at));
                }
                let open = if matches!(event, Event::MappingStart(..)) {
                    Open::Mapping {
                        map: MarkedMappingNode::new_empty(marked_yaml::Span::new_start(marker)),
                        key: None,
                        merges: Vec::new(),
                    }
                } else {
                    Open::Sequence(Vec::new())
                };
                stack.push(Frame {
                    open,
                    start: marker,
                    anchor,
                    size: 1,
                    height: 1,
                });
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some(frame) = stack.pop() else {
                    continue;
                };
                let anchor = frame.anchor;
                close_frame(frame, marker).anchored(anchor, &mut anchored)
            }
            Event::Scalar(value, style, anchor, _) => {
                nodes += 1;
                if nodes > MAX_NODES {
                    return fail(LoadFailure::TooManyValues(at));
                }
                if stack.is_empty() {
                    return fail(LoadFailure::TopLevel(at));
                }
                let mut s = MarkedScalarNode::new(marked_yaml::Span::new_start(marker), value);
                // Quoted values stay strings: `"true"` is not a boolean.
                s.set_coerce(matches!(style, yaml_rust2::scanner::TScalarStyle::Plain));
                Built {
                    node: Node::Scalar(s),
                    size: 1,
                    height: 0,
                }
                .anchored(anchor, &mut anchored)
            }
            Event::Alias(id) => {
                let Some(target) = anchored.get(&id) else {
                    // The parser knows the anchor, so it is still open: the alias is inside it.
                    return fail(LoadFailure::SelfAlias(at));
                };
                if stack.len() + target.height > MAX_DEPTH {
                    return fail(LoadFailure::Expansion { at, nested: true });
                }
                nodes += target.size;
                if nodes > MAX_NODES {
                    return fail(LoadFailure::Expansion { at, nested: false });
                }
                target.clone()
            }
        };
        // Attach the finished value to its parent.
        let Some(parent) = stack.last_mut() else {
            root = Some(built);
            continue;
        };
        parent.size += built.size;
        parent.height = parent.height.max(built.height + 1);
        if let Err(f) = attach(parent, built, at, anchors) {
            return fail(f);
        }
    }
    match root {
        Some(b) => Attempt::Done(b.node),
        // No document at all (an empty file, or only comments): an empty mapping.
        None => Attempt::Done(Node::Mapping(MarkedMappingNode::new_empty(
            marked_yaml::Span::new_blank(),
        ))),
    }
}

/// Attaches a finished value to its parent collection: an item, a key, a value, or (`<<` in
/// an atlantis.yaml) the mappings merged into it.
fn attach(parent: &mut Frame, built: Built, at: Pos, anchors: Anchors) -> Result<(), LoadFailure> {
    match &mut parent.open {
        Open::Sequence(items) => items.push(built.node),
        Open::Mapping {
            key: key @ None, ..
        } => match built.node {
            Node::Scalar(k) => *key = Some(k),
            _ => return Err(LoadFailure::KeyNotScalar(at)),
        },
        Open::Mapping {
            map,
            key: key @ Some(_),
            merges,
        } => {
            let k = key.take().expect("matched Some");
            let is_merge = anchors == Anchors::Expand && k.may_coerce() && k.as_str() == "<<";
            if is_merge {
                // Already counted: an inline mapping as it was read, an alias's copy when it
                // was made. Keys written in the mapping itself win (applied at its end).
                match built.node {
                    Node::Mapping(_) => merges.push(built.node),
                    Node::Sequence(items)
                        if items.iter().all(|i| matches!(i, Node::Mapping(_))) =>
                    {
                        merges.extend(items.iter().cloned())
                    }
                    _ => return Err(LoadFailure::BadMerge(pos_of_span(k.span()))),
                }
                return Ok(());
            }
            if let Some((first, _)) = map.get_key_value(&k) {
                return Err(LoadFailure::DuplicateKey {
                    at: pos_of_span(k.span()),
                    key: k.as_str().to_string(),
                    first: pos_of_span(first.span()),
                });
            }
            map.insert(k, built.node);
        }
    }
    Ok(())
}

/// The value of a mapping or sequence that just closed, merge keys applied (keys written in
/// the mapping itself win).
fn close_frame(frame: Frame, marker: marked_yaml::Marker) -> Built {
    let span = marked_yaml::Span::new_with_marks(frame.start, marker);
    let node = match frame.open {
        Open::Mapping {
            mut map, merges, ..
        } => {
            for source in merges {
                if let Node::Mapping(m) = source {
                    for (k, v) in m.iter() {
                        if !map.contains_key(k) {
                            map.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            *map.span_mut() = span;
            Node::Mapping(map)
        }
        Open::Sequence(items) => Node::Sequence(MarkedSequenceNode::new(span, items)),
    };
    Built {
        node,
        size: frame.size,
        height: frame.height,
    }
}

impl Built {
    /// Remembers the value under its anchor (`0` is "no anchor").
    fn anchored(
        self,
        anchor: usize,
        anchored: &mut std::collections::HashMap<usize, Built>,
    ) -> Self {
        if anchor != 0 {
            anchored.insert(anchor, self.clone());
        }
        self
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `a, b, c` — or the first `max` then `and N more`, so a hint never becomes a wall of text.
pub(crate) fn list_some<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(AsRef::as_ref).collect();
    let mut s = shown.join(", ");
    if items.len() > max {
        s.push_str(&format!(" and {} more", items.len() - max));
    }
    s
}

impl<'f> Reader<'f> {
    pub fn new(file: &'f str, top_level_hint: impl Into<String>) -> Self {
        Reader {
            file,
            top_level_hint: top_level_hint.into(),
            diags: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, at: Pos, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, at.line, at.column, message);
        d.hint = hint;
        self.diags.push(d);
    }

    pub(crate) fn warning(&mut self, at: Pos, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::warning(self.file, at.line, at.column, message);
        d.hint = hint;
        self.diags.push(d);
    }

    /// Parses the text into a mapping node, turning loader errors into diagnostics. Anchors and
    /// aliases are refused; see [`Reader::load_with`].
    pub(crate) fn load(&mut self, text: &str) -> Option<Node> {
        self.load_with(text, Anchors::Refuse)
    }

    /// Parses the text into a mapping node (duplicate keys rejected, quoted values never coerced,
    /// no tags), with anchors refused or expanded as `anchors` says, turning loader errors into
    /// diagnostics.
    pub(crate) fn load_with(&mut self, text: &str, anchors: Anchors) -> Option<Node> {
        let anchors_hint = || {
            "write the value out in each place; Sluice reads a plain subset of YAML so every value \
             has exactly one position in the file"
                .to_string()
        };
        let failure = match load_tree(text, anchors) {
            Ok(node) => return Some(node),
            Err(f) => f,
        };
        match failure {
            LoadFailure::TopLevel(at) => {
                let hint = self.top_level_hint.clone();
                self.error(
                    at,
                    "the file must be a mapping of keys to values",
                    Some(hint),
                );
            }
            LoadFailure::AnchorRefused(at) => self.error(
                at,
                "YAML anchors and aliases (`&name`, `*name`) are not supported",
                Some(anchors_hint()),
            ),
            LoadFailure::Tag(at) => self.error(
                at,
                "YAML tags (`!!str`, `!Ref`, …) are not supported",
                Some("quote the value instead: `\"1.10\"`".to_string()),
            ),
            LoadFailure::KeyNotScalar(at) => self.error(
                at,
                "mapping keys must be plain names, not lists or mappings",
                None,
            ),
            LoadFailure::DuplicateKey { at, key, first } => self.error(
                at,
                format!(
                    "key `{key}` appears twice in the same mapping (first at line {})",
                    first.line
                ),
                Some("remove one of them; YAML would silently keep only the last".to_string()),
            ),
            LoadFailure::TooDeep(at) => self.error(
                at,
                format!("the file nests more than {MAX_DEPTH} levels deep here"),
                None,
            ),
            LoadFailure::TooManyValues(at) => self.error(
                at,
                format!(
                    "the file has more than {MAX_NODES} values; Sluice reads at most that many"
                ),
                None,
            ),
            LoadFailure::Expansion { at, nested } => self.error(
                at,
                if nested {
                    format!("this alias would make the file nest more than {MAX_DEPTH} levels deep")
                } else {
                    format!(
                        "this alias would expand the file past {MAX_NODES} values; Sluice reads \
                         at most that many (aliases of aliases multiply: the \"billion laughs\" \
                         pattern)"
                    )
                },
                Some("write the repeated parts out, or share fewer levels of aliases".to_string()),
            ),
            LoadFailure::BadMerge(at) => self.error(
                at,
                "a merge key `<<` needs a mapping or a list of mappings as its value",
                Some("write `<<: *defaults`, where `&defaults` names a mapping".to_string()),
            ),
            LoadFailure::SelfAlias(at) => self.error(
                at,
                "this alias refers to the value that contains it",
                Some("an anchored value cannot include itself".to_string()),
            ),
            LoadFailure::Syntax { at, info } => {
                let hint = if info.contains("anchor") {
                    Some(anchors_hint())
                } else if info.contains("`@'") {
                    // `@` is reserved in YAML, and people write GitHub names with it.
                    Some(
                        "`@` cannot start a plain YAML value: write the name without it (`alice`), \
                         or quote it (`\"@alice\"`)"
                            .to_string(),
                    )
                } else {
                    Some("check indentation and quoting around this spot".to_string())
                };
                self.error(at, format!("invalid YAML: {info}"), hint);
            }
        }
        None
    }

    /// `false` (with an error at the list) when `seq` holds more than `max` entries: lists a
    /// schema expands (projects, policies) are capped so one file cannot make every later step
    /// slow.
    pub(crate) fn at_most(&mut self, seq: &MarkedSequenceNode, key: &str, max: usize) -> bool {
        if seq.len() <= max {
            return true;
        }
        self.error(
            pos_of_span(seq.span()),
            format!(
                "`{key}` lists {} entries; Sluice reads at most {max}",
                seq.len()
            ),
            Some("split the repository's configuration, or use globs (`dir: envs/*`)".to_string()),
        );
        false
    }

    /// Reports keys of `map` that are unknown (error, with did-you-mean), ignored (warning) or
    /// unsupported (error) according to `rules`.
    pub(crate) fn check_keys(
        &mut self,
        map: &MarkedMappingNode,
        place: &str,
        rules: &[(&str, Key)],
    ) {
        let known: Vec<&str> = rules
            .iter()
            .filter(|(_, k)| matches!(k, Known))
            .map(|(n, _)| *n)
            .collect();
        for key in map.keys() {
            let at = pos_of_span(key.span());
            let name = key.as_str();
            match rules.iter().find(|(n, _)| *n == name).map(|(_, k)| *k) {
                Some(Known) => {}
                Some(Ignored(why)) => self.warning(
                    at,
                    format!("`{name}` is ignored: {why}"),
                    Some("remove it to silence this warning".to_string()),
                ),
                Some(Unsupported(why)) => self.error(
                    at,
                    format!("`{name}` is not supported by Sluice: {why}"),
                    Some("remove it, or keep using Atlantis for this repository".to_string()),
                ),
                None => {
                    let valid = known.join(", ");
                    let hint = match did_you_mean(name, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? valid keys here: {valid}"),
                        None => format!("valid keys here: {valid}"),
                    };
                    self.error(at, format!("unknown key `{name}` {place}"), Some(hint));
                }
            }
        }
    }

    pub(crate) fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
    ) -> Option<&'n MarkedMappingNode> {
        match node {
            Node::Mapping(m) => Some(m),
            other => {
                self.error(
                    pos(other),
                    format!(
                        "{what} should be a mapping of keys to values, found {}",
                        describe(other)
                    ),
                    None,
                );
                None
            }
        }
    }

    pub(crate) fn sequence<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
    ) -> Option<&'n MarkedSequenceNode> {
        match node {
            Node::Sequence(s) => Some(s),
            other => {
                self.error(
                    pos(other),
                    format!("`{key}` should be a list, found {}", describe(other)),
                    Some(format!("write `{key}: [a, b]` or one `- item` per line")),
                );
                None
            }
        }
    }

    pub(crate) fn string(&mut self, node: &Node, key: &str) -> Option<Located<String>> {
        match node {
            Node::Scalar(s) if !is_null(s) => Some(Located {
                value: s.as_str().to_string(),
                pos: pos(node),
            }),
            other => {
                self.error(
                    pos(other),
                    format!(
                        "`{key}` should be a single value, found {}",
                        describe(other)
                    ),
                    None,
                );
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        let b = match node {
            Node::Scalar(s) => match (s.may_coerce(), s.as_str()) {
                (true, "true") => Some(true),
                (true, "false") => Some(false),
                _ => None,
            },
            _ => None,
        };
        if b.is_none() {
            let quoted = matches!(node, Node::Scalar(s) if !s.may_coerce());
            self.error(
                pos(node),
                format!(
                    "`{key}` should be `true` or `false`, found {}",
                    describe(node)
                ),
                quoted.then(|| "write it without quotes: quoted values are strings".to_string()),
            );
        }
        b
    }

    pub(crate) fn string_list(&mut self, node: &Node, key: &str) -> Option<Vec<Located<String>>> {
        let seq = self.sequence(node, key)?;
        let mut out = Vec::with_capacity(seq.len());
        let mut ok = true;
        for item in seq.iter() {
            match self.string(item, key) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A list of values, or one value standing for a list of one (`users: alice`): policy files
    /// are written by people who do not write YAML every day, and the meaning is unambiguous.
    pub(crate) fn one_or_many(&mut self, node: &Node, key: &str) -> Option<Vec<Located<String>>> {
        match node {
            Node::Scalar(s) if !is_null(s) => self.string(node, key).map(|v| vec![v]),
            _ => self.string_list(node, key),
        }
    }

    /// A whole number written without quotes (`10`, not `"10"` or `1e1`).
    pub(crate) fn whole_number(&mut self, node: &Node, key: &str) -> Option<u32> {
        let n = match node {
            Node::Scalar(s) if s.may_coerce() && s.as_str().bytes().all(|b| b.is_ascii_digit()) => {
                s.as_str().parse::<u32>().ok()
            }
            _ => None,
        };
        if n.is_none() {
            let quoted = matches!(node, Node::Scalar(s) if !s.may_coerce());
            self.error(
                pos(node),
                format!(
                    "`{key}` should be a whole number like `10`, found {}",
                    describe(node)
                ),
                quoted.then(|| "write it without quotes: quoted values are strings".to_string()),
            );
        }
        n
    }
}
