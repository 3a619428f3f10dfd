//! actix-telepathy in the same harness (only with `--features telepathy`,
//! so CI and the workspace build do not pay for its dependency tree).
//!
//! Telepathy has one-way messages only (`RemoteAddr::do_send`; its `send`
//! is `unimplemented!`), so a call is what a telepathy user writes: a `TPing`
//! carrying the caller's `RemoteAddr` (`with_source`), answered by a `TPong`
//! sent back to it, completed into a oneshot by a client actor.

use crate::birds::CASTS;
use actix::prelude::*;
use actix_broker::BrokerSubscribe;
use actix_telepathy::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A call: `count` asks for the casts counted so far.
#[derive(RemoteMessage, Serialize, Deserialize)]
#[with_source(source)]
pub struct TPing {
    id: u64,
    count: bool,
    source: RemoteAddr,
}

/// The answer to a [`TPing`].
#[derive(RemoteMessage, Serialize, Deserialize)]
pub struct TPong {
    id: u64,
    value: u64,
}

/// A 32-byte one-way message.
#[derive(RemoteMessage, Serialize, Deserialize)]
pub struct TCast {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// The server actor: answers pings, counts casts.
#[derive(RemoteActor)]
#[remote_messages(TPing, TCast)]
pub struct TSink;

impl Actor for TSink {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.register(ctx.address().recipient());
    }
}

impl Handler<TPing> for TSink {
    type Result = ();
    fn handle(&mut self, m: TPing, _: &mut Context<Self>) {
        let value = if m.count { CASTS.load(Relaxed) } else { 0 };
        m.source.do_send(TPong { id: m.id, value });
    }
}

impl Handler<TCast> for TSink {
    type Result = ();
    fn handle(&mut self, m: TCast, _: &mut Context<Self>) {
        if m.data.len() == 32 {
            CASTS.fetch_add(1, Relaxed);
        }
    }
}

/// What the client actor shares with the benchmark code on its thread.
#[derive(Default)]
struct Shared {
    server: Option<RemoteAddr>,
    waiting: Option<oneshot::Sender<u64>>,
}

/// The client actor: learns the server's address from the cluster and
/// completes the waiting call when its pong arrives.
#[derive(RemoteActor)]
#[remote_messages(TPong)]
pub struct TClient {
    shared: Rc<RefCell<Shared>>,
}

impl Actor for TClient {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.register(ctx.address().recipient());
        self.subscribe_system_async::<ClusterLog>(ctx);
    }
}

impl Handler<TPong> for TClient {
    type Result = ();
    fn handle(&mut self, m: TPong, _: &mut Context<Self>) {
        if let Some(tx) = self.shared.borrow_mut().waiting.take() {
            let _ = tx.send(m.value);
        }
    }
}

impl Handler<ClusterLog> for TClient {
    type Result = ();
    fn handle(&mut self, m: ClusterLog, _: &mut Context<Self>) {
        if let ClusterLog::NewMember(node) = m {
            self.shared.borrow_mut().server = Some(node.get_remote_addr(TSink::ACTOR_ID.into()));
        }
    }
}

impl ClusterListener for TClient {}

/// A free port on 127.0.0.1 (telepathy needs its bind address up front).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The child: `__telepathy`, a telepathy node with a [`TSink`].
pub fn server_main() {
    crate::procs::serve_stdin(None);
    let sys = actix::System::new();
    sys.block_on(async {
        let addr = free_addr();
        TSink.start();
        let _cluster = Cluster::new(addr, vec![]);
        println!("LISTEN {addr} -");
    });
    let _ = sys.run();
}

/// A telepathy client node in this actix System, joined to `server`.
pub struct TelepathyClient {
    shared: Rc<RefCell<Shared>>,
    server: RemoteAddr,
    me: RemoteAddr,
    next: u64,
}

impl TelepathyClient {
    pub async fn connect(server: &str) -> TelepathyClient {
        let server: SocketAddr = server.parse().expect("telepathy address");
        let shared = Rc::new(RefCell::new(Shared::default()));
        TClient {
            shared: shared.clone(),
        }
        .start();
        let own = free_addr();
        let _cluster = Cluster::new(own, vec![server]);
        let t = Instant::now();
        let addr = loop {
            if let Some(a) = shared.borrow().server.clone() {
                break a;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "telepathy cluster not joined within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        TelepathyClient {
            shared,
            server: addr,
            me: RemoteAddr::new_from_id(own, TClient::ACTOR_ID),
            next: 1,
        }
    }

    async fn call(&mut self, count: bool) -> u64 {
        let (tx, rx) = oneshot::channel();
        self.shared.borrow_mut().waiting = Some(tx);
        self.next += 1;
        self.server.do_send(TPing {
            id: self.next,
            count,
            source: self.me.clone(),
        });
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("telepathy pong within 10 s")
            .expect("pong")
    }

    /// `n` sequential calls; each latency.
    pub async fn rtt(&mut self, n: usize) -> Vec<Duration> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            self.call(false).await;
            v.push(t.elapsed());
        }
        v
    }

    /// `total` 32-byte casts (yielding every 1024), then a count call;
    /// msg/s until the server counted all.
    pub async fn casts(&mut self, total: usize) -> f64 {
        let before = self.call(true).await;
        let t = Instant::now();
        for i in 0..total {
            self.server.do_send(TCast {
                data: vec![7u8; 32],
            });
            if i % 1024 == 1023 {
                tokio::task::yield_now().await;
            }
        }
        let limit = Duration::from_secs(120);
        // The count call may overtake casts still queued in the client's
        // network actor; ask until every cast was counted.
        while self.call(true).await < before + total as u64 {
            assert!(t.elapsed() < limit, "telepathy casts not all counted");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        total as f64 / t.elapsed().as_secs_f64()
    }
}

/// `peer_cast_throughput` and `peer_call_rtt_one_vcpu_{p50,p99}`: flock-actix
/// and actix-telepathy (and the raw-bytes floor) in the same rounds, every
/// process pinned to one vCPU for the calls, unpinned for the casts.
pub fn peer_rows() -> Vec<crate::Row> {
    use crate::Row;
    use crate::benches::{in_system, layout, names, pct, rounds, scale};
    use crate::messages::{flock_casts, flock_rtt, remote, rotate};
    use crate::procs::{Child, cpus};
    use crate::raw::{Client, Protocol, RawBytes};

    const TP: &str = "actix-telepathy 0.7 (do_send; a call = ping with its source + pong)";
    let n = scale(20_000);
    let total = scale(500_000);
    let floor_total = scale(16_000_000);
    let runs = rounds(5);
    let cpu = usize::from(cpus() >= 2);
    let (rtt, lay) = in_system(Some(vec![cpu]), move || async move {
        let rm = remote(Some(&[cpu]), &names("b", 64)).await;
        let tps = Child::spawn("telepathy", &["__telepathy".into()], Some(&[cpu]));
        let mut tc = TelepathyClient::connect(&tps.listen).await;
        let mut rc = Client::<RawBytes>::connect(&rm.servers.1.listen).await;
        let addrs: Vec<_> = rm.birds.iter().map(|b| rm.flock.addr(b)).collect();
        let lay = layout(&[&rm.host], "every process pinned to one vCPU");
        let s = rotate(runs, async |sys| {
            let mut lat = match sys {
                0 => flock_rtt(&addrs, n).await,
                1 => tc.rtt(n).await,
                _ => rc.rtt(n).await,
            };
            (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
        })
        .await;
        let out = [
            s.clone().map(|v| v.iter().map(|x| x.0).collect::<Vec<_>>()),
            s.map(|v| v.iter().map(|x| x.1).collect::<Vec<_>>()),
        ];
        rm.flock.shutdown();
        (out, lay)
    });
    let (casts, cast_lay) = in_system(None, move || async move {
        let mut rm = remote(None, &names("c", 16)).await;
        let tps = Child::spawn("telepathy", &["__telepathy".into()], None);
        let mut tc = TelepathyClient::connect(&tps.listen).await;
        let mut rc = Client::<RawBytes>::connect(&rm.servers.1.listen).await;
        let addrs: Vec<_> = rm.birds.iter().map(|b| rm.flock.addr(b)).collect();
        let lay = layout(&[&rm.host], "unpinned");
        let s = rotate(runs, async |sys| match sys {
            0 => flock_casts(&mut rm.host, &addrs, total).await,
            1 => tc.casts(total).await,
            _ => rc.casts(floor_total, 16).await,
        })
        .await;
        rm.flock.shutdown();
        (s, lay)
    });
    let mut rows = Vec::new();
    let [f, t, raw] = casts;
    let row = Row::new("peer_cast_throughput", "msg/s", f)
        .baseline(TP, t)
        .floor(RawBytes::NAME, raw);
    let x = row.ratio.unwrap_or(f64::NAN);
    rows.push(
        row.target(">= 5 x telepathy", x >= 5.0)
            .layout(&format!(
                "{cast_lay}; telepathy default (one System thread)"
            ))
            .extra(serde_json::json!({"casts_per_run": total, "payload_bytes": 32})),
    );
    for ([f, t, raw], q) in rtt.into_iter().zip(["p50", "p99"]) {
        let row = Row::new(
            &format!("peer_call_rtt_one_vcpu_{q}"),
            &format!("us {q}"),
            f,
        )
        .baseline(TP, t)
        .floor(RawBytes::NAME, raw);
        let x = row.ratio.unwrap_or(f64::NAN);
        rows.push(
            row.target(&format!("{q} ahead of telepathy (<= 1.0 x)"), x <= 1.0)
                .layout(&lay)
                .extra(serde_json::json!({"calls_per_run": n})),
        );
    }
    rows
}
