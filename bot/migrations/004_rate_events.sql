-- 004_rate_events: the shared per-user rate limit's events, as in postgres/004_rate_events.sql.
-- SQLite serves one process, whose in-memory limiter is enough, so this table stays empty there;
-- it exists so that "schema version 4" means the same schema on both backends.
CREATE TABLE rate_events (
    key TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX rate_events_key_at ON rate_events (key, at);
CREATE INDEX rate_events_at ON rate_events (at);
