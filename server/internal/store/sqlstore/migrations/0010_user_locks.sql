-- One row per user whose factors a transaction changes: writing it first makes such
-- transactions of one user wait for each other on PostgreSQL. Writing every factor row of
-- the user instead deadlocked now and then: two statements that lock many rows may meet
-- them in different orders.
CREATE TABLE user_locks (
    app_id  TEXT NOT NULL,
    user_id TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
