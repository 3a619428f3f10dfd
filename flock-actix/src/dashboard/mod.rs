//! A live web dashboard over one node's view of the cluster (feature
//! `dashboard`).
//!
//! Mount it in any actix-web app that embeds a [`Flock`]:
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use flock_actix::Flock;
//! use flock_actix::dashboard::Dashboard;
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let flock = Flock::builder("web1@127.0.0.1")
//!         .listen("127.0.0.1:4001")
//!         .cookie("secret")
//!         .start()
//!         .await
//!         .map_err(std::io::Error::other)?;
//!     // Once per process: it starts the sampler every worker shares.
//!     let dashboard = Dashboard::new(flock.clone());
//!     HttpServer::new(move || App::new().service(dashboard.scope("/flock")))
//!         .bind("127.0.0.1:8080")?
//!         .run()
//!         .await
//! }
//! ```
//!
//! `GET /flock/` is the page; `GET /flock/api/state` and
//! `GET /flock/api/events?after=SEQ` the same data as JSON (see
//! docs/DASHBOARD.md for the fields).
//!
//! # How it works
//!
//! The library has no event feed, so a sampler task asks the node for its
//! members and its registry every [`DashboardConfig::interval`], places
//! each bird with [`Flock::owner_of`] (so "birds per node" is placement in
//! this node's view), and names what changed since the previous sample
//! (`diff`, a pure module): members joining, going down, coming back,
//! leaving; birds failing over, moving, starting and stopping. Events go
//! to a bounded ring buffer; each sample is serialized once and every
//! viewer gets the same bytes. Restarts of a bird in place are not visible
//! through the public API and so are not reported.
//!
//! Everything the dashboard returns is bounded: names per node, birds per
//! event, events kept. A sample costs one copy of the registry's names (the
//! only public way to list it); when a sample takes long, the sampler
//! waits proportionally longer, and past [`DashboardConfig::track_limit`]
//! birds it keeps counts only and stops naming moves bird by bird.

mod diff;
mod http;
mod sampler;
mod snapshot;

use crate::runtime::Flock;
use std::sync::Arc;
use std::time::Duration;

/// What the dashboard samples, keeps and shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DashboardConfig {
    /// Time between samples (and the page's refresh period). Default 1 s.
    pub interval: Duration,
    /// Events kept in memory (`api/events`). Default 500.
    pub events: usize,
    /// The newest events included in `api/state` and on the page. Default 50.
    pub recent_events: usize,
    /// Bird names listed per node; counts are always exact. Default 20.
    pub names_per_node: usize,
    /// Bird names listed per event. Default 10.
    pub birds_per_event: usize,
    /// Above this many birds in the registry, moves are not tracked bird by
    /// bird (memory and time per sample); counts and member events go on.
    /// Default 100 000.
    pub track_limit: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            interval: Duration::from_secs(1),
            events: 500,
            recent_events: 50,
            names_per_node: 20,
            birds_per_event: 10,
            track_limit: 100_000,
        }
    }
}

/// The dashboard of one node: a sampler and the routes that serve it.
/// Cheap to clone; every clone shares the sampler and its events.
#[derive(Clone)]
pub struct Dashboard {
    shared: Arc<sampler::Shared>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard over `flock` with the default [`DashboardConfig`].
    ///
    /// # Panics
    /// Outside an actix system (it spawns its sampler on the current
    /// arbiter): call it where you started the `Flock`.
    pub fn new(flock: Flock) -> Dashboard {
        Dashboard::with_config(flock, DashboardConfig::default())
    }

    /// A dashboard over `flock` with `config`.
    ///
    /// # Panics
    /// Outside an actix system, as [`Dashboard::new`].
    pub fn with_config(flock: Flock, config: DashboardConfig) -> Dashboard {
        let shared = Arc::new(sampler::Shared::new(flock.name(), config));
        actix_rt::spawn(sampler::run(flock, Arc::downgrade(&shared)));
        Dashboard { shared }
    }

    /// The dashboard as a scope at `path` (e.g. `"/flock"`), for
    /// `App::service`. The sampler stops once every clone of the dashboard
    /// and every app serving it are dropped.
    pub fn scope(&self, path: &str) -> actix_web::Scope {
        let shared = self.shared.clone();
        actix_web::web::scope(path).configure(move |cfg| http::routes(cfg, shared))
    }

    /// Mounts the dashboard's routes where `cfg` is (for
    /// `App::configure` or `Scope::configure`).
    pub fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        http::routes(cfg, self.shared.clone());
    }
}
