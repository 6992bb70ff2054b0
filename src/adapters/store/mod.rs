//! Store adapters: implementations of `app::ports::Store`. SQLite now; PostgreSQL later, with the
//! same contract tests.

#[cfg(test)]
pub mod contract;
pub mod sqlite;

pub use sqlite::SqliteStore;
