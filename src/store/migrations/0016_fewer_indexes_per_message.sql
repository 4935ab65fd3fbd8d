-- registrar schema, version 16: fewer indexes written per message (issue 9).
--
-- The purges of raw bytes, inbound records
-- and finished replies walk their table in id order from a cursor
-- (`store::walk`), as the decision purge does, instead of reading an index
-- on age. Ids follow time in these tables, so the oldest rows come first.
-- Each registration then writes three b-trees less (issue 9).
--
-- The raw walk starts before the oldest message that still has its bytes
-- (found through its index, before the index goes), so that it does not
-- read again the messages erased already. The other walks start from the
-- beginning: what is left before them is within the retention.
INSERT INTO purge_cursors (name, after_id)
    SELECT 'inbound_raw', COALESCE(
        (SELECT id - 1 FROM inbound INDEXED BY inbound_raw_by_age
         WHERE raw IS NOT NULL ORDER BY received_at LIMIT 1),
        (SELECT MAX(id) FROM inbound),
        0)
    WHERE true
    ON CONFLICT (name) DO UPDATE SET after_id = excluded.after_id;
DROP INDEX inbound_by_age;
DROP INDEX inbound_raw_by_age;
DROP INDEX outbox_finished_by_age;

-- The outbox's claim reads only queued replies, so its index holds only
-- those: a reply sent or given up leaves it, instead of moving to a
-- ('sent', time) entry that stayed as long as the row (30 days).
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';
