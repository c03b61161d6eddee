//! A call's writes on PostgreSQL: a new call in two round trips instead of
//! eleven, a change of one in six instead of about twelve.
//!
//! `save` writes a transition statement by statement (BEGIN, the call, its
//! contacts, events, who is busy, the users' message counters, the messages, two
//! kinds of deliveries, COMMIT): on SQLite's writer thread each is a function call,
//! on PostgreSQL each is a round trip, and those bounded createCall. Here:
//!
//! 1. One query draws the call's id and its events' ids from their sequences and
//!    answers which of the rung users are busy in another call: the messages
//!    carry those ids and that flag, so they are made in Rust before anything is
//!    written.
//! 2. One statement writes everything, in data-modifying `WITH` clauses: the rows
//!    go as JSON arrays (one bound value each, whatever the count), the users'
//!    counters give each message its `seq`, and the deliveries are counted. One
//!    statement outside a transaction block is its own transaction: it commits
//!    whole, durably (`synchronous_commit` on), or not at all.
//!
//! The ids drawn in 1 are lost if 2 fails, as ids of a rolled-back insert are:
//! sequences only promise unique ids, not gapless ones.
//!
//! A change of a call (a join, a decline, a hang-up) runs in a transaction:
//! BEGIN, the call locked (`SELECT … FOR UPDATE`, a statement of its own: a read
//! in the same statement would miss what the lock's holder wrote), the call read,
//! then 1 for its new events, then 2 with `UPDATE_CALL` and the changed contacts
//! in its place of the new call's row, and COMMIT.

use std::collections::HashMap;
use std::sync::LazyLock;

use callhub_core::{Call, Transition, UserDbId, notifications};
use chrono::Utc;

use crate::db::{Db, Val};
use crate::sql::{
    CONTACT_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS, UPDATE_CALL, after_seqs, busy_select,
    call_columns, call_update_values, call_values, changed_contact_rows, contact_rows, event_rows,
    planned_deliveries, rang_users, with_seq,
};
use crate::{Message, Result, StoreError};

/// Writes a new call (`t` from `create`) with its messages and deliveries; answers
/// the messages and how many deliveries. Fills in the ids of the call and its events.
pub(crate) async fn insert_call<D: Db>(
    db: &mut D,
    ring_timeout: chrono::Duration,
    t: &mut Transition,
) -> Result<(Vec<Message>, usize)> {
    let busy = draw_ids(db, t, None).await?;
    let mut args = vec![Val::Int(Some(t.call.id))];
    args.extend(call_values(&t.call, ring_timeout)?);
    write(db, &INSERT_SQL, args, t, None, &busy).await
}

/// Writes what `t` changed of `old` (locked by the caller's transaction, which
/// commits): the call's fields, new and changed contacts, new events, messages
/// and deliveries, in one statement after the ids are drawn. Answers the messages
/// and how many deliveries.
pub(crate) async fn update_call<D: Db>(
    db: &mut D,
    ring_timeout: chrono::Duration,
    old: &Call,
    t: &mut Transition,
) -> Result<(Vec<Message>, usize)> {
    t.call.version = old.version + 1;
    let busy = draw_ids(db, t, Some(old)).await?;
    let args = call_update_values(&t.call, ring_timeout)?;
    write(db, &UPDATE_SQL, args, t, Some(old), &busy).await
}

/// Runs `sql` (`INSERT_SQL` or `UPDATE_SQL`) with the call's own values `args`
/// and the rows of what changed since `old`.
async fn write<D: Db>(
    db: &mut D,
    sql: &str,
    mut args: Vec<Val>,
    t: &Transition,
    old: Option<&Call>,
    busy: &[UserDbId],
) -> Result<(Vec<Message>, usize)> {
    let (old_contacts, old_events) = old.map_or((0, 0), |c| (c.contacts.len(), c.events.len()));
    let notes = notifications(t, old_events, busy);
    let call = &t.call;
    let now = Utc::now().timestamp_millis();
    let (texts, which) = after_seqs(&notes)?;
    let messages: Vec<Vec<Val>> = notes
        .iter()
        .zip(&which)
        .map(|((user, _), &i)| vec![Val::Int(Some(*user)), Val::text(&texts[i])])
        .collect();
    let (invitations, webhook_events) = planned_deliveries(t, old_events, now);
    let mut events = event_rows(call, old_events);
    for (row, e) in events.iter_mut().zip(&call.events[old_events..]) {
        row.push(Val::Int(Some(e.id)));
    }
    args.extend([
        json_rows(&contact_rows(call, old_contacts)),
        json_rows(&events),
        json_rows(&invitations),
        Val::Text(Some(serde_json::Value::from(webhook_events).to_string())),
        Val::Int(Some(now)),
        json_rows(&messages),
        Val::Text(Some(id_array(notes.iter().map(|(u, _)| *u)))),
        Val::text(&call.domain),
    ]);
    if let Some(old) = old {
        args.push(json_rows(&changed_contact_rows(old, call)));
    }
    let answered = db
        .rows(sql, &args, |r| Ok((r.req_int(0)?, r.req_int(1)?)))
        .await?;
    // The row with user -1 counts the deliveries; the others are each user's last
    // `seq` before this transition's messages.
    let mut deliveries = 0;
    let mut next = HashMap::new();
    for (user, n) in answered {
        if user == -1 {
            deliveries = n as usize;
        } else {
            next.insert(user, n + 1);
        }
    }
    let mut out = Vec::with_capacity(notes.len());
    for ((user, _), &i) in notes.iter().zip(&which) {
        let Some(seq) = next.get_mut(user) else {
            continue; // an account deleted since: the statement wrote none for it
        };
        out.push(Message {
            user: *user,
            seq: *seq,
            body: with_seq(*seq, &texts[i]),
        });
        *seq += 1;
    }
    Ok((out, deliveries))
}

/// Gives a new call (`old` none) its id, and the events past `old`'s theirs;
/// answers which rung users are busy in another call.
async fn draw_ids<D: Db>(
    db: &mut D,
    t: &mut Transition,
    old: Option<&Call>,
) -> Result<Vec<UserDbId>> {
    let rang = rang_users(t);
    let old_events = old.map_or(0, |c| c.events.len());
    // The identity columns' sequences by name: `pg_get_serial_sequence` took ten
    // times as long as the rest of this query (0.39 against 0.04 ms).
    let mut sql = "SELECT 1, nextval('call_events_id_seq') FROM generate_series(1, $1)".to_owned();
    if old.is_none() {
        sql.push_str(" UNION ALL SELECT 0, nextval('calls_id_seq')");
    }
    if !rang.is_empty() {
        // A callee already in another call still rings; their pop-up says the call waits.
        sql.push_str(&format!(
            " UNION ALL SELECT 2, b.column1 FROM ({}) b",
            busy_select(2, rang.len(), old.map(|_| 2 + rang.len()))
        ));
    }
    let mut args = vec![Val::Int(Some((t.call.events.len() - old_events) as i64))];
    args.extend(rang.iter().map(|&u| Val::Int(Some(u))));
    if old.is_some() && !rang.is_empty() {
        args.push(Val::Int(Some(t.call.id))); // not busy in this call itself
    }
    let rows = db
        .rows(&sql, &args, |r| Ok((r.req_int(0)?, r.req_int(1)?)))
        .await?;
    let mut event_ids = Vec::with_capacity(t.call.events.len() - old_events);
    let mut busy = Vec::new();
    for (kind, value) in rows {
        match kind {
            0 => t.call.id = value,
            1 => event_ids.push(value),
            _ => busy.push(value),
        }
    }
    // Drawn in the events' order; sorted, they are theirs in order.
    event_ids.sort_unstable();
    if t.call.id == 0 || event_ids.len() != t.call.events.len() - old_events {
        return Err(StoreError::Corrupt(
            "PostgreSQL gave no id for the call or an event".into(),
        ));
    }
    for (e, id) in t.call.events[old_events..].iter_mut().zip(event_ids) {
        e.id = id;
    }
    Ok(busy)
}

/// The distinct ids as an array literal (`{1,2,3}`): users found by `= ANY` of it
/// are looked up by key. Joined with a JSON array of rows instead, the planner
/// expected a hundred of them and read the whole table, twice per call (0.8 ms
/// at 2,000 accounts, more with every account).
fn id_array(ids: impl Iterator<Item = i64>) -> String {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("{{{}}}", ids.join(","))
}

/// Rows as one JSON array of arrays, each value in its column's place.
fn json_rows(rows: &[Vec<Val>]) -> Val {
    use serde_json::Value;
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| match v {
                    Val::Int(i) => i.map_or(Value::Null, Value::from),
                    Val::Text(t) => t.as_deref().map_or(Value::Null, Value::from),
                })
                .collect()
        })
        .collect();
    Val::Text(Some(Value::Array(rows).to_string()))
}

/// The statement that writes a new call. Bound: `$1` the call's id, `$2`–`$18`
/// its row (`call_values`), then the rows of `tail_sql` from `$19`.
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    tail_sql(
        &format!(
            "call AS (INSERT INTO calls (id, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18))",
            call_columns!()
        ),
        19,
        false,
    )
});

/// The statement that writes what changed of a call: `UPDATE_CALL` (`$1` the
/// call's id, `$2`–`$7` what a transition changes), then the rows of `tail_sql`
/// from `$8`, and the changed contacts last.
static UPDATE_SQL: LazyLock<String> =
    LazyLock::new(|| tail_sql(&format!("call AS ({UPDATE_CALL})"), 8, true));

/// A write of a call: the `call` clause (`$1` is the call's id), then from `$k`:
/// the new contacts, the new events (each row with its id last), the
/// invitations, the ids of the events each live webhook of the domain is sent,
/// now, the messages (user, the text after `seq`; each distinct text is stored
/// once), their users' ids (`{1,2}`), the call's domain, and with `changed` the
/// changed contacts (`changed_contact_rows`). Answers each user's last `seq` before these
/// messages, and `(-1, deliveries written)`.
fn tail_sql(call: &str, k: usize, changed: bool) -> String {
    let c = |i: usize| format!("(r->>{i})::bigint");
    let t = |i: usize| format!("r->>{i}");
    let contact = [
        c(0),
        c(1),
        t(2),
        t(3),
        t(4),
        t(5),
        t(6),
        c(7),
        t(8),
        c(9),
        c(10),
    ]
    .join(", ");
    let invitation = [c(0), t(1), c(2), c(3), c(4), t(5), t(6), c(7), c(8)].join(", ");
    let event = [c(4), c(0), t(1), c(2), c(3)].join(", ");
    let (contacts, events, invitations, hooks, now, notes, users, domain, changes) =
        (k, k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7, k + 8);
    let changed = if changed {
        format!(
            "changed AS (UPDATE call_contacts cc SET ringing_since = {}, origin = {}, joined = {} \
               FROM jsonb_array_elements(CAST(${changes} AS jsonb)) r \
               WHERE cc.call_pk = {} AND cc.contact_id = {}), ",
            c(2),
            t(3),
            c(4),
            c(0),
            c(1)
        )
    } else {
        String::new()
    };
    format!(
        "WITH {call}, {changed}\
         contacts AS (INSERT INTO call_contacts ({CONTACT_COLUMNS}) \
           SELECT {contact} FROM jsonb_array_elements(CAST(${contacts} AS jsonb)) r), \
         events AS (INSERT INTO call_events (id, {EVENT_COLUMNS}) \
           SELECT {event} FROM jsonb_array_elements(CAST(${events} AS jsonb)) r), \
         invitations AS (INSERT INTO deliveries ({DELIVERY_COLUMNS}) \
           SELECT {invitation} FROM jsonb_array_elements(CAST(${invitations} AS jsonb)) WITH ORDINALITY x(r, n) \
           ORDER BY n RETURNING 1), \
         hooks AS (INSERT INTO deliveries ({DELIVERY_COLUMNS}) \
           SELECT $1, 'webhook', NULL, CAST(e.id AS BIGINT), w.id, w.url, 'pending', ${now}, ${now} \
           FROM jsonb_array_elements_text(CAST(${hooks} AS jsonb)) AS e(id), webhooks w \
           WHERE w.domain = ${domain} AND w.deleted_at IS NULL ORDER BY CAST(e.id AS BIGINT), w.id RETURNING 1), \
         notes AS (SELECT {user} AS u, r->>1 AS rest, n \
           FROM jsonb_array_elements(CAST(${notes} AS jsonb)) WITH ORDINALITY x(r, n)), \
         counts AS (SELECT u, count(*) AS k FROM notes GROUP BY u), \
         locked AS (SELECT id FROM users WHERE id = ANY(CAST(${users} AS BIGINT[])) ORDER BY id FOR UPDATE), \
         seqs AS (UPDATE users SET last_seq = users.last_seq + counts.k FROM counts \
           WHERE users.id = ANY(CAST(${users} AS BIGINT[])) AND users.id = counts.u AND users.id IN (SELECT id FROM locked) \
           RETURNING users.id, users.last_seq - counts.k AS prev), \
         bodies AS (INSERT INTO message_bodies (rest, created_at) \
           SELECT rest, ${now} FROM notes GROUP BY rest RETURNING id, rest), \
         messages AS (INSERT INTO user_messages (user_db_id, seq, body_id, created_at) \
           SELECT u, seq, bodies.id, ${now} FROM (SELECT notes.u, notes.rest, \
           seqs.prev + row_number() OVER (PARTITION BY notes.u ORDER BY notes.n) AS seq \
           FROM notes JOIN seqs ON seqs.id = notes.u) q JOIN bodies ON bodies.rest = q.rest) \
         SELECT id, prev FROM seqs \
         UNION ALL SELECT -1, (SELECT count(*) FROM invitations) + (SELECT count(*) FROM hooks)",
        user = c(0),
    )
}
