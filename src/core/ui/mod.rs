//! The pure rules of the operator's web UI (PRODUCT.md §16): who is asking and what they may
//! see and do (`session`, `oauth`, `access`), which environment a project belongs to
//! (`environments`), and how a job's output becomes redacted, capped, numbered log chunks
//! (`job_log`). The routes live in `http::ui`; this module
//! does no I/O and reads no clock (time, random ids and GitHub's answers come in as arguments).

pub mod access;
pub mod environments;
pub mod job_log;
pub mod oauth;
pub mod session;
