-- When the password last changed: grants authenticated before it cannot start a refresh
-- family afterwards, even if their insert races the change's sweep.
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;

-- The purge finds revoked refresh tokens by this.
CREATE INDEX refresh_tokens_revoked_at ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
