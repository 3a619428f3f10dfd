//! Peers that misbehave: oversized and malformed frames, other protocol
//! versions, idle strangers, peers that never read, oversized outgoing
//! frames, handshakes that fail once, and two processes with one name.
//! Raw clients speak the wire protocol by hand over real TCP on 127.0.0.1.

mod support;

use flock_actix::core::crdt::ReplicaId;
use flock_actix::core::handshake::{HandshakeConfig, Initiator};
use flock_actix::prelude::*;
use flock_actix::wire::message::{Message, PROTOCOL_VERSION, RejectReason};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- log capture: some behaviours are "an operator is told", at a level ----

struct Capture;

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) && r.target().starts_with("flock_actix") {
            let line = r.args().to_string();
            if r.level() <= log::Level::Warn {
                eprintln!("{} {line}", r.level());
            }
            RECORDS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((r.level(), line));
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = log::set_boxed_logger(Box::new(Capture));
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// Whether a record at `level` contains every one of `parts`.
fn logged(level: log::Level, parts: &[&str]) -> bool {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(l, line)| *l == level && parts.iter().all(|p| line.contains(p)))
}

// ---- a raw client ----

async fn write_frame(s: &mut TcpStream, body: &[u8]) {
    s.write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    s.write_all(body).await.unwrap();
}

async fn send(s: &mut TcpStream, msg: &Message) {
    write_frame(s, &msg.encode().unwrap()).await;
}

/// The next frame, or `None` at end of stream (or a reset).
async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}

async fn read_message(s: &mut TcpStream) -> Option<Message> {
    let frame = tokio::time::timeout(Duration::from_secs(5), read_frame(s))
        .await
        .expect("an answer within 5 s")?;
    Some(Message::decode(&frame).expect("a valid message"))
}

/// Whether the node closes the connection within `limit`, reading (and
/// discarding) whatever it still sends.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn fresh_nonce() -> [u8; 32] {
    static N: AtomicU64 = AtomicU64::new(1);
    let mut nonce = [7u8; 32];
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap();
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    nonce[8..16].copy_from_slice(&t.to_be_bytes());
    nonce
}

/// Connects to `addr` and completes the handshake as node `name`.
async fn authenticated_client(addr: &str, name: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let cfg = HandshakeConfig {
        cluster: "flock".into(),
        cookie: b"test-cookie".to_vec(),
        me: ReplicaId {
            node: name.into(),
            incarnation: 1,
        },
        listen: "127.0.0.1:1".into(),
        weight: 0,
        shards: flock_actix::core::placement::DEFAULT_SHARDS,
        versions: Default::default(),
        kinds: Default::default(),
    };
    let (mut ini, hello) = Initiator::start(cfg, fresh_nonce());
    send(&mut s, &hello).await;
    while !ini.is_done() {
        let msg = read_message(&mut s).await.expect("a handshake answer");
        let out = ini.on_message(msg).expect("the handshake succeeds");
        if let Some(m) = out.send {
            send(&mut s, &m).await;
        }
    }
    s
}

fn single(name: &str) -> TestNode {
    TestNode::start(name, vec![], |b| b)
}

// ---- §7.4: a stranger is told why it is refused ----

#[actix_rt::test]
async fn a_frame_over_the_pre_auth_cap_gets_a_reject_before_the_close() {
    let node = single("cap@127.0.0.1");
    let mut s = TcpStream::connect(node.addr()).await.unwrap();
    write_frame(&mut s, &vec![0u8; 65_537]).await;
    match read_message(&mut s).await {
        Some(Message::Reject {
            reason: RejectReason::Protocol(why),
        }) => assert!(why.contains("65537"), "{why}"),
        other => panic!("expected a Reject naming the size, got {other:?}"),
    }
    assert!(closed_within(&mut s, Duration::from_secs(2)).await);
}

#[actix_rt::test]
async fn a_malformed_first_frame_gets_a_reject() {
    let node = single("garbage@127.0.0.1");
    let mut s = TcpStream::connect(node.addr()).await.unwrap();
    write_frame(&mut s, b"\xc1\xc1 not messagepack").await;
    assert!(matches!(
        read_message(&mut s).await,
        Some(Message::Reject {
            reason: RejectReason::Protocol(_)
        })
    ));
}

#[actix_rt::test]
async fn a_newer_hello_with_another_layout_gets_a_version_reject() {
    let node = single("version@127.0.0.1");
    let mut s = TcpStream::connect(node.addr()).await.unwrap();
    // {"Hello": [3, "flock", {"new": "layout"}]}: a version newer than
    // this build speaks (1 and 2), then fields it does not know.
    let mut hello = vec![0x81, 0xa5];
    hello.extend_from_slice(b"Hello");
    hello.extend_from_slice(&[0x93, 0x03, 0xa5]);
    hello.extend_from_slice(b"flock");
    hello.extend_from_slice(&[0x81, 0xa3]);
    hello.extend_from_slice(b"new");
    hello.push(0xa6);
    hello.extend_from_slice(b"layout");
    write_frame(&mut s, &hello).await;
    assert_eq!(
        read_message(&mut s).await,
        Some(Message::Reject {
            reason: RejectReason::Version {
                ours: PROTOCOL_VERSION
            }
        })
    );
}

// ---- bounds ----

#[actix_rt::test]
async fn idle_strangers_beyond_the_bound_are_closed_at_once() {
    let node = single("strangers@127.0.0.1");
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(node.addr()).await.unwrap());
    }
    let mut extra = TcpStream::connect(node.addr()).await.unwrap();
    // The handshake timeout is 5 s: only the bound closes it this early.
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)).await,
        "the 65th unauthenticated connection stays open"
    );
    // The first 64 are still waiting for their handshake.
    let mut first = idle.swap_remove(0);
    assert!(!closed_within(&mut first, Duration::from_millis(200)).await);
}

#[actix_rt::test]
async fn a_peer_that_does_not_read_is_closed_not_buffered_without_bound() {
    let node = TestNode::start("reader@127.0.0.1", vec![], |b| {
        b.configure(|c| c.max_frame = flock_actix::wire::codec::PRE_AUTH_MAX_FRAME)
    });
    let mut s = authenticated_client(&node.addr(), "slow-reader").await;
    // Every heartbeat is answered; never read the answers. 40 MB of acks
    // is far more than loopback socket buffers hold.
    let beat = Message::Heartbeat { seq: u64::MAX }.encode().unwrap();
    let mut batch = Vec::new();
    for _ in 0..100_000 {
        batch.extend_from_slice(&u32::try_from(beat.len()).unwrap().to_be_bytes());
        batch.extend_from_slice(&beat);
    }
    // The node must close the link while we are still writing (our writes
    // then fail), not buffer every answer. (Once we stop writing, silence
    // would close the link anyway: that must not count.)
    let writing = async {
        for _ in 0..20 {
            if s.write_all(&batch).await.is_err() {
                return true;
            }
        }
        false
    };
    let closed = tokio::time::timeout(Duration::from_secs(60), writing).await;
    assert_eq!(
        closed,
        Ok(true),
        "the node kept a link whose peer does not read"
    );
}

// ---- an outgoing frame above the cap ----

#[actix_rt::test]
async fn a_registry_above_the_frame_cap_reaches_a_new_node_and_the_link_stays_up() {
    capture_logs();
    let small = |b: FlockBuilder| {
        b.configure(|c| c.max_frame = flock_actix::wire::codec::PRE_AUTH_MAX_FRAME)
    };
    let a = TestNode::start("big-a@127.0.0.1", vec![], small);
    // ≈ 100 bytes per bird in a full state: 2000 birds are ≈ 3 frame caps.
    // Before chunked sync the one SyncFull frame could not be sent and the
    // link flapped; now it goes in parts under the cap.
    let birds: Vec<(String, u64)> = (0..2000).map(|i| (format!("bird-{i:05}"), 0)).collect();
    a.flock.start_many::<Echo>(birds).await.unwrap();
    let b = TestNode::start("big-b@127.0.0.1", vec![a.addr()], small);
    wait_until(
        Duration::from_secs(20),
        "the whole registry to reach the new node",
        || async { b.flock.birds().await.map_or(0, |v| v.len()) == 2000 },
    )
    .await;
    assert_eq!(a.flock.up_count().await.unwrap(), 2);
    assert_eq!(b.flock.up_count().await.unwrap(), 2);
    assert!(
        !logged(log::Level::Error, &["dropped a SyncFull frame"]),
        "a full state was sent as one oversized frame"
    );
    assert!(
        !logged(
            log::Level::Info,
            &["big-a@127.0.0.1 lost its link to big-b"]
        ),
        "the link flapped"
    );
}

// ---- dials whose handshake failed are retried ----

/// A free address on 127.0.0.1 (a bound listener, to be closed later).
async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

async fn seed_found_after(fake_seed: impl AsyncFnOnce(tokio::net::TcpListener), name: &str) {
    let (l, seed) = listener().await;
    let a = TestNode::start(name, vec![seed.clone()], |b| {
        b.configure(|c| c.handshake_timeout = Duration::from_millis(500))
    });
    // The seed misbehaves for the first dial (returns once it saw it).
    fake_seed(l).await;
    // Then the real node comes up on the same address.
    let b = TestNode::start(&format!("fixed-{name}"), vec![], move |b| b.listen(seed));
    wait_until(
        Duration::from_secs(15),
        "the node to find the fixed seed",
        || async { a.flock.up_count().await.unwrap_or(0) == 2 },
    )
    .await;
    drop(b);
}

#[actix_rt::test]
async fn a_seed_with_the_wrong_cookie_is_dialled_again_once_fixed() {
    seed_found_after(
        async |l| {
            // A seed with another cookie: it reads the Hello and refuses
            // (what a node with the wrong cookie answers after step 3).
            let (mut s, _) = l.accept().await.unwrap();
            let hello = read_frame(&mut s).await.expect("a Hello");
            assert!(matches!(Message::decode(&hello), Ok(Message::Hello { .. })));
            send(
                &mut s,
                &Message::Reject {
                    reason: RejectReason::AuthFailed,
                },
            )
            .await;
        },
        "cookie@127.0.0.1",
    )
    .await;
}

#[actix_rt::test]
async fn a_seed_that_accepted_but_never_answered_is_dialled_again() {
    seed_found_after(
        async |l| {
            // A paused host: the kernel accepts, the process says nothing.
            let (mut s, _) = l.accept().await.unwrap();
            let _ = read_frame(&mut s).await;
            let closed = closed_within(&mut s, Duration::from_secs(3)).await;
            assert!(closed, "the handshake timed out");
        },
        "paused@127.0.0.1",
    )
    .await;
}

// ---- one name, two processes ----

#[actix_rt::test]
async fn a_second_process_with_a_taken_name_is_refused_loudly() {
    capture_logs();
    let p = single("hub@127.0.0.1");
    let older = TestNode::start("twin@127.0.0.1", vec![p.addr()], |b| b);
    wait_until(
        Duration::from_secs(10),
        "the first twin to join",
        || async { p.flock.up_count().await.unwrap_or(0) == 2 },
    )
    .await;
    // Incarnations are wall-clock milliseconds: make the second one later.
    let t = Instant::now();
    wait_until(Duration::from_secs(1), "a millisecond", || async {
        t.elapsed() > Duration::from_millis(5)
    })
    .await;
    let newer = TestNode::start("twin@127.0.0.1", vec![p.addr()], |b| b);
    wait_until(
        Duration::from_secs(10),
        "the refused twin to be told, at error level",
        || async {
            logged(
                log::Level::Error,
                &["twin@127.0.0.1 is refused by hub@127.0.0.1", "unique"],
            )
        },
    )
    .await;
    assert!(logged(
        log::Level::Error,
        &["hub@127.0.0.1 refuses twin@127.0.0.1", "unique"]
    ));
    // The newer process is the member.
    let members = p.flock.members().await.unwrap();
    let twin = members.iter().find(|m| m.name == "twin@127.0.0.1").unwrap();
    assert_eq!(twin.addr, newer.addr());
    drop(older);
}

// ---- misuse of the host runtime ----

#[test]
fn dropping_the_system_right_after_start_does_not_panic() {
    // Panics in actors dropped with the runtime are caught by tokio; count
    // the ones on this test's thread.
    static PANICS: AtomicU64 = AtomicU64::new(0);
    let me = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            PANICS.fetch_add(1, Ordering::Relaxed);
        }
        previous(info);
    }));
    let sys = actix::System::new();
    let flock = sys
        .block_on(
            Flock::builder("dropped@127.0.0.1")
                .arbiters(0)
                .bird::<Echo>()
                .start(),
        )
        .expect("node starts");
    drop(sys);
    drop(flock);
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "an actor panicked");
}

// ---- peers that never come back ----

#[actix_rt::test]
async fn a_long_gone_client_is_forgotten_and_no_longer_listed() {
    let forget_fast = |b: FlockBuilder| b.configure(|c| c.membership.forget_down_after_ms = 1_500);
    let host = TestNode::start("keeper@127.0.0.1", vec![], forget_fast);
    let client = TestNode::start("ephemeral@127.0.0.1", vec![host.addr()], |b| b.weight(0));
    let listed = async |f: &Flock| {
        f.members()
            .await
            .unwrap()
            .iter()
            .any(|m| m.name == "ephemeral@127.0.0.1")
    };
    wait_until(Duration::from_secs(10), "the client to join", || async {
        host.flock.up_count().await.unwrap_or(0) == 2
    })
    .await;
    client.kill();
    // Listed as down for a while, then gone.
    wait_until(
        Duration::from_secs(10),
        "the client to be forgotten",
        || async { !listed(&host.flock).await },
    )
    .await;
}
