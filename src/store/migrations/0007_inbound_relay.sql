-- registrar schema, version 6: a message a relay in front of us handed over
-- with XFORWARD records the relay beside the original client it named
-- (`client_ip`, `helo`); NULL when the client was the SMTP peer itself.
ALTER TABLE inbound ADD COLUMN relay_ip TEXT;
