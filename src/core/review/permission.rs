//! The repository permission of whoever presses a check run's button, remembered for a short
//! while per (repository, login): a burst of presses ("Plan again" on twenty project checks)
//! asks GitHub once, and a permission revoked on GitHub takes effect within [`PERMISSION_TTL_MS`].
//!
//! Pure: the caller passes the time (`adapters::clock`) and asks GitHub on a miss. Only answers
//! are remembered, never errors (an unreadable permission is asked again on the next press and
//! fails closed there). The cache is bounded: beyond [`MAX_ENTRIES`], expired entries go first,
//! then everything.

use std::collections::HashMap;

use crate::core::types::{RepoName, UnixMs};

/// How long a permission read from GitHub is trusted: 30 seconds.
pub const PERMISSION_TTL_MS: i64 = 30_000;

/// Entries kept at most (one per repository and presser).
pub const MAX_ENTRIES: usize = 10_000;

/// GitHub's `permission` (`admin`, `maintain`, `write`, `triage`, `read`, `none`) by
/// (repository, login), both compared case-insensitively, with when it was read.
#[derive(Debug, Clone)]
pub struct PermissionCache {
    ttl_ms: i64,
    entries: HashMap<(String, String), (UnixMs, String)>,
}

impl Default for PermissionCache {
    fn default() -> Self {
        PermissionCache::new(PERMISSION_TTL_MS)
    }
}

impl PermissionCache {
    /// A cache trusting an answer for `ttl_ms` milliseconds.
    pub fn new(ttl_ms: i64) -> PermissionCache {
        PermissionCache {
            ttl_ms,
            entries: HashMap::new(),
        }
    }

    fn key(repo: &RepoName, login: &str) -> (String, String) {
        (repo.full().to_ascii_lowercase(), login.to_ascii_lowercase())
    }

    /// The permission read less than the TTL before `now`, if any.
    pub fn get(&self, repo: &RepoName, login: &str, now: UnixMs) -> Option<&str> {
        self.entries
            .get(&Self::key(repo, login))
            .filter(|(at, _)| now.get().saturating_sub(at.get()) < self.ttl_ms && *at <= now)
            .map(|(_, p)| p.as_str())
    }

    /// Remembers `permission`, read from GitHub at `now`.
    pub fn put(&mut self, repo: &RepoName, login: &str, permission: &str, now: UnixMs) {
        if self.entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl_ms;
            self.entries
                .retain(|_, (at, _)| now.get().saturating_sub(at.get()) < ttl);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries
            .insert(Self::key(repo, login), (now, permission.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepoName {
        RepoName::parse(name).unwrap()
    }

    /// A press within the TTL is answered from the cache; once the TTL has passed, the next
    /// press reads GitHub again, so a revoked permission takes effect.
    #[test]
    fn a_revoked_permission_takes_effect_after_the_ttl() {
        let mut cache = PermissionCache::default();
        let t0 = UnixMs::new(1_700_000_000_000);
        let infra = repo("acme/infra");
        assert_eq!(cache.get(&infra, "ana", t0), None, "nothing read yet");
        cache.put(&infra, "ana", "write", t0);
        // The burst: every press within the TTL is answered without GitHub.
        for ms in [0, 1, 10_000, PERMISSION_TTL_MS - 1] {
            assert_eq!(
                cache.get(&infra, "ana", t0.plus_ms(ms)),
                Some("write"),
                "{ms}"
            );
        }
        // Revoked on GitHub meanwhile: at the TTL the cache no longer answers; GitHub's new
        // answer is what counts from then on.
        let later = t0.plus_ms(PERMISSION_TTL_MS);
        assert_eq!(cache.get(&infra, "ana", later), None);
        cache.put(&infra, "ana", "read", later);
        assert_eq!(cache.get(&infra, "ana", later.plus_ms(1)), Some("read"));
    }

    #[test]
    fn entries_are_per_repository_and_login_case_insensitively() {
        let mut cache = PermissionCache::default();
        let t0 = UnixMs::new(1_000);
        cache.put(&repo("acme/infra"), "Ana", "admin", t0);
        assert_eq!(cache.get(&repo("ACME/Infra"), "ana", t0), Some("admin"));
        assert_eq!(cache.get(&repo("acme/other"), "ana", t0), None);
        assert_eq!(cache.get(&repo("acme/infra"), "bob", t0), None);
        // A clock that went backwards does not extend trust.
        assert_eq!(cache.get(&repo("acme/infra"), "ana", t0.plus_ms(-1)), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = PermissionCache::new(1_000);
        let t0 = UnixMs::new(0);
        for i in 0..MAX_ENTRIES {
            cache.put(&repo("acme/infra"), &format!("u{i}"), "read", t0);
        }
        // All expired: making room drops them, the new one stays.
        cache.put(&repo("acme/infra"), "new", "write", t0.plus_ms(5_000));
        assert_eq!(cache.entries.len(), 1);
        // All fresh: everything goes rather than growing.
        let mut cache = PermissionCache::new(1_000);
        for i in 0..MAX_ENTRIES {
            cache.put(&repo("acme/infra"), &format!("u{i}"), "read", t0);
        }
        cache.put(&repo("acme/infra"), "new", "write", t0);
        assert_eq!(cache.entries.len(), 1);
        assert_eq!(cache.get(&repo("acme/infra"), "new", t0), Some("write"));
    }
}
