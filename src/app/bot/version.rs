//! `version`: the engine and version of every project at the pull request's head, asked of the
//! binaries Sluice would run (each engine and pinned version once, within a timeout).

use std::collections::HashMap;

use super::{Bot, CommandRun, EventError};
use crate::adapters::terraform::{EngineResolver, VERSION_TIMEOUT, binary_version};
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
        let mut known: HashMap<(String, Option<String>), String> = HashMap::new();
        let mut rows = Vec::new();
        for p in state.all_projects().projects {
            let key = (p.engine.as_str().to_string(), p.terraform_version.clone());
            let version = match known.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let v = match resolver.resolve(p.engine, p.terraform_version.as_deref()) {
                        Ok(bin) => binary_version(&bin, VERSION_TIMEOUT)
                            .await
                            .unwrap_or_else(|e| reply::version::unknown(&format!("{e:#}"))),
                        Err(e) => reply::version::unavailable(&format!("{e:#}")),
                    };
                    known.insert(key, v.clone());
                    v
                }
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
