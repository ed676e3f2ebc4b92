-- A rotation is activity in its session whether or not the session has an idle timeout of its
-- own: a client's idle timeout (`clients.session_idle`) is measured on the same activity.
DROP TRIGGER refresh_rotation_touches_session;

CREATE TRIGGER refresh_rotation_touches_session
AFTER UPDATE OF rotated_at ON refresh_tokens
WHEN NEW.rotated_at IS NOT NULL AND OLD.rotated_at IS NULL AND NEW.offline = 0
BEGIN
    UPDATE sessions SET last_seen_at = MAX(last_seen_at, NEW.rotated_at)
    WHERE id = NEW.session_id;
END;
