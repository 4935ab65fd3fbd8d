-- Reply bodies live apart from the outbox rows (issue 9). A body holds a
-- live link, so it goes once its reply is delivered or given up. It used to
-- be erased in place, and that left each reply's row alone on a page of its
-- own for as long as the row was kept: 4 KiB per reply sent, for 30 days.
-- Now a delivered body's page is freed (and overwritten, `secure_delete`)
-- and reused for the next body, and the rows of sent replies pack densely.
-- `outbox.body` stays, always NULL from here on: dropping the column would
-- rewrite every row of the outbox at start-up.
CREATE TABLE outbox_bodies (
    outbox_id INTEGER PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    body      BLOB    NOT NULL
);
-- Only queued replies still have a body (sending or giving up erased it).
INSERT INTO outbox_bodies (outbox_id, body)
    SELECT id, body FROM outbox WHERE status = 'queued' AND body IS NOT NULL;
UPDATE outbox SET body = NULL WHERE status = 'queued' AND body IS NOT NULL;
