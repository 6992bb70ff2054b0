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
