-- Ed25519 signing keys (`EdDSA`, RFC 8037) for access tokens, the default of new deployments.
-- A deployment that already has keys keeps ES256 access tokens (its APIs may not accept EdDSA)
-- until its operator sets PORTCULLIS_ACCESS_TOKEN_ALG: that is recorded here, once.
CREATE TABLE deployment_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

INSERT INTO deployment_settings (name, value)
    SELECT 'access_token_alg', 'ES256' WHERE EXISTS (SELECT 1 FROM signing_keys);

-- SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with the same columns and rows (no other table
-- refers to it). The rowid is copied too: listings break ties of `created_at` by it.
CREATE TABLE signing_keys_new (
    kid              TEXT    NOT NULL PRIMARY KEY,
    alg              TEXT    NOT NULL CHECK (alg IN ('RS256', 'ES256', 'EdDSA')),
    private_key_blob TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    activates_at     INTEGER NOT NULL,
    retired_at       INTEGER,
    revoked_at       INTEGER
) STRICT;

INSERT INTO signing_keys_new (rowid, kid, alg, private_key_blob, created_at, activates_at, retired_at, revoked_at)
    SELECT rowid, kid, alg, private_key_blob, created_at, activates_at, retired_at, revoked_at FROM signing_keys;

DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
CREATE INDEX signing_keys_created_at ON signing_keys (created_at);
