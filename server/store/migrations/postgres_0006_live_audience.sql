-- Migration 5: look up the audience of an event by its position.
-- The live stream reads each new event with the engineers who may see it, and the primary key
-- of event_audience starts with engineer_id, so it cannot serve that lookup.
CREATE INDEX event_audience_position ON event_audience (global_position);
