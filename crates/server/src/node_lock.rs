//! One `serve` per SQLite database: an OS lock on a file beside the database, held
//! while the node runs, with the node's pid in it for whoever is refused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for the life of a node; the OS lets go when it is dropped or the process dies
/// (kill -9 included), so a stale file never blocks a restart.
#[derive(Debug)]
pub struct NodeLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeLockError {
    #[error(
        "another `callhub serve` ({holder}) already serves the SQLite database {database} \
         (lock: {lock}). A second node on it would ring nobody live: stop that one first. \
         Several nodes need PostgreSQL (CALLHUB_DATABASE_URL=postgres://…) and NATS (CALLHUB_NATS_URL)."
    )]
    Held {
        holder: String,
        database: String,
        lock: String,
    },
    #[error("cannot lock {0}: {1}")]
    Io(String, #[source] std::io::Error),
}

impl NodeLock {
    /// Takes the lock of the SQLite database at `database`, or names the node holding it.
    pub fn take(database: &Path) -> Result<NodeLock, NodeLockError> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |e| NodeLockError::Io(path.display().to_string(), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Not truncated on open: the holder's pid must stay readable to the refused.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let holder = match pid.trim() {
                    "" => "pid unknown".to_owned(),
                    pid => format!("pid {pid}"),
                };
                return Err(NodeLockError::Held {
                    holder,
                    database: database.display().to_string(),
                    lock: path.display().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(NodeLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_names_the_first_holder_until_it_lets_go() {
        let dir = std::env::temp_dir().join(format!("callhub-lock-{}", uuid::Uuid::new_v4()));
        let db = dir.join("callhub.db");
        let first = NodeLock::take(&db).unwrap();
        let refused = NodeLock::take(&db).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        assert!(refused.contains("PostgreSQL"), "{refused}");
        drop(first);
        NodeLock::take(&db).expect("free again once the first lets go");
        let _ = std::fs::remove_dir_all(dir);
    }
}
