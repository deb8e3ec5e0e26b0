-- Schema version 1 of the PostgreSQL store.

-- The append-only log of accepted events. Positions come from position_counter,
-- whose single row is locked until commit, so they are assigned in commit order.
CREATE TABLE events (
    global_position BIGINT PRIMARY KEY,
    event_id        UUID NOT NULL UNIQUE,
    work_order_id   TEXT NOT NULL,
    stream_version  INTEGER NOT NULL,
    type            TEXT NOT NULL,
    client_event_id UUID NOT NULL,
    actor           TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    effective_time  TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    event           JSON NOT NULL,
    UNIQUE (work_order_id, stream_version)
);

CREATE TABLE position_counter (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    last_position BIGINT NOT NULL
);
INSERT INTO position_counter (singleton, last_position) VALUES (TRUE, 0);

-- One durable decision per proposed event, keyed by the proposing subject.
CREATE TABLE decisions (
    decision_id     BIGSERIAL PRIMARY KEY,
    subject         TEXT NOT NULL,
    client_event_id UUID NOT NULL,
    fingerprint     BYTEA NOT NULL,
    work_order_id   TEXT NOT NULL,
    type            TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason_code     TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    correlation_id  TEXT,
    global_position BIGINT REFERENCES events (global_position),
    decided_at      TIMESTAMPTZ NOT NULL,
    proposal        JSON NOT NULL,
    decision        JSON NOT NULL,
    UNIQUE (subject, client_event_id)
);
CREATE INDEX decisions_status ON decisions (status, work_order_id);

CREATE FUNCTION reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change();
CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION reject_change();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change();

-- Engineers who may see an event in the pull feed: the assignee before and after it.
CREATE TABLE event_audience (
    engineer_id     TEXT NOT NULL,
    global_position BIGINT NOT NULL REFERENCES events (global_position),
    PRIMARY KEY (engineer_id, global_position)
);

-- Projection: current state of every work order.
CREATE TABLE work_orders_current (
    work_order_id TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    engineer_id   TEXT,
    priority      TEXT NOT NULL,
    site_id       TEXT NOT NULL,
    updated_at    TIMESTAMPTZ,
    state         JSON NOT NULL
);
CREATE INDEX work_orders_current_engineer ON work_orders_current (engineer_id, work_order_id);
CREATE INDEX work_orders_current_status ON work_orders_current (status, work_order_id);

-- Projection: accepted events and unapplied decisions of each order, in decision order.
CREATE TABLE work_order_timeline (
    entry_id      BIGSERIAL PRIMARY KEY,
    work_order_id TEXT NOT NULL,
    entry         JSON NOT NULL
);
CREATE INDEX work_order_timeline_order ON work_order_timeline (work_order_id, entry_id);

-- Reference data used by the demo catalog.
CREATE TABLE engineers (engineer_id TEXT PRIMARY KEY, name TEXT NOT NULL, skills TEXT NOT NULL DEFAULT '[]');
CREATE TABLE sites (site_id TEXT PRIMARY KEY, name TEXT NOT NULL, time_zone TEXT NOT NULL);
CREATE TABLE assets (
    asset_id TEXT PRIMARY KEY,
    site_id  TEXT NOT NULL REFERENCES sites (site_id),
    model    TEXT NOT NULL,
    serial   TEXT NOT NULL DEFAULT ''
);
CREATE TABLE contracts (contract_id TEXT PRIMARY KEY, name TEXT NOT NULL, policy TEXT NOT NULL DEFAULT '{}');
