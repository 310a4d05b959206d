-- Each user's usage totals as counters, so `GET /api/v1/me` costs the same at a million
-- recordings as at fifty. Triggers keep them in the same transaction as every change to
-- `recordings` (upload, trash, restore, purge, repair, account deletion, and rows written by any
-- other tool); `recorder check` compares them with the real sums and `--repair` recomputes them.
CREATE TABLE usage (
    user_id          TEXT    NOT NULL PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    recordings       INTEGER NOT NULL DEFAULT 0,   -- not in the trash
    bytes            INTEGER NOT NULL DEFAULT 0,
    trash_recordings INTEGER NOT NULL DEFAULT 0,
    trash_bytes      INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

INSERT INTO usage (user_id, recordings, bytes, trash_recordings, trash_bytes)
SELECT user_id,
       sum(deleted_at IS NULL),
       sum(CASE WHEN deleted_at IS NULL THEN size ELSE 0 END),
       sum(deleted_at IS NOT NULL),
       sum(CASE WHEN deleted_at IS NOT NULL THEN size ELSE 0 END)
FROM recordings GROUP BY user_id;

CREATE TRIGGER usage_after_insert AFTER INSERT ON recordings BEGIN
    INSERT INTO usage (user_id, recordings, bytes, trash_recordings, trash_bytes)
    VALUES (NEW.user_id,
            NEW.deleted_at IS NULL, CASE WHEN NEW.deleted_at IS NULL THEN NEW.size ELSE 0 END,
            NEW.deleted_at IS NOT NULL, CASE WHEN NEW.deleted_at IS NOT NULL THEN NEW.size ELSE 0 END)
    ON CONFLICT (user_id) DO UPDATE SET
        recordings = recordings + excluded.recordings,
        bytes = bytes + excluded.bytes,
        trash_recordings = trash_recordings + excluded.trash_recordings,
        trash_bytes = trash_bytes + excluded.trash_bytes;
END;

CREATE TRIGGER usage_after_delete AFTER DELETE ON recordings BEGIN
    UPDATE usage SET
        recordings = recordings - (OLD.deleted_at IS NULL),
        bytes = bytes - CASE WHEN OLD.deleted_at IS NULL THEN OLD.size ELSE 0 END,
        trash_recordings = trash_recordings - (OLD.deleted_at IS NOT NULL),
        trash_bytes = trash_bytes - CASE WHEN OLD.deleted_at IS NOT NULL THEN OLD.size ELSE 0 END
    WHERE user_id = OLD.user_id;
END;

CREATE TRIGGER usage_after_update AFTER UPDATE OF user_id, size, deleted_at ON recordings BEGIN
    UPDATE usage SET
        recordings = recordings - (OLD.deleted_at IS NULL),
        bytes = bytes - CASE WHEN OLD.deleted_at IS NULL THEN OLD.size ELSE 0 END,
        trash_recordings = trash_recordings - (OLD.deleted_at IS NOT NULL),
        trash_bytes = trash_bytes - CASE WHEN OLD.deleted_at IS NOT NULL THEN OLD.size ELSE 0 END
    WHERE user_id = OLD.user_id;
    INSERT INTO usage (user_id, recordings, bytes, trash_recordings, trash_bytes)
    VALUES (NEW.user_id,
            NEW.deleted_at IS NULL, CASE WHEN NEW.deleted_at IS NULL THEN NEW.size ELSE 0 END,
            NEW.deleted_at IS NOT NULL, CASE WHEN NEW.deleted_at IS NOT NULL THEN NEW.size ELSE 0 END)
    ON CONFLICT (user_id) DO UPDATE SET
        recordings = recordings + excluded.recordings,
        bytes = bytes + excluded.bytes,
        trash_recordings = trash_recordings + excluded.trash_recordings,
        trash_bytes = trash_bytes + excluded.trash_bytes;
END;
