//! Which lines of a pull request can carry a review comment: GitHub's list of PR files
//! (`GET /repos/{owner}/{repo}/pulls/{pull_number}/files`, each with a unified-diff `patch`)
//! read into the lines each hunk shows, per side.
//!
//! GitHub accepts a line comment only on a line shown in the PR's diff: `side: RIGHT` for an
//! added or context line (numbered in the head file), `side: LEFT` for a deleted line (numbered
//! in the base file). A file GitHub lists without a `patch` (binary, or a diff too large to
//! show) can still take a file-level comment (`subject_type: file`), and a file not in the list
//! (unchanged, or beyond the 3,000 files the endpoint returns) can take neither. This module
//! owns that reading; it does not decide what to comment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most files GitHub's "list pull request files" endpoint returns (documented there).
pub const MAX_LISTED_FILES: usize = 3_000;

/// One entry of GitHub's list of PR files, as far as Sluice reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrFile {
    /// Path in the head commit (for `removed`: the path the file had).
    pub filename: String,
    /// `added`, `removed`, `modified`, `renamed`, `copied`, `changed`, `unchanged`.
    #[serde(default)]
    pub status: String,
    /// The unified diff hunks (from the first `@@`); absent for binary files and diffs GitHub
    /// deems too large.
    #[serde(default)]
    pub patch: Option<String>,
    /// Set for `renamed`.
    #[serde(default)]
    pub previous_filename: Option<String>,
}

/// A diff side, as GitHub names it in review comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    /// The base version: lines deleted by the PR.
    Left,
    /// The head version: lines added, and unchanged context.
    Right,
}

/// What can be commented on in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDiff {
    /// Sorted, disjoint, inclusive line ranges shown on each side.
    Lines {
        right: Vec<(u32, u32)>,
        left: Vec<(u32, u32)>,
    },
    /// Listed without a patch: file-level comments only.
    NoPatch,
}

/// The PR's diff, by path (head paths; removed files under their old path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrDiff {
    files: BTreeMap<String, FileDiff>,
    /// The list had [`MAX_LISTED_FILES`] entries, so more files may have changed.
    pub truncated: bool,
}

impl PrDiff {
    /// Reads GitHub's list. Malformed hunks are read as far as they make sense; nothing fails.
    pub fn from_files(files: &[PrFile]) -> PrDiff {
        let mut out = PrDiff {
            files: BTreeMap::new(),
            truncated: files.len() >= MAX_LISTED_FILES,
        };
        for f in files {
            let diff = match &f.patch {
                Some(p) if !p.is_empty() => parse_patch(p),
                _ => FileDiff::NoPatch,
            };
            out.files.insert(f.filename.clone(), diff);
        }
        out
    }

    /// Whether the file is part of the PR's diff (so it can take a file-level comment).
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    pub fn file(&self, path: &str) -> Option<&FileDiff> {
        self.files.get(path)
    }

    /// The line to anchor a comment on for a block spanning `start..=end` on `side`: `start`
    /// when it is shown, else the first shown line inside the block; `None` when no line of the
    /// block is in the diff.
    pub fn anchor_line(&self, path: &str, side: Side, start: u32, end: u32) -> Option<u32> {
        let FileDiff::Lines { right, left } = self.files.get(path)? else {
            return None;
        };
        let ranges = match side {
            Side::Right => right,
            Side::Left => left,
        };
        // First range that ends at or after `start`.
        let i = ranges.partition_point(|&(_, hi)| hi < start);
        let &(lo, _) = ranges.get(i)?;
        let line = lo.max(start);
        (line <= end).then_some(line)
    }

    /// Whether `line` on `side` is shown in the diff of `path`.
    pub fn is_commentable(&self, path: &str, side: Side, line: u32) -> bool {
        self.anchor_line(path, side, line, line) == Some(line)
    }

    /// Number of files listed.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Reads the hunks of one file's patch. Line numbers come from each `@@ -a,b +c,d @@` header and
/// advance per line (` ` both sides, `-` left, `+` right; `\ No newline` neither), so a header
/// that miscounts cannot make a line commentable that the hunk does not show.
fn parse_patch(patch: &str) -> FileDiff {
    let mut right = Vec::new();
    let mut left = Vec::new();
    let (mut l, mut r) = (0u32, 0u32);
    let mut in_hunk = false;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("@@ ") {
            match hunk_starts(rest) {
                Some((a, c)) => {
                    (l, r) = (a, c);
                    in_hunk = true;
                }
                None => in_hunk = false,
            }
            continue;
        }
        if !in_hunk {
            continue;
        }
        match line.as_bytes().first() {
            Some(b'+') => {
                push_line(&mut right, r);
                r = r.saturating_add(1);
            }
            Some(b'-') => {
                push_line(&mut left, l);
                l = l.saturating_add(1);
            }
            Some(b'\\') => {}
            // A context line (` `), or an empty line where an editor stripped the space.
            _ => {
                push_line(&mut right, r);
                push_line(&mut left, l);
                r = r.saturating_add(1);
                l = l.saturating_add(1);
            }
        }
    }
    right.sort_unstable();
    left.sort_unstable();
    FileDiff::Lines {
        right: merge(right),
        left: merge(left),
    }
}

/// `-a[,b] +c[,d] @@…` → `(a, c)`.
fn hunk_starts(rest: &str) -> Option<(u32, u32)> {
    let mut words = rest.split(' ');
    let old = words.next()?.strip_prefix('-')?;
    let new = words.next()?.strip_prefix('+')?;
    let start = |s: &str| s.split(',').next()?.parse::<u32>().ok();
    Some((start(old)?, start(new)?))
}

fn push_line(ranges: &mut Vec<(u32, u32)>, line: u32) {
    if line == 0 {
        return;
    }
    match ranges.last_mut() {
        Some((_, hi)) if hi.checked_add(1) == Some(line) => *hi = line,
        _ => ranges.push((line, line)),
    }
}

fn merge(ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some((_, last)) if lo <= last.saturating_add(1) => *last = (*last).max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture_files() -> Vec<PrFile> {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/plans/module_replace.pr-files.json"
        ))
        .expect("fixture is GitHub's shape")
    }

    fn file(name: &str, status: &str, patch: Option<&str>) -> PrFile {
        PrFile {
            filename: name.into(),
            status: status.into(),
            patch: patch.map(str::to_string),
            previous_filename: None,
        }
    }

    #[test]
    fn hunks_give_the_lines_shown_per_side() {
        let diff = PrDiff::from_files(&fixture_files());
        let show = |path: &str| match diff.file(path) {
            Some(FileDiff::Lines { right, left }) => format!("right={right:?} left={left:?}"),
            other => format!("{other:?}"),
        };
        insta::assert_snapshot!(
            ["legacy.tf", "main.tf", "modules/app/cache.tf", "modules/app/main.tf", "modules/dns/main.tf"]
                .map(|p| format!("{p}: {}", show(p)))
                .join("\n"),
            @r"
        legacy.tf: right=[] left=[(1, 6)]
        main.tf: right=[(1, 13), (15, 23)] left=[(1, 13), (15, 17)]
        modules/app/cache.tf: right=[(1, 5)] left=[(1, 5)]
        modules/app/main.tf: right=[(19, 25)] left=[(19, 21)]
        modules/dns/main.tf: None
        "
        );
    }

    #[test]
    fn anchors_prefer_the_block_head_then_the_first_shown_line() {
        let diff = PrDiff::from_files(&fixture_files());
        let table = [
            // (path, side, block start, block end) → anchor
            ("main.tf", Side::Right, 1, 4, Some(1)),
            ("main.tf", Side::Right, 19, 23, Some(19)),
            // `module "dns"` spans 18–21; the hunk starts at 19.
            ("modules/app/main.tf", Side::Right, 18, 21, Some(19)),
            // `null_resource.server` spans 5–10: nothing of it is shown.
            ("modules/app/main.tf", Side::Right, 5, 10, None),
            ("main.tf", Side::Right, 14, 14, None),
            ("legacy.tf", Side::Left, 2, 6, Some(2)),
            ("legacy.tf", Side::Right, 2, 6, None),
            ("modules/dns/main.tf", Side::Right, 1, 9, None),
        ];
        for (path, side, start, end, want) in table {
            assert_eq!(
                diff.anchor_line(path, side, start, end),
                want,
                "{path} {side:?} {start}-{end}"
            );
        }
        assert!(diff.contains("legacy.tf"));
        assert!(!diff.contains("modules/dns/main.tf"));
    }

    #[test]
    fn odd_patches_are_read_as_far_as_they_make_sense() {
        let diff = PrDiff::from_files(&[
            file("big.tf", "modified", None),
            file("empty.tf", "modified", Some("")),
            file("garbage.tf", "modified", Some("not a diff\n+x\n")),
            // The header claims 10 lines but the hunk shows 2: only those count.
            file("short.tf", "modified", Some("@@ -1,10 +1,10 @@\n a\n+b\n")),
            // Two hunks, one line touching the next.
            file(
                "two.tf",
                "modified",
                Some("@@ -1,2 +1,2 @@\n a\n b\n@@ -3 +3 @@\n-c\n+d\n\\ No newline at end of file"),
            ),
            file(
                "bad-header.tf",
                "modified",
                Some("@@ -x +y @@\n+a\n@@ -5,1 +6,1 @@\n+z\n"),
            ),
        ]);
        assert_eq!(diff.file("big.tf"), Some(&FileDiff::NoPatch));
        assert_eq!(diff.file("empty.tf"), Some(&FileDiff::NoPatch));
        assert_eq!(
            diff.file("garbage.tf"),
            Some(&FileDiff::Lines {
                right: vec![],
                left: vec![]
            })
        );
        assert_eq!(
            diff.file("short.tf"),
            Some(&FileDiff::Lines {
                right: vec![(1, 2)],
                left: vec![(1, 1)]
            })
        );
        assert_eq!(
            diff.file("two.tf"),
            Some(&FileDiff::Lines {
                right: vec![(1, 3)],
                left: vec![(1, 3)]
            })
        );
        assert_eq!(
            diff.file("bad-header.tf"),
            Some(&FileDiff::Lines {
                right: vec![(6, 6)],
                left: vec![]
            })
        );
        assert_eq!(diff.anchor_line("big.tf", Side::Right, 1, 100), None);
        assert!(diff.contains("big.tf"));
        assert!(!diff.truncated);
    }

    /// A PR with thousands of changed files: GitHub lists 3,000, some without a patch. Every
    /// listed file answers; the list is flagged as possibly incomplete.
    #[test]
    fn three_thousand_files() {
        let files: Vec<PrFile> = (0..MAX_LISTED_FILES)
            .map(|i| {
                let patch =
                    (i % 7 != 0).then(|| format!("@@ -0,0 +1,{i} @@\n{}", "+x\n".repeat(i % 50)));
                file(&format!("d{i}/main.tf"), "added", patch.as_deref())
            })
            .collect();
        let diff = PrDiff::from_files(&files);
        assert_eq!(diff.len(), MAX_LISTED_FILES);
        assert!(diff.truncated);
        assert_eq!(diff.file("d7/main.tf"), Some(&FileDiff::NoPatch));
        assert_eq!(diff.anchor_line("d8/main.tf", Side::Right, 3, 10), Some(3));
        assert_eq!(diff.anchor_line("d8/main.tf", Side::Right, 9, 10), None);
    }
}
