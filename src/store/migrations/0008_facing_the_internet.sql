-- registrar schema, version 8: reply budgets per sender domain and per
-- client network, and addresses whose owners asked never to be mailed.

-- Replies queued per (service, domain) and per (service, client network),
-- in hourly buckets: a day's count sums at most 24 rows of one key.
CREATE TABLE reply_counts (
    scope   TEXT    NOT NULL CHECK (scope IN ('domain', 'network')),
    service TEXT    NOT NULL,
    key     TEXT    NOT NULL,   -- A-label domain, or the client network
    hour    INTEGER NOT NULL,   -- Unix time / 3600
    replies INTEGER NOT NULL,
    PRIMARY KEY (scope, service, key, hour)
) WITHOUT ROWID;
-- The purge drops buckets older than a day.
CREATE INDEX reply_counts_by_hour ON reply_counts (hour);

-- Addresses never to be mailed again: their owner followed the "I did not
-- ask for this" link, or an operator said so. Only an operator undoes it.
CREATE TABLE suppressions (
    identity   TEXT    PRIMARY KEY,   -- identity key of the address
    email      TEXT    NOT NULL,      -- as it was mailed
    source     TEXT    NOT NULL,      -- recipient | operator
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The "I did not ask for this" link of each activation mail, by SHA-256.
CREATE TABLE opt_out_tokens (
    hash       BLOB    PRIMARY KEY,
    identity   TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
-- The purge drops old links.
CREATE INDEX opt_out_tokens_by_age ON opt_out_tokens (created_at);
