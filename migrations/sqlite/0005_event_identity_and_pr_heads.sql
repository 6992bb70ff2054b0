-- What each stored webhook event is, besides its delivery id: the SHA-256 of its body and, for
-- comments and reviews, their GitHub ids (`core::event::Event::identity_keys`). A delivery whose
-- key is already here is the same event again (a replayed signed body under a fresh
-- X-GitHub-Delivery, or a second webhook for the same repository) and is not stored.
CREATE TABLE event_keys (
    key          TEXT PRIMARY KEY NOT NULL,
    delivery_id  TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

-- Sightings of each pull request's head commit (`core::freshness`): `head_sha` was the head at
-- `seen_at` (unix ms; GitHub's `updated_at` for deliveries). Comment commands act only on the
-- head they were written on.
CREATE TABLE pr_heads (
    repo      TEXT NOT NULL,          -- lowercased owner/name
    pr        INTEGER NOT NULL,
    head_sha  TEXT NOT NULL,
    seen_at   INTEGER NOT NULL,
    source    TEXT NOT NULL,
    PRIMARY KEY (repo, pr, head_sha, seen_at)
);
