//! `ticker_web`: an actix-web server embedding a flock node. Each user's
//! ticker is a bird placed somewhere in the cluster; `GET /ticker/{user}` on
//! any server streams its ticks as server-sent events, and keeps streaming
//! when the server hosting the bird dies (the bird restarts elsewhere from
//! the shared store). See docs/TICKER.md.
//!
//! ```sh
//! cargo run --example ticker_web -- --name web1@127.0.0.1 --http 127.0.0.1:8081 \
//!     --listen 127.0.0.1:4101 --seeds 127.0.0.1:4102,127.0.0.1:4103
//! ```

mod bird;
mod http;
mod store;

use actix_web::{App, HttpServer, web};
use clap::Parser;
use flock_actix::Flock;
use std::path::PathBuf;
use std::sync::Arc;

/// Command line (every flag can also come from its environment variable).
#[derive(Debug, Parser)]
#[command(about = "A flock-actix ticker behind an actix-web server")]
struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long, env = "TICKER_NAME", default_value = "web1@127.0.0.1")]
    name: String,
    /// Where the HTTP server listens.
    #[arg(long, env = "TICKER_HTTP", default_value = "127.0.0.1:8081")]
    http: String,
    /// Where the flock node listens for its peers.
    #[arg(long, env = "TICKER_LISTEN", default_value = "127.0.0.1:4101")]
    listen: String,
    /// Flock addresses of other servers to join through (comma-separated).
    #[arg(long, env = "TICKER_SEEDS", value_delimiter = ',')]
    seeds: Vec<String>,
    /// The cluster cookie (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "TICKER_COOKIE", default_value = "ticker-demo-cookie")]
    cookie: String,
    /// The SQLite database holding the counters, shared by every server on
    /// the machine (created if missing).
    #[arg(long, env = "TICKER_DB", default_value = "/tmp/ticker.sqlite")]
    db: PathBuf,
    /// Milliseconds between ticks (each tick is saved).
    #[arg(long, env = "TICKER_PERIOD_MS", default_value_t = 200)]
    period_ms: u64,
    /// A ticker nobody watched for this many seconds stops; 0: never.
    #[arg(long, env = "TICKER_IDLE_SECS", default_value_t = 60)]
    idle_secs: u64,
    /// Other servers' HTTP base URLs (comma-separated), for the page's fallback.
    #[arg(long, env = "TICKER_PEERS_HTTP", value_delimiter = ',')]
    peers_http: Vec<String>,
    /// HTTP worker threads.
    #[arg(long, env = "TICKER_WORKERS", default_value_t = 2)]
    workers: usize,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let store = store::SqliteStore::open(&args.db).map_err(std::io::Error::other)?;

    let flock = Flock::builder(args.name.clone())
        .listen(args.listen.clone())
        .seeds(args.seeds.clone())
        .cookie(args.cookie.as_bytes())
        // Where state lives is a property of the server, not of the bird:
        // every Ticker hatched on this node reads it from the nest.
        .nest(bird::Store(Arc::new(store)))
        .bird::<bird::Ticker>()
        .start()
        .await
        .map_err(std::io::Error::other)?;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let state = web::Data::new(http::AppState {
        flock: flock.clone(),
        period_ms: args.period_ms,
        idle_secs: args.idle_secs,
        peers_http: args.peers_http.clone(),
        shutdown: shutdown_rx,
    });
    let server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
            .workers(args.workers.max(1))
            // We handle SIGINT/SIGTERM ourselves: leave the cluster first.
            .disable_signals()
            .shutdown_timeout(5)
            .bind(&args.http)?
            .run();
    let handle = server.handle();
    println!(
        "ticker_web {} ready: http://{} (flock {}, database {})",
        flock.name(),
        args.http,
        flock.listen_addr(),
        args.db.display()
    );

    let mut running = actix_web::rt::spawn(server);
    tokio::select! {
        result = &mut running => {
            // The HTTP server stopped by itself (it should not): stop too.
            flock.shutdown();
            return result.map_err(std::io::Error::other)?;
        }
        () = wait_for_signal() => {}
    }
    log::info!("shutting down: leaving the cluster");
    // Birds hand over to their new owners while open feeds keep following
    // them; then the feeds end, viewers reconnect elsewhere, and we stop.
    if let Err(e) = flock.leave().await {
        log::warn!("leave: {e}");
    }
    let _ = shutdown_tx.send(true);
    handle.stop(true).await;
    let _ = running.await;
    flock.shutdown();
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = actix_web::rt::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
    }
}
