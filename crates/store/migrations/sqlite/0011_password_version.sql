-- Every password change raises the user's password version; a session records the version of
-- the password it was signed in with. A session is stored only while that version is current
-- (a sign-in checked against the old password cannot land after the change), and offline
-- access is granted only from a session of the current version (exact, unlike comparing
-- times in whole seconds).
ALTER TABLE users ADD COLUMN password_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN password_version INTEGER NOT NULL DEFAULT 0;
