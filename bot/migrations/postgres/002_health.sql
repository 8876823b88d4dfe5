-- 002_health (PostgreSQL): one row that /healthz rewrites to prove the database still takes
-- writes (a read-only replica or a full disk still answers reads). See PgStore.check_writable.
CREATE TABLE health_probe (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  DOUBLE PRECISION NOT NULL
);
