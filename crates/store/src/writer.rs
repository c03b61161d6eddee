//! SQLite's call transitions (and the outbox's records of its attempts), written
//! by one thread that owns its connection: a transition costs one hop from tokio
//! instead of one per statement, and the jobs that queue while a commit is under
//! way are committed together. A second thread copies the WAL into the database
//! file (the checkpoint), so commits do not wait for it.

use std::cell::Cell;
use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use callhub_core::{Call, Transition};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql};
use tokio::sync::oneshot;

use crate::db::{Cells, Db, Val, at_once};
use crate::sql::{
    Dialect, PoolSettings, Synchronous, finish_delivery, load_call, load_version, save,
};
use crate::{Attempt, AttemptResult, Committed, Result, StoreError};

/// At most this many transitions share a transaction: a long queue is committed
/// in several, so the first in it are not held back by the last.
const MAX_BATCH: usize = 256;

/// The writer's page cache (16 MiB; SQLite's default is 2 MiB): the indexes a call
/// adds to are mostly keyed by user (its contacts, its messages), so their pages
/// are wanted all over. Not more: a B-tree split that reorders pages parks one
/// at the lock page's number (262,145) for a moment, and the commit after it
/// walks the cache's whole hash table to drop pages past the end of the file.
/// 16 MiB gave 2–11% more than 64 MiB at 60–80 MB less memory (bench/README.md).
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// WAL pages not yet copied into the database file from which the checkpointer
/// thread copies them: SQLite's default for checkpoints by the committing
/// connection, which made a commit now and then wait for the copy and its
/// `fsync` (a sixth of the writer's time at saturation; bench/README.md).
const CHECKPOINT_PAGES: c_int = 1000;
/// WAL pages from which the writer checkpoints after its commit itself, as SQLite
/// would. Under a steady load this is what lets the WAL start over: a passive
/// checkpoint beside the writer never catches up with its last frame, and the
/// WAL restarts only once every frame is copied. The checkpointer has copied
/// all but the last thousand or so by then.
const WRITER_CHECKPOINT_PAGES: c_int = 10 * CHECKPOINT_PAGES;

thread_local! {
    /// Pages in the WAL after the writer thread's last commit (its WAL hook's count).
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// The writer's WAL hook, run by each commit: it replaces SQLite's automatic
/// checkpoint on this connection.
fn wal_committed(wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    if pages >= WRITER_CHECKPOINT_PAGES
        && let Err(e) = wal.checkpoint()
    {
        // Not returned: SQLite would report it as the commit's error, and the
        // commit has happened.
        tracing::warn!(error = %e, pages, "the SQLite writer's own checkpoint failed");
    }
    Ok(())
}

/// What an update that was computed on `expected` came to.
pub(crate) enum Updated {
    Saved(Committed),
    /// The call was changed meanwhile (or is gone): here it is now; nothing was written.
    Stale(Option<Call>),
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Job {
    Insert(Transition, Reply<Committed>),
    Update(Box<Call>, Transition, Reply<Updated>),
    /// An outbox attempt recorded: delivery id, the attempt, what comes next.
    Finish(i64, Box<Attempt>, AttemptResult, Reply<()>),
    /// Finish what is queued, then close the connection.
    Stop,
}

/// A job done but not answered yet: answers wait for the commit.
enum Done {
    Insert(Reply<Committed>, Result<Committed>),
    Update(Reply<Updated>, Result<Updated>),
    Finish(Reply<()>, Result<()>),
}

impl Done {
    fn ok(&self) -> bool {
        match self {
            Done::Insert(_, r) => r.is_ok(),
            Done::Update(_, r) => r.is_ok(),
            Done::Finish(_, r) => r.is_ok(),
        }
    }

    /// Answers the job; `failed`: why the transaction did not commit, whatever the job did.
    fn answer(self, failed: Option<&str>) {
        match self {
            Done::Insert(tx, r) => reply(tx, r, failed),
            Done::Update(tx, r) => reply(tx, r, failed),
            Done::Finish(tx, r) => reply(tx, r, failed),
        }
    }
}

fn reply<T>(tx: Reply<T>, r: Result<T>, failed: Option<&str>) {
    let r = match failed {
        Some(why) => r.and_then(|_| Err(StoreError::Unavailable(format!("not committed: {why}")))),
        None => r,
    };
    // A caller that stopped waiting is no error here.
    let _ = tx.send(r);
}

/// The handle of the writer thread; cloned stores share it.
pub(crate) struct Writer {
    jobs: Sender<Job>,
    thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    /// Transactions committed so far (tests see transitions share them); counted
    /// before their jobs are answered.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) commits: Arc<AtomicU64>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

impl Writer {
    /// Opens the writer's connection on `path` with the pool's settings and starts its thread.
    pub(crate) fn start(
        path: &Path,
        settings: &PoolSettings,
        ring_timeout: chrono::Duration,
    ) -> Result<Writer> {
        let conn = open(path, settings).map_err(lite_error)?;
        conn.wal_hook(Some(wal_committed));
        let copier = open(path, settings).map_err(lite_error)?;
        // One poke waiting is enough: a checkpoint copies all there is.
        let (poke, pokes) = std::sync::mpsc::sync_channel(1);
        let copied = Arc::new(AtomicI32::new(0));
        let checkpointer = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn({
                let copied = copied.clone();
                move || checkpoints(&copier, &pokes, &copied)
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the SQLite checkpointer: {e}"))
            })?;
        let (jobs, queue) = std::sync::mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, &queue, ring_timeout, &counted, (&poke, &copied)))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Writer {
            jobs,
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some(checkpointer)),
            commits,
        })
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(job(tx)).map_err(|_| stopped())?;
        // The reply is dropped unanswered only when the thread died mid-batch.
        rx.await.map_err(|_| stopped())?
    }

    pub(crate) async fn insert(&self, t: Transition) -> Result<Committed> {
        self.ask(|r| Job::Insert(t, r)).await
    }

    /// Writes `t` if the call is still `expected` (what the rules ran on).
    pub(crate) async fn update(&self, expected: Call, t: Transition) -> Result<Updated> {
        self.ask(|r| Job::Update(Box::new(expected), t, r)).await
    }

    /// Records an outbox attempt, committed with whatever else is queued.
    pub(crate) async fn finish_delivery(
        &self,
        id: i64,
        attempt: Attempt,
        result: AttemptResult,
    ) -> Result<()> {
        self.ask(|r| Job::Finish(id, Box::new(attempt), result, r))
            .await
    }

    /// Lets the thread finish what is queued and close its connection.
    pub(crate) async fn close(&self) {
        let _ = self.jobs.send(Job::Stop);
        // The checkpointer ends when the writer has (its pokes' sender is gone).
        for handle in [&self.thread, &self.checkpointer] {
            let thread = handle.lock().map(|mut t| t.take()).ok().flatten();
            if let Some(thread) = thread {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }
}

/// The writer's connection, set up as `sqlite_pool` sets up sqlx's.
fn open(path: &Path, settings: &PoolSettings) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let synchronous = match settings.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Other writes (accounts, tokens, the outbox's claims) stay on sqlx's writer
    // connection: the two wait for each other's lock up to this long.
    conn.busy_timeout(settings.statement_timeout)?;
    conn.set_prepared_statement_cache_capacity(256);
    // Each job's savepoint journals the pages it changes: in memory, that is a
    // copy, where a file costs a write per page and an open per transaction.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    Ok(conn)
}

/// The checkpointer thread: at each poke, a passive checkpoint on its own
/// connection, which copies what no reader still needs and waits for no one;
/// the writer appends to the WAL meanwhile.
/// `copied`: the WAL frames it has copied (of the WAL as it was then).
fn checkpoints(conn: &Connection, pokes: &Receiver<()>, copied: &AtomicI32) {
    while pokes.recv().is_ok() {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i32>(2)) {
            Ok(frames) => copied.store(frames, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "a SQLite checkpoint failed"),
        }
    }
}

fn run(
    mut conn: Connection,
    queue: &Receiver<Job>,
    ring: chrono::Duration,
    commits: &AtomicU64,
    (checkpoint, copied): (&SyncSender<()>, &AtomicI32),
) {
    let mut last_pages = 0;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        let stop = batch.iter().any(|j| matches!(j, Job::Stop));
        batch.retain(|j| !matches!(j, Job::Stop));
        // A panic drops the batch's replies (their callers get an error) and
        // leaves the thread to serve the next batch.
        let wrote = catch_unwind(AssertUnwindSafe(|| {
            batch.is_empty() || write_batch(&mut conn, batch, ring, commits)
        }));
        if wrote.is_err() {
            tracing::error!("the SQLite writer panicked; its batch was rolled back");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        let pages = WAL_PAGES.get();
        if pages < last_pages {
            // The WAL started over: what was copied counts no more.
            copied.store(0, Ordering::Relaxed);
        }
        last_pages = pages;
        let waiting = pages - copied.load(Ordering::Relaxed).min(pages);
        if waiting >= CHECKPOINT_PAGES {
            // Full: a poke is already waiting.
            let _ = checkpoint.try_send(());
        }
        if stop {
            break;
        }
    }
}

/// Writes the jobs in one transaction, each inside a savepoint of its own, commits,
/// and answers them; answers whether it committed.
fn write_batch(
    conn: &mut Connection,
    batch: Vec<Job>,
    ring: chrono::Duration,
    commits: &AtomicU64,
) -> bool {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let why = lite_error(e).to_string();
        for d in batch
            .into_iter()
            .filter_map(|j| refuse(j, StoreError::Unavailable(why.clone())))
        {
            d.answer(None);
        }
        return false;
    }
    let mut done = Vec::with_capacity(batch.len());
    for job in batch {
        let d = match conn.execute_batch("SAVEPOINT job") {
            Err(e) => refuse(job, lite_error(e)),
            Ok(()) => run_job(conn, job, ring),
        };
        let Some(d) = d else { continue };
        let end = if d.ok() {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        let ended = conn.execute_batch(end);
        done.push(d);
        if let Err(e) = ended {
            // The transaction is in an unknown state: none of it may commit.
            let why = lite_error(e).to_string();
            let _ = conn.execute_batch("ROLLBACK");
            for d in done {
                d.answer(Some(&why));
            }
            return false;
        }
    }
    let failed = match conn.execute_batch("COMMIT") {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Some(lite_error(e).to_string())
        }
    };
    for d in done {
        d.answer(failed.as_deref());
    }
    failed.is_none()
}

/// The job answered with `e` (None for `Stop`, which has no one to answer).
fn refuse(job: Job, e: StoreError) -> Option<Done> {
    Some(match job {
        Job::Insert(_, r) => Done::Insert(r, Err(e)),
        Job::Update(_, _, r) => Done::Update(r, Err(e)),
        Job::Finish(.., r) => Done::Finish(r, Err(e)),
        Job::Stop => return None,
    })
}

fn run_job(conn: &mut Connection, job: Job, ring: chrono::Duration) -> Option<Done> {
    Some(match job {
        Job::Insert(mut t, r) => {
            let saved = at_once(save(conn, ring, None, &mut t));
            Done::Insert(
                r,
                saved.map(|(messages, deliveries)| Committed {
                    call: t.call,
                    messages,
                    deliveries,
                    old_events: 0,
                }),
            )
        }
        Job::Update(expected, mut t, r) => {
            let updated = at_once(async {
                // The version counts every stored change: one lookup tells whether
                // the call the rules ran on is still the stored one.
                let version = load_version(conn, t.call.call_id).await?;
                if version != Some(expected.version) {
                    let now = load_call(conn, Dialect::Sqlite, t.call.call_id, false).await?;
                    return Ok(Updated::Stale(now));
                }
                let (messages, deliveries) = save(conn, ring, Some(&expected), &mut t).await?;
                Ok(Updated::Saved(Committed {
                    call: t.call,
                    messages,
                    deliveries,
                    old_events: expected.events.len(),
                }))
            });
            Done::Update(r, updated)
        }
        Job::Finish(id, attempt, result, r) => Done::Finish(
            r,
            at_once(finish_delivery(
                conn,
                Dialect::Sqlite,
                id,
                &attempt,
                &result,
            )),
        ),
        Job::Stop => return None,
    })
}

/// A rusqlite error as the store names it, as `db_error` does for sqlx's.
pub(crate) fn lite_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                StoreError::Unavailable(e.to_string())
            }
            ErrorCode::ConstraintViolation
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()))
            }
            _ => StoreError::Sqlite(e),
        },
        _ => StoreError::Sqlite(e),
    }
}

impl ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Int(Some(i)) => ValueRef::Integer(*i),
            Val::Text(Some(t)) => ValueRef::Text(t.as_bytes()),
            Val::Int(None) | Val::Text(None) => ValueRef::Null,
        }))
    }
}

impl Cells for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        self.get(i).map_err(lite_error)
    }
    fn text(&self, i: usize) -> Result<Option<String>> {
        self.get(i).map_err(lite_error)
    }
}

/// SQLite's process-wide settings, made before its first connection opens: no
/// memory statistics. With them, every allocation and free of SQLite's takes a
/// global mutex (4% of all samples on the writer thread at createCall's
/// saturation); callhub reads none of them. Too late (SQLite already initialized
/// by another connection in this process) it changes nothing.
pub(crate) fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. Before
        // sqlite3_initialize the call is allowed; after it SQLite answers
        // SQLITE_MISUSE and changes nothing.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                std::ffi::c_int::from(0u8),
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was initialized already: its memory statistics stay on"
            );
        }
    });
}

/// Binds `args` by the numbers of `$n` placeholders, as sqlx does. SQLite numbers
/// `$n` (a named parameter) by order of appearance, which `… $2 … $1` would swap,
/// and finding a named parameter's number walks the statement's list of names:
/// a multi-row insert of a few hundred values spent more time there than in its
/// B-tree. So the placeholders are written `?n` (parameter number n) instead,
/// bound by position.
fn prepared<'c>(
    conn: &'c Connection,
    sql: &str,
    args: &[Val],
) -> Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn
        .prepare_cached(&numbered_params(sql))
        .map_err(lite_error)?;
    for i in 1..=stmt.parameter_count() {
        let v = args
            .get(i - 1)
            .ok_or_else(|| StoreError::Corrupt(format!("no value for ${i} of {sql:?}")))?;
        stmt.raw_bind_parameter(i, v).map_err(lite_error)?;
    }
    Ok(stmt)
}

/// `sql` with each `$n` placeholder written `?n`. Our statements have no `$`
/// followed by a digit elsewhere (string literals are bound, not written in).
fn numbered_params(sql: &str) -> std::borrow::Cow<'_, str> {
    let bytes = sql.as_bytes();
    if !bytes
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
    {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let param = b == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        out.push(if param { b'?' } else { b });
    }
    // Only an ASCII byte was replaced by another.
    std::borrow::Cow::Owned(String::from_utf8(out).expect("still UTF-8"))
}

impl Db for Connection {
    async fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64> {
        let mut stmt = prepared(self, sql, args)?;
        Ok(stmt.raw_execute().map_err(lite_error)? as u64)
    }

    async fn rows<T: Send, F: FnMut(&dyn Cells) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Val],
        mut f: F,
    ) -> Result<Vec<T>> {
        let mut stmt = prepared(self, sql, args)?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(lite_error)? {
            out.push(f(row)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use callhub_core::text::{DisplayName, Domain, UserId};
    use callhub_core::{
        Actor, CallError, CallReason, CallType, Command, NewCall, Role, Rules, UserInfo, apply,
        create,
    };

    use uuid::Uuid;

    use super::*;
    use crate::{NewUser, SqlStore, Store};

    struct TempStore {
        store: SqlStore,
        dir: std::path::PathBuf,
    }

    impl TempStore {
        async fn open(settings: &PoolSettings) -> TempStore {
            sqlx::any::install_default_drivers();
            let dir = std::env::temp_dir().join(format!("callhub-writer-{}", Uuid::new_v4()));
            let store =
                SqlStore::connect(&Self::url(&dir), settings, chrono::Duration::seconds(30))
                    .await
                    .unwrap();
            TempStore { store, dir }
        }

        fn url(dir: &Path) -> String {
            format!("sqlite://{}/callhub.db", dir.display())
        }

        fn file(&self) -> std::path::PathBuf {
            self.dir.join("callhub.db")
        }

        async fn user(&self, name: &str) -> UserInfo {
            self.store
                .create_user(NewUser {
                    domain: Domain::parse("domain", "writer.test").unwrap(),
                    user_id: UserId::parse("userId", name).unwrap(),
                    display_name: DisplayName::parse("displayName", name).unwrap(),
                    email: None,
                    phone_number: None,
                    roles: vec![Role::User],
                    password_hash: "-".into(),
                })
                .await
                .unwrap()
        }

        fn writer(&self) -> &Writer {
            self.store.writer.as_deref().expect("SQLite has a writer")
        }

        /// The same file opened afresh: what a restarted node finds.
        async fn reopened(&self) -> SqlStore {
            self.store.close().await;
            SqlStore::connect(
                &Self::url(&self.dir),
                &PoolSettings::default(),
                chrono::Duration::seconds(30),
            )
            .await
            .unwrap()
        }
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn call_of(caller: &UserInfo, invited: &[&UserInfo]) -> Transition {
        let new = NewCall {
            call_id: Uuid::new_v4(),
            title: "writer".into(),
            reason: CallReason::Standard,
            call_type: CallType::Sfu,
            anonymous_join_allowed: false,
            inform_others_directly: true,
            planned_at: None,
            requester: caller.clone(),
            on_behalf_of: None,
            invited: invited.iter().map(|u| u.as_contact()).collect(),
            teams: vec![],
        };
        // At the store's precision, as the server's clock gives it.
        let now = chrono::Utc::now().timestamp_millis();
        create(new, chrono::DateTime::from_timestamp_millis(now).unwrap()).unwrap()
    }

    /// The user's messages are numbered 1..=n without gaps, n being their counter.
    async fn assert_sequenced(store: &SqlStore, user: &UserInfo, n: usize) {
        let seqs: Vec<i64> = store
            .messages_since(user.user_db_id, 0, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>(), "{}", user.user_id);
        assert_eq!(store.last_seq(user.user_db_id).await.unwrap(), n as i64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_copies_the_wal_into_the_database_before_the_writer_would() {
        let db = TempStore::open(&PoolSettings::default()).await;
        let (alice, bob) = (db.user("alice").await, db.user("bob").await);
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let wal = db.dir.join("callhub.db-wal");
        let before = size(&db.file());
        // A frame is a page of 4 KiB and its 24-byte header.
        let frames = |bytes: u64| (bytes / (4096 + 24)) as c_int;
        let mut calls = 0;
        while frames(size(&wal)) < CHECKPOINT_PAGES + 50 {
            db.store
                .insert_call(call_of(&alice, &[&bob]))
                .await
                .unwrap();
            calls += 1;
        }
        assert!(
            frames(size(&wal)) < WRITER_CHECKPOINT_PAGES,
            "the writer has not checkpointed itself"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size(&db.file()) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "after {calls} calls the database file is still {before} bytes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_share_commits_and_all_survive_a_restart() {
        let db = TempStore::open(&PoolSettings::default()).await;
        let (alice, bob) = (db.user("alice").await, db.user("bob").await);
        let before = db.writer().commits.load(Ordering::Relaxed);
        let mut tasks = Vec::new();
        for _ in 0..300 {
            let (store, t) = (db.store.clone(), call_of(&alice, &[&bob]));
            tasks.push(tokio::spawn(async move { store.insert_call(t).await }));
        }
        let mut answered = Vec::new();
        for t in tasks {
            let c = t.await.unwrap().expect("every call is written");
            assert_eq!(c.call.events.len(), 2);
            assert!(
                c.call.events.iter().all(|e| e.id > 0),
                "events have their ids"
            );
            answered.push(c.call);
        }
        let commits = db.writer().commits.load(Ordering::Relaxed) - before;
        assert!(
            commits < 300,
            "300 calls in {commits} commits: none was grouped"
        );

        let store = db.reopened().await;
        for call in &answered {
            assert_eq!(store.call(call.call_id).await.unwrap().as_ref(), Some(call));
        }
        // Alice: the Created and Join events of each call; Bob: the pop-up too.
        assert_sequenced(&store, &alice, 2 * 300).await;
        assert_sequenced(&store, &bob, 3 * 300).await;
        store.close().await;
    }

    #[tokio::test]
    async fn a_transition_that_fails_in_a_batch_rolls_back_alone() {
        let db = TempStore::open(&PoolSettings::default()).await;
        let (alice, bob) = (db.user("alice").await, db.user("bob").await);
        // Another connection holds the write lock: the writer waits with its
        // first job while the rest queue up behind it, to be written together.
        let blocker = Connection::open(db.file()).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let before = db.writer().commits.load(Ordering::Relaxed);
        let insert = |t: Transition| {
            let store = db.store.clone();
            tokio::spawn(async move { store.insert_call(t).await })
        };
        let first = insert(call_of(&alice, &[&bob]));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut good = Vec::new();
        for _ in 0..10 {
            good.push(insert(call_of(&alice, &[&bob])));
        }
        // Its call row is written before its contacts fail (a contact twice).
        let mut bad = call_of(&alice, &[&bob]);
        bad.call.contacts.push(bad.call.contacts[1].clone());
        let bad_id = bad.call.call_id;
        let bad = insert(bad);
        for _ in 0..10 {
            good.push(insert(call_of(&alice, &[&bob])));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        blocker.execute_batch("COMMIT").unwrap();

        first.await.unwrap().unwrap();
        let refused = bad.await.unwrap();
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        for g in good {
            g.await
                .unwrap()
                .expect("the others in its batch are written");
        }
        let commits = db.writer().commits.load(Ordering::Relaxed) - before;
        assert_eq!(
            commits, 2,
            "the first job, then the 21 queued behind it together"
        );
        assert_eq!(
            db.store.call(bad_id).await.unwrap(),
            None,
            "nothing of it stays"
        );
        assert_sequenced(&db.store, &alice, 2 * 21).await;
        assert_sequenced(&db.store, &bob, 3 * 21).await;
        // The writer goes on.
        db.store
            .insert_call(call_of(&alice, &[&bob]))
            .await
            .unwrap();
        db.store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_of_one_call_each_apply_once_and_a_refusal_writes_nothing() {
        let db = TempStore::open(&PoolSettings::default()).await;
        let host = db.user("host").await;
        let mut guests = Vec::new();
        for i in 0..12 {
            guests.push(db.user(&format!("guest{i}")).await);
        }
        let stranger = db.user("stranger").await;
        let call = db
            .store
            .insert_call(call_of(&host, &guests.iter().collect::<Vec<_>>()))
            .await
            .unwrap()
            .call;
        let rules = Rules::default();
        let mut tasks = Vec::new();
        for user in guests.iter().chain([&stranger]) {
            let (store, user) = (db.store.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .update_call(call.call_id, &|c| {
                        let actor = Actor { user: user.clone() };
                        apply(c, Command::Join(actor), chrono::Utc::now(), &rules)
                    })
                    .await
            }));
        }
        let mut results: Vec<_> = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let refused = results.pop().unwrap();
        assert!(
            matches!(refused, Err(StoreError::Rules(CallError::NotVisible))),
            "{refused:?}"
        );
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let stored = db.store.call(call.call_id).await.unwrap().unwrap();
        let mut joined = stored.joined();
        joined.sort_unstable();
        joined.dedup();
        assert_eq!(joined.len(), 13, "the host and each guest, once");
        let ids: Vec<i64> = stored.events.iter().map(|e| e.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "event ids grow: {ids:?}"
        );
        assert_sequenced(&db.store, &stranger, 0).await;
        db.store.close().await;
    }

    #[tokio::test]
    async fn busy_means_joined_in_a_call_that_has_not_ended_however_many() {
        let db = TempStore::open(&PoolSettings::default()).await;
        let (host, idle, gone) = (
            db.user("host").await,
            db.user("idle").await,
            db.user("gone").await,
        );
        // The host is joined in three live calls; `gone` was, in a call now ended.
        for _ in 0..3 {
            db.store
                .insert_call(call_of(&host, &[&idle]))
                .await
                .unwrap();
        }
        let ended = db
            .store
            .insert_call(call_of(&gone, &[&idle]))
            .await
            .unwrap()
            .call;
        let rules = Rules::default();
        db.store
            .update_call(ended.call_id, &|c| {
                let actor = Actor { user: gone.clone() };
                apply(c, Command::End(actor), chrono::Utc::now(), &rules)
            })
            .await
            .unwrap();
        let ids = [
            host.user_db_id,
            idle.user_db_id,
            gone.user_db_id,
            host.user_db_id,
        ];
        let mut busy = db.store.busy_users(&ids).await.unwrap();
        busy.sort_unstable();
        busy.dedup();
        assert_eq!(busy, vec![host.user_db_id], "only the host is busy");
        // A call of its own does not make a ringing callee busy: the check
        // leaves it out (`cc.call_pk <> $1`).
        let one = db
            .store
            .insert_call(call_of(&gone, &[&host]))
            .await
            .unwrap()
            .call;
        let mut conn = Connection::open(db.file()).unwrap();
        let others = at_once(crate::sql::busy_in_other_calls(
            &mut conn,
            &[gone.user_db_id],
            one.id,
        ));
        assert_eq!(
            others.unwrap(),
            Vec::<i64>::new(),
            "gone is joined only in this call"
        );
        let any = at_once(crate::sql::busy_in_other_calls(
            &mut conn,
            &[gone.user_db_id],
            0,
        ));
        assert_eq!(any.unwrap(), vec![gone.user_db_id]);
        db.store.close().await;
    }

    #[tokio::test]
    async fn the_outbox_claims_deliveries_in_the_order_they_fell_due() {
        let db = TempStore::open(&PoolSettings::default()).await;
        let (host, guest) = (db.user("host").await, db.user("guest").await);
        for _ in 0..2 {
            let mut t = call_of(&host, &[&guest]);
            t.call.contacts[1].spec.email = Some("guest@writer.test".into());
            db.store.insert_call(t).await.unwrap();
        }
        let now = chrono::Utc::now();
        let minutes = chrono::Duration::minutes;
        let mails = db
            .store
            .claim_deliveries(now, now + minutes(2), 10)
            .await
            .unwrap();
        let ids: Vec<i64> = mails.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 2, "one invitation mail per call: {mails:?}");
        assert!(
            mails
                .iter()
                .all(|e| e.attempts == 1 && e.recipient == "guest@writer.test")
        );
        // Both fail; the first made is retried later than the second.
        for (id, wait) in [(ids[0], 60), (ids[1], 30)] {
            let attempt = Attempt {
                attempt: 1,
                started_at: now,
                finished_at: now,
                outcome: "error".into(),
                detail: Some("refused".into()),
            };
            let retry = AttemptResult::Retry(now + minutes(wait));
            db.store.finish_delivery(id, attempt, retry).await.unwrap();
        }
        let later = now + minutes(90);
        let next = db
            .store
            .claim_deliveries(later, later + minutes(2), 1)
            .await
            .unwrap();
        assert_eq!(
            next.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![ids[1]],
            "the one due first, though made second"
        );
        assert_eq!(next[0].last_error.as_deref(), Some("refused"));
        db.store.close().await;
    }

    #[tokio::test]
    async fn a_stopped_writer_answers_unavailable() {
        let db = TempStore::open(&PoolSettings::default()).await;
        let (alice, bob) = (db.user("alice").await, db.user("bob").await);
        db.writer().close().await;
        let got = db.store.insert_call(call_of(&alice, &[&bob])).await;
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    }

    #[tokio::test]
    async fn placeholders_bind_by_their_numbers_not_their_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        let args = [
            Val::Text(Some("one".into())),
            Val::Int(Some(2)),
            Val::Text(Some("$1 stays".into())),
        ];
        let got = conn
            .rows("SELECT $2, $1, $3, $1", &args, |r| {
                Ok((r.int(0)?, r.text(1)?, r.text(2)?, r.text(3)?))
            })
            .await
            .unwrap();
        let one = Some("one".to_owned());
        assert_eq!(
            got,
            [(Some(2), one.clone(), Some("$1 stays".to_owned()), one)]
        );
        assert_eq!(
            numbered_params("SELECT '$.a', $10, x$"),
            "SELECT '$.a', ?10, x$"
        );
        let err = conn.rows("SELECT $4", &args, |r| r.int(0)).await;
        assert!(matches!(err, Err(StoreError::Corrupt(_))), "{err:?}");
    }

    #[test]
    fn the_writer_connection_is_set_up_as_the_pools_are() {
        let dir = std::env::temp_dir().join(format!("callhub-writer-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for (sync, level) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let settings = PoolSettings {
                synchronous: sync,
                statement_timeout: Duration::from_millis(1234),
                ..Default::default()
            };
            let conn = open(&dir.join("callhub.db"), &settings).unwrap();
            let pragma = |name: &str| -> String {
                conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .unwrap()
            };
            assert_eq!(pragma("synchronous"), level.to_string());
            assert_eq!(pragma("journal_mode"), "wal");
            assert_eq!(pragma("foreign_keys"), "1");
            assert_eq!(pragma("busy_timeout"), "1234");
            // 2: MEMORY, where a job's savepoint journals its pages.
            assert_eq!(pragma("temp_store"), "2");
            assert_eq!(pragma("cache_size"), (-WRITER_CACHE_KIB).to_string());
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
