-- Which store holds a recording's bytes: the data directory ('local') or the S3-compatible object
-- store ('s3'). New recordings take the configured `storage.backend`; `recorder storage migrate`
-- copies, verifies and then flips this one row at a time, so the server always reads a
-- recording from where its bytes are. Pending deletes name their store in `pending_unlinks.path`
-- (`recordings/…` on disk, `s3/<id>` for an object).
ALTER TABLE recordings ADD COLUMN store TEXT NOT NULL DEFAULT 'local' CHECK (store IN ('local', 's3'));
-- The migration walks the recordings still in the other store.
CREATE INDEX recordings_by_store ON recordings(store, id);
