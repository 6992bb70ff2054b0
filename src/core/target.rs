//! What a comment command is aimed at — `-p PROJECT`, `-d DIR` (a path or a glob), `-w
//! WORKSPACE` — as compiled values, and the one rule that picks projects or saved plans by it.
//! `plan`, `apply` and `approve_policies` all select through [`select`], so the same flags pick
//! the same projects whichever command carries them.
//!
//! A `-d` value is parsed once, by the comment parser, into a [`DirTarget`]: an exact
//! [`ProjectDir`] or a glob compiled in the path dialect of `core::glob`. Nothing downstream
//! interprets the text again. Pure.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::glob::{build_glob, is_glob};
use crate::core::types::{InvalidValue, ProjectDir, ProjectName, Workspace};

/// A compiled `-d` glob. Equal when the patterns are equal.
#[derive(Clone)]
pub struct DirGlob {
    pattern: String,
    matcher: globset::GlobMatcher,
}

impl DirGlob {
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the glob picks `dir`. The repository root is never picked by a glob: `-d '*'`
    /// means "the directories at the top", and the root is targeted as `-d .`.
    pub fn is_match(&self, dir: &ProjectDir) -> bool {
        !dir.is_root() && self.matcher.is_match(dir.as_str())
    }
}

impl PartialEq for DirGlob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for DirGlob {}

impl fmt::Debug for DirGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirGlob({:?})", self.pattern)
    }
}

/// Why a `-d` value is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirTargetError {
    /// It contains `..`: in a path it would leave the repository, and in a glob it could.
    LeavesRepository,
    /// Not a valid directory (`ProjectDir`'s own message).
    Invalid(InvalidValue),
    /// A glob that does not compile; `message` is `core::glob::build_glob`'s, `kind` just the
    /// reason (`unclosed character class; missing ']'`).
    BadGlob { message: String, kind: String },
}

/// A `-d` target: one directory, or a glob over directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirTarget {
    Exact(ProjectDir),
    Glob(DirGlob),
}

impl DirTarget {
    /// The `-d` rules (PRODUCT.md §4): no `..` anywhere, leading `/` and `./` normalised (as
    /// [`ProjectDir::new`] does, which only splits on `/` and so normalises globs just as well),
    /// and a glob compiled — or refused — here, once.
    pub fn parse(raw: &str) -> Result<DirTarget, DirTargetError> {
        if raw.contains("..") {
            return Err(DirTargetError::LeavesRepository);
        }
        let dir = ProjectDir::new(raw).map_err(DirTargetError::Invalid)?;
        if !is_glob(dir.as_str()) {
            return Ok(DirTarget::Exact(dir));
        }
        let pattern = dir.as_str().to_string();
        match build_glob(&pattern) {
            Ok(glob) => Ok(DirTarget::Glob(DirGlob {
                matcher: glob.compile_matcher(),
                pattern,
            })),
            Err(message) => {
                let kind = message
                    .split_once(" is not a valid glob: ")
                    .map(|(_, k)| k.to_string())
                    .unwrap_or_else(|| message.clone());
                Err(DirTargetError::BadGlob { message, kind })
            }
        }
    }

    pub fn matches(&self, dir: &ProjectDir) -> bool {
        match self {
            DirTarget::Exact(d) => d == dir,
            DirTarget::Glob(g) => g.is_match(dir),
        }
    }

    pub fn is_glob(&self) -> bool {
        matches!(self, DirTarget::Glob(_))
    }

    /// The normalised text (`envs/*`, `envs/prod`, `.`).
    pub fn as_str(&self) -> &str {
        match self {
            DirTarget::Exact(d) => d.as_str(),
            DirTarget::Glob(g) => g.as_str(),
        }
    }
}

impl fmt::Display for DirTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DirTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DirTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        DirTarget::parse(&raw)
            .map_err(|e| serde::de::Error::custom(format!("invalid dir target {raw:?}: {e:?}")))
    }
}

/// Which projects a command is aimed at. All `None` means "every affected project".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub project: Option<ProjectName>,
    pub dir: Option<DirTarget>,
    pub workspace: Option<Workspace>,
}

impl Targets {
    /// No target given: the command applies to every affected project.
    pub fn is_all(&self) -> bool {
        self.project.is_none() && self.dir.is_none() && self.workspace.is_none()
    }

    /// Whether `dir` is a glob rather than one path.
    pub fn dir_is_glob(&self) -> bool {
        self.dir.as_ref().is_some_and(DirTarget::is_glob)
    }

    /// Whether one project (or a saved plan of it) is targeted.
    pub fn matches(&self, name: &ProjectName, dir: &ProjectDir, workspace: &Workspace) -> bool {
        self.project.as_ref().is_none_or(|p| p == name)
            && self.dir.as_ref().is_none_or(|d| d.matches(dir))
            && self.workspace.as_ref().is_none_or(|w| w == workspace)
    }
}

/// A project, or something that stands for one (a saved plan, a job): what targets match.
pub trait Targetable {
    fn target_name(&self) -> &ProjectName;
    fn target_dir(&self) -> &ProjectDir;
    fn target_workspace(&self) -> &Workspace;
}

impl Targetable for crate::core::projects::Project {
    fn target_name(&self) -> &ProjectName {
        &self.name
    }
    fn target_dir(&self) -> &ProjectDir {
        &self.dir
    }
    fn target_workspace(&self) -> &Workspace {
        &self.workspace
    }
}

/// `-p` together with `-d` or `-w`: a project name already picks one dir and workspace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`-p` cannot be combined with `-d` or `-w`: a project name already picks one dir and workspace"
)]
pub struct ProjectWithDir;

/// The items `targets` picks, in their order. Refuses `-p` with `-d`/`-w` (the comment parser
/// refuses it too; this is the rule for every other caller).
pub fn select<'a, T: Targetable>(
    items: &'a [T],
    targets: &Targets,
) -> Result<Vec<&'a T>, ProjectWithDir> {
    if targets.project.is_some() && (targets.dir.is_some() || targets.workspace.is_some()) {
        return Err(ProjectWithDir);
    }
    Ok(items
        .iter()
        .filter(|i| targets.matches(i.target_name(), i.target_dir(), i.target_workspace()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(ProjectName, ProjectDir, Workspace);

    impl Targetable for Item {
        fn target_name(&self) -> &ProjectName {
            &self.0
        }
        fn target_dir(&self) -> &ProjectDir {
            &self.1
        }
        fn target_workspace(&self) -> &Workspace {
            &self.2
        }
    }

    fn items() -> Vec<Item> {
        [
            ("root", ".", "default"),
            ("a", "envs/a", "default"),
            ("b", "envs/b", "default"),
            ("b-blue", "envs/b", "blue"),
            ("deep", "envs/a/net", "default"),
            ("c10", "envs/c10", "default"),
        ]
        .into_iter()
        .map(|(n, d, w)| {
            Item(
                ProjectName::new(n).unwrap(),
                ProjectDir::new(d).unwrap(),
                Workspace::new(w).unwrap(),
            )
        })
        .collect()
    }

    fn check(dir: Option<&str>, ws: Option<&str>, expected: &str) {
        let targets = Targets {
            project: None,
            dir: dir.map(|d| DirTarget::parse(d).unwrap()),
            workspace: ws.map(|w| Workspace::new(w).unwrap()),
        };
        let all = items();
        let got: Vec<&str> = select(&all, &targets)
            .unwrap()
            .iter()
            .map(|i| i.0.as_str())
            .collect();
        assert_eq!(got.join(" "), expected, "-d {dir:?} -w {ws:?}");
    }

    #[test]
    fn selection() {
        check(None, None, "root a b b-blue deep c10");
        check(Some("envs/*"), None, "a b b-blue c10");
        check(Some("envs/**"), None, "a b b-blue deep c10");
        check(Some("./envs/[ab]/"), None, "a b b-blue");
        check(Some("envs/{a,c10}"), None, "a c10");
        check(Some("envs/?"), Some("blue"), "b-blue");
        check(Some("*"), None, "");
        check(Some("."), None, "root");
        check(Some("/envs/a"), None, "a");
        check(None, Some("blue"), "b-blue");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            DirTarget::parse("envs/../x"),
            Err(DirTargetError::LeavesRepository)
        );
        assert_eq!(
            DirTarget::parse("envs/..*"),
            Err(DirTargetError::LeavesRepository)
        );
        let Err(DirTargetError::BadGlob { message, kind }) = DirTarget::parse("envs/[x") else {
            panic!("a bad glob");
        };
        assert_eq!(kind, "unclosed character class; missing ']'");
        assert_eq!(
            message,
            "`envs/[x` is not a valid glob: unclosed character class; missing ']'"
        );
        let both = Targets {
            project: Some(ProjectName::new("a").unwrap()),
            dir: Some(DirTarget::parse("envs/a").unwrap()),
            workspace: None,
        };
        assert_eq!(select(&items(), &both).err(), Some(ProjectWithDir));
    }

    /// `plan`, `apply` and `approve_policies` read the same flags into the same targets and pick
    /// the same projects (or plans) with them; a glob that does not compile is the same error.
    #[test]
    fn the_three_commands_select_alike() {
        use crate::core::command::{CommandKind, ParseContext, Parsed, parse_comment};
        let ctx = ParseContext {
            bot_name: "sluice",
            bot_login: None,
            enabled: &CommandKind::ALL,
        };
        let outcome = |kind: &str, flags: &str| -> String {
            match parse_comment(&ctx, &format!("sluice {kind} {flags}")) {
                Parsed::Command(c) => match select(&items(), &c.targets) {
                    Ok(found) => found
                        .iter()
                        .map(|i| i.0.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    Err(e) => format!("refused: {e}"),
                },
                Parsed::Reply(r) => format!("reply: {}", r.lines().next().unwrap_or_default()),
                Parsed::Ignore => "ignored".to_string(),
            }
        };
        let mut shown = Vec::new();
        for flags in [
            "-d 'envs/*'",
            "-d 'envs/**'",
            "-d 'envs/[ab]'",
            "-d 'envs/{a,c10}'",
            "-d 'envs/?' -w blue",
            "-d 'envs/[x'",
            "-p a -d envs/a",
        ] {
            let plan = outcome("plan", flags);
            for kind in ["apply", "approve_policies"] {
                let other = outcome(kind, flags).replace(kind, "plan");
                assert_eq!(other, plan, "`{kind} {flags}` selects like `plan {flags}`");
            }
            shown.push(format!("{flags} => {plan}"));
        }
        insta::assert_snapshot!(shown.join("\n"), @r"
        -d 'envs/*' => a b b-blue c10
        -d 'envs/**' => a b b-blue deep c10
        -d 'envs/[ab]' => a b b-blue
        -d 'envs/{a,c10}' => a c10
        -d 'envs/?' -w blue => b-blue
        -d 'envs/[x' => reply: **Error:** directory glob `envs/[x` is invalid: unclosed character class; missing ']'.
        -p a -d envs/a => reply: **Error:** `-p` cannot be combined with `-d` or `-w`: a project already names its directory and workspace.
        ");
    }

    #[test]
    fn round_trips_as_its_text() {
        let t = DirTarget::parse("./envs/*/").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"envs/*\"");
        let back: DirTarget = serde_json::from_str("\"envs/*\"").unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<DirTarget>("\"envs/[x\"").is_err());
    }
}
