-- The audit trail. Events outlive what they name (users, clients, sessions), so no foreign
-- keys; ids are kept as text. Retention is by `at` (the server purges old rows).
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    reason TEXT,
    user_id TEXT,
    client_id TEXT,
    address TEXT,
    user_agent TEXT,
    session_id TEXT,
    request_id TEXT,
    detail TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, id);
CREATE INDEX audit_events_client ON audit_events (client_id, id);
CREATE INDEX audit_events_kind ON audit_events (kind, id);
