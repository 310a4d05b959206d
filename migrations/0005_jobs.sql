-- Background work done after an upload: a durable queue, and the analysis it produces.

-- A recording's analysis: NULL for recordings stored before analysis existed (the worker queues
-- them, newest first, in the background), then 'pending', 'ready' or 'failed'.
ALTER TABLE recordings ADD COLUMN waveform TEXT;
-- Why analysis failed, for `recorder check` and the log.
ALTER TABLE recordings ADD COLUMN analysis_error TEXT;

-- Peaks per bucket of time, one byte each (0 silence .. 255 full scale), at most 4,000.
CREATE TABLE waveforms (
    recording_id TEXT    NOT NULL PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    bucket_ms    INTEGER NOT NULL,
    peaks        BLOB    NOT NULL
) STRICT, WITHOUT ROWID;

-- The queue. A job is inserted in the same transaction as its recording, taken by a worker
-- ('running', attempts + 1), and deleted when done; a failure stays, with its reason, and is
-- not retried (`recorder check --repair` queues it again). Deleting a recording deletes its jobs.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,                    -- 'analysis'
    recording_id TEXT    NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    state        TEXT    NOT NULL DEFAULT 'queued',   -- 'queued' | 'running' | 'failed'
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (kind, recording_id)
) STRICT;

-- The next job: newest recording first.
CREATE INDEX jobs_next ON jobs(state, recording_id);

-- Small durable settings of the server's own (the analysis backfill's progress).
CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
