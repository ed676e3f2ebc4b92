-- What a user sees of their sessions (device and address at sign-in), and the idle timeout
-- of the policy the session was created under (NULL: no idle timeout).
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN address TEXT;
ALTER TABLE sessions ADD COLUMN idle_timeout INTEGER CHECK (idle_timeout IS NULL OR idle_timeout > 0);

CREATE INDEX sessions_user_active ON sessions (user_id, created_at) WHERE revoked_at IS NULL;

-- Using a session-bound refresh token is activity in its session: the rotation's own UPDATE
-- moves the session's last activity, in the same statement (no extra round trip), and only
-- where an idle timeout makes it matter.
CREATE TRIGGER refresh_rotation_touches_session
AFTER UPDATE OF rotated_at ON refresh_tokens
WHEN NEW.rotated_at IS NOT NULL AND OLD.rotated_at IS NULL AND NEW.offline = 0
BEGIN
    UPDATE sessions SET last_seen_at = MAX(last_seen_at, NEW.rotated_at)
    WHERE id = NEW.session_id AND idle_timeout IS NOT NULL;
END;
