-- Migration 3 of the PostgreSQL store: reference data recorded as events.
-- The catalog tables become projections of catalog_events. Rows written
-- before this migration had no events, so they are kept under legacy_* names
-- and are no longer read; post them again through POST /v1/catalog.

-- Ids are assigned as max(id) + 1 under the catalog's advisory lock, so they
-- follow commit order without gaps.
CREATE TABLE catalog_events (
    id             BIGINT PRIMARY KEY,
    recorded_at    TIMESTAMPTZ NOT NULL,
    actor          TEXT NOT NULL,
    actor_role     TEXT NOT NULL,
    device_id      TEXT,
    correlation_id TEXT,
    entity         TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    type           TEXT NOT NULL,
    payload        JSON NOT NULL
);
CREATE INDEX catalog_events_entity ON catalog_events (entity, entity_id, id);
CREATE INDEX catalog_events_recorded_at ON catalog_events (recorded_at, id);

CREATE TRIGGER catalog_events_append_only BEFORE UPDATE OR DELETE ON catalog_events
    FOR EACH ROW EXECUTE FUNCTION reject_change();
CREATE TRIGGER catalog_events_no_truncate BEFORE TRUNCATE ON catalog_events
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change();

ALTER TABLE assets RENAME TO legacy_assets;
ALTER TABLE engineers RENAME TO legacy_engineers;
ALTER TABLE sites RENAME TO legacy_sites;
ALTER TABLE contracts RENAME TO legacy_contracts;

-- Projections of catalog_events: one row per entity, its whole state in `document`.
CREATE TABLE engineers (
    engineer_id  TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    home_site_id TEXT,
    document     JSON NOT NULL
);
CREATE TABLE sites (
    site_id   TEXT COLLATE "C" PRIMARY KEY,
    name      TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    document  JSON NOT NULL
);
CREATE TABLE assets (
    asset_id TEXT COLLATE "C" PRIMARY KEY,
    site_id  TEXT NOT NULL,
    model    TEXT NOT NULL,
    serial   TEXT NOT NULL,
    document JSON NOT NULL
);
CREATE TABLE contracts (
    contract_id TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    document    JSON NOT NULL
);
