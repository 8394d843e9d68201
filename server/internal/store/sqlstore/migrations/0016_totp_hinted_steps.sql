-- The steps whose codes a clock hint said were ahead of the verifier's time: a wrong code
-- that is a later step's. AdvanceTOTP refuses these steps, or whoever guessed such a code
-- would wait for its step and sign in with it. A mark is kept until its step can no longer
-- be accepted (until), then swept.
CREATE TABLE totp_hinted_steps (
    credential_id TEXT NOT NULL,
    step          INTEGER NOT NULL,
    until         INTEGER NOT NULL,
    PRIMARY KEY (credential_id, step)
);
CREATE INDEX totp_hinted_steps_until ON totp_hinted_steps (until);
