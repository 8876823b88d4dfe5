-- 004_rate_events (PostgreSQL): one row per admitted request under a shared per-user rate limit,
-- so every replica behind this database draws on one budget per person (bot/ratelimit.py,
-- SharedRateLimiter). Rows older than the window are pruned as the limiter goes; ``key`` is
-- "<limit name>:<user id>", ``at`` wall-clock seconds (replicas share no monotonic clock).
CREATE TABLE rate_events (
    key TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX rate_events_key_at ON rate_events (key, at);
CREATE INDEX rate_events_at ON rate_events (at);
