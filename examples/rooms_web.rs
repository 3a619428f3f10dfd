//! `rooms_web`: an actix-web service embedding a flock node, written the
//! plain way: default signal handling (actix-web stops the whole `System` on
//! SIGINT/SIGTERM), one bird per chat room. Used by `tests/embedded_shutdown.rs`
//! to check that stopping a process never removes a bird from the cluster.
//!
//! ```sh
//! cargo run --example rooms_web -- --name a@127.0.0.1 --http 127.0.0.1:8091 \
//!     --listen 127.0.0.1:4191 --rooms 50
//! ```
//!
//! - `GET /health`: `{"up": <members up>}`.
//! - `GET /check`: `{"known": <rooms in this node's replica>, "answering":
//!   <rooms that answered a ping>}`.
//! - `POST /system-stop`: `System::current().stop()`, no leave, no shutdown.
//!
//! With `--graceful`, the server uses the one-line recipe of the README:
//! `.shutdown_signal(flock.leave_on_signal())`, so the node leaves the cluster
//! (its rooms move to their new owners) before the server and system stop.

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use flock_actix::BirdKind;
use flock_actix::prelude::*;
use std::time::Duration;

/// A chat room: here it only says where it runs.
#[flock_bird(kind = "rooms_web.Room", messages(Ping))]
struct Room;

impl Actor for Room {
    type Context = Context<Self>;
}

impl Bird for Room {
    type Args = ();
    fn hatch(_name: &str, (): (), _nest: &Nest) -> Result<Self, HatchError> {
        Ok(Room)
    }
}

/// Answered with the node the room runs on.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
struct Ping;

impl Handler<Ping> for Room {
    type Result = String;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> String {
        current_node().map(|n| n.to_string()).unwrap_or_default()
    }
}

#[derive(Debug, Parser)]
#[command(about = "An actix-web service with one flock bird per chat room")]
struct Args {
    /// This node's name.
    #[arg(long)]
    name: String,
    /// Where the HTTP server listens.
    #[arg(long)]
    http: String,
    /// Where the flock node listens.
    #[arg(long)]
    listen: String,
    /// Flock addresses to join through (comma-separated).
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<String>,
    /// Start rooms `room-0` .. `room-{N-1}` (existing ones are kept).
    #[arg(long, default_value_t = 0)]
    rooms: usize,
    /// Leave the cluster on SIGINT/SIGTERM before the server stops.
    #[arg(long)]
    graceful: bool,
}

struct State {
    flock: Flock,
}

async fn health(state: web::Data<State>) -> HttpResponse {
    let up = state.flock.up_count().await.unwrap_or(0);
    HttpResponse::Ok().json(serde_json::json!({ "up": up }))
}

async fn check(state: web::Data<State>) -> HttpResponse {
    let rooms: Vec<String> = state
        .flock
        .birds()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, kind)| kind == <Room as BirdKind>::KIND)
        .map(|(name, _)| name)
        .collect();
    let pings = rooms.iter().map(|name| {
        let addr = state.flock.addr::<Room>(name);
        async move {
            addr.send_timeout(Ping, Duration::from_secs(2))
                .await
                .is_ok()
        }
    });
    let answering = futures_util::future::join_all(pings)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    HttpResponse::Ok().json(serde_json::json!({ "known": rooms.len(), "answering": answering }))
}

async fn system_stop() -> HttpResponse {
    actix_web::rt::System::current().stop();
    HttpResponse::Ok().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let flock = Flock::builder(args.name.clone())
        .listen(args.listen.clone())
        .seeds(args.seeds.clone())
        .cookie("rooms-web-example")
        .arbiters(2)
        .bird::<Room>()
        .start()
        .await
        .map_err(std::io::Error::other)?;
    if args.rooms > 0 {
        let rooms = (0..args.rooms).map(|i| (format!("room-{i}"), ()));
        // AlreadyExists is fine: another process created them earlier.
        flock
            .start_many::<Room>(rooms)
            .await
            .map_err(std::io::Error::other)?;
    }
    let state = web::Data::new(State {
        flock: flock.clone(),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/health", web::get().to(health))
            .route("/check", web::get().to(check))
            .route("/system-stop", web::post().to(system_stop))
    })
    .workers(1);
    if args.graceful {
        server = server.shutdown_signal(flock.leave_on_signal());
    }
    println!("rooms_web {} ready on http://{}", flock.name(), args.http);
    server.bind(&args.http)?.run().await?;
    // The plain way: leave once the server returned (with default signal
    // handling the system may already be stopping; that must be safe).
    let _ = flock.leave().await;
    flock.shutdown();
    Ok(())
}
