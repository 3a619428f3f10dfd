//! The HTTP side: the page, health, and the server-sent-events ticker feed.

use crate::bird::{NextTicks, Ticker, TickerArgs, bird_name};
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, get};
use flock_actix::{Error, Flock, FlockAddr, MemberState};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long one poll of the bird may take (it long-polls for up to 1 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a feed keeps retrying an unreachable bird before it gives up.
const RETRY_WINDOW: Duration = Duration::from_secs(20);
/// The pause between two failed polls.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What every handler shares (as `web::Data`).
pub(crate) struct AppState {
    /// This server's flock node.
    pub(crate) flock: Flock,
    /// Period and idle timeout for the birds this server starts.
    pub(crate) period_ms: u64,
    /// See [`TickerArgs::idle_secs`].
    pub(crate) idle_secs: u64,
    /// Other servers' HTTP base URLs, for the page's fallback.
    pub(crate) peers_http: Vec<String>,
    /// Turns true when the server shuts down: open feeds end.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Registers the routes.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(index)
        .service(health)
        .service(owner)
        .service(ticker);
}

/// A user name is a store key and part of a bird name: keep it plain.
fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[get("/")]
async fn index(state: web::Data<AppState>) -> HttpResponse {
    let mut servers = vec![String::new()]; // "": this server (same origin)
    servers.extend(state.peers_http.iter().cloned());
    let page = include_str!("index.html")
        .replace(
            "__SERVERS__",
            &serde_json::to_string(&servers).unwrap_or_else(|_| "[\"\"]".into()),
        )
        .replace("__NODE__", state.flock.name());
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

#[get("/health")]
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let flock = &state.flock;
    match (flock.members().await, flock.local_birds().await) {
        (Ok(members), Ok(birds)) => {
            let up = members
                .iter()
                .filter(|m| m.status == MemberState::Up)
                .count();
            let members: Vec<_> = members
                .iter()
                .map(|m| serde_json::json!({"name": m.name, "status": format!("{:?}", m.status)}))
                .collect();
            HttpResponse::Ok().json(serde_json::json!({
                "node": flock.name(),
                "up": up,
                "members": members,
                "birds_here": birds.len(),
            }))
        }
        (Err(e), _) | (_, Err(e)) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

#[get("/owner/{user}")]
async fn owner(state: web::Data<AppState>, user: web::Path<String>) -> HttpResponse {
    if !valid_user(&user) {
        return HttpResponse::BadRequest().body("user: 1 to 64 of [A-Za-z0-9_-]");
    }
    match state.flock.owner_of(&bird_name(&user)) {
        Ok(owner) => HttpResponse::Ok().json(serde_json::json!({"user": *user, "owner": owner})),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

/// Where a (re)connecting viewer resumes.
#[derive(Debug, serde::Deserialize)]
struct Resume {
    /// The last tick the viewer saw: the feed starts after it.
    after: Option<u64>,
    /// The first tick the viewer wants (`after = from - 1`).
    from: Option<u64>,
}

#[get("/ticker/{user}")]
async fn ticker(
    state: web::Data<AppState>,
    user: web::Path<String>,
    resume: web::Query<Resume>,
    req: HttpRequest,
) -> HttpResponse {
    let user = user.into_inner();
    if !valid_user(&user) {
        return HttpResponse::BadRequest().body("user: 1 to 64 of [A-Za-z0-9_-]");
    }
    // EventSource sends Last-Event-ID when it reconnects by itself; it
    // wins over the query, which the page uses when it switches servers.
    let last_event_id = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = last_event_id
        .or(resume.after)
        .or(resume.from.map(|f| f.saturating_sub(1)));
    let args = TickerArgs {
        user: user.clone(),
        period_ms: state.period_ms,
        idle_secs: state.idle_secs,
    };
    let mut feed = Feed {
        flock: state.flock.clone(),
        addr: state.flock.addr::<Ticker>(&bird_name(&user)),
        args,
        after,
        out: VecDeque::new(),
        failing_since: None,
        shutdown: state.shutdown.clone(),
        done: false,
    };
    if let Err(e) = feed.ensure_bird().await {
        return HttpResponse::ServiceUnavailable().body(format!("cannot start the ticker: {e}"));
    }
    feed.out.push_back(Bytes::from(format!(
        "retry: 1000\n: {} streaming ticks of {user}\n\n",
        state.flock.name()
    )));
    let stream = futures_util::stream::unfold(feed, Feed::next_chunk);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

/// The data of one SSE event (fields in this order on the wire).
#[derive(serde::Serialize)]
struct TickEvent<'a> {
    user: &'a str,
    tick: u64,
    node: &'a str,
}

/// One viewer's feed: polls the user's bird wherever it runs and turns its
/// ticks into SSE events. Dropped (ending the polls) when the viewer leaves.
struct Feed {
    flock: Flock,
    addr: FlockAddr<Ticker>,
    args: TickerArgs,
    /// The last tick sent (or the viewer's resume point).
    after: Option<u64>,
    /// Chunks ready to send.
    out: VecDeque<Bytes>,
    /// Since when polls have failed, if they do.
    failing_since: Option<Instant>,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl Feed {
    /// Starts the bird unless the registry has it (starting is idempotent
    /// for our purposes: `AlreadyExists` means someone else did).
    async fn ensure_bird(&self) -> Result<(), Error> {
        match self
            .flock
            .start::<Ticker>(self.addr.name(), self.args.clone())
            .await
        {
            Ok(()) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn next_chunk(mut self) -> Option<(Result<Bytes, Infallible>, Feed)> {
        loop {
            if let Some(chunk) = self.out.pop_front() {
                return Some((Ok(chunk), self));
            }
            if self.done || *self.shutdown.borrow() {
                return None;
            }
            self.poll().await;
        }
    }

    async fn poll(&mut self) {
        let call = self
            .addr
            .send_timeout(NextTicks { after: self.after }, CALL_TIMEOUT);
        let result = tokio::select! {
            r = call => r,
            _ = self.shutdown.changed() => return,
        };
        let error = match result {
            Ok(reply) => {
                self.failing_since = None;
                if self.after.is_some_and(|a| a > reply.latest) {
                    // The viewer is ahead of the bird (a lost store, or a
                    // made-up resume point): start over from the latest.
                    self.out.push_back(Bytes::from(format!(
                        ": resume point {} is ahead of tick {}; restarting\n\n",
                        self.after.unwrap_or_default(),
                        reply.latest
                    )));
                    self.after = None;
                    return;
                }
                for tick in reply.ticks {
                    let data = serde_json::to_string(&TickEvent {
                        user: &self.args.user,
                        tick,
                        node: &reply.node,
                    })
                    .unwrap_or_default();
                    self.out
                        .push_back(Bytes::from(format!("id: {tick}\ndata: {data}\n\n")));
                    self.after = Some(tick);
                }
                return;
            }
            // Stopped after idling, or stopped by someone: start it again.
            Err(Error::NotFound { .. }) => match self.ensure_bird().await {
                Ok(()) => return,
                Err(e) => e,
            },
            Err(Error::Stopped) => {
                self.done = true;
                return;
            }
            Err(e) => e,
        };
        // The bird is unreachable or moving (its node died, a new owner is
        // hatching it): keep the stream open and retry for a while.
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() > RETRY_WINDOW {
            log::warn!("feed of {}: giving up: {error}", self.args.user);
            let data = serde_json::json!({"error": error.to_string()});
            self.out
                .push_back(Bytes::from(format!("event: failed\ndata: {data}\n\n")));
            self.done = true;
        } else {
            log::debug!("feed of {}: retrying: {error}", self.args.user);
            let why = error.to_string().replace(['\r', '\n'], " ");
            self.out
                .push_back(Bytes::from(format!(": waiting for the ticker: {why}\n\n")));
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}
