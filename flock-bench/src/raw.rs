//! The baselines every message row is measured against, in the same round:
//!
//! - **flock frames** ([`FlockFrames`]): tokio TCP with the library's own frame
//!   codec and messages (`FrameCodec` = LengthDelimitedCodec + rmp-serde), so
//!   the bytes on the wire are flock-actix's and the server decodes and
//!   encodes them like a node would, without the actors in between.
//! - **raw bytes** ([`RawBytes`]): the floor — a 4-byte big-endian length and
//!   a 32-byte body, no serde; the server only reads the body's tag byte.
//!   The flock-frame baseline alone flatters (it is ≈ 10× slower than the wire
//!   for one-way messages), hence both.
//!
//! One server loop and one client serve both, through the [`Protocol`] trait.

use crate::birds::{CASTS, Cast32, Ping};
use bytes::{Buf, BufMut, BytesMut};
use flock_actix::wire::{FrameCodec, Message};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

pub const KIND: &str = "bench.Sink";

/// A frame as the baseline server or client sees it.
pub enum Inbound {
    /// A call to answer; `count` asks for the casts counted so far.
    Call { id: u64, count: bool },
    /// A one-way message (already checked/decoded as the protocol requires).
    Cast,
    /// A reply carrying a number.
    Reply(u64),
    /// Anything else (ignored).
    Other,
}

/// How a baseline puts messages on the wire and reads them back.
pub trait Protocol: Default + 'static {
    /// The name used in rows.
    const NAME: &'static str;
    /// The hidden subcommand that runs its server.
    const SERVER: &'static str;
    fn call(&mut self, id: u64, bird: &str, count: bool, buf: &mut BytesMut);
    fn cast(&mut self, bird: &str, buf: &mut BytesMut);
    fn reply(&mut self, id: u64, value: u64, buf: &mut BytesMut);
    /// The next whole frame in `buf`; `Ok(None)` if incomplete.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, ()>;
}

/// flock-actix's own frames and messages.
pub struct FlockFrames(FrameCodec);

impl Default for FlockFrames {
    fn default() -> Self {
        let mut c = FrameCodec::new();
        c.set_max_frame(32 * 1024 * 1024).expect("frame cap");
        FlockFrames(c)
    }
}

impl Protocol for FlockFrames {
    const NAME: &'static str = "flock frames over plain tokio TCP";
    const SERVER: &'static str = "__raw";

    fn call(&mut self, id: u64, bird: &str, count: bool, buf: &mut BytesMut) {
        let m = Message::Call {
            id,
            bird: bird.to_owned(),
            kind: KIND.to_owned(),
            msg: if count { "Count" } else { "Ping" }.to_owned(),
            payload: rmp_serde::to_vec(&Ping).expect("encode"),
            timeout_ms: 5000,
            forwarded: false,
        };
        self.0.encode(m, buf).expect("encode");
    }

    fn cast(&mut self, bird: &str, buf: &mut BytesMut) {
        let m = Message::Cast {
            bird: bird.to_owned(),
            kind: KIND.to_owned(),
            msg: "Cast32".to_owned(),
            payload: rmp_serde::to_vec(&Cast32(vec![7u8; 32])).expect("encode"),
        };
        self.0.encode(m, buf).expect("encode");
    }

    fn reply(&mut self, id: u64, value: u64, buf: &mut BytesMut) {
        let result = Ok(rmp_serde::to_vec(&value).expect("encode"));
        self.0
            .encode(Message::Reply { id, result }, buf)
            .expect("encode");
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, ()> {
        let Some(m) = self.0.decode(buf).map_err(|_| ())? else {
            return Ok(None);
        };
        // Decode payloads like a bird dispatch would.
        Ok(Some(match m {
            Message::Call {
                id, msg, payload, ..
            } => {
                let count = msg == "Count";
                if !count {
                    let _: Ping = rmp_serde::from_slice(&payload).unwrap_or(Ping);
                }
                Inbound::Call { id, count }
            }
            Message::Cast { payload, .. } => match rmp_serde::from_slice::<Cast32>(&payload) {
                Ok(_) => Inbound::Cast,
                Err(_) => Inbound::Other,
            },
            Message::Reply { result: Ok(r), .. } => {
                Inbound::Reply(rmp_serde::from_slice(&r).unwrap_or(0))
            }
            _ => Inbound::Other,
        }))
    }
}

/// The floor: `[u32 BE length = 32][tag][u64 LE id or value][23 bytes of 7s]`.
#[derive(Default)]
pub struct RawBytes;

const BODY: usize = 32;
const TAG_CALL: u8 = b'c';
const TAG_COUNT: u8 = b'n';
const TAG_CAST: u8 = b's';
const TAG_REPLY: u8 = b'r';

fn raw_frame(tag: u8, word: u64, buf: &mut BytesMut) {
    buf.reserve(4 + BODY);
    buf.put_u32(BODY as u32);
    buf.put_u8(tag);
    buf.put_u64_le(word);
    buf.put_bytes(7, BODY - 9);
}

impl Protocol for RawBytes {
    const NAME: &'static str = "raw bytes (4-byte length + 32 B, no serde) over plain tokio TCP";
    const SERVER: &'static str = "__rawbytes";

    fn call(&mut self, id: u64, _bird: &str, count: bool, buf: &mut BytesMut) {
        raw_frame(if count { TAG_COUNT } else { TAG_CALL }, id, buf);
    }

    fn cast(&mut self, _bird: &str, buf: &mut BytesMut) {
        raw_frame(TAG_CAST, 0, buf);
    }

    fn reply(&mut self, _id: u64, value: u64, buf: &mut BytesMut) {
        raw_frame(TAG_REPLY, value, buf);
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, ()> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if !(9..=1024).contains(&len) {
            return Err(());
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        let tag = buf[0];
        let word = u64::from_le_bytes(buf[1..9].try_into().map_err(|_| ())?);
        buf.advance(len);
        Ok(Some(match tag {
            TAG_CALL => Inbound::Call {
                id: word,
                count: false,
            },
            TAG_COUNT => Inbound::Call {
                id: word,
                count: true,
            },
            TAG_CAST => Inbound::Cast,
            TAG_REPLY => Inbound::Reply(word),
            _ => Inbound::Other,
        }))
    }
}

/// The child: a baseline server answering calls and counting casts, one
/// thread, replies to everything read in one `read` written in one `write`.
pub fn server_main<P: Protocol>() {
    crate::procs::serve_stdin(None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("LISTEN {} -", listener.local_addr().expect("addr"));
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                loop {
                    let Ok((s, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    tokio::task::spawn_local(serve::<P>(s));
                }
            })
            .await;
    });
}

async fn serve<P: Protocol>(mut s: TcpStream) {
    let mut p = P::default();
    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    loop {
        match s.read_buf(&mut rbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            match p.decode(&mut rbuf) {
                Ok(Some(Inbound::Call { id, count })) => {
                    let v = if count { CASTS.load(Relaxed) } else { 0 };
                    p.reply(id, v, &mut wbuf);
                }
                Ok(Some(Inbound::Cast)) => {
                    CASTS.fetch_add(1, Relaxed);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(()) => return,
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

/// A client connection to a baseline server.
pub struct Client<P: Protocol> {
    s: TcpStream,
    p: P,
    rbuf: BytesMut,
    wbuf: BytesMut,
    next: u64,
    names: Vec<String>,
}

impl<P: Protocol> Client<P> {
    pub async fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).await.expect("connect baseline");
        s.set_nodelay(true).expect("nodelay");
        Client {
            s,
            p: P::default(),
            rbuf: BytesMut::with_capacity(256 * 1024),
            wbuf: BytesMut::with_capacity(64 * 1024),
            next: 1,
            names: (0..64).map(|i| format!("b{i}")).collect(),
        }
    }

    async fn flush(&mut self) {
        self.s.write_all(&self.wbuf).await.expect("write");
        self.wbuf.clear();
    }

    fn queue_call(&mut self, i: usize, count: bool) {
        let id = self.next;
        self.next += 1;
        let bird = &self.names[i % self.names.len()];
        self.p.call(id, bird, count, &mut self.wbuf);
    }

    /// Reads until at least one reply arrived; returns how many and the last value.
    async fn read_replies(&mut self) -> (usize, u64) {
        let (mut n, mut last) = (0, 0);
        loop {
            while let Some(m) = self.p.decode(&mut self.rbuf).expect("decode") {
                if let Inbound::Reply(v) = m {
                    n += 1;
                    last = v;
                }
            }
            if n > 0 {
                return (n, last);
            }
            let got = self.s.read_buf(&mut self.rbuf).await.expect("read");
            assert!(got > 0, "baseline server closed");
        }
    }

    /// One call, waiting for its reply.
    async fn call(&mut self, i: usize, count: bool) -> u64 {
        self.queue_call(i, count);
        self.flush().await;
        self.read_replies().await.1
    }

    /// `n` sequential calls; each latency.
    pub async fn rtt(&mut self, n: usize) -> Vec<Duration> {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            self.call(i, false).await;
            v.push(t.elapsed());
        }
        v
    }

    /// `total` calls with `inflight` outstanding at all times on this one
    /// connection (pipelined); calls/s.
    pub async fn concurrent(&mut self, inflight: usize, total: usize) -> f64 {
        let t = Instant::now();
        let mut sent = 0;
        let mut done = 0;
        while sent < inflight.min(total) {
            self.queue_call(sent, false);
            sent += 1;
        }
        self.flush().await;
        while done < total {
            let (n, _) = self.read_replies().await;
            done += n;
            for _ in 0..n {
                if sent < total {
                    self.queue_call(sent, false);
                    sent += 1;
                }
            }
            if !self.wbuf.is_empty() {
                self.flush().await;
            }
        }
        total as f64 / t.elapsed().as_secs_f64()
    }

    /// Streams `total` casts (encoding each frame, 1024 per write) over
    /// `birds` names, then asks for the count; msg/s until all were counted.
    pub async fn casts(&mut self, total: usize, birds: usize) -> f64 {
        let before = self.call(0, true).await;
        let names: Vec<String> = (0..birds).map(|i| format!("c{i}")).collect();
        let t = Instant::now();
        for i in 0..total {
            self.p.cast(&names[i % birds], &mut self.wbuf);
            if i % 1024 == 1023 {
                self.flush().await;
            }
        }
        self.flush().await;
        let after = self.call(0, true).await;
        let el = t.elapsed().as_secs_f64();
        assert_eq!(
            after - before,
            total as u64,
            "the baseline server counted every cast"
        );
        total as f64 / el
    }
}
