-- Per-client session policy, which can only tighten the server's (NULL: the server's figure).
ALTER TABLE clients ADD COLUMN access_token_ttl INTEGER CHECK (access_token_ttl IS NULL OR access_token_ttl > 0);
ALTER TABLE clients ADD COLUMN session_max_age INTEGER CHECK (session_max_age IS NULL OR session_max_age > 0);
ALTER TABLE clients ADD COLUMN session_idle INTEGER CHECK (session_idle IS NULL OR session_idle > 0);
