-- registrar schema, version 4: every query on the intake path is bounded by
-- an index to the rows it needs, however much history the tables hold
-- (issue 9; `store/plans.rs` asserts the query plans).

-- The idempotency lookup looks for an earlier copy of a message by
-- Message-ID and envelope sender, or by content, within a window of days:
-- both indexes carry the time, and each copy is joined to its decision.
DROP INDEX inbound_by_message_id;
DROP INDEX inbound_by_content;
CREATE INDEX inbound_by_message_id ON inbound (message_id, envelope_from, received_at);
CREATE INDEX inbound_by_content ON inbound (content_sha256, received_at);
CREATE INDEX decisions_by_inbound ON decisions (inbound_id);

-- The service's daily reply budget counts the day's replies only, from the
-- index alone: refusals and suppressed mail no longer cost every later
-- message a row read each. The WHERE clause must stay word for word the one
-- in `inbound::SERVICE_REPLIES_SINCE`, or SQLite will not use the index.
DROP INDEX decisions_by_service;
CREATE INDEX decisions_replies_by_service ON decisions (service, decided_at, dropped, outcome, reason)
    WHERE dropped = 0 AND (outcome IN ('register', 'resend_activation') OR reason = 'active_customer');

-- The purge erases raw bytes by age; only rows still holding them are indexed.
CREATE INDEX inbound_raw_by_age ON inbound (received_at) WHERE raw IS NOT NULL;
