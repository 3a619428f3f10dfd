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

#[cfg(test)]
mod tests {
    use crate::dashboard::Dashboard;
    use crate::runtime::Flock;
    use actix_web::http::{StatusCode, header};
    use actix_web::{App, test};
    use std::time::{Duration, Instant};

    #[actix::test]
    async fn the_routes_serve_the_page_and_the_sampled_state_as_json() {
        let flock = Flock::builder("dash1@127.0.0.1")
            .listen("127.0.0.1:0")
            .arbiters(0)
            .start()
            .await
            .expect("a node starts");
        let dashboard = Dashboard::new(flock.clone());
        let app = test::init_service(App::new().service(dashboard.scope("/ops/flock"))).await;

        // Without the slash: redirected, so the page's relative URLs work.
        let resp = test::call_service(
            &app,
            test::TestRequest::get().uri("/ops/flock").to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            resp.headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("/ops/flock/")
        );

        let resp = test::call_service(
            &app,
            test::TestRequest::get().uri("/ops/flock/").to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = test::read_body(resp).await;
        assert!(
            std::str::from_utf8(&body)
                .expect("UTF-8")
                .contains("dashboard.js")
        );

        // The sampler publishes this node up, and its joining as event 1.
        let deadline = Instant::now() + Duration::from_secs(5);
        let state = loop {
            let req = test::TestRequest::get()
                .uri("/ops/flock/api/state")
                .to_request();
            let state: serde_json::Value = test::call_and_read_body_json(&app, req).await;
            if state["sampled_at_ms"].as_u64() > Some(0) {
                break state;
            }
            assert!(Instant::now() < deadline, "no sample within 5 s: {state}");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(state["node"], "dash1@127.0.0.1");
        assert_eq!(state["members"][0]["status"], "up");
        assert_eq!(state["members"][0]["this_node"], true);
        assert_eq!(state["events"][0]["kind"], "joined");

        let req = test::TestRequest::get()
            .uri("/ops/flock/api/events")
            .to_request();
        let events: serde_json::Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(events["events"][0]["seq"], 1);
        let req = test::TestRequest::get()
            .uri("/ops/flock/api/events?after=1")
            .to_request();
        let events: serde_json::Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(events["events"], serde_json::json!([]), "nothing after 1");
        let req = test::TestRequest::get()
            .uri("/ops/flock/api/events?after=x")
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        flock.shutdown();
    }
}
