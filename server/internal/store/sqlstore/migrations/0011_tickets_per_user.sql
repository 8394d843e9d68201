-- A change of a user's factors ends the elevation of the user's other tickets, and a
-- support reset removes them: both find them through this index.
CREATE INDEX tickets_user ON tickets (app_id, user_id);
