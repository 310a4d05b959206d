-- Set by `recorder check --repair` on a recording whose file is missing or damaged; such a
-- recording is moved to the trash so its owner can see what happened. NULL for healthy ones.
ALTER TABLE recordings ADD COLUMN problem TEXT
    CHECK (problem IS NULL OR problem IN ('missing_file', 'size_mismatch', 'hash_mismatch'));
