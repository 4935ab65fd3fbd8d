-- registrar schema, version 13: the purge finds dead reset and sign-in
-- links through an index (expired, or used) instead of reading every link.
CREATE INDEX account_tokens_by_expiry ON account_tokens (expires_at);
CREATE INDEX account_tokens_used ON account_tokens (used_at) WHERE used_at IS NOT NULL;
