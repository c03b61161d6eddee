-- callhub's schema on SQLite. Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE domains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    user_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT,
    phone_number TEXT,
    roles TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (domain_id, user_id)
);
CREATE INDEX users_user_id ON users (user_id);

CREATE TABLE teams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    name TEXT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE team_members (
    team_id BIGINT NOT NULL REFERENCES teams(id),
    user_db_id BIGINT NOT NULL REFERENCES users(id),
    PRIMARY KEY (team_id, user_db_id)
);

CREATE TABLE token_families (
    id TEXT PRIMARY KEY,
    user_db_id BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES token_families(id),
    expires_at BIGINT NOT NULL,
    spent_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL UNIQUE,
    domain TEXT NOT NULL,
    title TEXT NOT NULL,
    reason TEXT NOT NULL,
    call_type TEXT NOT NULL,
    status TEXT NOT NULL,
    anonymous_join_allowed BIGINT NOT NULL,
    inform_others_directly BIGINT NOT NULL,
    planned_at BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    broker_user_id BIGINT,
    ring_pending_at BIGINT,
    next_deadline BIGINT,
    teams TEXT NOT NULL
);
CREATE INDEX calls_next_deadline ON calls (next_deadline) WHERE next_deadline IS NOT NULL;
CREATE INDEX calls_broker ON calls (broker_user_id) WHERE broker_user_id IS NOT NULL;

CREATE TABLE call_contacts (
    call_pk BIGINT NOT NULL REFERENCES calls(id),
    contact_id BIGINT NOT NULL,
    origin TEXT NOT NULL,
    display_name TEXT,
    domain TEXT,
    email TEXT,
    phone_number TEXT,
    user_db_id BIGINT,
    user_id TEXT,
    ringing_since BIGINT,
    PRIMARY KEY (call_pk, contact_id)
);
CREATE INDEX call_contacts_user ON call_contacts (user_db_id, call_pk) WHERE user_db_id IS NOT NULL;

CREATE TABLE call_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_pk BIGINT NOT NULL REFERENCES calls(id),
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    contact_id BIGINT NOT NULL
);
CREATE INDEX call_events_call ON call_events (call_pk, id);

CREATE TABLE user_messages (
    user_db_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_db_id, seq)
);
CREATE INDEX user_messages_age ON user_messages (created_at);
