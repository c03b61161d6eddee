//! SQLite's process-wide settings, in a test process of their own: they take
//! effect only if made before any connection of the process opens.

use callhub_store::{PoolSettings, SqlStore, Store};

#[tokio::test]
async fn sqlite_keeps_no_memory_statistics() {
    let dir = std::env::temp_dir().join(format!("callhub-config-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/callhub.db", dir.display());
    let store = SqlStore::connect(
        &url,
        &PoolSettings::default(),
        chrono::Duration::seconds(30),
    )
    .await
    .unwrap();
    // Migrated, and read from: SQLite has allocated plenty by now.
    assert!(store.health().await.is_ok());
    // SAFETY: a read of a counter, allowed at any time.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    assert_eq!(
        used, 0,
        "SQLite counts its memory (a global mutex per allocation)"
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
