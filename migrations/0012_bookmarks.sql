-- Bookmarks: moments in a recording, each with an optional note. They go to the trash and back
-- with their recording (they stay with its row), and go when it is deleted for good. A change
-- to them is an `updated` recording in the changes feed, written by bookmarks.rs in the same
-- transaction (their only writer).
CREATE TABLE bookmarks (
    id           TEXT    NOT NULL PRIMARY KEY,   -- UUIDv7
    recording_id TEXT    NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    at_ms        INTEGER NOT NULL CHECK (at_ms >= 0),
    note         TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL
) STRICT;

-- A recording's bookmarks in order, and their count in list entries.
CREATE INDEX bookmarks_by_recording ON bookmarks(recording_id, at_ms);

-- Marks made while recording (tus metadata `marks`), kept with the upload until it becomes a
-- recording: comma-separated milliseconds.
ALTER TABLE uploads ADD COLUMN marks TEXT;
