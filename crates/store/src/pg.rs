//! A new call on PostgreSQL in two round trips instead of eleven.
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

use std::collections::HashMap;
use std::sync::LazyLock;

use callhub_core::{Transition, UserDbId, notifications};
use chrono::Utc;

use crate::db::{Db, Val};
use crate::sql::{
    CONTACT_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS, after_seq, busy_select, call_columns,
    call_values, contact_rows, event_rows, planned_deliveries, rang_users, with_seq,
};
use crate::{Message, Result, StoreError};

/// Writes a new call (`t` from `create`) with its messages and deliveries; answers
/// the messages and how many deliveries. Fills in the ids of the call and its events.
pub(crate) async fn insert_call<D: Db>(
    db: &mut D,
    ring_timeout: chrono::Duration,
    t: &mut Transition,
) -> Result<(Vec<Message>, usize)> {
    let busy = draw_ids(db, t).await?;
    let notes = notifications(t, 0, &busy);
    let call = &t.call;
    let now = Utc::now().timestamp_millis();
    let rests = notes
        .iter()
        .map(|(_, note)| after_seq(note))
        .collect::<Result<Vec<_>>>()?;
    let messages: Vec<Vec<Val>> = notes
        .iter()
        .zip(&rests)
        .map(|((user, _), rest)| vec![Val::Int(Some(*user)), Val::Text(Some(rest.clone()))])
        .collect();
    let (invitations, webhook_events) = planned_deliveries(t, 0, now);
    let mut events = event_rows(call, 0);
    for (row, e) in events.iter_mut().zip(&call.events) {
        row.push(Val::Int(Some(e.id)));
    }
    let mut args = vec![Val::Int(Some(call.id))];
    args.extend(call_values(call, ring_timeout)?);
    args.extend([
        json_rows(&contact_rows(call, 0)),
        json_rows(&events),
        json_rows(&invitations),
        Val::Text(Some(serde_json::Value::from(webhook_events).to_string())),
        Val::Int(Some(now)),
        json_rows(&messages),
        Val::Text(Some(id_array(notes.iter().map(|(u, _)| *u)))),
    ]);
    let answered = db
        .rows(&INSERT_SQL, &args, |r| Ok((r.req_int(0)?, r.req_int(1)?)))
        .await?;
    // The row with user -1 counts the deliveries; the others are each user's last
    // `seq` before this call's messages.
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
    for ((user, _), rest) in notes.iter().zip(&rests) {
        let Some(seq) = next.get_mut(user) else {
            continue; // an account deleted since: the statement wrote none for it
        };
        out.push(Message {
            user: *user,
            seq: *seq,
            body: with_seq(*seq, rest),
        });
        *seq += 1;
    }
    Ok((out, deliveries))
}

/// Gives the call and its events their ids; answers which rung users are busy.
async fn draw_ids<D: Db>(db: &mut D, t: &mut Transition) -> Result<Vec<UserDbId>> {
    let rang = rang_users(t);
    // The identity columns' sequences by name: `pg_get_serial_sequence` took ten
    // times as long as the rest of this query (0.39 against 0.04 ms).
    let mut sql = "SELECT 0, nextval('calls_id_seq') \
         UNION ALL SELECT 1, nextval('call_events_id_seq') FROM generate_series(1, $1)"
        .to_owned();
    if !rang.is_empty() {
        // A callee already in another call still rings; their pop-up says the call waits.
        sql.push_str(&format!(
            " UNION ALL SELECT 2, b.column1 FROM ({}) b",
            busy_select(2, rang.len(), None)
        ));
    }
    let mut args = vec![Val::Int(Some(t.call.events.len() as i64))];
    args.extend(rang.iter().map(|&u| Val::Int(Some(u))));
    let rows = db
        .rows(&sql, &args, |r| Ok((r.req_int(0)?, r.req_int(1)?)))
        .await?;
    let mut event_ids = Vec::with_capacity(t.call.events.len());
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
    if t.call.id == 0 || event_ids.len() != t.call.events.len() {
        return Err(StoreError::Corrupt(
            "PostgreSQL gave no id for the call or an event".into(),
        ));
    }
    for (e, id) in t.call.events.iter_mut().zip(event_ids) {
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

/// The statement that writes a new call. Bound: `$1` the call's id, `$2`–`$18` its
/// row (`call_values`: `$3` is its domain), `$19` its contacts, `$20` its events
/// (each row with its id last), `$21` its invitations, `$22` the ids of the events
/// each live webhook of the domain is sent, `$23` now, `$24` the messages (user,
/// the text after `seq`), `$25` their users' ids (`{1,2}`). Answers each user's
/// last `seq` before these messages, and `(-1, deliveries written)`.
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
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
    format!(
        "WITH call AS (INSERT INTO calls (id, {columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18)), \
         contacts AS (INSERT INTO call_contacts ({CONTACT_COLUMNS}) \
           SELECT {contact} FROM jsonb_array_elements(CAST($19 AS jsonb)) r), \
         events AS (INSERT INTO call_events (id, {EVENT_COLUMNS}) \
           SELECT {event} FROM jsonb_array_elements(CAST($20 AS jsonb)) r), \
         invitations AS (INSERT INTO deliveries ({DELIVERY_COLUMNS}) \
           SELECT {invitation} FROM jsonb_array_elements(CAST($21 AS jsonb)) WITH ORDINALITY x(r, n) \
           ORDER BY n RETURNING 1), \
         hooks AS (INSERT INTO deliveries ({DELIVERY_COLUMNS}) \
           SELECT $1, 'webhook', NULL, CAST(e.id AS BIGINT), w.id, w.url, 'pending', $23, $23 \
           FROM jsonb_array_elements_text(CAST($22 AS jsonb)) AS e(id), webhooks w \
           WHERE w.domain = $3 AND w.deleted_at IS NULL ORDER BY CAST(e.id AS BIGINT), w.id RETURNING 1), \
         notes AS (SELECT {user} AS u, r->>1 AS rest, n \
           FROM jsonb_array_elements(CAST($24 AS jsonb)) WITH ORDINALITY x(r, n)), \
         counts AS (SELECT u, count(*) AS k FROM notes GROUP BY u), \
         locked AS (SELECT id FROM users WHERE id = ANY(CAST($25 AS BIGINT[])) ORDER BY id FOR UPDATE), \
         seqs AS (UPDATE users SET last_seq = users.last_seq + counts.k FROM counts \
           WHERE users.id = ANY(CAST($25 AS BIGINT[])) AND users.id = counts.u AND users.id IN (SELECT id FROM locked) \
           RETURNING users.id, users.last_seq - counts.k AS prev), \
         messages AS (INSERT INTO user_messages (user_db_id, seq, body, created_at) \
           SELECT u, seq, '{{\"seq\":' || seq || rest, $23 FROM (SELECT notes.u, notes.rest, \
           seqs.prev + row_number() OVER (PARTITION BY notes.u ORDER BY notes.n) AS seq \
           FROM notes JOIN seqs ON seqs.id = notes.u) q) \
         SELECT id, prev FROM seqs \
         UNION ALL SELECT -1, (SELECT count(*) FROM invitations) + (SELECT count(*) FROM hooks)",
        columns = call_columns!(),
        user = c(0),
    )
});
