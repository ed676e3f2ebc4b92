-- A sign-in's history (one user's login.succeeded events, newest first) is read by the
-- detections on every sign-in: an index on the user alone makes that a scan of all the
-- user's events (a busy user has many token.refreshed ones).
CREATE INDEX audit_events_user_kind ON audit_events (user_id, kind, id);
