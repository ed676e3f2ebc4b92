-- Revocation (RFC 7009), introspection (RFC 7662) and offline refresh tokens.

-- Offline refresh tokens (`offline_access`) outlive the browser session they came from: ending
-- the session leaves them alone; revocation, user disable and password change still end them.
-- Their idle limit is measured from `created_at`, since every use creates the next token.
ALTER TABLE refresh_tokens ADD COLUMN offline INTEGER NOT NULL DEFAULT 0 CHECK (offline IN (0, 1));

-- Access tokens revoked before their `exp`. A row is only needed until that `exp`, then the
-- token is dead anyway and the purge loop removes it.
CREATE TABLE revoked_access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

-- Credentials an API (resource server) uses at the introspection endpoint, as keyed hashes.
-- Like client secrets, only the two newest stay active (rotation overlap).
CREATE TABLE api_secrets (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    audience    TEXT    NOT NULL REFERENCES apis (audience) ON DELETE CASCADE,
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX api_secrets_audience ON api_secrets (audience, id);
