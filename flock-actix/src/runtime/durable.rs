//! The registry on disk: an append-only log of CRDT states with fsync, so a
//! node that restarts (or a whole cluster that was SIGKILLed at once) gets
//! its registry back.
//!
//! # What is stored
//!
//! The file `registry.log` in the node's data directory holds records, each
//! a [`BirdMap`]: a snapshot of the whole replica state, then the deltas
//! and received states joined since. Replaying the file is joining every
//! record, in any order (joins commute), which gives back the replica's
//! state **with its causal context**: the dots of stopped birds stay known,
//! so when peers come back with older states, nothing stopped is
//! resurrected, and nothing started is lost.
//!
//! A record is `len: u32 LE ‖ check: 8 bytes ‖ payload` where the payload is
//! the MessagePack of the map and `check` the first 8 bytes of its SHA-256.
//! Replay stops at the first record that is cut short or does not check
//! (a torn write from an unclean stop) and truncates the file there.
//!
//! # fsync policy and what an unclean stop can lose
//!
//! Every append is written and `fdatasync`ed before the replica goes on: a
//! local start or stop is on disk before `Flock::start`/`stop` returns, and a
//! received change is on disk before it is acknowledged. So a SIGKILL or a
//! power cut loses nothing that was acknowledged; at most the record being
//! written when it happened, which its caller never saw succeed (and which
//! the peers still hold, if it came from them). Compaction writes the new
//! snapshot to a temporary file, fsyncs it, renames it over the log and
//! fsyncs the directory, so a crash during compaction leaves the old log or
//! the new one, never neither.
//!
//! The fsync runs on the replica's arbiter: a few milliseconds per change on
//! an SSD. Group commit (one fsync for the changes of one interval) is the
//! next step if that becomes the bottleneck.

use crate::core::crdt::BirdMap;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Name of the log inside the data directory.
const LOG: &str = "registry.log";
/// Bytes before a record's payload: length and check.
const HEADER: usize = 4 + 8;
/// The log is compacted into one snapshot once it is this much bigger than
/// the last snapshot (plus [`COMPACT_SLACK`]).
const COMPACT_FACTOR: u64 = 2;
/// Appends tolerated on top of the snapshot before compacting a small log.
const COMPACT_SLACK: u64 = 1024 * 1024;

fn check(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// One record's bytes.
pub(crate) fn encode_record(map: &BirdMap) -> Result<Vec<u8>> {
    let payload = rmp_serde::to_vec(map).map_err(|e| Error::Encode(e.to_string()))?;
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::Encode(format!("a {} byte registry record", payload.len())))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&check(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Joins every whole, intact record of `bytes` into one state; returns it
/// and the length of the valid prefix (where a torn tail starts).
pub(crate) fn replay(bytes: &[u8]) -> (BirdMap, usize) {
    let mut state = BirdMap::default();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if header[4..] != check(payload) {
            break;
        }
        // A saved state of a million names is read into the store's layout
        // as a sync frame is (`wire::sync`); any other form by rmp-serde.
        let map = match crate::wire::sync::read_map(payload) {
            Some(map) => map,
            None => match rmp_serde::from_slice::<BirdMap>(payload) {
                Ok(map) => map,
                Err(_) => break,
            },
        };
        state.join(&map);
        at += HEADER + len;
    }
    (state, at)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        kind: e.kind(),
        message: format!(
            "{what} {}: {e} (check the data directory's permissions and free space)",
            path.display()
        ),
    }
}

/// The open log of one node. See the module docs.
#[derive(Debug)]
pub(crate) struct Durable {
    dir: PathBuf,
    file: File,
    /// Bytes in the log now, and right after the last compaction.
    len: u64,
    snapshot_len: u64,
}

impl Durable {
    /// Opens (or creates) the log in `dir` and returns it with the state it
    /// holds. A torn tail is cut off.
    pub(crate) fn open(dir: &Path) -> Result<(Durable, BirdMap)> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
        let path = dir.join(LOG);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error("cannot open", &path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error("cannot read", &path, e))?;
        let (state, valid) = replay(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                "{}: dropping a torn or corrupt tail of {} bytes (a write cut short by an unclean stop)",
                path.display(),
                bytes.len() - valid
            );
            file.set_len(valid as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error("cannot truncate", &path, e))?;
        }
        let durable = Durable {
            dir: dir.to_owned(),
            file,
            len: valid as u64,
            snapshot_len: valid as u64,
        };
        Ok((durable, state))
    }

    /// Appends `map` and fsyncs. An empty map is not written.
    pub(crate) fn append(&mut self, map: &BirdMap) -> Result<()> {
        if map.is_empty() {
            return Ok(());
        }
        let record = encode_record(map)?;
        let path = self.dir.join(LOG);
        self.file
            .write_all(&record)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_error("cannot append to", &path, e))?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Whether the log has grown enough over its snapshot to be compacted.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.len > self.snapshot_len.saturating_mul(COMPACT_FACTOR) + COMPACT_SLACK
    }

    /// Replaces the log by one snapshot of `state` (see the module docs for
    /// why a crash midway is safe).
    pub(crate) fn compact(&mut self, state: &BirdMap) -> Result<()> {
        let record = encode_record(state)?;
        let path = self.dir.join(LOG);
        let tmp = self.dir.join(format!("{LOG}.tmp"));
        let write = || -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(&record)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()?;
            OpenOptions::new().append(true).open(&path)
        };
        self.file = write().map_err(|e| io_error("cannot compact", &path, e))?;
        self.len = record.len() as u64;
        self.snapshot_len = self.len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crdt::{BirdSpec, Replica, ReplicaId};

    fn replica(node: &str, incarnation: u64) -> Replica {
        Replica::new(ReplicaId {
            node: node.into(),
            incarnation,
        })
    }

    fn spec() -> BirdSpec {
        BirdSpec {
            kind: "k".into(),
            args: vec![7],
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "flock-durable-{tag}-{}-{}",
            std::process::id(),
            crate::runtime::node::wall_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_reopened_log_gives_back_the_state_with_its_removals() {
        let dir = temp_dir("reopen");
        let mut r = replica("a", 1);
        let (mut log, empty) = Durable::open(&dir).unwrap();
        assert!(empty.is_empty());
        for i in 0..20 {
            log.append(&r.add(&format!("b{i}"), spec(), 0).unwrap())
                .unwrap();
        }
        for i in 0..5 {
            log.append(&r.remove(&format!("b{i}"))).unwrap();
        }
        drop(log);
        let (_, state) = Durable::open(&dir).unwrap();
        assert_eq!(&state, r.state());
        // The restored context still removes an old add of a stopped bird.
        let mut restored = replica("a", 2);
        restored.join(r.id(), &state).unwrap();
        let mut stale = replica("a", 1);
        stale.add("b0", spec(), 0).unwrap();
        restored.join(stale.id(), stale.state()).unwrap();
        assert!(!restored.state().contains("b0"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_what_came_before_survives() {
        let mut r = replica("a", 1);
        let mut bytes = encode_record(&r.add("kept", spec(), 0).unwrap()).unwrap();
        let second = encode_record(&r.add("torn", spec(), 0).unwrap()).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&second[..second.len() - 3]);
        let (state, valid) = replay(&bytes);
        assert_eq!(valid, whole);
        assert!(state.contains("kept") && !state.contains("torn"));
        // A flipped byte fails the check the same way.
        let mut bytes = encode_record(r.state()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(replay(&bytes).1, 0);
    }

    #[test]
    fn compaction_keeps_the_state_and_shrinks_the_log() {
        let dir = temp_dir("compact");
        let mut r = replica("a", 1);
        let (mut log, _) = Durable::open(&dir).unwrap();
        for i in 0..50 {
            log.append(&r.add("same", spec(), i).unwrap()).unwrap();
        }
        let before = log.len;
        log.compact(r.state()).unwrap();
        assert!(log.len < before);
        log.append(&r.add("after", spec(), 99).unwrap()).unwrap();
        drop(log);
        let (_, state) = Durable::open(&dir).unwrap();
        assert_eq!(&state, r.state());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
