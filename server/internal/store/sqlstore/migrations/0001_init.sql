CREATE TABLE apps (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    api_key_hash BLOB NOT NULL,
    signing_alg  TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE app_origins (
    app_id TEXT NOT NULL REFERENCES apps (id),
    origin TEXT NOT NULL,
    PRIMARY KEY (app_id, origin)
);
CREATE INDEX app_origins_origin ON app_origins (origin);
CREATE TABLE tickets (
    hash        BLOB PRIMARY KEY,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    elevated_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tickets_expires ON tickets (expires_at);
CREATE TABLE totp_credentials (
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    label        TEXT NOT NULL,
    sealed       BLOB NOT NULL,
    algorithm    TEXT NOT NULL,
    digits       INTEGER NOT NULL,
    period       INTEGER NOT NULL,
    last_step    INTEGER NOT NULL,
    confirmed    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX totp_credentials_user ON totp_credentials (app_id, user_id);
CREATE TABLE recovery_codes (
    app_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    hash       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, user_id, hash)
);
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX signing_keys_active ON signing_keys (alg) WHERE retired_at = 0;
CREATE TABLE secrets (
    name   TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);
