-- Each distinct notification body is stored once: a call's pop-up goes alike to
-- every callee and its events to every member, so ten invitees' 32 messages hold
-- 3 or 4 bodies (issue 14: the copies were most of what the writer wrote). A
-- message is its user, its seq and the body after `{"seq":N` (`rest`).
-- `user_messages` has no rowid now: its rows live in its key's B-tree, one tree
-- fewer to write per message.
CREATE TABLE message_bodies (
    id INTEGER PRIMARY KEY,
    rest TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX message_bodies_age ON message_bodies (created_at);

-- Every stored message keeps its body: `rest` is the body after `{"seq":N`.
INSERT INTO message_bodies (id, rest, created_at)
    SELECT rowid, substr(body, length('{"seq":' || seq) + 1), created_at FROM user_messages;
CREATE TABLE user_messages_new (
    user_db_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    body_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_db_id, seq)
) WITHOUT ROWID;
INSERT INTO user_messages_new (user_db_id, seq, body_id, created_at)
    SELECT user_db_id, seq, rowid, created_at FROM user_messages;
DROP TABLE user_messages;
ALTER TABLE user_messages_new RENAME TO user_messages;
CREATE INDEX user_messages_age ON user_messages (created_at);
