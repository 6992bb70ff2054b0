//! `version`: the engine and version every project at the pull request's head would plan with,
//! chosen exactly as its plan chooses it (`app::engine_choice`: the `terraform_version` pin, the
//! module's `required_version` against the installed versions and the default binary, a release
//! to download) — one row per project, with where the version comes from. Nothing is downloaded:
//! a version that would be is reported as such. The default binary, when it is the choice, is
//! asked for its version (each binary once, within a timeout).

use std::collections::HashMap;
use std::path::PathBuf;

use super::{Bot, CommandRun, EventError};
use crate::adapters::engine_install::EngineInstaller;
use crate::adapters::terraform::{EngineResolver, VERSION_TIMEOUT, binary_version};
use crate::app::engine_choice::EngineChooser;
use crate::core::reply;
use crate::core::reply::version::Row;

impl Bot {
    pub(super) async fn version(&self, run: &CommandRun<'_>) -> Result<(), EventError> {
        let (ask, pull) = (&run.ask, run.pull);
        let git = self.fetch(ask.repo, pull).await?;
        let state = self
            .repo_state(
                &ask.repo.name,
                &pull.base_ref,
                &git,
                &pull.base_sha,
                &pull.head_sha,
            )
            .await?;
        let resolver = EngineResolver {
            terraform_bin: self.settings.terraform_bin.clone(),
            tofu_bin: self.settings.tofu_bin.clone(),
            versions_dir: self.settings.engine_versions_dir.clone(),
        };
        // Only to know which versions a mirror would provide: nothing is downloaded here.
        let installer = EngineInstaller::from_settings(&self.settings).unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "engine mirrors unusable");
            None
        });
        let chooser = EngineChooser {
            engines: &resolver,
            engine_installer: installer.as_ref(),
            download_audit: None,
        };
        let mut asked: HashMap<PathBuf, String> = HashMap::new();
        let mut rows = Vec::new();
        for p in state.all_projects().projects {
            let version = match chooser.choose_engine(&git, &pull.head_sha, &p, None).await {
                Err(e) => reply::version::unavailable(&e),
                Ok(choice) => match (&choice.version, &choice.binary) {
                    (Some(v), _) => format!("{v} ({})", choice.source),
                    (None, Some(bin)) => {
                        let line = match asked.get(bin) {
                            Some(line) => line.clone(),
                            None => {
                                let line = binary_version(bin, VERSION_TIMEOUT)
                                    .await
                                    .unwrap_or_else(|e| reply::version::unknown(&format!("{e:#}")));
                                asked.insert(bin.clone(), line.clone());
                                line
                            }
                        };
                        format!("{line} ({})", choice.source)
                    }
                    (None, None) => reply::version::unknown(&choice.source),
                },
            };
            rows.push(Row {
                name: p.name,
                dir: p.dir,
                workspace: p.workspace,
                engine: p.engine,
                version,
            });
        }
        self.reply(ask, reply::version::table(&rows)).await
    }
}
