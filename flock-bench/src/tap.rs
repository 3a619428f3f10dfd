//! Observing a node from outside the library: a logger that forwards to
//! `env_logger` and counts the events the scale benches need (a peer declared
//! down, a link lost, a frame refused for its size, with the largest size
//! refused), and a global allocator that counts live heap bytes once a child
//! turns it on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};

/// "node A declares B down: silent for more than .. ms" lines in this process.
pub static DOWNS: AtomicU64 = AtomicU64::new(0);
/// "node A lost its link to B" lines.
pub static LINKS_LOST: AtomicU64 = AtomicU64::new(0);
/// Frames refused for their size ("dropped a .. frame", "exceeds max_frame";
/// the library rate-limits the first kind, so this is a lower bound).
pub static OVERSIZE: AtomicU64 = AtomicU64::new(0);
/// The largest size named in an oversize line, in bytes.
pub static MAX_REFUSED: AtomicU64 = AtomicU64::new(0);

struct Tap {
    inner: env_logger::Logger,
}

impl log::Log for Tap {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info || self.inner.enabled(m)
    }

    fn log(&self, r: &log::Record) {
        if r.level() <= log::Level::Info && r.target().starts_with("flock_actix") {
            count(&r.args().to_string());
        }
        if self.inner.matches(r) {
            self.inner.log(r);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

fn count(line: &str) {
    if line.contains(" declares ") && line.contains(" down: silent") {
        DOWNS.fetch_add(1, Relaxed);
    } else if line.contains(" lost its link to ") {
        LINKS_LOST.fetch_add(1, Relaxed);
    } else if line.contains("exceeds max_frame") || line.starts_with("dropped a ") {
        OVERSIZE.fetch_add(1, Relaxed);
        // The frame's size is the largest number in the line (the cap and
        // the dropped count are smaller).
        let biggest = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        MAX_REFUSED.fetch_max(biggest, Relaxed);
    }
}

/// Installs the counting logger (RUST_LOG filters what is printed, `error`
/// by default, as before; the counted lines are info and above whatever it says).
pub fn init_logger() {
    let inner = env_logger::Builder::new()
        .filter_level(log::LevelFilter::Error)
        .parse_env("RUST_LOG")
        // Milliseconds: the scale benches' timelines (a transfer joined,
        // a bird count answered) are read from these lines.
        .format_timestamp_millis()
        .build();
    let max = inner.filter().max(log::LevelFilter::Info);
    if log::set_logger(Box::leak(Box::new(Tap { inner }))).is_ok() {
        log::set_max_level(max);
    }
}

/// `DOWNS LINKS_LOST OVERSIZE MAX_REFUSED` as one line's fields.
pub fn counters() -> [u64; 4] {
    [
        DOWNS.load(Relaxed),
        LINKS_LOST.load(Relaxed),
        OVERSIZE.load(Relaxed),
        MAX_REFUSED.load(Relaxed),
    ]
}

/// Whether [`CountingAlloc`] counts (off unless a child asks: the counter
/// costs an atomic add per allocation).
pub static ALLOC_ON: AtomicBool = AtomicBool::new(false);
/// Heap bytes allocated and not freed since counting was turned on.
pub static HEAP: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting live bytes while [`ALLOC_ON`].
pub struct CountingAlloc;

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if ALLOC_ON.load(Relaxed) && !p.is_null() {
            HEAP.fetch_add(l.size() as i64, Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if ALLOC_ON.load(Relaxed) && !p.is_null() {
            HEAP.fetch_add(l.size() as i64, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if ALLOC_ON.load(Relaxed) {
            HEAP.fetch_sub(l.size() as i64, Relaxed);
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if ALLOC_ON.load(Relaxed) && !q.is_null() {
            HEAP.fetch_add(new as i64 - l.size() as i64, Relaxed);
        }
        q
    }
}
