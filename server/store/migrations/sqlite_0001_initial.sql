-- Migration 1 of the embedded SQLite store: events, decisions, projections, catalog.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
);

-- The append-only log of accepted events. global_position is assigned under
-- SQLite's single writer lock, so positions become visible in commit order.
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    work_order_id   TEXT NOT NULL,
    stream_version  INTEGER NOT NULL,
    type            TEXT NOT NULL,
    client_event_id TEXT NOT NULL,
    actor           TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    effective_time  TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    event           BLOB NOT NULL,
    UNIQUE (work_order_id, stream_version)
);

-- One durable decision per proposed event, keyed by the proposing subject.
CREATE TABLE decisions (
    decision_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    subject         TEXT NOT NULL,
    client_event_id TEXT NOT NULL,
    fingerprint     BLOB NOT NULL,
    work_order_id   TEXT NOT NULL,
    type            TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason_code     TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    correlation_id  TEXT,
    global_position INTEGER REFERENCES events (global_position),
    decided_at      TEXT NOT NULL,
    proposal        BLOB NOT NULL,
    decision        BLOB NOT NULL,
    UNIQUE (subject, client_event_id)
);
CREATE INDEX decisions_status ON decisions (status, work_order_id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed'); END;
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only: DELETE is not allowed'); END;

-- Engineers who may see an event in the pull feed: the assignee before and after it.
CREATE TABLE event_audience (
    engineer_id     TEXT NOT NULL,
    global_position INTEGER NOT NULL REFERENCES events (global_position),
    PRIMARY KEY (engineer_id, global_position)
) WITHOUT ROWID;

-- Projection: current state of every work order.
CREATE TABLE work_orders_current (
    work_order_id   TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    version         INTEGER NOT NULL,
    engineer_id     TEXT,
    priority        TEXT NOT NULL,
    site_id         TEXT NOT NULL,
    updated_at      TEXT,
    state           BLOB NOT NULL
);
CREATE INDEX work_orders_current_engineer ON work_orders_current (engineer_id, work_order_id);
CREATE INDEX work_orders_current_status ON work_orders_current (status, work_order_id);

-- Projection: accepted events and unapplied decisions of each order, in decision order.
CREATE TABLE work_order_timeline (
    entry_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id   TEXT NOT NULL,
    entry           BLOB NOT NULL
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
