//! The source of truth for tick counters: one small file per user.
//!
//! Every server on the machine points `--state-dir` at the same directory, so
//! a bird restarted on another server reads the counter its previous
//! incarnation wrote. In production this would be a database (or any store
//! all nodes reach); a directory keeps the example free of services.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A directory of `<user>.tick` files, each holding one decimal counter.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("{user}.tick"))
    }

    /// The last counter saved for `user`, 0 if none was.
    pub(crate) fn load(&self, user: &str) -> io::Result<u64> {
        match std::fs::read_to_string(self.path(user)) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Saves `tick` for `user` atomically: write a temporary file, then
    /// rename it over the old one, so a reader (or a process killed midway)
    /// never sees a torn value. No fsync: this survives a killed process,
    /// not a power cut, which is what the example needs.
    pub(crate) fn save(&self, user: &str, tick: u64) -> io::Result<()> {
        // Unique per process: two incarnations of one bird (e.g. during a
        // partition) never share a temporary file.
        let tmp = self
            .dir
            .join(format!(".{user}.tick.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{tick}")?;
        drop(file);
        std::fs::rename(&tmp, self.path(user))
    }
}
