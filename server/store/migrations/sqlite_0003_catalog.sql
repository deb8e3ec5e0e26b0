-- Migration 3 of the embedded SQLite store: reference data recorded as events.
-- The catalog tables become projections of catalog_events. Rows written
-- before this migration had no events, so they are kept under legacy_* names
-- and are no longer read; post them again through POST /v1/catalog.

CREATE TABLE catalog_events (
    id             INTEGER PRIMARY KEY,
    recorded_at    TEXT NOT NULL,
    actor          TEXT NOT NULL,
    actor_role     TEXT NOT NULL,
    device_id      TEXT,
    correlation_id TEXT,
    entity         TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    type           TEXT NOT NULL,
    payload        BLOB NOT NULL
);
CREATE INDEX catalog_events_entity ON catalog_events (entity, entity_id, id);
CREATE INDEX catalog_events_recorded_at ON catalog_events (recorded_at, id);

CREATE TRIGGER catalog_events_no_update BEFORE UPDATE ON catalog_events
BEGIN SELECT RAISE(ABORT, 'catalog_events are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER catalog_events_no_delete BEFORE DELETE ON catalog_events
BEGIN SELECT RAISE(ABORT, 'catalog_events are append-only: DELETE is not allowed'); END;

ALTER TABLE assets RENAME TO legacy_assets;
ALTER TABLE engineers RENAME TO legacy_engineers;
ALTER TABLE sites RENAME TO legacy_sites;
ALTER TABLE contracts RENAME TO legacy_contracts;

-- Projections of catalog_events: one row per entity, its whole state in `document`.
CREATE TABLE engineers (
    engineer_id  TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    home_site_id TEXT,
    document     BLOB NOT NULL
);
CREATE TABLE sites (
    site_id   TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    document  BLOB NOT NULL
);
CREATE TABLE assets (
    asset_id TEXT PRIMARY KEY,
    site_id  TEXT NOT NULL,
    model    TEXT NOT NULL,
    serial   TEXT NOT NULL,
    document BLOB NOT NULL
);
CREATE TABLE contracts (
    contract_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    document    BLOB NOT NULL
);
