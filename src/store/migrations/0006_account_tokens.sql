-- registrar schema, version 4: single-use links for active customers
-- ("Forgot your password?" and "Email me a sign-in link"). As for activation
-- tokens, only SHA-256 hashes are stored; a customer has at most one live
-- link of each purpose.
CREATE TABLE account_tokens (
    hash        BLOB    PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('reset', 'sign_in')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) WITHOUT ROWID;
CREATE INDEX account_tokens_by_customer ON account_tokens (customer_id, purpose);
