CREATE TABLE used_once (
    key   TEXT PRIMARY KEY,
    until INTEGER NOT NULL
);
