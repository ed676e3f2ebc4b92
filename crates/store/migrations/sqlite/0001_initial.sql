-- Portcullis schema for SQLite.
--
-- Conventions: times are INTEGER Unix seconds; booleans are INTEGER 0/1; lists of strings are
-- JSON arrays in TEXT columns; secrets (tokens, codes, cookies, client secrets) are stored only
-- as keyed hashes. Tables are STRICT so that a wrongly typed bind fails instead of being
-- silently coerced. Every foreign key that points at a user cascades on delete, so deleting a
-- user removes its sessions, codes and refresh tokens (the pool enables `foreign_keys`).

CREATE TABLE users (
    id             TEXT    NOT NULL PRIMARY KEY,
    email          TEXT    NOT NULL,
    email_key      TEXT    NOT NULL UNIQUE,
    email_verified INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    password_hash  TEXT    NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX users_created_at ON users (created_at);

CREATE TABLE clients (
    id                        TEXT    NOT NULL PRIMARY KEY,
    name                      TEXT    NOT NULL,
    kind                      TEXT    NOT NULL CHECK (kind IN ('confidential', 'public')),
    redirect_uris             TEXT    NOT NULL CHECK (json_valid(redirect_uris)),
    post_logout_redirect_uris TEXT    NOT NULL CHECK (json_valid(post_logout_redirect_uris)),
    grants                    TEXT    NOT NULL CHECK (json_valid(grants)),
    apis                      TEXT    NOT NULL CHECK (json_valid(apis)),
    scopes                    TEXT    NOT NULL CHECK (json_valid(scopes)),
    first_party               INTEGER NOT NULL CHECK (first_party IN (0, 1)),
    id_token_alg              TEXT    NOT NULL CHECK (id_token_alg IN ('RS256', 'ES256')),
    disabled                  INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at                INTEGER NOT NULL
) STRICT;

CREATE INDEX clients_created_at ON clients (created_at);

-- `id` orders secrets by insertion (AUTOINCREMENT never reuses a value), so "newest" does not
-- depend on clocks agreeing.
CREATE TABLE client_secrets (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX client_secrets_client ON client_secrets (client_id, id);

CREATE TABLE apis (
    audience   TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    scopes     TEXT    NOT NULL CHECK (json_valid(scopes)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid              TEXT    NOT NULL PRIMARY KEY,
    alg              TEXT    NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    private_key_blob TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    activates_at     INTEGER NOT NULL,
    retired_at       INTEGER
) STRICT;

CREATE INDEX signing_keys_created_at ON signing_keys (created_at);

-- Pending authorization requests, keyed by the hash of the flow cookie.
CREATE TABLE flows (
    cookie_hash TEXT    NOT NULL PRIMARY KEY,
    csrf_token  TEXT    NOT NULL,
    request     TEXT    NOT NULL CHECK (json_valid(request)),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX flows_expires_at ON flows (expires_at);

CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    cookie_hash  TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- `replayed_at` records a second redemption, so that a family attached (or a token issued)
-- after the replay is revoked too: see `set_code_family` and `insert_refresh_token`.
CREATE TABLE auth_codes (
    code_hash      TEXT    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    redirect_uri   TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    scope          TEXT    NOT NULL CHECK (json_valid(scope)),
    audience       TEXT,
    nonce          TEXT,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    auth_time      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER,
    family_id      TEXT,
    replayed_at    INTEGER
) STRICT;

CREATE INDEX auth_codes_client ON auth_codes (client_id);
CREATE INDEX auth_codes_user ON auth_codes (user_id);
CREATE INDEX auth_codes_session ON auth_codes (session_id);
CREATE INDEX auth_codes_family ON auth_codes (family_id) WHERE family_id IS NOT NULL;
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    family_id  TEXT    NOT NULL,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    scope      TEXT    NOT NULL CHECK (json_valid(scope)),
    audience   TEXT,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER
) STRICT;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
