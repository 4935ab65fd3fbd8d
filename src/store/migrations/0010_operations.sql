-- registrar schema, version 9: what operating the daemon needs (issue 12).

-- /metrics and /healthz read the age of the oldest queued reply at every
-- scrape: a partial index holding only queued replies, by age, answers it
-- without reading the history of sent ones.
CREATE INDEX outbox_queued_by_age ON outbox (created_at) WHERE status = 'queued';

-- /healthz proves the database takes writes by writing this one row through
-- the store writer.
CREATE TABLE health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
