-- 003_request (PostgreSQL): what was understood from the message an answer replied to, as JSON
-- text (never the raw text), as in ../003_request.sql. NULL for answers stored before this.
ALTER TABLE recommendations ADD COLUMN request TEXT;
