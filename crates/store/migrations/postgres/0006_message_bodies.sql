-- Each distinct notification body is stored once: a call's pop-up goes alike to
-- every callee and its events to every member, so ten invitees' 32 messages hold
-- 3 or 4 bodies (issue 14). A message is its user, its seq and the body after
-- `{"seq":N` (`rest`).
CREATE TABLE message_bodies (
    id BIGSERIAL PRIMARY KEY,
    rest TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX message_bodies_age ON message_bodies (created_at);

-- Every stored message keeps its body: one body row each, numbered in key order.
ALTER TABLE user_messages ADD COLUMN body_id BIGINT;
UPDATE user_messages m SET body_id = x.n
    FROM (SELECT user_db_id, seq, row_number() OVER (ORDER BY user_db_id, seq) AS n FROM user_messages) x
    WHERE m.user_db_id = x.user_db_id AND m.seq = x.seq;
INSERT INTO message_bodies (id, rest, created_at)
    SELECT body_id, substr(body, length('{"seq":' || seq) + 1), created_at FROM user_messages;
SELECT setval(pg_get_serial_sequence('message_bodies', 'id'), COALESCE(max(id), 0) + 1, false) FROM message_bodies;
ALTER TABLE user_messages ALTER COLUMN body_id SET NOT NULL, DROP COLUMN body;
