-- Resumable uploads (tus 1.0 and the IETF draft share them). The bytes are in
-- `uploads/<id>` under the data directory; `received` is how many of them are durable: it is
-- written only after the file is fsynced, and it is the only offset the server ever reports.
-- Startup cuts each file back to `received` (bytes past it were never acknowledged).
CREATE TABLE uploads (
    id           TEXT    NOT NULL PRIMARY KEY,         -- UUIDv7; also the file name
    user_id      TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT,                                 -- normalised; null: named from the time
    recorded_at  INTEGER,
    length       INTEGER,                              -- null until the client says (deferred length)
    received     INTEGER NOT NULL DEFAULT 0,
    keep_partial INTEGER NOT NULL DEFAULT 0,           -- on expiry, store what arrived as a recording
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,                     -- the last durable byte
    expires_at   INTEGER NOT NULL,
    idempotency_key TEXT,                              -- given to the recording it becomes
    recording_id TEXT,                                 -- set, exactly once, when the upload completes
    completed_at INTEGER
) STRICT;

-- A user's incomplete uploads (the per-user cap, `GET /api/v1/uploads`, usage).
CREATE INDEX uploads_by_user ON uploads(user_id, recording_id, id);
-- The expiry sweep.
CREATE INDEX uploads_by_expiry ON uploads(expires_at);
