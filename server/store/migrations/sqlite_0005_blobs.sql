-- Migration 5 of the embedded SQLite store: attachment blobs and their uploaders.

-- One row per content hash. status is 'uploading' until the bytes are verified
-- and written to the blob store, then 'stored'. The bytes never live here.
CREATE TABLE blobs (
    sha256       TEXT PRIMARY KEY,
    size_bytes   INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('uploading', 'stored')),
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    stored_at    TEXT
);

-- Subjects that sent the final chunk of a blob; an engineer may download what they uploaded.
CREATE TABLE blob_uploaders (
    sha256      TEXT NOT NULL REFERENCES blobs (sha256),
    subject     TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    PRIMARY KEY (sha256, subject)
) WITHOUT ROWID;
