-- Poison events. An attempt at a delivery is counted when the event processor claims it, in the
-- claiming transaction and before any work, so a delivery whose handling stops the process still
-- uses up its attempts; then it is set aside (a dead letter: state 'failed') instead of being
-- picked first after every restart. Operators see these with `sluice events list --dead` and
-- `GET /api/events?state=dead`.
ALTER TABLE webhook_events ADD COLUMN claimed_at INTEGER;   -- when the last attempt started
ALTER TABLE webhook_events ADD COLUMN dead_at INTEGER;      -- when it was set aside
