-- The directory: accounts found by a substring of their id, name or email, and
-- who is in a call now (presence's `busy`), kept with every transition.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE users ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
UPDATE users SET search_text = lower(user_id || ' ' || display_name || ' ' || coalesce(email, '')),
                 name_key = lower(display_name);
-- An empty search lists a domain by name (byte order, as on SQLite): this index serves it in order.
CREATE INDEX users_directory ON users (domain_id, name_key COLLATE "C", id);
-- Substrings (LIKE '%…%') are found through trigrams.
CREATE INDEX users_search ON users USING gin (search_text gin_trgm_ops);

-- 1 while the contact is in the call (a Join without a later Leave).
ALTER TABLE call_contacts ADD COLUMN joined BIGINT NOT NULL DEFAULT 0;
UPDATE call_contacts SET joined = 1
 WHERE (SELECT count(*) FROM call_events e WHERE e.call_pk = call_contacts.call_pk
          AND e.contact_id = call_contacts.contact_id AND e.kind = 'Join')
     > (SELECT count(*) FROM call_events e WHERE e.call_pk = call_contacts.call_pk
          AND e.contact_id = call_contacts.contact_id AND e.kind = 'Leave');
CREATE INDEX call_contacts_joined ON call_contacts (user_db_id, call_pk) WHERE joined = 1;
