-- registrar schema, version 13: the purge finds dead reset and sign-in
-- links through an index (expired, or used) instead of reading every link,
-- and the copy lookup by Message-ID reads only the idempotency window.
CREATE INDEX account_tokens_by_expiry ON account_tokens (expires_at);
CREATE INDEX account_tokens_used ON account_tokens (used_at) WHERE used_at IS NOT NULL;

-- The copy lookup by Message-ID (`inbound::EARLIER_BY_MESSAGE_ID`) asks for
-- the message's copies within the idempotency window, whoever sent them (the
-- decision says whose they were): the window bounds the index range, so the
-- copies of a Message-ID reused for months cost a new message nothing.
DROP INDEX inbound_by_message_id;
CREATE INDEX inbound_by_message_id ON inbound (message_id, received_at);
