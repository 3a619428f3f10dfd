//! End-to-end test of the live dashboard (`examples/dashboard.rs`, feature
//! `dashboard`) in a real headless Chromium.
//!
//! 1. Build the example and start three node processes; the first records
//!    12 birds. Wait (JSON API) until every node sees three members up and
//!    every bird runs where placement says.
//! 2. Load the page in Chromium (`--dump-dom`, after letting its script run)
//!    from node A: three members up, the birds per node as the API says,
//!    and the page refreshed itself more than once. Screenshot.
//! 3. SIGKILL a node H ≠ A that hosts birds. Wait until the survivors run
//!    all 12 birds, then load the page again: H is down with no birds, its
//!    birds are listed on the survivors, and the events show H down and a
//!    failover from H. Screenshot.
//!
//! The screenshots stay in `target/dashboard-e2e/` for a person to look at.
//! Without Chromium (`/usr/bin/chromium`, or `FLOCK_CHROMIUM`) the test says
//! so and passes; `.ci/run` installs it.

#[path = "support/processes.rs"]
mod processes;

use processes::{Cluster, Server, build_example, wait_with_output};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the nodes may take to form the cluster and place the birds.
const CLUSTER_LIMIT: Duration = Duration::from_secs(30);
/// From the kill to every bird running on a survivor.
const FAILOVER_LIMIT: Duration = Duration::from_secs(15);
/// One Chromium run.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);
/// Virtual time the page's script gets before the DOM is dumped: enough
/// for the first fetch and a few refreshes (1 s apart).
const PAGE_BUDGET_MS: u32 = 3500;
const BIRDS: usize = 12;

/// The Chromium to drive, if one is installed: `FLOCK_CHROMIUM` if set,
/// else Debian's or Ubuntu's path.
fn chromium() -> Option<PathBuf> {
    let candidates = match std::env::var_os("FLOCK_CHROMIUM") {
        Some(path) => vec![PathBuf::from(path)],
        None => vec![
            PathBuf::from("/usr/bin/chromium"),
            PathBuf::from("/usr/bin/chromium-browser"),
        ],
    };
    candidates.into_iter().find(|p| p.is_file())
}

/// The dashboard page of `server`.
fn page_url(server: &Server) -> String {
    server.url("/flock/")
}

/// `GET /flock/api/state` from `server` (None on any failure).
fn state(server: &Server) -> Option<Value> {
    let body = http_get(&server.http, "/flock/api/state")?;
    serde_json::from_str(&body).ok()
}

/// A plain HTTP/1.0 GET on 127.0.0.1; the body of a 200, else None.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let ok = head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200");
    ok.then(|| body.to_owned())
}

/// Polls `check` every 100 ms until it gives a value, failing with `what`
/// after `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Member name → (status, birds placed on it) in one node's state.
fn placement(state: &Value) -> BTreeMap<String, (String, u64)> {
    state["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = m["name"].as_str().unwrap_or_default().to_owned();
            let status = m["status"].as_str().unwrap_or_default().to_owned();
            (name, (status, m["birds"].as_u64().unwrap_or(0)))
        })
        .collect()
}

/// The bird names one node's state lists on `member`.
fn names_on(state: &Value, member: &str) -> Vec<String> {
    state["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["name"] == member)
        .flat_map(|m| m["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// Whether `node` runs exactly the birds its own view places on it.
fn runs_its_share(state: &Value, node: &str) -> bool {
    placement(state)
        .get(node)
        .is_some_and(|(_, birds)| state["running_here"].as_u64() == Some(*birds))
}

/// Runs Chromium headless on `url` with `extra` flags; its stdout.
fn browse(chromium: &Path, profile: &Path, url: &str, extra: &[String]) -> String {
    let _ = std::fs::remove_dir_all(profile);
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={PAGE_BUDGET_MS}"))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // D-Bus and GPU complaints of a headless browser in a container.
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", chromium.display()));
    let (status, out) = wait_with_output(child, BROWSER_LIMIT)
        .unwrap_or_else(|| panic!("Chromium on {url} ran over {BROWSER_LIMIT:?}"));
    assert!(status.success(), "Chromium on {url} failed: {status}");
    String::from_utf8(out).expect("a UTF-8 DOM")
}

/// The page as Chromium rendered it, and a screenshot of it at `shot`.
fn load_page(chromium: &Path, profile: &Path, url: &str, shot: &Path) -> Page {
    let dom = browse(chromium, profile, url, &["--dump-dom".to_owned()]);
    browse(
        chromium,
        profile,
        url,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,900".to_owned(),
        ],
    );
    assert!(
        std::fs::metadata(shot).is_ok_and(|m| m.len() > 0),
        "Chromium wrote no screenshot at {}",
        shot.display()
    );
    Page { dom }
}

/// A dumped DOM, read through the data attributes the page sets.
struct Page {
    dom: String,
}

impl Page {
    /// The opening tags that start with `start`, e.g. `<tr class="member"`.
    fn tags<'a>(&'a self, start: &str) -> Vec<&'a str> {
        self.dom
            .match_indices(start)
            .filter_map(|(i, _)| self.dom[i..].find('>').map(|end| &self.dom[i..=i + end]))
            .collect()
    }

    /// Member name → status, from the members table.
    fn members(&self) -> BTreeMap<String, String> {
        self.tags("<tr class=\"member\"")
            .into_iter()
            .map(|t| (attr(t, "data-name"), attr(t, "data-status")))
            .collect()
    }

    /// Node → (bird count, bird names listed), from the birds-per-node cards.
    fn nodes(&self) -> BTreeMap<String, (u64, Vec<String>)> {
        let mut out = BTreeMap::new();
        for (i, _) in self.dom.match_indices("<section class=\"node\"") {
            let card = &self.dom[i..];
            let card = &card[..card.find("</section>").unwrap_or(card.len())];
            let tag = &card[..=card.find('>').expect("a whole tag")];
            let names = card
                .split("<li class=\"bird\">")
                .skip(1)
                .filter_map(|s| s.split_once("</li>").map(|(n, _)| n.to_owned()))
                .collect();
            let count = attr(tag, "data-count").parse().expect("a numeric count");
            out.insert(attr(tag, "data-node"), (count, names));
        }
        out
    }

    /// (kind, node, to) of every event listed.
    fn events(&self) -> Vec<(String, String, String)> {
        self.tags("<li class=\"event\"")
            .into_iter()
            .map(|t| {
                (
                    attr(t, "data-kind"),
                    attr(t, "data-node"),
                    attr(t, "data-to"),
                )
            })
            .collect()
    }

    /// How often the page fetched the state and redrew itself.
    fn refreshes(&self) -> u64 {
        self.tags("<body")
            .first()
            .map(|t| attr(t, "data-refreshes"))
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }
}

/// An attribute of one opening tag ("" if absent).
fn attr(tag: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    tag.find(&key)
        .map(|i| &tag[i + key.len()..])
        .and_then(|rest| rest.split_once('"'))
        .map_or_else(String::new, |(value, _)| value.to_owned())
}

/// Whether the page shows what `state` says: three members up, each with
/// its bird count and names.
fn page_before(page: &Page, state: &Value) -> Result<(), String> {
    let members = page.members();
    if members.len() != 3 || members.values().any(|s| s != "up") {
        return Err(format!("three members up expected: {members:?}"));
    }
    let nodes = page.nodes();
    for (name, (_, birds)) in placement(state) {
        let listed = (birds, names_on(state, &name));
        if nodes.get(&name) != Some(&listed) {
            return Err(format!("{name}: {listed:?} expected: {nodes:?}"));
        }
    }
    Ok(())
}

/// Whether the page shows `victim` down without birds, its birds on the
/// survivors, and the events saying so.
fn page_after(
    page: &Page,
    victim: &str,
    victim_birds: &[String],
    survivors: &[&str],
) -> Result<(), String> {
    let members = page.members();
    let statuses: Vec<Option<&str>> = std::iter::once(victim)
        .chain(survivors.iter().copied())
        .map(|n| members.get(n).map(String::as_str))
        .collect();
    let mut want = vec![Some("down")];
    want.extend(survivors.iter().map(|_| Some("up")));
    if statuses != want {
        return Err(format!(
            "{victim} down and the others up expected: {members:?}"
        ));
    }
    let nodes = page.nodes();
    if nodes.get(victim).map(|(count, _)| *count) != Some(0) {
        return Err(format!("no birds on {victim} expected: {nodes:?}"));
    }
    let on_survivors = survivors.iter().filter_map(|n| nodes.get(*n));
    let count: u64 = on_survivors.clone().map(|(count, _)| count).sum();
    let listed: Vec<&String> = on_survivors.flat_map(|(_, names)| names).collect();
    if count != BIRDS as u64 || victim_birds.iter().any(|b| !listed.contains(&b)) {
        return Err(format!(
            "all {BIRDS} birds on the survivors, {victim_birds:?} among them, expected: {nodes:?}"
        ));
    }
    let events = page.events();
    if !events.iter().any(|(k, n, _)| k == "down" && n == victim) {
        return Err(format!("a down event for {victim} expected: {events:?}"));
    }
    let failovers: Vec<&str> = events
        .iter()
        .filter(|(k, n, _)| k == "failover" && n == victim)
        .map(|(_, _, to)| to.as_str())
        .collect();
    if failovers.is_empty() || failovers.iter().any(|to| !survivors.contains(to)) {
        return Err(format!(
            "failovers from {victim} to survivors expected: {events:?}"
        ));
    }
    Ok(())
}

#[test]
fn the_dashboard_page_shows_a_killed_node_down_and_its_birds_failed_over() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: no Chromium at /usr/bin/chromium or $FLOCK_CHROMIUM (install it \
             with `apt-get install chromium`, or point FLOCK_CHROMIUM at one)"
        );
        return;
    };
    let exe = build_example("dashboard");
    let mut cluster = Cluster::start(&exe, 3, "node", |i, _, command| {
        let birds = if i == 0 { BIRDS } else { 0 };
        command
            .args(["--birds", &birds.to_string()])
            .env("DASHBOARD_COOKIE", format!("e2e-{}", std::process::id()));
    });
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("dashboard-e2e");
    std::fs::create_dir_all(&target).expect("screenshot dir");
    let profile = cluster.dir.join("chromium-profile");
    let started = Instant::now();

    // 1. Three members up everywhere, every bird running where placed, and
    // 2. the page from A shows the same. A view may still flap while the
    // cluster settles (two nodes that dial each other at once drop one
    // link), so a page that disagrees with the state just before it is
    // loaded again, within the limit.
    let a = 0;
    let deadline = Instant::now() + CLUSTER_LIMIT;
    let (before, page) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let before = wait_for("three members up and 12 birds placed", left, || {
            let states: Vec<Value> = cluster.servers.iter().map(state).collect::<Option<_>>()?;
            let agreed = placement(&states[0]);
            let settled = states.iter().zip(&cluster.servers).all(|(s, server)| {
                let p = placement(s);
                p.len() == 3
                    && p.values().all(|(status, _)| status == "up")
                    && s["birds"] == BIRDS
                    && p == agreed
                    && runs_its_share(s, &server.name)
            });
            settled.then(|| states[a].clone())
        });
        for server in &mut cluster.servers {
            server.assert_running();
        }
        eprintln!("cluster settled after {:?}", started.elapsed());
        let page = load_page(
            &chromium,
            &profile,
            &page_url(&cluster.servers[a]),
            &target.join("before.png"),
        );
        match page_before(&page, &before) {
            Ok(()) => break (before, page),
            Err(why) if Instant::now() < deadline => eprintln!("loading the page again: {why}"),
            Err(why) => panic!("the page before the kill: {why}"),
        }
    };
    assert!(
        page.refreshes() >= 2,
        "the page refreshes itself (refreshed {} times)",
        page.refreshes()
    );
    let placed = placement(&before);

    // 3. Kill a node other than A that hosts birds.
    let h = (0..3)
        .filter(|&i| i != a)
        .max_by_key(|&i| placed[&cluster.servers[i].name].1)
        .expect("another node");
    let victim = cluster.servers[h].name.clone();
    let victim_birds = names_on(&before, &victim);
    assert!(!victim_birds.is_empty(), "{victim} hosts birds: {placed:?}");
    cluster.servers[h].kill();
    let killed = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != h).collect();

    // The survivors take its birds over and A's dashboard saw it happen.
    let after = wait_for("the survivors running every bird", FAILOVER_LIMIT, || {
        let states: Vec<Value> = survivors
            .iter()
            .map(|&i| state(&cluster.servers[i]))
            .collect::<Option<_>>()?;
        let p = placement(&states[0]);
        let on_survivors: u64 = survivors
            .iter()
            .filter_map(|&i| p.get(&cluster.servers[i].name))
            .map(|(_, birds)| birds)
            .sum();
        let done = p.get(&victim) == Some(&("down".to_owned(), 0))
            && on_survivors == BIRDS as u64
            && states
                .iter()
                .zip(&survivors)
                .all(|(s, &i)| placement(s) == p && runs_its_share(s, &cluster.servers[i].name))
            && states[0]["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "failover"));
        done.then(|| states[0].clone())
    });
    eprintln!("failover seen after {:?}", killed.elapsed());

    let survivor_names: Vec<&str> = survivors
        .iter()
        .map(|&i| cluster.servers[i].name.as_str())
        .collect();
    let page = load_page(
        &chromium,
        &profile,
        &page_url(&cluster.servers[a]),
        &target.join("after.png"),
    );
    if let Err(why) = page_after(&page, &victim, &victim_birds, &survivor_names) {
        panic!("the page after killing {victim}: {why}");
    }
    assert_eq!(after["birds"], BIRDS, "no bird lost from the registry");
    for &i in &survivors {
        cluster.servers[i].assert_running();
    }
    eprintln!(
        "done in {:?}; screenshots in {}",
        started.elapsed(),
        target.display()
    );
}
