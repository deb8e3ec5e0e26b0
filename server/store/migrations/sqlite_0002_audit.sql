-- Migration 2 of the embedded SQLite store: requests denied by authentication,
-- RBAC or the rate limit, for the audit; decisions are the audit of commands.

CREATE TABLE denied_requests (
    denial_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    denied_at       TEXT NOT NULL,
    subject          TEXT,
    subject_verified INTEGER NOT NULL,
    role             TEXT,
    device_id        TEXT,
    correlation_id   TEXT,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    status_code      INTEGER NOT NULL,
    reason           TEXT NOT NULL,
    message          TEXT NOT NULL
);
CREATE INDEX denied_requests_denied_at ON denied_requests (denied_at, denial_id);
CREATE INDEX decisions_decided_at ON decisions (decided_at, decision_id);

CREATE TRIGGER denied_requests_no_update BEFORE UPDATE ON denied_requests
BEGIN SELECT RAISE(ABORT, 'denied_requests are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER denied_requests_no_delete BEFORE DELETE ON denied_requests
BEGIN SELECT RAISE(ABORT, 'denied_requests are append-only: DELETE is not allowed'); END;
