//! The repository allowlist: which repositories Sluice serves. Entries are `owner/repo` globs,
//! case-insensitive; an entry starting with `!` excludes. A repository is allowed when it matches
//! at least one positive entry and no negative one. An empty list allows every repository that
//! can sign its webhooks with the server's secret.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone)]
pub struct Allowlist {
    allow: GlobSet,
    deny: GlobSet,
    empty: bool,
}

fn glob(p: &str) -> Result<Glob, String> {
    GlobBuilder::new(p)
        .case_insensitive(true)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("repo allowlist entry {p:?} is not a valid glob: {e}"))
}

impl Allowlist {
    pub fn new(entries: &[String]) -> Result<Allowlist, String> {
        let mut allow = GlobSetBuilder::new();
        let mut deny = GlobSetBuilder::new();
        let mut positives = 0;
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            match e.strip_prefix('!') {
                Some(neg) => {
                    deny.add(glob(neg)?);
                }
                None => {
                    allow.add(glob(e)?);
                    positives += 1;
                }
            }
        }
        // Only exclusions ("everything but …") means: allow the rest.
        if positives == 0 {
            allow.add(glob("*/*")?);
        }
        Ok(Allowlist {
            allow: allow.build().map_err(|e| e.to_string())?,
            deny: deny.build().map_err(|e| e.to_string())?,
            empty: entries.iter().all(|e| e.trim().is_empty()),
        })
    }

    /// Every repository is served.
    pub fn open() -> Allowlist {
        Allowlist {
            allow: GlobSet::empty(),
            deny: GlobSet::empty(),
            empty: true,
        }
    }

    pub fn allows(&self, full_name: &str) -> bool {
        if self.empty {
            return true;
        }
        self.allow.is_match(full_name) && !self.deny.is_match(full_name)
    }

    /// True when no entry was given (every repository is served).
    pub fn is_open(&self) -> bool {
        self.empty
    }
}

impl Default for Allowlist {
    fn default() -> Self {
        Allowlist::open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(entries: &[&str], repo: &str) -> bool {
        Allowlist::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .allows(repo)
    }

    #[test]
    fn rules() {
        assert!(check(&[], "any/repo"));
        assert!(check(&["acme/*"], "acme/infra"));
        assert!(
            check(&["acme/*"], "ACME/Infra"),
            "case-insensitive like GitHub"
        );
        assert!(!check(&["acme/*"], "other/infra"));
        assert!(!check(&["acme/*", "!acme/secret"], "acme/secret"));
        assert!(check(&["acme/*", "!acme/secret"], "acme/infra"));
        assert!(
            check(&["!acme/secret"], "other/x"),
            "only exclusions: the rest is allowed"
        );
        assert!(!check(&["!acme/secret"], "acme/secret"));
        assert!(!check(&["acme/infra"], "acme/infra-old"));
        assert!(
            !check(&["acme*"], "acme/infra"),
            "`*` does not cross the `/`"
        );
        assert!(Allowlist::new(&["acme/[".to_string()]).is_err());
    }
}
