-- Tokens of the admin HTTP API, as keyed hashes: the two newest are valid (rotation overlap).
CREATE TABLE admin_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
