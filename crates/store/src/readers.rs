//! SQLite's hot reads (the session's account, a call, an invitee, the message
//! log), run where they are asked for, on read-only rusqlite connections.
//!
//! Each is a few lookups by key on pages that are in memory: tens of
//! microseconds, less than a hop to another thread and back costs (the profile of
//! createCall put a quarter of its time in sqlx's SQLite worker thread). WAL
//! readers never wait for the writer, so a read does not stall the tokio worker
//! it runs on behind a commit.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags};

use crate::Result;
use crate::sql::PoolSettings;
use crate::writer::lite_error;

/// A few read-only connections; a read takes whichever is free.
pub(crate) struct Readers {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl Readers {
    /// Opens `n` (at least one) read-only connections on the file at `path`,
    /// which the writer has already put in WAL mode.
    pub(crate) fn open(path: &Path, settings: &PoolSettings, n: usize) -> Result<Readers> {
        let conns = (0..n.max(1))
            .map(|_| open(path, settings).map(Mutex::new))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(lite_error)?;
        Ok(Readers {
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `read` on a free connection (waiting for one only when all are busy).
    pub(crate) fn with<T>(&self, read: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(mut conn) = self.conns[(start + i) % n].try_lock() {
                return read(&mut conn);
            }
        }
        // A panic mid-read leaves nothing half done: rusqlite resets a statement
        // when it is dropped, and these connections never write.
        let mut conn = self.conns[start % n]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        read(&mut conn)
    }
}

fn open(path: &Path, settings: &PoolSettings) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.busy_timeout(settings.statement_timeout)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_refuses_to_write() {
        let dir = std::env::temp_dir().join(format!("callhub-readers-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let readers = Readers::open(&path, &PoolSettings::default(), 2).unwrap();
        let scalar = |sql: &str| {
            readers
                .with(|c| {
                    c.query_row(sql, [], |r| r.get::<_, i64>(0))
                        .map_err(lite_error)
                })
                .unwrap()
        };
        assert_eq!(scalar("SELECT x FROM t"), 1);
        let wrote = readers.with(|c| {
            c.execute("INSERT INTO t VALUES (2)", [])
                .map_err(lite_error)
        });
        assert!(wrote.is_err(), "a reader connection wrote: {wrote:?}");
        // A commit made after the readers opened is seen by the next read.
        w.execute("INSERT INTO t VALUES (3)", []).unwrap();
        assert_eq!(scalar("SELECT count(*) FROM t"), 2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
