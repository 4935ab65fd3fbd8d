-- registrar schema: a decision can carry a note for a person, such as how the
-- envelope sender of a registration mail was read (a BATV tag removed, a
-- forwarder's envelope that sender authentication made irrelevant).
ALTER TABLE decisions ADD COLUMN note TEXT;
