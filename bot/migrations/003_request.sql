-- 003_request: what was understood from the message an answer replied to (genre, artist,
-- situation, energy, strategy … as JSON; never the raw text), so refinements ("더 신나게",
-- "2번 같은 거") keep the thread across a restart. NULL for answers stored before this.
ALTER TABLE recommendations ADD COLUMN request TEXT;
