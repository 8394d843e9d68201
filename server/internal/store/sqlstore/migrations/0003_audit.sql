CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    factor     TEXT NOT NULL,
    ip         TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE INDEX audit_log_user ON audit_log (app_id, user_id, id);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TABLE admin_apps (
    app_id TEXT PRIMARY KEY REFERENCES apps (id)
);
CREATE TABLE webhooks (
    app_id     TEXT PRIMARY KEY REFERENCES apps (id),
    url        TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE webhook_deliveries (
    id            INTEGER PRIMARY KEY,
    app_id        TEXT NOT NULL,
    audit_id      INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    done_at       INTEGER NOT NULL DEFAULT 0,
    delivered     INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE done_at = 0;
