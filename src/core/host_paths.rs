//! Host paths → neutral names, for everything Sluice posts where others can read it. Error texts
//! from git, terraform and Sluice itself name files by their host path (`/srv/sluice/repos/…`,
//! `/srv/sluice/jobs/job-12/repo/main.tf`); a PR comment must not tell the world where the
//! server keeps its data, its mirrors, its job dirs or its tools. [`HostPaths::map`] rewrites
//! each known host directory to a short name in angle brackets (`<mirrors>/acme/infra.git`,
//! `<job>/repo/main.tf`), keeping the part below it, which is the repository's own layout.
//!
//! It owns the matching (longest directory first, only at path boundaries, so `/srv/data`
//! never rewrites `/srv/data2`); the caller says which directories exist and what they are
//! called. Pure: no filesystem — callers add every spelling of a directory they know (as
//! configured, absolute, canonical).

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};

/// How a matched directory is rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Naming {
    /// The directory itself becomes the name: `<data>/sluice.db`.
    Whole,
    /// The directory *and the one entry below it* become the name (`<jobs dir>/job-12/repo` →
    /// `<job>/repo`): the entry's name (a job id) is host bookkeeping too. The directory alone
    /// is named by `alone`.
    WithEntry { alone: String },
}

#[derive(Debug, Clone)]
struct Rule {
    host: String,
    name: String,
    naming: Naming,
}

/// The known host directories and their neutral names. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct HostPaths {
    rules: Vec<Rule>,
    matcher: Option<AhoCorasick>,
}

/// Characters that continue a path component: a match followed (or preceded) by one of these
/// is part of a longer name, not the directory.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@' | '~')
}

impl HostPaths {
    pub fn new() -> HostPaths {
        HostPaths::default()
    }

    /// Names the directory `host` (any spelling; a trailing `/` is ignored) `name`. Paths of
    /// fewer than two components (`/`, `/tmp`, a relative `data`) are too unspecific and are
    /// ignored rather than rewriting words all over every message.
    pub fn add(&mut self, host: &str, name: &str) {
        self.push(host, name, Naming::Whole);
    }

    /// Names each entry of the directory `host` `entry_name` (with its contents below it), and
    /// the directory itself `dir_name`.
    pub fn add_entries(&mut self, host: &str, entry_name: &str, dir_name: &str) {
        self.push(
            host,
            entry_name,
            Naming::WithEntry {
                alone: dir_name.to_string(),
            },
        );
    }

    fn push(&mut self, host: &str, name: &str, naming: Naming) {
        let host = host.trim_end_matches('/');
        let components = host.split('/').filter(|c| !c.is_empty()).count();
        if components < 2 {
            return;
        }
        if self.rules.iter().any(|r| r.host == host) {
            return;
        }
        self.rules.push(Rule {
            host: host.to_string(),
            name: name.to_string(),
            naming,
        });
        self.matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(self.rules.iter().map(|r| r.host.as_str()))
            .ok();
    }

    /// `text` with every known host directory replaced by its name.
    pub fn map<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(text);
        };
        let mut out: Option<String> = None;
        let mut copied = 0;
        for m in matcher.find_iter(text) {
            if m.start() < copied {
                continue;
            }
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            // A relative spelling must start a path; an absolute one may follow another `/`.
            if before.is_some_and(name_char) || after.is_some_and(name_char) {
                continue;
            }
            let rule = &self.rules[m.pattern().as_usize()];
            if !rule.host.starts_with('/') && before == Some('/') {
                continue;
            }
            let (end, name) = match &rule.naming {
                Naming::Whole => (m.end(), rule.name.as_str()),
                Naming::WithEntry { alone } => {
                    let rest = &text[m.end()..];
                    let entry = rest
                        .strip_prefix('/')
                        .map(|r| r.find(|c: char| !name_char(c)).unwrap_or(r.len()))
                        .unwrap_or(0);
                    if entry == 0 {
                        (m.end(), alone.as_str())
                    } else {
                        (m.end() + 1 + entry, rule.name.as_str())
                    }
                }
            };
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..m.start()]);
            o.push_str(name);
            copied = end;
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(&text[copied..]);
                Cow::Owned(o)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> HostPaths {
        let mut p = HostPaths::new();
        p.add("/srv/sluice", "<data>");
        p.add("/srv/sluice/repos/", "<mirrors>");
        p.add_entries("/srv/sluice/jobs", "<job>", "<jobs>");
        p.add("/opt/tools/providers", "<providers>");
        p.add("sluice-data", "<data>");
        p.add("sluice-data/repos", "<mirrors>");
        p
    }

    #[test]
    fn host_directories_become_names() {
        let p = layout();
        let cases: &[(&str, &str)] = &[
            (
                "fatal: '/srv/sluice/repos/acme/infra.git' does not appear to be a git repository",
                "fatal: '<mirrors>/acme/infra.git' does not appear to be a git repository",
            ),
            (
                "Error: Invalid reference\n  on /srv/sluice/jobs/job-12/repo/envs/a/main.tf line 3:",
                "Error: Invalid reference\n  on <job>/repo/envs/a/main.tf line 3:",
            ),
            (
                "creating /srv/sluice/jobs/job-12-apply.etc: permission denied",
                "creating <job>: permission denied",
            ),
            ("clearing /srv/sluice/jobs", "clearing <jobs>"),
            ("opening /srv/sluice/sluice.db", "opening <data>/sluice.db"),
            (
                "provider from /opt/tools/providers/registry.terraform.io/hashicorp/null",
                "provider from <providers>/registry.terraform.io/hashicorp/null",
            ),
            (
                "two: /srv/sluice/x and /srv/sluice/repos/y",
                "two: <data>/x and <mirrors>/y",
            ),
            ("relative: sluice-data/repos/a", "relative: <mirrors>/a"),
            ("file:///srv/sluice/repos/a.git", "file://<mirrors>/a.git"),
        ];
        for (text, want) in cases {
            assert_eq!(p.map(text), *want, "{text}");
        }
    }

    #[test]
    fn only_whole_path_components_match() {
        let p = layout();
        for text in [
            "/srv/sluice2/repos",
            "/x/srv/sluice/repos",
            "other-sluice-data/repos/x",
            "my/sluice-data/repos/x",
            "sluice-data/x",
            "/srv/sluiceX",
            "nothing to see",
            "",
        ] {
            assert!(
                matches!(p.map(text), Cow::Borrowed(_)),
                "{text} → {}",
                p.map(text)
            );
        }
    }

    #[test]
    fn paths_too_short_to_be_specific_are_not_rewritten() {
        let mut p = HostPaths::new();
        p.add("/", "<root>");
        p.add("/tmp", "<tmp>");
        p.add("", "<empty>");
        p.add("data", "<data>");
        assert_eq!(
            p.map("/tmp/x and / and the data dir"),
            "/tmp/x and / and the data dir"
        );
        assert_eq!(HostPaths::new().map("/srv/x"), "/srv/x");
    }
}
