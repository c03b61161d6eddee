-- How many times a call has changed (`Call::version`): every stored change of the
-- call, its contacts or its events adds one. A node keeps a call's rendered log
-- while the row's version still matches (getCallLogById), and the SQLite writer
-- checks a transition's call is unchanged by it.
ALTER TABLE calls ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
