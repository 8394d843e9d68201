CREATE TABLE attempts (
    key           TEXT PRIMARY KEY,
    count         INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL DEFAULT 0,
    window_start  INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE totp_credentials ADD COLUMN drift INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totp_credentials ADD COLUMN last_offset INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN elevated_by TEXT NOT NULL DEFAULT '';
ALTER TABLE totp_credentials ADD COLUMN replaces TEXT NOT NULL DEFAULT '';
