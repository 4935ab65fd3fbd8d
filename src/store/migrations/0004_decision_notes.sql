-- registrar schema, version 4: a decision can carry a note for a person, such
-- as how the envelope sender of a registration mail was read (a BATV tag
-- removed, a forwarder's envelope that sender authentication made irrelevant).
ALTER TABLE decisions ADD COLUMN note TEXT;

-- Copies of a message are found by Message-ID and the registered address.
CREATE INDEX decisions_by_inbound ON decisions (inbound_id);
