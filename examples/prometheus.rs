//! `prometheus`: a flock node whose metrics (see docs/OBSERVABILITY.md) are
//! served for Prometheus at `/metrics` on an actix-web server.
//!
//! flock-actix records through the `metrics` facade; this example installs
//! `metrics-exporter-prometheus`'s recorder (without its own HTTP listener)
//! and renders it on a route of the application's server.
//!
//! ```sh
//! cargo run --example prometheus -- --http 127.0.0.1:9091 --birds 20
//! curl -s http://127.0.0.1:9091/metrics | grep flock_
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use flock_actix::prelude::*;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Command line (every flag can also come from its environment variable).
#[derive(Debug, Parser)]
#[command(about = "A flock-actix node serving its metrics for Prometheus at /metrics")]
struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long, env = "PROM_NAME", default_value = "p1@127.0.0.1")]
    name: String,
    /// Where the HTTP server (the /metrics route) listens.
    #[arg(long, env = "PROM_HTTP", default_value = "127.0.0.1:9091")]
    http: String,
    /// Where the flock node listens for its peers.
    #[arg(long, env = "PROM_LISTEN", default_value = "127.0.0.1:4301")]
    listen: String,
    /// Flock addresses of other nodes to join through (comma-separated).
    #[arg(long, env = "PROM_SEEDS", value_delimiter = ',')]
    seeds: Vec<String>,
    /// The cluster cookie (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "PROM_COOKIE", default_value = "prometheus-demo-cookie")]
    cookie: String,
    /// Birds named `counter-000`, … this node starts and calls once.
    #[arg(long, env = "PROM_BIRDS", default_value_t = 10)]
    birds: usize,
}

/// A bird that counts the pings it gets.
#[flock_bird(kind = "prometheus.Counter", messages(Ping))]
pub(crate) struct Counter(u64);

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Bird for Counter {
    type Args = ();
    fn hatch(_name: &str, _args: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Counter(0))
    }
}

/// Answered with the number of pings so far.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
pub(crate) struct Ping;

impl Handler<Ping> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Installs the Prometheus recorder for this process (once: a second call
/// fails, as `metrics` allows one global recorder).
pub(crate) fn install_recorder() -> PrometheusHandle {
    PrometheusBuilder::new()
        .install_recorder()
        .expect("no other metrics recorder is installed")
}

/// The `/metrics` route: the text exposition format of everything recorded.
pub(crate) fn metrics_route(cfg: &mut web::ServiceConfig, handle: PrometheusHandle) {
    cfg.app_data(web::Data::new(handle)).route(
        "/metrics",
        web::get().to(|handle: web::Data<PrometheusHandle>| async move {
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4")
                .body(handle.render())
        }),
    );
}

/// Starts `n` birds and calls each once, so the metrics have values.
pub(crate) async fn exercise(flock: &Flock, n: usize) {
    for i in 0..n {
        let name = format!("counter-{i:03}");
        // Already recorded (by another node or an earlier run) is fine.
        let _ = flock.start::<Counter>(&name, ()).await;
        if let Err(e) = flock.addr::<Counter>(&name).send(Ping).await {
            log::warn!("ping {name}: {e}");
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    // Before the node starts, so its first events are recorded.
    let handle = install_recorder();
    let flock = Flock::builder(args.name.clone())
        .listen(args.listen.clone())
        .seeds(args.seeds.clone())
        .cookie(args.cookie.as_bytes())
        .bird::<Counter>()
        .start()
        .await
        .map_err(std::io::Error::other)?;
    exercise(&flock, args.birds).await;
    log::info!("metrics at http://{}/metrics", args.http);
    HttpServer::new(move || {
        let handle = handle.clone();
        App::new().configure(move |cfg| metrics_route(cfg, handle))
    })
    .workers(1)
    .bind(&args.http)?
    .run()
    .await
}
