-- Bytes on their way into a store, noted (committed) before they are written there and cleared
-- in the transaction that inserts their recording. A note is the only proof the sweeps accept
-- that stored bytes without a row are this installation's litter: at the next start (or once
-- the noting process is gone) a 'new' note whose recording never arrived has its bytes deleted,
-- and a 'recovered' note (a file `recorder check --recover` was moving out of lost+found) has
-- its file moved back. Bytes no note names are never deleted: on disk they go to lost+found/.
CREATE TABLE in_flight (
    id       TEXT NOT NULL,
    store    TEXT NOT NULL CHECK (store IN ('local', 's3')),
    kind     TEXT NOT NULL CHECK (kind IN ('new', 'recovered')),
    -- The process that noted it: its notes are settled only once it has stopped.
    pid      INTEGER NOT NULL,
    noted_at INTEGER NOT NULL,
    PRIMARY KEY (id, store)
) STRICT, WITHOUT ROWID;

-- This installation's id: written into the object store's marker (`<prefix>/.recorder-store`)
-- so that two installations never sweep one store. A database restored from a backup keeps it.
INSERT OR IGNORE INTO settings (key, value) VALUES ('installation_id', lower(hex(randomblob(16))));
