-- registrar schema, version 12: the service's daily reply budget reads a
-- counter instead of counting the day's decisions, and every table that
-- grows with traffic can be purged by age in small batches (issue 9;
-- `store/plans.rs` asserts the plans of the queries these serve).

-- Reply counts gain a scope per service (its key is ''): the budget reads at
-- most 25 hourly rows of the primary key, however much was ever sent. A
-- CHECK cannot be altered in SQLite, so the table is made again.
CREATE TABLE reply_counts_new (
    scope   TEXT    NOT NULL CHECK (scope IN ('domain', 'network', 'service')),
    service TEXT    NOT NULL,
    key     TEXT    NOT NULL,   -- A-label domain, client network, or '' per service
    hour    INTEGER NOT NULL,   -- Unix time / 3600
    replies INTEGER NOT NULL,
    PRIMARY KEY (scope, service, key, hour)
) WITHOUT ROWID;
INSERT INTO reply_counts_new (scope, service, key, hour, replies)
SELECT scope, service, key, hour, replies FROM reply_counts;
DROP TABLE reply_counts;
ALTER TABLE reply_counts_new RENAME TO reply_counts;
CREATE INDEX reply_counts_by_hour ON reply_counts (hour);

-- Carry over what the old count read, for the hours a day still reads.
INSERT INTO reply_counts (scope, service, key, hour, replies)
SELECT 'service', service, '', decided_at / 3600, COUNT(*)
FROM decisions
WHERE decided_at > CAST(strftime('%s', 'now') AS INTEGER) - 2 * 86400
  AND dropped = 0 AND (outcome IN ('register', 'resend_activation') OR reason = 'active_customer')
GROUP BY service, decided_at / 3600;

-- Nothing counts those rows any more, and every decision paid for it.
DROP INDEX decisions_replies_by_service;

-- Retention: inbound records, finished replies and idle sessions are
-- deleted by age, oldest first, without scanning. (Decisions are walked in
-- id order from a cursor, by their primary key.)
CREATE INDEX inbound_by_age ON inbound (received_at);
CREATE INDEX outbox_finished_by_age ON outbox (created_at) WHERE status IN ('sent', 'dead');
CREATE INDEX sessions_by_last_seen ON sessions (last_seen_at);

-- Where the purge's walk through the decisions has got to (decisions kept
-- because their customer exists are not read again).
CREATE TABLE purge_cursors (
    name     TEXT    PRIMARY KEY,
    after_id INTEGER NOT NULL
) WITHOUT ROWID;
