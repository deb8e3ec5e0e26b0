-- Migration 5 of the embedded SQLite store: maintenance type and component of each order in the KPI history.

-- Both columns are set on `created` rows only, from the payload fields of the same names. They stay
-- NULL when the payload leaves the field out, and the KPI engine reads a NULL maintenance type as
-- corrective, so rows projected before this migration need no backfill.
ALTER TABLE kpi_order_history ADD COLUMN maintenance_type TEXT;
ALTER TABLE kpi_order_history ADD COLUMN component TEXT;
