//! Adapters: the edge where Sluice touches the world — processes and the sandbox, terraform,
//! git, GitHub, the store. Each adapter hides one external system behind a small API; rules
//! about *what* to do live in `core`, sequencing lives in `app`.

pub mod clock;
pub mod engine_install;
pub mod git;
pub mod github;
pub mod known_secrets;
pub mod log;
pub mod metrics;
pub mod netns;
pub mod plan_files;
pub mod process;
pub mod sandbox;
pub mod seccomp;
pub mod store;
pub mod terraform;
