//! Which environment a project belongs to, for the environments page (Argo CD's and the
//! "multi-environment distribution" view: one column or group per environment).
//!
//! Rules, first match wins:
//! 1. **A label**: the project's configured environment (a `sluice.yaml` label), as written.
//! 2. **A marker directory**: the segment after `envs/`, `env/`, `environments/` or
//!    `environment/` anywhere in the project dir (`infra/envs/prod/network` → `prod`).
//! 3. **A well-known name** as a whole dir segment, the first from the root
//!    (`live/staging/us-east-1` → `staging`; `prod/db` → `prod`): see [`KNOWN_NAMES`].
//! 4. **The workspace**, when it is not `default` and is a well-known name (`-w prod`).
//!
//! Otherwise the project has no environment and is listed under "no environment". Names keep
//! the case they were written in; matching is case-insensitive.

/// Directory names that introduce an environment's directory.
pub const MARKERS: &[&str] = &["envs", "env", "environments", "environment"];

/// Names taken as environments wherever they appear as a whole dir segment.
pub const KNOWN_NAMES: &[&str] = &[
    "production",
    "prod",
    "prd",
    "staging",
    "stage",
    "stg",
    "preprod",
    "pre-prod",
    "uat",
    "qa",
    "test",
    "testing",
    "dev",
    "development",
    "sandbox",
    "nonprod",
    "non-prod",
];

/// Where a project's environment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvSource {
    Label,
    MarkerDir,
    KnownDir,
    Workspace,
}

/// A project's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub source: EnvSource,
}

fn known(s: &str) -> bool {
    KNOWN_NAMES.iter().any(|k| k.eq_ignore_ascii_case(s))
}

/// The environment of the project in `dir` (a normalised project dir, `.` for the root) and
/// `workspace`, with an optional configured `label`. See the module docs for the rules.
pub fn environment_of(dir: &str, workspace: &str, label: Option<&str>) -> Option<Environment> {
    let env = |name: &str, source| {
        Some(Environment {
            name: name.to_string(),
            source,
        })
    };
    if let Some(l) = label.map(str::trim).filter(|l| !l.is_empty()) {
        return env(l, EnvSource::Label);
    }
    let segments: Vec<&str> = dir
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    for pair in segments.windows(2) {
        if MARKERS.iter().any(|m| m.eq_ignore_ascii_case(pair[0])) {
            return env(pair[1], EnvSource::MarkerDir);
        }
    }
    if let Some(s) = segments.iter().find(|s| known(s)) {
        return env(s, EnvSource::KnownDir);
    }
    if workspace != "default" && known(workspace) {
        return env(workspace, EnvSource::Workspace);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use EnvSource::*;
        #[rustfmt::skip]
        type Case = (&'static str, &'static str, Option<&'static str>, Option<(&'static str, EnvSource)>);
        let cases: &[Case] = &[
            ("envs/prod", "default", None, Some(("prod", MarkerDir))),
            (
                "infra/envs/prod/network",
                "default",
                None,
                Some(("prod", MarkerDir)),
            ),
            (
                "environments/eu-central",
                "default",
                None,
                Some(("eu-central", MarkerDir)),
            ),
            (
                "Environments/Blue",
                "default",
                None,
                Some(("Blue", MarkerDir)),
            ),
            ("env/x/staging", "default", None, Some(("x", MarkerDir))),
            ("prod/db", "default", None, Some(("prod", KnownDir))),
            (
                "live/staging/us-east-1/vpc",
                "default",
                None,
                Some(("staging", KnownDir)),
            ),
            (
                "stacks/PRODUCTION",
                "default",
                None,
                Some(("PRODUCTION", KnownDir)),
            ),
            ("dev/prod", "default", None, Some(("dev", KnownDir))),
            ("network", "prod", None, Some(("prod", Workspace))),
            ("network", "feature-x", None, None),
            ("network", "default", None, None),
            (".", "default", None, None),
            // A trailing marker with nothing after it names nothing.
            ("envs", "default", None, None),
            // Words that contain a name are not the name.
            ("products/api", "default", None, None),
            ("devtools", "default", None, None),
            // The label wins over everything.
            (
                "envs/prod",
                "default",
                Some("prod-eu"),
                Some(("prod-eu", Label)),
            ),
            ("x", "default", Some("  "), None),
            ("envs/staging", "prod", None, Some(("staging", MarkerDir))),
        ];
        for (dir, ws, label, want) in cases {
            let got = environment_of(dir, ws, *label);
            let got = got.as_ref().map(|e| (e.name.as_str(), e.source));
            assert_eq!(got, *want, "{dir} {ws} {label:?}");
        }
    }
}
