-- Migration 4 of the embedded SQLite store: the KPI projector's history table and checkpoints.

-- Durable position of each asynchronous projector: the last global position it has applied.
-- A projector writes its rows and this row in one transaction.
CREATE TABLE projector_checkpoints (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

-- Projection: the events of each work order that the KPI engine reads, one row per event,
-- with only the payload fields it uses. `priority` (of created and priority_changed) and
-- `hold_reason` (of hold_started) are read by the SLA evaluation of GET /v1/kpi. Times are UTC text in one fixed format
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ), so text order is time order.
CREATE TABLE kpi_order_history (
    work_order_id   TEXT NOT NULL,
    global_position INTEGER NOT NULL,
    stream_version  INTEGER NOT NULL,
    type            TEXT NOT NULL,
    effective_time  TEXT NOT NULL,
    engineer_id     TEXT,
    asset_id        TEXT,
    contract_id     TEXT,
    fixed           INTEGER,
    priority        TEXT,
    hold_reason     TEXT,
    PRIMARY KEY (work_order_id, global_position)
) WITHOUT ROWID;
CREATE INDEX kpi_order_history_time ON kpi_order_history (effective_time, work_order_id);
CREATE INDEX kpi_order_history_type_time ON kpi_order_history (type, effective_time, work_order_id);
