//! The source of truth for tick counters: a database every server reaches.
//!
//! Birds talk to a [`TickStore`], a two-method trait, so the database is a
//! choice of the server, not of the bird. The example ships [`SqliteStore`]:
//! SQLite embedded in the process (nothing to install), one database file
//! that every server on the machine opens, in WAL mode so readers never
//! block the writer. Servers on several hosts need a server database
//! instead: implement [`TickStore`] over it (docs/TICKER.md shows Postgres)
//! and hand it to the builder in `main.rs`.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Where ticker birds keep their counters.
///
/// `save` must be durable against a killed process before it returns: a
/// ticker shows a tick to callers only after saving it, and a bird hatched
/// elsewhere after a crash resumes from `load`.
pub(crate) trait TickStore: Send + Sync + 'static {
    /// The last counter saved for `user`, 0 if none was.
    fn load(&self, user: &str) -> Result<u64, StoreError>;
    /// Saves `tick` for `user`. A counter never goes backwards: saving a
    /// smaller value than the stored one (a stale instance during a
    /// partition) keeps the larger.
    fn save(&self, user: &str, tick: u64) -> Result<(), StoreError>;
}

/// A store failure, with the database's own message.
#[derive(Debug)]
pub(crate) struct StoreError(String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tick store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Counters in one SQLite file, shared by every server on the machine.
pub(crate) struct SqliteStore {
    // One connection per server; birds on every arbiter share it. A tick
    // save is a few microseconds, far below the tick period.
    conn: Mutex<Connection>,
}

/// How long a writer waits for another server's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(e.to_string()))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Servers started together open the file at once, and switching it
        // to WAL can answer SQLITE_BUSY at once, without waiting through the
        // busy timeout (seen: one of three servers exiting with "database is
        // locked"). The set-up is idempotent: retry it within the timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::set_up(&conn) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                done => break done?,
            }
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn set_up(conn: &Connection) -> rusqlite::Result<()> {
        // WAL: concurrent readers, one writer, and a committed transaction
        // survives a killed process. synchronous=NORMAL skips the fsync per
        // commit (a power cut may lose the last ticks, a crash does not).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS ticks (
                 user TEXT PRIMARY KEY NOT NULL,
                 tick INTEGER NOT NULL
             )",
        )
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable:
        // every statement is a single autocommitted write or read.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TickStore for SqliteStore {
    fn load(&self, user: &str) -> Result<u64, StoreError> {
        let tick: Option<i64> = self
            .conn()
            .query_row("SELECT tick FROM ticks WHERE user = ?1", [user], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(tick.map_or(0, |t| u64::try_from(t).unwrap_or(0)))
    }

    fn save(&self, user: &str, tick: u64) -> Result<(), StoreError> {
        let tick = i64::try_from(tick).map_err(|_| StoreError(format!("tick {tick} too large")))?;
        self.conn().execute(
            "INSERT INTO ticks (user, tick) VALUES (?1, ?2)
             ON CONFLICT (user) DO UPDATE SET tick = MAX(tick, excluded.tick)",
            params![user, tick],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_survives_reopening_and_never_goes_backwards() {
        let dir = std::env::temp_dir().join(format!("ticker-store-{}", std::process::id()));
        let path = dir.join("ticks.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load("alice").unwrap(), 0);
        store.save("alice", 7).unwrap();
        store.save("alice", 5).unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load("alice").unwrap(), 7);
        assert_eq!(store.load("bob").unwrap(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn servers_opening_a_new_file_at_once_all_succeed() {
        for round in 0..20 {
            let dir = std::env::temp_dir()
                .join(format!("ticker-store-race-{}-{round}", std::process::id()));
            let path = dir.join("ticks.sqlite");
            let opened: Vec<_> = (0..6)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || SqliteStore::open(&path).map(|_| ()))
                })
                .collect();
            for handle in opened {
                handle.join().unwrap().unwrap();
            }
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
