-- Each serving verifier says which master keys it holds and how it learns a new one, so
-- that `keys rotate-master` can refuse to re-seal under a key a running instance lacks
-- (it would answer 500 for every user whose secret was re-sealed), and where it keeps
-- attempt budgets, so that `users reset` clears them where they are.
CREATE TABLE instances (
    id      TEXT PRIMARY KEY,
    host    TEXT NOT NULL,
    key_ids TEXT NOT NULL,   -- hex key IDs, comma-separated, the primary first
    follows TEXT NOT NULL,   -- '' (its environment), 'command', or 'file HOST:PATH'
    budgets TEXT NOT NULL,   -- '' (in this database) or 'redis PREFIX'
    seen_at BIGINT NOT NULL
);
