-- Emergency revocation of a signing key: it leaves JWKS and the key set at once, so nothing it
-- signed verifies any more. The row stays for the record (its private part is erased).
ALTER TABLE signing_keys ADD COLUMN revoked_at INTEGER;
