-- 001_init: the bot's own tables (see ../shared/DESIGN.md, "Storage").
--
-- Applied once by bot/store.py inside a BEGIN IMMEDIATE transaction and recorded in
-- schema_version; never edit a released migration, add 002_*.sql instead. No PRAGMAs and no
-- BEGIN/COMMIT here: the store owns connection settings and the transaction.
-- Timestamps are unix seconds (REAL) from the store's clock.

-- Everyone who has been shown a recommendation. `channel` is where we last talked to them
-- (discord / kakao / console), kept so stats can split by door.
CREATE TABLE users (
    user_id     TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL
);

-- One row per answer. rec_id is what ties later feedback to exactly what was shown.
-- emotion: JSON array in inference.emotions.LABELS order.
-- text: the user's message, NULL unless STORE_MESSAGE_TEXT=true (privacy default).
CREATE TABLE recommendations (
    rec_id      TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    source      TEXT NOT NULL,
    emotion     TEXT NOT NULL,
    text        TEXT,
    created_at  REAL NOT NULL
);
-- Hot path: the no-repeat window (a user's last N answers) and /history.
CREATE INDEX recommendations_user_time ON recommendations (user_id, created_at);
-- stats(): answers in the last 24 h.
CREATE INDEX recommendations_time ON recommendations (created_at);

-- The tracks of one answer, in the order shown (position 0 = first).
-- UNIQUE (rec_id, song_id): feedback names a track by (rec_id, song_id), so a song may appear
-- only once per answer; the index it creates also serves the "was it shown?" check.
CREATE TABLE recommendation_items (
    rec_id    TEXT NOT NULL REFERENCES recommendations (rec_id) ON DELETE CASCADE,
    position  INTEGER NOT NULL CHECK (position >= 0),
    song_id   TEXT NOT NULL,
    score     REAL NOT NULL,
    PRIMARY KEY (rec_id, position),
    UNIQUE (rec_id, song_id)
) WITHOUT ROWID;

-- What people told us about a shown track. user_id is the person who reacted (in a Discord
-- channel that need not be the one the answer was for), so it has no FK to users.
-- rec_id becomes NULL when the recommendation's owner is forgotten: the reactor's own signal
-- stays for CF, the link to the forgotten person goes.
-- UNIQUE (rec_id, song_id, user_id, signal): Discord re-delivers reactions; storing is idempotent.
-- signal values = bot.feedback.Signal; scope: 'track' (button/console/Kakao for one track) or
-- 'message' (a reaction on the whole reply, recorded for each of its tracks).
CREATE TABLE feedback (
    id          INTEGER PRIMARY KEY,
    rec_id      TEXT REFERENCES recommendations (rec_id) ON DELETE SET NULL,
    song_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    signal      TEXT NOT NULL CHECK (signal IN ('love', 'like', 'play', 'skip', 'dislike')),
    scope       TEXT NOT NULL DEFAULT 'track' CHECK (scope IN ('track', 'message')),
    created_at  REAL NOT NULL,
    UNIQUE (rec_id, song_id, user_id, signal)
);
-- CF training reads events by time window; stats() counts the last 24 h.
CREATE INDEX feedback_time ON feedback (created_at);
-- forget_user() and per-user CF lookups.
CREATE INDEX feedback_user ON feedback (user_id);

-- Discord message id -> the answer it shows, so reactions on messages that fell out of
-- discord.py's cache still find their rec_id. PRIMARY KEY = the lookup index.
CREATE TABLE message_links (
    message_id  TEXT PRIMARY KEY,
    rec_id      TEXT NOT NULL REFERENCES recommendations (rec_id) ON DELETE CASCADE,
    created_at  REAL NOT NULL
);
CREATE INDEX message_links_rec ON message_links (rec_id);

-- Per-guild settings: channels where the bot answers without being mentioned.
CREATE TABLE guild_channels (
    guild_id    TEXT NOT NULL,
    channel_id  TEXT NOT NULL,
    enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at  REAL NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
) WITHOUT ROWID;
