-- Guest links, webhooks, and the outbox of mail, SMS and webhook deliveries.
ALTER TABLE calls ADD COLUMN guest_token_hash TEXT;

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX webhooks_domain ON webhooks (domain) WHERE deleted_at IS NULL;

-- One row per message to send, written with the call change that caused it.
-- status: pending (to send; locked_until is a worker's lease), sent, logged
-- (no provider configured), failed (gave up), cancelled (its webhook was deleted).
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_pk BIGINT NOT NULL REFERENCES calls(id),
    channel TEXT NOT NULL,
    contact_id BIGINT,
    event_id BIGINT,
    webhook_id BIGINT REFERENCES webhooks(id),
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    done_at BIGINT,
    last_error TEXT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_call ON deliveries (call_pk, id);
CREATE INDEX deliveries_webhook_order ON deliveries (call_pk, webhook_id, id) WHERE status = 'pending';

CREATE TABLE delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT NOT NULL REFERENCES deliveries(id),
    attempt BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
