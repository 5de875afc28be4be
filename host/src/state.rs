//! The host's small persistent state (breakers, task usage): one SQLite database,
//! `STATE_DIR/state.sqlite`, that survives restarts. Each module that keeps state creates its
//! own tables (`CREATE TABLE IF NOT EXISTS`) through [`StateDb::with`].

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("state database {}: {reason}", path.display())]
pub struct StateError {
    pub path: PathBuf,
    pub reason: String,
}

pub struct StateDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl StateDb {
    /// Opens (or creates) the database in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<StateDb, StateError> {
        let path = state_dir.join("state.sqlite");
        let error =
            |e: &dyn std::fmt::Display| StateError { path: path.clone(), reason: e.to_string() };
        std::fs::create_dir_all(state_dir).map_err(|e| error(&e))?;
        let conn = Connection::open(&path).map_err(|e| error(&e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| error(&e))?;
        Ok(StateDb { path, conn: Mutex::new(conn) })
    }

    /// Runs `work` on the connection (one caller at a time).
    pub fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&conn).map_err(|e| StateError { path: self.path.clone(), reason: e.to_string() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
