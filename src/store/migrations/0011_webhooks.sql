-- registrar schema, version 11: webhooks and the customer API.
--
-- One row per (event, endpoint), written in the transaction of the decision
-- that caused the event (the outbox pattern). `event_id` is the event's
-- `msg_…` id, the `webhook-id` header: the same for every endpoint and every
-- attempt. `body` is the signed JSON, kept until delivered (and for a dead
-- event, until it is retried or purged). The maximum age counts from
-- `age_from`, which `registrar webhooks retry` resets.
CREATE TABLE webhook_events (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    endpoint        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    identity        TEXT,               -- whom it is about; NULL once erased
    body            TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'delivered', 'dead')),
    created_at      INTEGER NOT NULL,
    age_from        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,   -- Unix milliseconds: retries may be short
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER,
    UNIQUE (event_id, endpoint)
);
-- An endpoint's claim reads the head of its own queue only (oldest first):
-- a dead endpoint's backlog costs the others nothing.
CREATE INDEX webhook_events_queue ON webhook_events (endpoint, id)
    WHERE status = 'queued';
CREATE INDEX webhook_events_by_status ON webhook_events (status, created_at);
-- An erasure removes the events about the customer it erases.
CREATE INDEX webhook_events_by_identity ON webhook_events (identity);

-- When a customer last changed, for the API's "updated since" and its
-- cursor. Kept by triggers, so no write path can forget it.
ALTER TABLE customers ADD COLUMN updated_at INTEGER;
UPDATE customers SET updated_at = COALESCE(activated_at, created_at);
CREATE TRIGGER customers_updated_on_insert AFTER INSERT ON customers
    WHEN NEW.updated_at IS NULL
BEGIN
    UPDATE customers SET updated_at = NEW.created_at WHERE id = NEW.id;
END;
CREATE TRIGGER customers_updated_on_update AFTER UPDATE ON customers
    WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE customers SET updated_at = unixepoch() WHERE id = NEW.id;
END;
CREATE INDEX customers_by_update ON customers (updated_at, id);
