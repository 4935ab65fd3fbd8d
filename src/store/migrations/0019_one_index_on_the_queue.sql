-- registrar schema, version 19: one index on the queued replies, not two
-- (issue 9).
--
-- `outbox_queued_by_age` served one figure of `/metrics` and `/healthz`:
-- when the oldest queued reply was queued. Each reply added an entry to it
-- when queued and removed it when sent, and each commit logged its last
-- page. The scrape now reads that figure from `outbox_due`, which it walks
-- anyway to count the queue: ids follow time, so the queued reply with the
-- lowest id was queued first (`store::outbox::QUEUED`).
DROP INDEX outbox_queued_by_age;
