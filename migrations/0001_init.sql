-- Accounts, sessions and recording metadata. Timestamps are integer milliseconds since the epoch.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,      -- UUIDv7
    username      TEXT    NOT NULL UNIQUE,           -- stored lower-cased
    password_hash TEXT    NOT NULL,                  -- Argon2id PHC string
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash BLOB    NOT NULL PRIMARY KEY,         -- SHA-256 of the bearer token; the token itself is never stored
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

CREATE TABLE recordings (
    id              TEXT    NOT NULL PRIMARY KEY,    -- UUIDv7: time-ordered, so it is also the list order
    user_id         TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    duration_ms     INTEGER,
    recorded_at     INTEGER,
    created_at      INTEGER NOT NULL,
    deleted_at      INTEGER,                         -- non-null while in the trash
    purge_at        INTEGER,
    idempotency_key TEXT
) STRICT;

-- The list query: WHERE user_id = ? AND deleted_at IS NULL AND id < ? ORDER BY id DESC.
-- The trash query uses the same index with deleted_at IS NOT NULL, ordered by (deleted_at, id).
CREATE INDEX recordings_by_user ON recordings(user_id, deleted_at, id);
-- The purge sweep.
CREATE INDEX recordings_by_purge ON recordings(purge_at) WHERE purge_at IS NOT NULL;
-- A retried upload with the same Idempotency-Key finds the first one; the constraint settles races.
CREATE UNIQUE INDEX recordings_by_idempotency_key
    ON recordings(user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Files whose rows are gone but which may still be on disk: written in the same transaction that
-- deletes the row, removed after the unlink; startup finishes whatever a crash interrupted.
CREATE TABLE pending_unlinks (
    path       TEXT    NOT NULL PRIMARY KEY,         -- relative to the data directory
    created_at INTEGER NOT NULL
) STRICT;
