-- Migration 2 of the PostgreSQL store: requests denied by authentication,
-- RBAC or the rate limit, for the audit; decisions are the audit of commands.

CREATE TABLE denied_requests (
    denial_id       BIGSERIAL PRIMARY KEY,
    denied_at       TIMESTAMPTZ NOT NULL,
    subject          TEXT,
    subject_verified BOOLEAN NOT NULL,
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

CREATE TRIGGER denied_requests_append_only BEFORE UPDATE OR DELETE ON denied_requests
    FOR EACH ROW EXECUTE FUNCTION reject_change();
CREATE TRIGGER denied_requests_no_truncate BEFORE TRUNCATE ON denied_requests
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change();
