-- registrar schema, version 2: the per-service daily reply budget counts a
-- service's recent decisions on every incoming message.
CREATE INDEX decisions_by_service ON decisions (service, decided_at);
