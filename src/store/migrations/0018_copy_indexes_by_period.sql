-- registrar schema, version 18: the two indexes that find an earlier copy of
-- a message (by Message-ID, by content) lead with the period of eight days
-- it was received in (`inbound::COPY_PERIOD_SECS`).
--
-- Their keys were a hash and a Message-ID: each new message's entry went to
-- a random page of an index as long as the retention, a page that had to be
-- read, logged and copied into the database on its own. Now new entries go
-- to the newest period's part of the index, a few hundred pages that stay in
-- memory, however long the history. A copy is looked for in each period the
-- idempotency window touches, newest first: one or two for the default
-- seven days, at most five for the longest window (thirty days). Each
-- period looked in costs a lookup even when it holds no copy, so the
-- period is longer than the default window.
DROP INDEX inbound_by_message_id;
DROP INDEX inbound_by_content;
CREATE INDEX inbound_by_message_id ON inbound (received_at / 691200, message_id, received_at);
CREATE INDEX inbound_by_content ON inbound (received_at / 691200, content_sha256, received_at);
