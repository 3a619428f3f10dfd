//! flock-bench: measures flock-actix against baselines measured in the same
//! run. `cargo run --release -p flock-bench -- [NAME|all|list|smoke]`.
//!
//! `smoke` runs every benchmark once at a small scale (one warm-up and one
//! measured round, scale 0.01 unless FLOCK_BENCH_SCALE says otherwise) so CI
//! proves the harness still runs; it asserts nothing about timings.
//!
//! Cluster benchmarks start real node processes on 127.0.0.1 by re-running
//! this binary with a hidden subcommand (`__node`, `__raw`, `__mem_actix`).
//! `__churn_memory` is run by hand (see churn.rs).

mod benches;
mod birds;
/// The frame-counting network moved into the library (tests use it too).
mod counting {
    pub use flock_actix::testing::{CountingNetwork, Tally};
}
mod churn;
mod layout;
mod messages;
mod nodes;
mod procs;
mod raw;
mod rolling;
mod scale;
mod simnodes;
mod tap;
#[cfg(feature = "telepathy")]
mod telepathy;

/// Counts live heap bytes in a child that turns it on (`registry_memory`,
/// `memory_per_bird`); otherwise one relaxed load per allocation.
#[global_allocator]
static ALLOC: tap::CountingAlloc = tap::CountingAlloc;

use serde_json::json;
use std::io::Write;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Row {
    pub bench: String,
    pub value: f64,
    pub unit: String,
    pub baseline: String,
    pub baseline_value: Option<f64>,
    pub ratio: Option<f64>,
    pub runs: Vec<f64>,
    pub baseline_runs: Vec<f64>,
    /// The raw-bytes floor (4-byte length + payload, no serde) where the
    /// row is a message row.
    pub floor: String,
    pub floor_value: Option<f64>,
    pub floor_ratio: Option<f64>,
    pub floor_runs: Vec<f64>,
    /// How the nodes were laid out: arbiters and CPU pinning.
    pub layout: String,
    pub target: String,
    pub met: Option<bool>,
    pub extra: serde_json::Value,
    pub note: String,
}

impl Row {
    pub fn new(bench: &str, unit: &str, runs: Vec<f64>) -> Row {
        Row {
            bench: bench.into(),
            value: median(&runs),
            unit: unit.into(),
            baseline: String::new(),
            baseline_value: None,
            ratio: None,
            runs,
            baseline_runs: Vec::new(),
            floor: String::new(),
            floor_value: None,
            floor_ratio: None,
            floor_runs: Vec::new(),
            layout: String::new(),
            target: String::new(),
            met: None,
            extra: json!({}),
            note: String::new(),
        }
    }

    pub fn baseline(mut self, name: &str, runs: Vec<f64>) -> Row {
        let b = median(&runs);
        self.baseline = name.into();
        self.baseline_value = Some(b);
        self.ratio = Some(self.value / b);
        self.baseline_runs = runs;
        self
    }

    pub fn floor(mut self, name: &str, runs: Vec<f64>) -> Row {
        let b = median(&runs);
        self.floor = name.into();
        self.floor_value = Some(b);
        self.floor_ratio = Some(self.value / b);
        self.floor_runs = runs;
        self
    }

    pub fn layout(mut self, layout: &str) -> Row {
        self.layout = layout.into();
        self
    }

    /// A target the issue does not set: reported, not judged.
    pub fn no_target(mut self, why: &str) -> Row {
        self.target = why.into();
        self.met = None;
        self
    }

    pub fn target(mut self, target: &str, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    pub fn extra(mut self, extra: serde_json::Value) -> Row {
        self.extra = extra;
        self
    }

    pub fn note(mut self, note: &str) -> Row {
        self.note = note.into();
        self
    }

    fn json(&self) -> serde_json::Value {
        let (mn, md, mx) = stats(&self.runs);
        let (bmn, bmd, bmx) = stats(&self.baseline_runs);
        json!({
            "bench": self.bench,
            "value": self.value,
            "unit": self.unit,
            "baseline": if self.baseline.is_empty() { None } else { Some(&self.baseline) },
            "baseline_value": self.baseline_value,
            "ratio": self.ratio,
            "runs": self.runs.len(),
            "min": mn, "median": md, "max": mx,
            "samples": self.runs,
            "baseline_min": self.baseline_value.map(|_| bmn),
            "baseline_median": self.baseline_value.map(|_| bmd),
            "baseline_max": self.baseline_value.map(|_| bmx),
            "baseline_samples": self.baseline_runs,
            "floor": if self.floor.is_empty() { None } else { Some(&self.floor) },
            "floor_value": self.floor_value,
            "floor_ratio": self.floor_ratio,
            "floor_samples": self.floor_runs,
            "layout": self.layout,
            "target": self.target,
            "met": self.met,
            "extra": self.extra,
            "note": self.note,
            "unix_time": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        })
    }
}

pub fn median(v: &[f64]) -> f64 {
    stats(v).1
}

/// (min, median, max); NaN for an empty slice.
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    (s[0], m, s[s.len() - 1])
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<36} {:>9} {:>8} {:>19} {:>9} {:>6} {:>9} {:>6} {:>30} {:>4}  layout",
        "bench", "value", "unit", "min/max", "frames", "xfrm", "raw", "xraw", "target", "met"
    );
    let ratio = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
    for r in rows {
        let (mn, _, mx) = stats(&r.runs);
        println!(
            "{:<36} {:>9} {:>8} {:>19} {:>9} {:>6} {:>9} {:>6} {:>30} {:>4}  {}",
            r.bench,
            fmt(r.value),
            r.unit,
            format!("{}/{}", fmt(mn), fmt(mx)),
            r.baseline_value.map_or("-".into(), fmt),
            ratio(r.ratio),
            r.floor_value.map_or("-".into(), fmt),
            ratio(r.floor_ratio),
            r.target,
            r.met.map_or("-", |m| if m { "yes" } else { "NO" }),
            r.layout,
        );
    }
}

fn append_json(rows: &[Row]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/flock-bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("results.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open results.jsonl");
    for r in rows {
        writeln!(f, "{}", r.json()).expect("write results");
    }
    eprintln!("appended {} rows to {}", rows.len(), path.display());
}

fn main() {
    // env_logger behind a tap that counts down declarations and refused
    // frames for the scale benches.
    tap::init_logger();
    // A child pins itself before it starts any thread.
    procs::pin_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map_or("all", String::as_str);
    match what {
        "__node" => return benches::node_main(&args[1..]),
        "__raw" => return raw::server_main::<raw::FlockFrames>(),
        "__rawbytes" => return raw::server_main::<raw::RawBytes>(),
        #[cfg(feature = "telepathy")]
        "__telepathy" => return telepathy::server_main(),
        "__mem_actix" => return benches::mem_actix_main(&args[1..]),
        "__churn_memory" => return churn::churn_main(&args[1..]),
        _ => {}
    }
    let names = benches::NAMES;
    if what == "list" {
        for n in names {
            println!("{n}");
        }
        return;
    }
    if what == "smoke" {
        benches::SMOKE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let selected: Vec<&str> = if what == "smoke" {
        names.to_vec()
    } else if what == "all" {
        names
            .iter()
            .copied()
            .filter(|n| !benches::LONG.contains(n))
            .collect()
    } else if what == "scale" {
        benches::SCALE.to_vec()
    } else {
        args.iter()
            .map(String::as_str)
            .filter(|a| {
                let ok = names.contains(a);
                if !ok {
                    eprintln!("unknown benchmark {a:?}; try `list`");
                }
                ok
            })
            .collect()
    };
    let start = std::time::Instant::now();
    let mut all = Vec::new();
    for name in selected {
        eprintln!("== {name} ({:.0}s so far)", start.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        let rows = benches::run(name);
        eprintln!("   {name} took {:.1}s", t.elapsed().as_secs_f64());
        assert!(!rows.is_empty(), "benchmark {name} produced no row");
        print_table(&rows);
        // A smoke run's figures mean nothing; keep them out of the record.
        if what != "smoke" {
            append_json(&rows);
        }
        all.extend(rows);
    }
    println!(
        "\n==== summary ({:.0}s) ====",
        start.elapsed().as_secs_f64()
    );
    print_table(&all);
}
