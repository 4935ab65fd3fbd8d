-- registrar schema, version 9: what became of each mail we sent.

-- The service a reply speaks for (its From address and DKIM key).
ALTER TABLE outbox ADD COLUMN service TEXT;
-- The last delivery attempt and the relay's answer to it (code and text;
-- no code when no relay answered: connection refused, timeout).
ALTER TABLE outbox ADD COLUMN last_attempt_at INTEGER;
ALTER TABLE outbox ADD COLUMN last_reply_code INTEGER;
ALTER TABLE outbox ADD COLUMN last_reply TEXT;
-- The random token of the VERP envelope sender (bounces+TOKEN@domain), when
-- the reply was sent with one; a delivery report to that address names
-- this row and no other.
ALTER TABLE outbox ADD COLUMN verp_token TEXT;
-- A delivery report that came back for the reply: when, its status code
-- (5.1.1) and the diagnostic the receiving system gave.
ALTER TABLE outbox ADD COLUMN bounced_at INTEGER;
ALTER TABLE outbox ADD COLUMN bounce_status TEXT;
ALTER TABLE outbox ADD COLUMN bounce_diagnostic TEXT;
CREATE UNIQUE INDEX outbox_by_verp_token ON outbox (verp_token) WHERE verp_token IS NOT NULL;

-- Addresses whose mail bounced for good: replies to them are suppressed
-- (reason `bouncing`) until they send us mail that passes sender
-- authentication, or an operator clears them.
CREATE TABLE bouncing (
    identity   TEXT    PRIMARY KEY,   -- identity key of the address
    email      TEXT    NOT NULL,      -- as it was mailed
    outbox_id  INTEGER,               -- the reply that bounced
    status     TEXT    NOT NULL,      -- the report's status code (5.1.1)
    diagnostic TEXT,
    bounced_at INTEGER NOT NULL
) WITHOUT ROWID;
