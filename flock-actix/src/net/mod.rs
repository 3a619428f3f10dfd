//! The network behind a small trait: TCP in production, an in-memory network
//! in tests, and a fault-injecting wrapper around either for partitions.
//!
//! Nodes only ever `bind` one address and `connect` to others' addresses;
//! everything above sees a byte stream. That keeps the node's core paths free
//! of `TcpStream` and lets tests cut links deterministically.

mod advertise;
mod counting;
mod faults;
mod memory;
mod prefixed;
mod tcp;
#[cfg(feature = "tls")]
mod tls;

pub(crate) use advertise::advertised_addr;
pub use counting::{CountingNetwork, Tally};
pub use faults::{Faults, FaultyNetwork};
pub use memory::MemoryNetwork;
pub(crate) use prefixed::Prefixed;
pub use tcp::TcpNetwork;
#[cfg(feature = "tls")]
pub use tls::{DEFAULT_SERVER_NAME, TlsConfig, TlsNetwork};

use std::future::Future;
use std::io;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bidirectional byte stream between two nodes.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed [`Stream`].
pub type BoxStream = Box<dyn Stream>;

/// How a node reaches others.
pub trait Network: Send + Sync + 'static {
    /// Listens on `addr` (a port of 0 picks a free one).
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    /// Opens a stream to the node listening on `addr`.
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// A bound listening endpoint.
pub trait Listener: Send + 'static {
    /// The address others dial to reach it (the real port if 0 was asked).
    fn local_addr(&self) -> String;
    /// Waits for the next incoming stream.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<BoxStream>>;
}
