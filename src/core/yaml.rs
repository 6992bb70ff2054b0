//! Reading YAML config files node by node, with positions: the shared reader behind
//! `sluice.yaml`/`atlantis.yaml` ([`super::repo_config`]) and policy files ([`super::policy`]).
//!
//! It owns the loader options (duplicate keys rejected, quoted values never coerced, no anchors
//! or tags), the wording of type errors and unknown keys (with did-you-mean), and collects every
//! problem as a [`Diagnostic`] instead of stopping at the first — so every config file Sluice
//! reads reports errors the same way. It knows no schema and does no I/O: callers hand it text.
//!
//! The text may come from a pull request, so before the (recursive) loader builds a tree, the
//! file's event stream is walked once without one: nesting deeper than [`MAX_DEPTH`], more than
//! [`MAX_NODES`] values, and any anchor or alias (so no "billion laughs" expansion can happen)
//! are refused with the position where they occur. Lists a schema reads element by element are
//! capped with [`Reader::at_most`].

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{LoadError, LoaderOptions, Node};
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

/// Walks `text`'s YAML events once, without building a tree (the event parser keeps an explicit
/// stack; the loader that builds the tree recurses): the first place that nests deeper than
/// [`MAX_DEPTH`], goes past [`MAX_NODES`], or uses an anchor or alias, with a message and whether
/// the anchors hint applies. A syntax error is left for the loader, which reports it the same way.
fn check_structure(text: &str) -> Result<(), (Pos, String, bool)> {
    let mut parser = Parser::new_from_str(text);
    let (mut depth, mut nodes) = (0usize, 0usize);
    loop {
        let Ok((event, mark)) = parser.next_token() else {
            return Ok(());
        };
        let at = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        let anchored = match &event {
            Event::StreamEnd | Event::DocumentEnd => return Ok(()),
            Event::Alias(_) => true,
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _) => *anchor != 0,
            _ => false,
        };
        if anchored {
            return Err((
                at,
                "YAML anchors and aliases (`&name`, `*name`) are not supported".to_string(),
                true,
            ));
        }
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                nodes += 1;
                if depth > MAX_DEPTH {
                    return Err((
                        at,
                        format!("the file nests more than {MAX_DEPTH} levels deep here"),
                        false,
                    ));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::Scalar(..) => nodes += 1,
            _ => {}
        }
        if nodes > MAX_NODES {
            return Err((
                at,
                format!(
                    "the file has more than {MAX_NODES} values; Sluice reads at most that many"
                ),
                false,
            ));
        }
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

    /// Parses the text into a mapping node, turning loader errors into diagnostics.
    pub(crate) fn load(&mut self, text: &str) -> Option<Node> {
        let options = LoaderOptions::default()
            .error_on_duplicate_keys(true)
            // Quoted values stay strings: `"true"` is not a boolean.
            .prevent_coercion(true);
        let marker_pos = |m: &marked_yaml::Marker| Pos {
            line: m.line(),
            column: m.column(),
        };
        let anchors_hint =
            "write the value out in each place; Sluice reads a plain subset of YAML \
                            so every value has exactly one position in the file"
                .to_string();
        if let Err((at, message, anchors)) = check_structure(text) {
            self.error(at, message, anchors.then(|| anchors_hint.clone()));
            return None;
        }
        match marked_yaml::parse_yaml_with_options(0, text, options) {
            Ok(node) => return Some(node),
            Err(LoadError::TopLevelMustBeMapping(m))
            | Err(LoadError::TopLevelMustBeSequence(m)) => {
                let hint = self.top_level_hint.clone();
                self.error(
                    marker_pos(&m),
                    "the file must be a mapping of keys to values",
                    Some(hint),
                );
            }
            Err(LoadError::UnexpectedAnchor(m)) => self.error(
                marker_pos(&m),
                "YAML anchors and aliases (`&name`, `*name`) are not supported",
                Some(anchors_hint),
            ),
            Err(LoadError::UnexpectedTag(m)) => self.error(
                marker_pos(&m),
                "YAML tags (`!!str`, `!Ref`, …) are not supported",
                Some("quote the value instead: `\"1.10\"`".to_string()),
            ),
            Err(LoadError::MappingKeyMustBeScalar(m)) => self.error(
                marker_pos(&m),
                "mapping keys must be plain names, not lists or mappings",
                None,
            ),
            Err(LoadError::DuplicateKey(dup)) => {
                let first = pos_of_span(dup.prev_key.span());
                self.error(
                    pos_of_span(dup.key.span()),
                    format!(
                        "key `{}` appears twice in the same mapping (first at line {})",
                        dup.key.as_str(),
                        first.line
                    ),
                    Some("remove one of them; YAML would silently keep only the last".to_string()),
                );
            }
            Err(LoadError::ScanError(m, e)) => {
                let hint = if e.info().contains("anchor") {
                    Some(anchors_hint)
                } else if e.info().contains("`@'") {
                    // `@` is reserved in YAML, and people write GitHub names with it.
                    Some(
                        "`@` cannot start a plain YAML value: write the name without it (`alice`), \
                         or quote it (`\"@alice\"`)"
                            .to_string(),
                    )
                } else {
                    Some("check indentation and quoting around this spot".to_string())
                };
                self.error(marker_pos(&m), format!("invalid YAML: {}", e.info()), hint);
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
