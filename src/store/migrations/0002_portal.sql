-- registrar schema, version 2: indexes for the portal, the operator CLI and
-- the purge of expired pending customers.

-- The purge looks for old pending customers; `customers list` filters by status.
CREATE INDEX customers_by_status ON customers (status, created_at);

-- Disabling a customer ends their sessions; the purge removes expired ones.
CREATE INDEX sessions_by_customer ON sessions (customer_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
