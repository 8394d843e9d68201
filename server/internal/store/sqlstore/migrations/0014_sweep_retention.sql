-- The sweep also deletes the records of verifiers not seen for a day (a crashed one never
-- deletes its own) and webhook deliveries finished a week ago; like every sweep it runs
-- through an index, so it never reads the whole table inside SQLite's one writer.
CREATE INDEX instances_seen ON instances (seen_at);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (done_at) WHERE done_at > 0;
