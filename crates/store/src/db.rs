//! The few operations a call's reads and writes need, over sqlx (PostgreSQL, and
//! SQLite's readers) and over the SQLite writer thread's own connection, so each
//! statement and the logic around it is written once.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use crate::sql::db_error;
use crate::{Result, StoreError};

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Val {
    pub(crate) fn text(s: &str) -> Val {
        Val::Text(Some(s.to_owned()))
    }
}

/// One row of an answer, read by column index.
pub(crate) trait Cells {
    fn int(&self, i: usize) -> Result<Option<i64>>;
    fn text(&self, i: usize) -> Result<Option<String>>;

    fn req_int(&self, i: usize) -> Result<i64> {
        self.int(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
    fn req_text(&self, i: usize) -> Result<String> {
        self.text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
}

/// A connection statements run on. Placeholders are `$1`, `$2`, … on both backends.
pub(crate) trait Db: Send {
    /// Runs a statement; answers how many rows it changed.
    fn exec(&mut self, sql: &str, args: &[Val]) -> impl Future<Output = Result<u64>> + Send;
    /// Runs a query and maps each row it answers.
    fn rows<T: Send, F: FnMut(&dyn Cells) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Val],
        f: F,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;
}

fn bind<'q>(mut q: Query<'q, Any, AnyArguments>, args: &[Val]) -> Query<'q, Any, AnyArguments> {
    for v in args {
        q = match v {
            Val::Int(i) => q.bind(*i),
            Val::Text(t) => q.bind(t.clone()),
        };
    }
    q
}

impl Cells for AnyRow {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        self.try_get(i).map_err(db_error)
    }
    fn text(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).map_err(db_error)
    }
}

impl Db for AnyConnection {
    async fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64> {
        // Only placeholders are ever spliced into statement texts; values are bound.
        let q = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), args);
        Ok(q.execute(&mut *self)
            .await
            .map_err(db_error)?
            .rows_affected())
    }

    async fn rows<T: Send, F: FnMut(&dyn Cells) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Val],
        mut f: F,
    ) -> Result<Vec<T>> {
        let q = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), args);
        let rows = q.fetch_all(&mut *self).await.map_err(db_error)?;
        rows.iter().map(|r| f(r)).collect()
    }
}

/// Runs a future that never waits (the SQLite writer's statements run on its own
/// thread, synchronously) to its end, without a runtime.
pub(crate) fn at_once<T>(fut: impl Future<Output = T>) -> T {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("a statement on the SQLite writer's connection waited"),
    }
}
