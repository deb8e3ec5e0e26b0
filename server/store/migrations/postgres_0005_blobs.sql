-- Migration 5 of the PostgreSQL store: attachment blobs and their uploaders.

-- One row per content hash. status is 'uploading' until the bytes are verified
-- and written to the blob store, then 'stored'. The bytes never live here.
CREATE TABLE blobs (
    sha256       TEXT PRIMARY KEY,
    size_bytes   BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('uploading', 'stored')),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    stored_at    TIMESTAMPTZ
);

-- Subjects that sent the final chunk of a blob; an engineer may download what they uploaded.
CREATE TABLE blob_uploaders (
    sha256      TEXT NOT NULL REFERENCES blobs (sha256),
    subject     TEXT NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sha256, subject)
);

-- Finds the attachment and signature events that reference a blob, for the download check.
CREATE INDEX events_blob_reference ON events ((event->'payload'->>'sha256'))
    WHERE type IN ('attachment_added', 'signature_captured');
