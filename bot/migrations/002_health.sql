-- 002_health: one row that /healthz rewrites to prove the database still takes writes
-- (a full disk or a read-only file still answers reads). See Store.check_writable.
CREATE TABLE health_probe (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  REAL NOT NULL
);
