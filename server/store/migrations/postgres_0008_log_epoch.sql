-- Migration 8 of the PostgreSQL store: the identity of the event log.

-- One row. `epoch` is a random id created with the store and replaced by `csdp restore`, so a
-- device that synced from another copy of the log sees a different epoch and resets.
-- `base_position` is the last position the log shares with the copy it was restored from
-- (0 for a log that was never restored); a device re-sends its accepted events after it.
CREATE TABLE log_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL,
    base_position BIGINT NOT NULL DEFAULT 0
);
INSERT INTO log_identity (id, epoch, base_position) VALUES (1, md5(random()::text || clock_timestamp()::text), 0);
