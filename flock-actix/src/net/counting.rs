//! A `Network` that counts the bytes a node writes, per frame kind: it
//! wraps TCP streams and splits what is written into frames (4-byte
//! big-endian length + MessagePack body) to read each frame's variant name.
//! For benchmarks and tests that assert what travels (e.g. that no frame
//! grows with the registry).

use super::{BoxFuture, BoxStream, Listener, Network, TcpNetwork};
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Frames and bytes written, per message variant (headers included).
pub type Tally = Arc<Mutex<BTreeMap<String, (u64, u64)>>>;

/// Counts every frame written through it into a shared [`Tally`]. Over TCP
/// by default; [`CountingNetwork::over`] wraps another network (e.g. the
/// in-memory one of a simulated cluster).
#[derive(Clone)]
pub struct CountingNetwork {
    /// Frames and bytes written so far, per variant.
    pub tally: Tally,
    /// The largest frame written (header included), in bytes.
    pub max: Arc<AtomicU64>,
    inner: Arc<dyn Network>,
}

impl Default for CountingNetwork {
    fn default() -> Self {
        Self::over(Arc::new(TcpNetwork))
    }
}

impl CountingNetwork {
    /// Counts the frames written over `inner`.
    pub fn over(inner: Arc<dyn Network>) -> Self {
        CountingNetwork {
            tally: Tally::default(),
            max: Arc::default(),
            inner,
        }
    }
}

impl Network for CountingNetwork {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let tally = (self.tally.clone(), self.max.clone());
        let inner = self.inner.bind(addr);
        Box::pin(async move {
            let inner = inner.await?;
            Ok(Box::new(CountingListener { inner, tally }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let tally = (self.tally.clone(), self.max.clone());
        let inner = self.inner.connect(addr);
        Box::pin(async move {
            let s = inner.await?;
            Ok(Box::new(Counting::new(s, tally)) as BoxStream)
        })
    }
}

struct CountingListener {
    inner: Box<dyn Listener>,
    tally: (Tally, Arc<AtomicU64>),
}

impl Listener for CountingListener {
    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }
    fn accept(&mut self) -> BoxFuture<'_, io::Result<BoxStream>> {
        let tally = self.tally.clone();
        Box::pin(async move {
            let s = self.inner.accept().await?;
            Ok(Box::new(Counting::new(s, tally)) as BoxStream)
        })
    }
}

struct Counting {
    inner: BoxStream,
    tally: Tally,
    max: Arc<AtomicU64>,
    /// Bytes of the current frame still to come (after its header).
    pending: Vec<u8>,
}

impl Counting {
    fn new(inner: BoxStream, (tally, max): (Tally, Arc<AtomicU64>)) -> Self {
        Counting {
            inner,
            tally,
            max,
            pending: Vec::new(),
        }
    }

    /// Feeds written bytes; records every completed frame.
    fn feed(&mut self, buf: &[u8]) {
        self.pending.extend_from_slice(buf);
        let mut at = 0;
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        while self.pending.len() - at >= 4 {
            let len =
                u32::from_be_bytes(self.pending[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
            if self.pending.len() - at < 4 + len {
                break;
            }
            let body = &self.pending[at + 4..at + 4 + len];
            let name = variant(body);
            let e = t.entry(name).or_default();
            e.0 += 1;
            e.1 += 4 + len as u64;
            self.max.fetch_max(4 + len as u64, Ordering::Relaxed);
            at += 4 + len;
        }
        self.pending.drain(..at);
    }
}

/// The variant name at the start of an encoded `Message`: `{name: ..}`
/// (0x81 + str) or a bare str.
fn variant(body: &[u8]) -> String {
    let s = if body.first() == Some(&0x81) {
        &body[1..]
    } else {
        body
    };
    match s.first() {
        Some(&b) if (0xa0..=0xbf).contains(&b) => {
            let n = (b & 0x1f) as usize;
            String::from_utf8_lossy(s.get(1..1 + n).unwrap_or(b"?")).into_owned()
        }
        _ => "?".into(),
    }
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            let n = *n;
            self.feed(&buf[..n]);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
