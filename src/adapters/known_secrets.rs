//! The secret values this process knows (settings, credentials, tokens), registered once when
//! the runner is built from the settings, for the writers that must never let one out: the log
//! writer ([`super::log`]) and the store, which redacts every audit record and every outbox item
//! (PR comment, status) before it is written. Redacting at these last points catches a secret
//! whatever message or error carried it there, in any encoded form [`Redactor`] matches.
//!
//! Process-wide because the log subscriber is installed before the settings are read. Owns
//! only the set; which values are secret is decided by the settings (`Settings::secret_values`
//! and `env_from_server` credentials).

use std::sync::{Arc, OnceLock, RwLock};

use crate::core::plan::Redactor;

/// A shared, replaceable set of secrets, as a [`Redactor`]. Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct KnownSecrets(Arc<RwLock<Arc<Redactor>>>);

impl KnownSecrets {
    /// The redactor of the current set.
    pub fn redactor(&self) -> Arc<Redactor> {
        match self.0.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// From now on, the set is `secrets` (replacing any earlier set).
    pub fn set(&self, secrets: impl IntoIterator<Item = String>) {
        let redactor = Arc::new(Redactor::new(secrets));
        match self.0.write() {
            Ok(mut r) => *r = redactor,
            Err(poisoned) => *poisoned.into_inner() = redactor,
        }
    }
}

/// The process's set (empty until [`register`] is called).
pub fn process() -> &'static KnownSecrets {
    static SECRETS: OnceLock<KnownSecrets> = OnceLock::new();
    SECRETS.get_or_init(KnownSecrets::default)
}

/// From now on, the process's logs, audit records and outbox items are redacted of `secrets`
/// (replacing any earlier set: the server builds its runner once; a process that builds several
/// keeps the last).
pub fn register(secrets: impl IntoIterator<Item = String>) {
    process().set(secrets);
}
