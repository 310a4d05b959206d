-- Transcripts: what was said in each recording, with times, and full-text search over it.

-- NULL: transcription is off for it; 'pending' (queued or running), 'ready' or 'failed'.
ALTER TABLE recordings ADD COLUMN transcript TEXT;
ALTER TABLE recordings ADD COLUMN transcript_error TEXT;

-- One per transcribed recording. `segments` is what the model wrote, `edited` the user's
-- corrections (served instead when set, and kept when the model runs again). Both are JSON
-- arrays of {"start_ms", "end_ms", "text"}.
CREATE TABLE transcripts (
    recording_id TEXT    NOT NULL PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    language     TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    segments     TEXT    NOT NULL,
    edited       TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The served segments, one row each: rowid = the recording's rowid * 2^20 + the segment's
-- index, so one recording's rows are a rowid range and newer recordings have higher rowids (a
-- search walks them newest first and stops after a page). `owner` is one token naming the user
-- ('u' and the id's hex), so a query only ever matches its user's rows. Case- and
-- accent-insensitive words.
CREATE VIRTUAL TABLE transcript_fts USING fts5(
    owner, body, start_ms UNINDEXED,
    tokenize = "unicode61 remove_diacritics 2",
    prefix = '2 3 4'
);

-- Names, for the list's substring search (`q`), so it costs the same at 100,000 recordings as
-- at ten: trigrams, case-insensitive; rowid = the recording's rowid, kept by triggers.
CREATE VIRTUAL TABLE name_fts USING fts5(
    owner UNINDEXED, name,
    tokenize = "trigram case_sensitive 0"
);
INSERT INTO name_fts (rowid, owner, name) SELECT rowid, user_id, name FROM recordings;
CREATE TRIGGER name_fts_on_insert AFTER INSERT ON recordings BEGIN
    INSERT INTO name_fts (rowid, owner, name) VALUES (NEW.rowid, NEW.user_id, NEW.name);
END;
CREATE TRIGGER name_fts_on_rename AFTER UPDATE OF name ON recordings BEGIN
    UPDATE name_fts SET name = NEW.name WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER name_fts_on_delete AFTER DELETE ON recordings BEGIN
    DELETE FROM name_fts WHERE rowid = OLD.rowid;
END;

CREATE TRIGGER transcript_fts_on_delete AFTER DELETE ON recordings BEGIN
    DELETE FROM transcript_fts WHERE rowid >= OLD.rowid * 1048576 AND rowid < (OLD.rowid + 1) * 1048576;
END;

-- A transcript that became ready or failed is a change of the recording, for the feed.
CREATE TRIGGER changes_on_transcript AFTER UPDATE OF transcript ON recordings
WHEN OLD.transcript IS NOT NEW.transcript AND NEW.transcript IN ('ready', 'failed')
BEGIN
    INSERT INTO feeds (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT NEW.user_id, seq, 'updated', NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM feeds WHERE user_id = NEW.user_id;
END;

-- So is a correction saved over a transcript that was already ready.
CREATE TRIGGER changes_on_transcript_edit AFTER UPDATE OF edited ON transcripts
WHEN OLD.edited IS NOT NEW.edited
BEGIN
    INSERT INTO feeds (user_id, seq) SELECT user_id, 1 FROM recordings WHERE id = NEW.recording_id
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO changes (user_id, seq, type, recording_id, at)
        SELECT f.user_id, f.seq, 'updated', NEW.recording_id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
        FROM feeds f JOIN recordings r ON r.user_id = f.user_id WHERE r.id = NEW.recording_id;
END;

-- Each worker takes its own kind of job.
CREATE INDEX jobs_by_kind ON jobs(kind, state, recording_id);
