CREATE TABLE attempts (
    key           TEXT PRIMARY KEY,
    count         BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL DEFAULT 0,
    window_start  BIGINT NOT NULL DEFAULT 0
);
ALTER TABLE totp_credentials ADD COLUMN drift BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totp_credentials ADD COLUMN last_offset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN elevated_by TEXT NOT NULL DEFAULT '';
ALTER TABLE totp_credentials ADD COLUMN replaces TEXT NOT NULL DEFAULT '';
