//! The prometheus example's `/metrics` route, scraped once in-process: the
//! example's module is compiled into this test (its `main` unused).

#[allow(dead_code)]
#[path = "../examples/prometheus.rs"]
mod example;

use actix_web::{App, HttpServer};
use flock_actix::prelude::*;

#[actix_web::test]
async fn the_prometheus_route_exposes_the_flock_metrics_after_birds_are_called() {
    let handle = example::install_recorder();
    let flock = Flock::builder("prom-test@127.0.0.1")
        .listen("127.0.0.1:0")
        .cookie("prometheus-test")
        .arbiters(1)
        .bird::<example::Counter>()
        .start()
        .await
        .expect("a node starts");
    example::exercise(&flock, 5).await;

    let server = HttpServer::new(move || {
        let handle = handle.clone();
        App::new().configure(move |cfg| example::metrics_route(cfg, handle))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("a free port");
    let addr = server.addrs()[0];
    let server = server.run();
    let stop = server.handle();
    actix_web::rt::spawn(server);

    let mut response = awc::Client::new()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("the route answers");
    assert!(response.status().is_success());
    let body = response.body().await.expect("a body");
    let text = String::from_utf8_lossy(&body);
    for line in [
        "flock_calls_total{path=\"local\",outcome=\"ok\"} 5",
        "flock_bird_starts_total 5",
        "flock_birds_hosted 5",
        "# TYPE flock_call_duration_seconds summary",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    stop.stop(true).await;
    flock.shutdown();
}
