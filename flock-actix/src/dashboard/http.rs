//! The dashboard's routes: the page, its script and style, and the JSON.

use super::sampler::Shared;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// The page loads only its own script and style and fetches only its own
/// API: nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'self'";

pub(crate) fn routes(cfg: &mut web::ServiceConfig, shared: Arc<Shared>) {
    cfg.app_data(web::Data::from(shared))
        .route("", web::get().to(to_slash))
        .route("/", web::get().to(index))
        .route("/dashboard.js", web::get().to(script))
        .route("/dashboard.css", web::get().to(style))
        .route("/api/state", web::get().to(state))
        .route("/api/events", web::get().to(events));
}

/// `/flock` → `/flock/`, so the page's relative URLs resolve inside the
/// scope wherever it is mounted.
async fn to_slash(req: HttpRequest) -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, format!("{}/", req.path())))
        .finish()
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    let mut resp = asset("text/html; charset=utf-8", INDEX_HTML);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    resp
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

fn json(body: impl Into<web::Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.into())
}

async fn state(shared: web::Data<Shared>) -> HttpResponse {
    json(shared.state())
}

/// `?after=SEQ`: only events numbered after SEQ (default: all kept).
#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

async fn events(shared: web::Data<Shared>, query: web::Query<EventsQuery>) -> HttpResponse {
    json(shared.events_after(query.after.unwrap_or(0)))
}
