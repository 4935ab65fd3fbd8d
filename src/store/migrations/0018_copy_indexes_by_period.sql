-- registrar schema, version 18: the two indexes that find an earlier copy of
-- a message (by Message-ID, by content) lead with the period of four days it
-- was received in (`inbound::COPY_PERIOD_SECS`).
--
-- Their keys were a hash and a Message-ID: each new message's entry went to
-- a random page of an index as long as the retention, a page that had to be
-- read, logged and copied into the database on its own. Now new entries go
-- to the newest period's part of the index, a few hundred pages that stay in
-- memory, however long the history. A copy is looked for in each period the
-- idempotency window touches, newest first (at most nine for thirty days).
DROP INDEX inbound_by_message_id;
DROP INDEX inbound_by_content;
CREATE INDEX inbound_by_message_id ON inbound (received_at / 345600, message_id, received_at);
CREATE INDEX inbound_by_content ON inbound (received_at / 345600, content_sha256, received_at);
