-- registrar schema, version 5: the policy reads counters instead of counting
-- rows, old rows leave through the purge, and /metrics reads totals
-- (issue 9). `store/plans.rs` asserts the plans of the queries these serve.

-- Replies queued per key and hour: per address (the identity without its
-- plus-tag, as the rate limits count it) and per service; `scope` leaves
-- room for more (a sender domain). The policy reads a key's last 24 hours as
-- at most 25 rows of the primary key, however much was ever sent. Hours,
-- not days: the limits are "per 24 hours", and a day's row would make them
-- per calendar day (twice the limit across midnight).
CREATE TABLE reply_counts (
    scope   TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    hour    INTEGER NOT NULL,   -- Unix time / 3600
    replies INTEGER NOT NULL,
    last_at INTEGER NOT NULL,   -- when the newest of them was queued
    PRIMARY KEY (scope, key, hour)
) WITHOUT ROWID;
-- The purge drops hours no window reads any more.
CREATE INDEX reply_counts_by_hour ON reply_counts (hour);

-- Carry over what the old queries counted, for the hours a window still
-- reads: replies per address from the outbox, per service from the decisions.
INSERT INTO reply_counts (scope, key, hour, replies, last_at)
SELECT 'address', rate_key, created_at / 3600, COUNT(*), MAX(created_at)
FROM outbox
WHERE created_at > CAST(strftime('%s', 'now') AS INTEGER) - 2 * 86400
GROUP BY rate_key, created_at / 3600;
INSERT INTO reply_counts (scope, key, hour, replies, last_at)
SELECT 'service', service, decided_at / 3600, COUNT(*), MAX(decided_at)
FROM decisions
WHERE decided_at > CAST(strftime('%s', 'now') AS INTEGER) - 2 * 86400
  AND dropped = 0 AND (outcome IN ('register', 'resend_activation') OR reason = 'active_customer')
GROUP BY service, decided_at / 3600;

-- Nothing counts those rows any more; every insert paid for these indexes.
DROP INDEX decisions_replies_by_service;
DROP INDEX outbox_by_rate_key;

-- Retention: the purge deletes inbound records by age.
CREATE INDEX inbound_by_age ON inbound (received_at);

-- The purge of idle portal sessions (beside sessions_by_expiry), so that
-- neither half of it scans the table.
CREATE INDEX sessions_by_last_seen ON sessions (last_seen_at);

-- Replies delivered and given up on, ever: /metrics reads two rows instead
-- of counting the outbox, which the purge trims.
CREATE TABLE outbox_totals (
    status  TEXT    PRIMARY KEY CHECK (status IN ('sent', 'dead')),
    replies INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO outbox_totals (status, replies)
VALUES ('sent', (SELECT COUNT(*) FROM outbox WHERE status = 'sent')),
       ('dead', (SELECT COUNT(*) FROM outbox WHERE status = 'dead'));
