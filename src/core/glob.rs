//! The one glob dialect of Sluice's path patterns: `-d` targets in comments, `dir:` and
//! `when_modified` in `sluice.yaml`, policy path scopes, the base branch's entries. `*` and `?`
//! stay within one path segment, `**` crosses segments, `[...]` and `{a,b}` work as in a shell,
//! `\` escapes. Whether a text is a pattern at all is decided by [`is_glob`], once.
//!
//! Pure; compiling happens where user text is parsed, so callers hold compiled values.

/// True when `s` uses glob syntax (as opposed to naming one path).
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// Builds a glob with the semantics every Sluice path pattern uses: `*` and `?` stay within one
/// path segment, `**` crosses segments, `\` escapes. The error names the pattern and what is
/// wrong with it (`` `envs/[x` is not a valid glob: unclosed character class; missing ']' ``).
pub fn build_glob(pattern: &str) -> Result<globset::Glob, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("`{pattern}` is not a valid glob: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dialect() {
        let m = |p: &str, s: &str| build_glob(p).unwrap().compile_matcher().is_match(s);
        assert!(m("envs/*", "envs/a"));
        assert!(!m("envs/*", "envs/a/b"), "`*` stays within a segment");
        assert!(m("envs/**", "envs/a/b"));
        assert!(m("envs/[ab]", "envs/b") && !m("envs/[ab]", "envs/c"));
        assert!(m("envs/{a,c}", "envs/c"));
        assert!(m(r"envs/\*", "envs/*") && !m(r"envs/\*", "envs/a"));
        assert_eq!(
            build_glob("envs/[x").unwrap_err(),
            "`envs/[x` is not a valid glob: unclosed character class; missing ']'"
        );
        assert!(is_glob("envs/*") && is_glob("a]") && !is_glob("envs/prod"));
    }
}
