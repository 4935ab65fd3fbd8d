-- registrar schema, version 1. Times are Unix seconds (UTC).

-- Every message accepted at end of DATA, with its raw bytes for a while.
CREATE TABLE inbound (
    id             INTEGER PRIMARY KEY,
    received_at    INTEGER NOT NULL,
    service        TEXT    NOT NULL,
    client_ip      TEXT    NOT NULL,
    helo           TEXT    NOT NULL,
    envelope_from  TEXT    NOT NULL,  -- '' for the null sender
    envelope_to    TEXT    NOT NULL,
    message_id     TEXT,
    content_sha256 BLOB    NOT NULL,
    size           INTEGER NOT NULL,
    raw            BLOB
);
CREATE INDEX inbound_by_message_id ON inbound (message_id, envelope_from);
CREATE INDEX inbound_by_content ON inbound (content_sha256);

-- Customers of every service; identity is unique across the help desk.
CREATE TABLE customers (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL,           -- as received
    identity      TEXT    NOT NULL UNIQUE,    -- lowercase, A-label domain
    name          TEXT,
    company       TEXT,
    service       TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'disabled')),
    password_hash TEXT,                       -- argon2id PHC string
    source        TEXT    NOT NULL,           -- mail | portal | invitation
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER
);

-- Every registration decision with its reason, so an operator can ask why.
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    decided_at  INTEGER NOT NULL,
    inbound_id  INTEGER REFERENCES inbound (id),
    channel     TEXT    NOT NULL,
    service     TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    identity    TEXT,
    outcome     TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    dropped     INTEGER NOT NULL DEFAULT 0,
    reply_code  INTEGER
);
CREATE INDEX decisions_by_identity ON decisions (identity);

-- Only SHA-256 hashes of activation tokens; a customer has at most one live token.
CREATE TABLE activation_tokens (
    hash        BLOB    PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) WITHOUT ROWID;
CREATE INDEX activation_tokens_by_customer ON activation_tokens (customer_id);

-- Replies waiting to be delivered; the body is erased once delivered.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,   -- delivery address
    rate_key        TEXT    NOT NULL,   -- identity without plus-tag
    envelope_from   TEXT    NOT NULL,   -- '' for the null sender
    message_id      TEXT    NOT NULL,
    body            BLOB,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_rate_key ON outbox (rate_key, created_at);

-- Portal sessions, by SHA-256 of the session id.
CREATE TABLE sessions (
    hash         BLOB    PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
