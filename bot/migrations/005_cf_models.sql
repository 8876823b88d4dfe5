-- 005_cf_models: packed CF artifacts, as in postgres/005_cf_models.sql. A single SQLite process
-- reads its model from CF_PATH, so this table normally stays empty; it exists so that "schema
-- version 5" means the same schema on both backends (and SHARED_STATE=true can use it).
CREATE TABLE cf_models (
    model_id TEXT PRIMARY KEY,
    trained_at REAL NOT NULL,
    published_at REAL NOT NULL,
    archive BLOB NOT NULL
);
CREATE INDEX cf_models_trained_at ON cf_models (trained_at DESC, model_id DESC);
