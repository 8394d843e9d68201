ALTER TABLE apps ADD COLUMN rp_id TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN passkey_policy TEXT NOT NULL DEFAULT 'totp_fallback';
CREATE TABLE webauthn_users (
    app_id  TEXT NOT NULL,
    user_id TEXT NOT NULL,
    handle  BLOB NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE UNIQUE INDEX webauthn_users_handle ON webauthn_users (app_id, handle);
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    label           TEXT NOT NULL,
    data            BLOB NOT NULL,
    sign_count      INTEGER NOT NULL,
    aaguid          BLOB NOT NULL,
    transports      TEXT NOT NULL,
    backup_eligible INTEGER NOT NULL,
    backup_state    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX passkeys_user ON passkeys (app_id, user_id);
CREATE TABLE ceremonies (
    challenge   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    ticket_hash BLOB NOT NULL,
    session     BLOB NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE TABLE user_policies (
    app_id  TEXT NOT NULL,
    user_id TEXT NOT NULL,
    policy  TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
