//! The benchmark bird and its messages, and process-wide counters that a
//! child node reports to the parent over its stdin/stdout pipe.

use flock_actix::prelude::*;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Birds hatched in this process.
pub static HATCHED: AtomicU64 = AtomicU64::new(0);
/// Birds alive in this process (hatched minus stopped).
pub static LIVE: AtomicI64 = AtomicI64::new(0);
/// Casts handled in this process.
pub static CASTS: AtomicU64 = AtomicU64::new(0);

/// A bird that answers pings and counts casts.
#[flock_bird(kind = "bench.Sink", messages(Ping, Cast32))]
pub struct Sink {
    /// Counted casts (also answers `Ping`).
    pub n: u64,
    /// Whether this instance was hatched by flock (counted in `LIVE`).
    pub bird: bool,
}

impl Actor for Sink {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.bird {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Bird for Sink {
    type Args = u64;
    fn hatch(_: &str, args: u64, _nest: &Nest) -> Result<Self, HatchError> {
        HATCHED.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(Sink {
            n: args,
            bird: true,
        })
    }
}

/// Answered with the cast count.
#[derive(Message, Serialize, Deserialize, Clone, Copy)]
#[rtype(result = "u64")]
pub struct Ping;

impl Handler<Ping> for Sink {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        self.n
    }
}

/// A 32-byte one-way message.
#[derive(Message, Serialize, Deserialize, Clone)]
#[rtype(result = "()")]
pub struct Cast32(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl Handler<Cast32> for Sink {
    type Result = ();
    fn handle(&mut self, _: Cast32, _: &mut Context<Self>) {
        self.n += 1;
        CASTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// This process's resident set size in bytes (from /proc/self/statm), after
/// handing freed heap pages back to the OS (`malloc_trim(0)`), so that what
/// is measured is memory in use rather than the high-water mark of transient
/// buffers (decoded sync frames, batched deltas). Used for flock and the
/// plain-actix baseline alike.
pub fn rss_bytes() -> u64 {
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only releases free heap memory; no pointer of ours
    // is involved.
    unsafe {
        libc::malloc_trim(0);
    }
    rss_untrimmed()
}

/// With `FLOCK_MALLINFO` set: glibc's own account of this process's heap
/// (`mallinfo2`), as one line's fields, for splitting an RSS figure into
/// bytes in use (`uord`, chunk headers and rounding included), free bytes the
/// arenas keep (`ford`: holes between live chunks that `malloc_trim` cannot
/// hand back) and large blocks mapped on their own (`hblkhd`).
pub fn mallinfo() -> Option<String> {
    std::env::var_os("FLOCK_MALLINFO")?;
    #[allow(unsafe_code)]
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    Some(format!(
        "arena {} uord {} ford {} hblkhd {} ordblks {}",
        m.arena, m.uordblks, m.fordblks, m.hblkhd, m.ordblks
    ))
}

/// The resident set size as the kernel reports it, freed heap pages the
/// allocator keeps included (its high-water mark).
pub fn rss_untrimmed() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
