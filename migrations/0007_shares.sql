-- Share links: a public URL (`/s/<token>`) that plays one recording without an account.
-- Only the SHA-256 of the token is stored, as for sessions; the token itself is shown once, when
-- the link is made. A link is live while not revoked, not expired and its recording is not in
-- the trash; deleting the recording (or the account) deletes its links.
CREATE TABLE shares (
    id           TEXT    NOT NULL PRIMARY KEY,            -- UUIDv7
    user_id      TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    recording_id TEXT    NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    token_hash   BLOB    NOT NULL UNIQUE,                 -- SHA-256 of the token: the public page's lookup
    download     INTEGER NOT NULL,                        -- 1: the page offers a download
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,                                 -- null: never
    revoked_at   INTEGER,
    opens        INTEGER NOT NULL DEFAULT 0               -- page loads (not audio requests)
) STRICT;

-- `GET /api/v1/shares` (newest first) and the account's cascade.
CREATE INDEX shares_by_user ON shares(user_id, id);
-- The recording's cascade: deleting a recording finds its links without a scan.
CREATE INDEX shares_by_recording ON shares(recording_id);
