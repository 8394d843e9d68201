-- The operator's leave for a user of an admin app to set up a first factor through a
-- ticket (`twofold users reset`): without it, whoever holds an admin app's API key could
-- name a new user there, enroll an authenticator of their own and call the admin API.
CREATE TABLE first_factor_allowances (
    app_id  TEXT NOT NULL,
    user_id TEXT NOT NULL,
    until   INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE INDEX first_factor_allowances_until ON first_factor_allowances (until);
