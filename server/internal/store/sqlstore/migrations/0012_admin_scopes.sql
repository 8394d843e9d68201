-- An admin app with rows here may reset the users of those apps only; one without rows,
-- the users of every ordinary app.
CREATE TABLE admin_scopes (
    admin_app_id TEXT NOT NULL REFERENCES admin_apps (app_id),
    app_id       TEXT NOT NULL REFERENCES apps (id),
    PRIMARY KEY (admin_app_id, app_id)
);
