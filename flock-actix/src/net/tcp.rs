//! Real TCP.

use super::{BoxFuture, BoxStream, Listener, Network};
use std::io;
use tokio::net::{TcpListener, TcpStream};

/// The production network: TCP with `TCP_NODELAY` (calls are small and
/// latency-bound; writes are already batched per connection).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpNetwork;

impl Network for TcpNetwork {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            let listener = TcpListener::bind(&addr).await?;
            let local = listener.local_addr()?.to_string();
            Ok(Box::new(Tcp { listener, local }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            let stream = TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

struct Tcp {
    listener: TcpListener,
    local: String,
}

impl Listener for Tcp {
    fn local_addr(&self) -> String {
        self.local.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            let (stream, _) = self.listener.accept().await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}
