-- Bookmarks: moments in a recording, each with an optional note. They go to the trash and back
-- with their recording (they stay with its row), and go when it is deleted for good.
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

-- A bookmark added, changed or removed is an `updated` recording in the changes feed (not when
-- its recording is being deleted: that is the recording's own `deleted`).
CREATE TRIGGER changes_on_bookmark_insert AFTER INSERT ON bookmarks BEGIN
    INSERT INTO feeds (user_id, seq) SELECT user_id, 1 FROM recordings WHERE id = NEW.recording_id
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT r.user_id, f.seq, 'updated', r.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM recordings r JOIN feeds f ON f.user_id = r.user_id WHERE r.id = NEW.recording_id;
END;

CREATE TRIGGER changes_on_bookmark_update AFTER UPDATE OF at_ms, note ON bookmarks
WHEN OLD.at_ms IS NOT NEW.at_ms OR OLD.note IS NOT NEW.note
BEGIN
    INSERT INTO feeds (user_id, seq) SELECT user_id, 1 FROM recordings WHERE id = NEW.recording_id
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT r.user_id, f.seq, 'updated', r.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM recordings r JOIN feeds f ON f.user_id = r.user_id WHERE r.id = NEW.recording_id;
END;

CREATE TRIGGER changes_on_bookmark_delete AFTER DELETE ON bookmarks
WHEN EXISTS (SELECT 1 FROM recordings WHERE id = OLD.recording_id)
BEGIN
    INSERT INTO feeds (user_id, seq) SELECT user_id, 1 FROM recordings WHERE id = OLD.recording_id
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT r.user_id, f.seq, 'updated', r.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM recordings r JOIN feeds f ON f.user_id = r.user_id WHERE r.id = OLD.recording_id;
END;
