//! `dashboard`: a flock node behind an actix-web server that mounts the live
//! dashboard (feature `dashboard`) at `/flock/`. See docs/DASHBOARD.md.
//!
//! Three nodes on one machine, the first one starting 30 birds:
//!
//! ```sh
//! cargo run --example dashboard -- --name n1@127.0.0.1 --http 127.0.0.1:8091 \
//!     --listen 127.0.0.1:4201 --seeds 127.0.0.1:4202,127.0.0.1:4203 --birds 30
//! cargo run --example dashboard -- --name n2@127.0.0.1 --http 127.0.0.1:8092 \
//!     --listen 127.0.0.1:4202 --seeds 127.0.0.1:4201,127.0.0.1:4203
//! cargo run --example dashboard -- --name n3@127.0.0.1 --http 127.0.0.1:8093 \
//!     --listen 127.0.0.1:4203 --seeds 127.0.0.1:4201,127.0.0.1:4202
//! ```
//!
//! Then open <http://127.0.0.1:8091/flock/> and kill a node.

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use flock_actix::dashboard::Dashboard;
use flock_actix::prelude::*;

/// Command line (every flag can also come from its environment variable).
#[derive(Debug, Parser)]
#[command(about = "A flock-actix node serving the live dashboard at /flock/")]
struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long, env = "DASHBOARD_NAME", default_value = "n1@127.0.0.1")]
    name: String,
    /// Where the HTTP server listens.
    #[arg(long, env = "DASHBOARD_HTTP", default_value = "127.0.0.1:8091")]
    http: String,
    /// Where the flock node listens for its peers.
    #[arg(long, env = "DASHBOARD_LISTEN", default_value = "127.0.0.1:4201")]
    listen: String,
    /// Flock addresses of other nodes to join through (comma-separated).
    #[arg(long, env = "DASHBOARD_SEEDS", value_delimiter = ',')]
    seeds: Vec<String>,
    /// The cluster cookie (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        env = "DASHBOARD_COOKIE",
        default_value = "dashboard-demo-cookie"
    )]
    cookie: String,
    /// Birds named `beacon-000`, `beacon-001`, … this node records at start.
    #[arg(long, env = "DASHBOARD_BIRDS", default_value_t = 0)]
    birds: usize,
    /// HTTP worker threads.
    #[arg(long, env = "DASHBOARD_WORKERS", default_value_t = 1)]
    workers: usize,
}

/// A bird that only runs somewhere, for the dashboard to show.
#[flock_bird(kind = "dashboard.Beacon", messages(Where))]
struct Beacon;

impl Actor for Beacon {
    type Context = Context<Self>;
}

impl Bird for Beacon {
    type Args = ();
    fn hatch(_name: &str, _args: (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Beacon)
    }
}

/// Answered with the name of the node the bird runs on.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct Where;

impl Handler<Where> for Beacon {
    type Result = String;
    fn handle(&mut self, _: Where, _: &mut Context<Self>) -> String {
        current_node().map(|n| n.to_string()).unwrap_or_default()
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let flock = Flock::builder(args.name.clone())
        .listen(args.listen.clone())
        .seeds(args.seeds.clone())
        .cookie(args.cookie.as_bytes())
        .bird::<Beacon>()
        .start()
        .await
        .map_err(std::io::Error::other)?;
    if args.birds > 0 {
        let birds = (0..args.birds).map(|i| (format!("beacon-{i:03}"), ()));
        let results = flock
            .start_many::<Beacon>(birds)
            .await
            .map_err(std::io::Error::other)?;
        // A bird already recorded (by another node, or an earlier run) is fine.
        let refused = results.iter().filter(|r| r.is_err()).count();
        if refused > 0 {
            log::info!("{refused} of {} birds were already recorded", args.birds);
        }
    }

    // Once, outside the worker factory: one sampler for every worker.
    let dashboard = Dashboard::new(flock.clone());
    let server = HttpServer::new(move || {
        App::new().service(dashboard.scope("/flock")).route(
            "/",
            web::get().to(|| async {
                HttpResponse::Found()
                    .insert_header(("Location", "/flock/"))
                    .finish()
            }),
        )
    })
    .workers(args.workers.max(1))
    .disable_signals()
    .bind(&args.http)?
    .run();
    let handle = server.handle();
    println!(
        "dashboard {} ready: http://{}/flock/ (flock {})",
        flock.name(),
        args.http,
        flock.listen_addr()
    );
    let running = actix_web::rt::spawn(server);
    let _ = actix_web::rt::signal::ctrl_c().await;
    log::info!("leaving the cluster");
    if let Err(e) = flock.leave().await {
        log::warn!("leave: {e}");
    }
    handle.stop(true).await;
    let _ = running.await;
    flock.shutdown();
    Ok(())
}
