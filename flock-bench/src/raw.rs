//! The raw baselines: tokio TCP with the library's own frame codec and
//! messages (`FrameCodec` = LengthDelimitedCodec + rmp-serde), so the bytes on
//! the wire are the same as flock-actix's.

use crate::birds::{CASTS, Cast32, Ping};
use bytes::BytesMut;
use flock_actix::wire::{FrameCodec, Message};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

pub const KIND: &str = "bench.Sink";

fn codec() -> FrameCodec {
    let mut c = FrameCodec::new();
    c.set_max_frame(32 * 1024 * 1024).expect("frame cap");
    c
}

/// The child: a raw server answering `Call`s and counting `Cast`s.
pub fn server_main() {
    crate::procs::serve_stdin();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("LISTEN {}", listener.local_addr().expect("addr"));
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                loop {
                    let Ok((s, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    tokio::task::spawn_local(serve(s));
                }
            })
            .await;
    });
}

async fn serve(mut s: TcpStream) {
    let mut codec = codec();
    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    loop {
        match s.read_buf(&mut rbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let msg = match codec.decode(&mut rbuf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => return,
            };
            match msg {
                Message::Call {
                    id, msg, payload, ..
                } => {
                    // Decode the request and encode the reply like a bird
                    // dispatch would.
                    let reply = if msg == "Count" {
                        rmp_serde::to_vec(&CASTS.load(Relaxed))
                    } else {
                        let _: Ping = rmp_serde::from_slice(&payload).unwrap_or(Ping);
                        rmp_serde::to_vec(&0u64)
                    }
                    .expect("encode");
                    let _ = codec.encode(
                        Message::Reply {
                            id,
                            result: Ok(reply),
                        },
                        &mut wbuf,
                    );
                }
                Message::Cast { payload, .. } => {
                    let c: Option<Cast32> = rmp_serde::from_slice(&payload).ok();
                    if c.is_some() {
                        CASTS.fetch_add(1, Relaxed);
                    }
                }
                _ => {}
            }
        }
        if !wbuf.is_empty() {
            if s.write_all(&wbuf).await.is_err() {
                return;
            }
            wbuf.clear();
        }
    }
}

/// A client connection to a raw server.
pub struct RawClient {
    s: TcpStream,
    codec: FrameCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    next: u64,
}

pub fn call_msg(id: u64, bird: &str, tag: &str) -> Message {
    Message::Call {
        id,
        bird: bird.to_owned(),
        kind: KIND.to_owned(),
        msg: tag.to_owned(),
        payload: rmp_serde::to_vec(&Ping).expect("encode"),
        timeout_ms: 5000,
        forwarded: false,
    }
}

pub fn cast_msg(bird: &str) -> Message {
    Message::Cast {
        bird: bird.to_owned(),
        kind: KIND.to_owned(),
        msg: "Cast32".to_owned(),
        payload: rmp_serde::to_vec(&Cast32(vec![7u8; 32])).expect("encode"),
    }
}

impl RawClient {
    pub async fn connect(addr: &str) -> RawClient {
        let s = TcpStream::connect(addr).await.expect("connect raw");
        s.set_nodelay(true).expect("nodelay");
        RawClient {
            s,
            codec: codec(),
            rbuf: BytesMut::with_capacity(256 * 1024),
            wbuf: BytesMut::with_capacity(64 * 1024),
            next: 1,
        }
    }

    async fn flush(&mut self) {
        self.s.write_all(&self.wbuf).await.expect("write");
        self.wbuf.clear();
    }

    fn queue(&mut self, m: Message) {
        self.codec.encode(m, &mut self.wbuf).expect("encode");
    }

    /// Reads until at least one reply arrived; returns the replies' payloads.
    async fn read_replies(&mut self, out: &mut Vec<Vec<u8>>) {
        loop {
            while let Some(m) = self.codec.decode(&mut self.rbuf).expect("decode") {
                if let Message::Reply { result: Ok(r), .. } = m {
                    out.push(r);
                }
            }
            if !out.is_empty() {
                return;
            }
            let n = self.s.read_buf(&mut self.rbuf).await.expect("read");
            assert!(n > 0, "raw server closed");
        }
    }

    /// One call, waiting for its reply.
    pub async fn call(&mut self, bird: &str, tag: &str) -> Vec<u8> {
        let id = self.next;
        self.next += 1;
        self.queue(call_msg(id, bird, tag));
        self.flush().await;
        let mut out = Vec::with_capacity(1);
        self.read_replies(&mut out).await;
        out.pop().unwrap_or_default()
    }

    /// `n` sequential calls; each latency.
    pub async fn rtt(&mut self, n: usize) -> Vec<Duration> {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            self.call(&format!("b{}", i % 64), "Ping").await;
            v.push(t.elapsed());
        }
        v
    }

    /// `total` calls with `inflight` outstanding at all times; calls/s.
    pub async fn concurrent(&mut self, inflight: usize, total: usize) -> f64 {
        let t = Instant::now();
        let mut sent = 0;
        let mut done = 0;
        while sent < inflight.min(total) {
            let id = self.next;
            self.next += 1;
            self.queue(call_msg(id, &format!("b{}", sent % 64), "Ping"));
            sent += 1;
        }
        self.flush().await;
        let mut out = Vec::new();
        while done < total {
            out.clear();
            self.read_replies(&mut out).await;
            done += out.len();
            for _ in 0..out.len() {
                if sent < total {
                    let id = self.next;
                    self.next += 1;
                    self.queue(call_msg(id, &format!("b{}", sent % 64), "Ping"));
                    sent += 1;
                }
            }
            if !self.wbuf.is_empty() {
                self.flush().await;
            }
        }
        total as f64 / t.elapsed().as_secs_f64()
    }

    /// Streams `total` casts (encoding each frame, 1024 per write), then
    /// asks for the count; msgs/s until all were counted.
    pub async fn casts(&mut self, total: usize, birds: usize) -> f64 {
        let before = self.count().await;
        let names: Vec<String> = (0..birds).map(|i| format!("c{i}")).collect();
        let t = Instant::now();
        for i in 0..total {
            self.queue(cast_msg(&names[i % birds]));
            if i % 1024 == 1023 {
                self.flush().await;
            }
        }
        self.flush().await;
        let after = self.count().await;
        let el = t.elapsed().as_secs_f64();
        assert_eq!(
            after - before,
            total as u64,
            "raw server counted every cast"
        );
        total as f64 / el
    }

    pub async fn count(&mut self) -> u64 {
        let r = self.call("c0", "Count").await;
        rmp_serde::from_slice(&r).unwrap_or(0)
    }
}
