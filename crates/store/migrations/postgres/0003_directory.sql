-- The directory: a version that every new account or team bumps, so each node
-- knows when to reload the listing it searches in memory.
CREATE TABLE directory_changes (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO directory_changes (id, version) VALUES (1, 0);

-- Presence's `busy`: 1 while the contact is in the call (a Join without a later
-- Leave), kept with every transition.
ALTER TABLE call_contacts ADD COLUMN joined BIGINT NOT NULL DEFAULT 0;
UPDATE call_contacts SET joined = 1
 WHERE (SELECT count(*) FROM call_events e WHERE e.call_pk = call_contacts.call_pk
          AND e.contact_id = call_contacts.contact_id AND e.kind = 'Join')
     > (SELECT count(*) FROM call_events e WHERE e.call_pk = call_contacts.call_pk
          AND e.contact_id = call_contacts.contact_id AND e.kind = 'Leave');
CREATE INDEX call_contacts_joined ON call_contacts (user_db_id, call_pk) WHERE joined = 1;
