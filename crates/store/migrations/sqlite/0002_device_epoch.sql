-- Device cookies carry the user's device epoch in their signature: raising it revokes every
-- device cookie of that user at once (`portcullis users revoke-devices`).
ALTER TABLE users ADD COLUMN device_epoch INTEGER NOT NULL DEFAULT 0;
