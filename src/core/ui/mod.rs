//! The pure rules of the operator's web UI (PRODUCT.md §16): who is asking and what they may
//! see and do (`session`, `oauth`, `access`), which environment a project belongs to
//! (`environments`), how a job's output becomes redacted, capped, numbered log chunks
//! (`job_log`) and reaches live viewers (`live_log`), the pages (`pages`), and the metrics
//! catalog with its Grafana dashboard (`metrics`). The routes, the hub's channels and the
//! exporter live in the HTTP layer; this module does no I/O and reads no clock (time, random
//! ids and GitHub's answers come in as arguments).

pub mod access;
pub mod environments;
pub mod job_log;
pub mod live_log;
pub mod metrics;
pub mod oauth;
pub mod pages;
pub mod session;
