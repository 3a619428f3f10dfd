//! Fault injection for partition tests: cut and heal links between nodes
//! (by listen address) on any [`Network`].
//!
//! A cut link behaves like a network that silently drops packets: dials
//! time out, and on open streams writes vanish and nothing is read (not even
//! a close). The nodes notice only through missing heartbeats, exactly as
//! they would a real partition or a hung host.

use super::{BoxFuture, BoxStream, Listener, Network};
use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a dial across a cut link takes to fail.
const CUT_DIAL_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct Cuts {
    pairs: HashSet<(String, String)>,
    isolated: HashSet<String>,
}

/// The shared set of cut links. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    cuts: Arc<Mutex<Cuts>>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl Faults {
    /// No link cut.
    pub fn new() -> Self {
        Self::default()
    }

    fn cuts(&self) -> std::sync::MutexGuard<'_, Cuts> {
        // Updates are single set operations, so a poisoned lock is consistent.
        self.cuts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the link between the nodes listening on `a` and `b`.
    pub fn cut(&self, a: &str, b: &str) {
        self.cuts().pairs.insert(pair(a, b));
    }

    /// Cuts every link of the node listening on `a`.
    pub fn isolate(&self, a: &str) {
        self.cuts().isolated.insert(a.to_owned());
    }

    /// Restores every link.
    pub fn heal_all(&self) {
        let mut cuts = self.cuts();
        cuts.pairs.clear();
        cuts.isolated.clear();
    }

    /// Whether the link between `a` and `b` is cut.
    pub fn is_cut(&self, a: &str, b: &str) -> bool {
        let cuts = self.cuts();
        cuts.isolated.contains(a) || cuts.isolated.contains(b) || cuts.pairs.contains(&pair(a, b))
    }
}

/// Wraps a [`Network`] so that [`Faults`] apply to the streams this node dials.
///
/// Only the dialling side is wrapped: it drops traffic in both directions,
/// which is what both ends of a cut link observe.
pub struct FaultyNetwork {
    inner: Arc<dyn Network>,
    faults: Faults,
    me: Arc<Mutex<String>>,
}

impl FaultyNetwork {
    /// `inner` with `faults` applied.
    pub fn new(inner: Arc<dyn Network>, faults: Faults) -> Self {
        FaultyNetwork {
            inner,
            faults,
            me: Arc::default(),
        }
    }

    fn me(&self) -> String {
        self.me.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for FaultyNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyNetwork")
            .field("me", &self.me())
            .finish()
    }
}

impl Network for FaultyNetwork {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let bind = self.inner.bind(addr);
        let me = self.me.clone();
        Box::pin(async move {
            let listener = bind.await?;
            *me.lock().unwrap_or_else(|e| e.into_inner()) = listener.local_addr();
            Ok(listener)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let (me, remote, faults) = (self.me(), addr.to_owned(), self.faults.clone());
        let connect = self.inner.connect(addr);
        Box::pin(async move {
            if faults.is_cut(&me, &remote) {
                tokio::time::sleep(CUT_DIAL_DELAY).await;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("link {me} - {remote} is cut"),
                ));
            }
            let inner = connect.await?;
            Ok(Box::new(FaultyStream {
                inner,
                faults,
                me,
                remote,
            }) as BoxStream)
        })
    }
}

struct FaultyStream {
    inner: BoxStream,
    faults: Faults,
    me: String,
    remote: String,
}

impl FaultyStream {
    fn cut(&self) -> bool {
        self.faults.is_cut(&self.me, &self.remote)
    }
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.cut() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        // Drain and drop whatever arrives while cut, including a close: a
        // partitioned peer is silent, not gone.
        let mut scratch = [0u8; 4096];
        loop {
            let mut sink = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut sink) {
                Poll::Ready(Ok(())) if !sink.filled().is_empty() => continue,
                Poll::Ready(_) => return Poll::Pending,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut() {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cut() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
