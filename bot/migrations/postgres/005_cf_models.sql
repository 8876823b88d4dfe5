-- 005_cf_models (PostgreSQL): the newest CF models as packed artifacts (bot/cf_share.py), so a
-- model trained on one replica reaches every replica behind this database, even on hosts that
-- share no disk. ``archive`` is a tar of the artifact's files exactly as `moodtune train-cf`
-- wrote them (cf.json carries their checksums); ``trained_at`` orders models (unix seconds,
-- from cf.json), ``published_at`` says when a replica put it here. Only the newest few are kept.
CREATE TABLE cf_models (
    model_id TEXT PRIMARY KEY,
    trained_at DOUBLE PRECISION NOT NULL,
    published_at DOUBLE PRECISION NOT NULL,
    archive BYTEA NOT NULL
);
CREATE INDEX cf_models_trained_at ON cf_models (trained_at DESC, model_id DESC);
