-- OpenID Connect Back-Channel Logout: where each client wants logout tokens, which clients
-- received tokens in which session, and the outbox of notices still to deliver.

ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;

-- One row per (session, client) once a code of that session is redeemed by that client (in the
-- redemption's own transaction). `notified_at` is set, in the transaction that ends the
-- session (or by the sweep for sessions that expired), when the notice was queued: each
-- session is announced to each client once.
CREATE TABLE session_clients (
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id   TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    notified_at INTEGER,
    PRIMARY KEY (session_id, client_id)
) STRICT;

CREATE INDEX session_clients_client ON session_clients (client_id);
CREATE INDEX session_clients_pending ON session_clients (session_id) WHERE notified_at IS NULL;

-- Logout notices to deliver. No foreign key to the session or the user: a notice outlives the
-- purge of its session (and the deletion of its user). `next_attempt_at` is pushed ahead by a
-- lease while a delivery is in flight, so a crash mid-delivery retries after the lease.
CREATE TABLE backchannel_outbox (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    client_id       TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    session_id      TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL
) STRICT;

CREATE INDEX backchannel_outbox_due ON backchannel_outbox (next_attempt_at);
CREATE INDEX backchannel_outbox_client ON backchannel_outbox (client_id);
