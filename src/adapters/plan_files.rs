//! Saved plans on disk. A plan job leaves its plan in `<jobs>/<job>.out/plan`, with the
//! `terraform show -json` of it beside (`plan.json`); the store records the plan file's path.
//! Flows read the JSON (policies judge it) and delete the directory once the plan can no longer
//! be applied (discarded, applied) — its files hold sensitive values.

use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::core::plan::{Plan, parse_plan_json};

/// The lowercase hex SHA-256 of a file (a saved plan), read as a stream.
pub fn sha256(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// The parsed `show -json` saved beside `plan_file`; `None` when it is missing or unreadable
/// (a policy that needs the plan then fails closed).
pub fn read_json(plan_file: &Path) -> Option<Plan> {
    let bytes = std::fs::read(plan_file.with_file_name("plan.json")).ok()?;
    parse_plan_json(&bytes).ok()
}

/// The `show -json` text saved beside `plan_file` (what Rego policies read as `input`); `None`
/// when it is missing or not UTF-8.
pub fn read_json_text(plan_file: &Path) -> Option<String> {
    std::fs::read_to_string(plan_file.with_file_name("plan.json")).ok()
}

/// Deletes the directory holding `plan_file` (best effort: a plan that can no longer be applied
/// is useless, and a leftover is removed with the jobs dir).
pub fn remove(plan_file: &Path) {
    if let Some(dir) = plan_file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Deletes a job's working directories: `dir` and its `<dir>.etc` sibling (best effort).
pub fn remove_job_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("etc"));
}
