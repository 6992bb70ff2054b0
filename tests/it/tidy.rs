//! Architecture rules, checked like any other test: the core stays pure, every module says what
//! it owns, and no stub is left behind.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The pure core does no I/O: no filesystem, processes, environment, clock, network, database or
/// async runtime. Tests inside core modules may (they build fixtures), so only non-test code is
/// checked.
#[test]
fn core_is_pure() {
    const FORBIDDEN: &[&str] = &[
        "std::fs",
        "std::process",
        "std::env",
        "std::net",
        "tokio",
        "sqlx",
        "axum",
        "octocrab",
        "reqwest",
        "duct::",
        "Utc::now",
        "SystemTime",
        "Instant::now",
        "crate::adapters",
        "crate::app",
        "crate::http",
    ];
    let mut bad = Vec::new();
    for file in rust_files(&src().join("core")) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Everything from the first `#[cfg(test)]` on is test code.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            for f in FORBIDDEN {
                if line.contains(f) {
                    bad.push(format!("{}:{}: uses `{f}`", file.display(), i + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the core must stay pure:\n{}",
        bad.join("\n")
    );
}

/// Every module starts with a `//!` paragraph saying what it owns.
#[test]
fn every_module_has_docs() {
    let missing: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! header:\n{}",
        missing.join("\n")
    );
}

/// No placeholders in shipped code.
#[test]
fn no_stubs() {
    let mut bad = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            for f in ["todo!(", "unimplemented!(", "dbg!("] {
                if line.contains(f) {
                    bad.push(format!("{}:{}", file.display(), i + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "placeholders left:\n{}", bad.join("\n"));
}

/// The non-test code of `file`: everything before its first top-level `#[cfg(test)]`.
fn shipped_code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.split("\n#[cfg(test)]")
        .next()
        .unwrap_or("")
        .to_string()
}

/// Files that are test code as a whole: modules declared under `#[cfg(test)]`.
fn test_only_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = file.parent().unwrap();
        // A file's child modules live beside it (mod.rs, lib.rs) or in a dir named after it.
        let children = if ["mod", "lib", "main"].contains(&stem.as_str()) {
            dir.to_path_buf()
        } else {
            dir.join(&stem)
        };
        for pair in lines.windows(2) {
            if pair[0].trim() != "#[cfg(test)]" {
                continue;
            }
            let decl = pair[1].trim();
            let name = decl
                .strip_prefix("pub mod ")
                .or_else(|| decl.strip_prefix("pub(crate) mod "))
                .or_else(|| decl.strip_prefix("mod "))
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(name) = name {
                out.push(children.join(format!("{name}.rs")));
                out.push(children.join(name).join("mod.rs"));
            }
        }
    }
    out
}

/// Imports run one way: `app` does not reach into the CLI (the CLI lowers its arguments into
/// app types), `http` does not reach into the bot (it stores events; workers hand them to the
/// bot), adapters reach into `app` only for the ports they implement, and nothing below the
/// CLI starts processes except the adapters that own them.
#[test]
fn imports_run_one_way() {
    let rules: &[(&str, &str, &[&str])] = &[
        ("app", "the CLI", &["crate::cli"]),
        ("http", "the bot", &["crate::app::bot", "app::bot::"]),
        (
            "http",
            "processes",
            &["std::process::Command", "tokio::process"],
        ),
        (
            "app",
            "processes",
            &["std::process::Command", "tokio::process", "duct::"],
        ),
    ];
    let mut bad = Vec::new();
    for (layer, what, forbidden) in rules {
        for file in rust_files(&src().join(layer)) {
            for (i, line) in shipped_code(&file).lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for f in *forbidden {
                    if code.contains(f) {
                        bad.push(format!(
                            "{}:{}: {layer} uses {what} (`{f}`)",
                            file.display(),
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    for file in rust_files(&src().join("adapters")) {
        if test_only_files().contains(&file) {
            continue;
        }
        for (i, line) in shipped_code(&file).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::app") {
                let tail = &rest[at + "crate::app".len()..];
                if !tail.starts_with("::ports") {
                    bad.push(format!(
                        "{}:{}: adapters use `app` beyond its ports",
                        file.display(),
                        i + 1
                    ));
                }
                rest = tail;
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports run the wrong way:\n{}",
        bad.join("\n")
    );
}

/// The limit on function length: a function in shipped code (tests excluded) is at most this
/// many lines, signature to closing brace. Clippy's `too_many_lines` (clippy.toml) keeps the
/// same limit counted in code lines only.
const MAX_FUNCTION_LINES: usize = 150;

/// The functions of `code` as (name, first line, number of lines): from the `fn` line to the
/// closing brace at the same indentation (rustfmt's layout).
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let mut rest = line.trim_start();
        for prefix in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        for prefix in ["const ", "async ", "unsafe "] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let Some(sig) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = sig
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body opens on the first line ending in `{`; a `;` first is a declaration.
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if lines[open].trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open..lines.len()).find(|&j| lines[j] == close) {
            out.push((name, i + 1, end - i + 1));
        }
    }
    out
}

/// No function in `src/` is over [`MAX_FUNCTION_LINES`] lines (tests excluded): a longer one
/// is split into named steps.
#[test]
fn no_function_is_too_long() {
    let test_only = test_only_files();
    let mut bad = Vec::new();
    for file in rust_files(&src()) {
        if test_only.contains(&file) {
            continue;
        }
        for (name, line, n) in functions(&shipped_code(&file)) {
            if n > MAX_FUNCTION_LINES {
                bad.push(format!("{}:{line}: `{name}` has {n} lines", file.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines:\n{}",
        bad.join("\n")
    );
}

/// The function finder itself, on a sample: nested and indented functions, declarations.
#[test]
fn function_lengths_are_counted_from_fn_to_closing_brace() {
    let code = "fn a() {\n    x();\n}\n\nimpl X {\n    pub async fn b(\n        y: u8,\n    ) -> u8 {\n        y\n    }\n    fn c();\n}\n";
    assert_eq!(
        functions(code),
        vec![("a".to_string(), 1, 3), ("b".to_string(), 6, 5)]
    );
}
