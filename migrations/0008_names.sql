-- WebDAV shows a user's recordings as files by name: listing in name order page by page, and
-- finding the recording a file name stands for, must each cost the same at 100,000 recordings
-- as at ten. One partial index for the folder of live recordings and one for the trash (each row
-- is in exactly one of them); queries repeat the `deleted_at` term so the planner can use them.
CREATE INDEX recordings_live_by_name ON recordings(user_id, name, id) WHERE deleted_at IS NULL;
CREATE INDEX recordings_trash_by_name ON recordings(user_id, name, id) WHERE deleted_at IS NOT NULL;
