-- App tokens beside browser sessions (one table of bearer credentials), and the changes feed.

-- A credential's public id (for listing and revoking), its kind and name, and when it was last
-- used (written at most once a minute).
ALTER TABLE sessions ADD COLUMN id TEXT;
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'session';   -- 'session' | 'app'
ALTER TABLE sessions ADD COLUMN name TEXT;
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER;
UPDATE sessions SET id = lower(
    hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-7' || substr(hex(randomblob(2)), 2) || '-' ||
    substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)));
CREATE UNIQUE INDEX sessions_by_id ON sessions(id);

-- Each user's feed position: the last change's number. Never reset, so positions stay unique
-- after old changes are pruned.
CREATE TABLE feeds (
    user_id TEXT    NOT NULL PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Every change to a user's recordings, numbered 1, 2, 3… per user with no gaps, written by the
-- triggers below in the same transaction as the change, whoever makes it.
CREATE TABLE changes (
    user_id      TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    type         TEXT    NOT NULL,       -- created | updated | trashed | restored | deleted
    recording_id TEXT    NOT NULL,
    at           INTEGER NOT NULL,       -- milliseconds, for pruning
    PRIMARY KEY (user_id, seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX changes_by_time ON changes(at);

CREATE TRIGGER changes_on_insert AFTER INSERT ON recordings BEGIN
    INSERT INTO feeds (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT NEW.user_id, seq, CASE WHEN NEW.deleted_at IS NULL THEN 'created' ELSE 'trashed' END, NEW.id,
               CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM feeds WHERE user_id = NEW.user_id;
END;

-- A rename, the end of analysis (new duration, waveform), a repair's mark: 'updated'. Moving to
-- and from the trash: 'trashed' and 'restored'.
CREATE TRIGGER changes_on_update AFTER UPDATE OF name, duration_ms, waveform, problem, deleted_at ON recordings
WHEN OLD.name IS NOT NEW.name OR OLD.duration_ms IS NOT NEW.duration_ms
     OR (OLD.waveform IS NOT NEW.waveform AND NOT (OLD.waveform IS NULL AND NEW.waveform = 'pending'))
     OR OLD.problem IS NOT NEW.problem OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN
    INSERT INTO feeds (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT NEW.user_id, seq,
               CASE WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN 'trashed'
                    WHEN OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN 'restored'
                    ELSE 'updated' END,
               NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM feeds WHERE user_id = NEW.user_id;
END;

-- Deleted for good. (When the account itself is being deleted, its feed goes with it.)
CREATE TRIGGER changes_on_delete AFTER DELETE ON recordings
WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    INSERT INTO feeds (user_id, seq) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT OLD.user_id, seq, 'deleted', OLD.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM feeds WHERE user_id = OLD.user_id;
END;
