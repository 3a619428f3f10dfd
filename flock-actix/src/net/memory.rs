//! An in-memory network for tests: `tokio::io::duplex` pipes between
//! named endpoints in one process.

use super::{BoxFuture, BoxStream, Listener, Network};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Pipe capacity per direction; large enough that writers rarely wait.
const PIPE_BYTES: usize = 256 * 1024;

type Endpoints = HashMap<String, mpsc::UnboundedSender<BoxStream>>;

/// A set of in-memory endpoints. Clones share the same endpoints, so give
/// every node of one test a clone of one `MemoryNetwork`.
#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    endpoints: Arc<Mutex<Endpoints>>,
    next_port: Arc<AtomicU64>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn endpoints(&self) -> std::sync::MutexGuard<'_, Endpoints> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert or remove), so poisoning is ignored.
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Network for MemoryNetwork {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let local = match addr.strip_suffix(":0") {
            Some(host) => format!(
                "{host}:{}",
                1 + self.next_port.fetch_add(1, Ordering::Relaxed)
            ),
            None => addr.to_owned(),
        };
        let result = {
            let mut endpoints = self.endpoints();
            if endpoints.get(&local).is_some_and(|tx| !tx.is_closed()) {
                Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{local} is in use"),
                ))
            } else {
                let (tx, rx) = mpsc::unbounded_channel();
                endpoints.insert(local.clone(), tx);
                Ok(Box::new(Memory { local, rx }) as Box<dyn Listener>)
            }
        };
        Box::pin(async move { result })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let result = match self.endpoints().get(addr) {
            Some(tx) => {
                let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
                tx.send(Box::new(theirs))
                    .map(|()| Box::new(ours) as BoxStream)
                    .map_err(|_| refused(addr))
            }
            None => Err(refused(addr)),
        };
        Box::pin(async move { result })
    }
}

fn refused(addr: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("nothing listens on {addr}"),
    )
}

struct Memory {
    local: String,
    rx: mpsc::UnboundedReceiver<BoxStream>,
}

impl Listener for Memory {
    fn local_addr(&self) -> String {
        self.local.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            self.rx.recv().await.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotConnected, "memory network dropped")
            })
        })
    }
}
