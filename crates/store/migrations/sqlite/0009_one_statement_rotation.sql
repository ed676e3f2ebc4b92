-- A rotation in one statement: the successor is inserted only while its parent is live, and
-- storing it marks the parent rotated (this trigger), atomically. No transaction round trips.
ALTER TABLE refresh_tokens ADD COLUMN parent_hash TEXT;

CREATE TRIGGER refresh_successor_rotates_parent
AFTER INSERT ON refresh_tokens
WHEN NEW.parent_hash IS NOT NULL
BEGIN
    UPDATE refresh_tokens SET rotated_at = NEW.created_at
    WHERE token_hash = NEW.parent_hash AND rotated_at IS NULL;
END;
