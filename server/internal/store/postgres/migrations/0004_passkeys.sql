ALTER TABLE apps ADD COLUMN rp_id TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN passkey_policy TEXT NOT NULL DEFAULT 'totp_fallback';
CREATE TABLE webauthn_users (
    app_id  TEXT NOT NULL,
    user_id TEXT NOT NULL,
    handle  BYTEA NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE UNIQUE INDEX webauthn_users_handle ON webauthn_users (app_id, handle);
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    label           TEXT NOT NULL,
    data            BYTEA NOT NULL,
    sign_count      BIGINT NOT NULL,
    aaguid          BYTEA NOT NULL,
    transports      TEXT NOT NULL,
    backup_eligible BIGINT NOT NULL,
    backup_state    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX passkeys_user ON passkeys (app_id, user_id);
CREATE TABLE ceremonies (
    challenge   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    ticket_hash BYTEA NOT NULL,
    session     BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE TABLE user_policies (
    app_id  TEXT NOT NULL,
    user_id TEXT NOT NULL,
    policy  TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
