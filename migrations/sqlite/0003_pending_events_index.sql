-- The event processor takes the oldest pending delivery; index exactly that order.
DROP INDEX IF EXISTS webhook_events_pending;
CREATE INDEX webhook_events_pending ON webhook_events (state, received_at);
