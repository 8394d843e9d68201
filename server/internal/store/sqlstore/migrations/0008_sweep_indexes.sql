-- The sweep deletes what expired every minute, on SQLite inside the one writer; without
-- these indexes it read whole tables (pending enrollments among every credential: 175 ms
-- during which no write ran, at a million users).
CREATE INDEX totp_credentials_pending ON totp_credentials (expires_at) WHERE confirmed = 0;
CREATE INDEX ceremonies_expires ON ceremonies (expires_at);
CREATE INDEX used_once_until ON used_once (until);
