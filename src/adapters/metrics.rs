//! The process's Prometheus registry: every series of `core::ui::metrics::CATALOG` registered
//! with `prometheus-client` at first use, and recording by catalog name ([`inc`], [`observe`],
//! [`set`]) for the paths that do the work — webhook intake (`http::webhook`), GitHub calls
//! (`adapters::github`), job logs (`app::job_log`). A label value outside its closed set is
//! recorded as `other` (`metrics::label_value`): no input can create series. `http::metrics`
//! serves it on `/metrics`.

use std::collections::HashMap;
use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit as PUnit};

use crate::core::ui::metrics::{CATALOG, Kind, MetricDef, Unit, label_value};

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, Buckets>;

/// Makes each histogram of a family with its catalog buckets.
#[derive(Clone, Copy)]
struct Buckets(&'static [f64]);

impl prometheus_client::metrics::family::MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

fn register(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<PUnit>,
    metric: impl prometheus_client::registry::Metric,
) {
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, metric),
        None => registry.register(name, help, metric),
    }
}

enum Series {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>),
    Histogram(HistogramFamily),
}

/// The registry and every catalog series in it.
pub struct Metrics {
    registry: Registry,
    series: HashMap<&'static str, (&'static MetricDef, Series)>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let mut series = HashMap::new();
        for m in CATALOG {
            let (name, unit) = m.registration();
            let unit = match unit {
                Unit::Seconds => Some(PUnit::Seconds),
                Unit::Bytes => Some(PUnit::Bytes),
                Unit::None => None,
            };
            let s = match m.kind {
                Kind::Counter => Series::Counter(Family::default()),
                Kind::Gauge => Series::Gauge(Family::default()),
                Kind::Histogram => {
                    Series::Histogram(Family::new_with_constructor(Buckets(m.buckets)))
                }
            };
            // prometheus-client ends each HELP line with a period of its own; the catalog's
            // help is a sentence (the dashboard shows it), so its period is left to the encoder.
            let help = m.help.strip_suffix('.').unwrap_or(m.help);
            match &s {
                Series::Counter(f) => register(&mut registry, name, help, unit, f.clone()),
                Series::Gauge(f) => register(&mut registry, name, help, unit, f.clone()),
                Series::Histogram(f) => register(&mut registry, name, help, unit, f.clone()),
            }
            series.insert(m.name, (m, s));
        }
        Metrics { registry, series }
    }

    fn labels(m: &MetricDef, labels: &[(&str, &str)]) -> Labels {
        m.labels
            .iter()
            .map(|l| {
                let given = labels
                    .iter()
                    .find(|(k, _)| *k == l.name)
                    .map_or("", |(_, v)| *v);
                (
                    l.name.to_string(),
                    label_value(m, l.name, given).to_string(),
                )
            })
            .collect()
    }

    /// The Prometheus text exposition of every series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// The process's registry (the whole catalog registered at first use).
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn series(name: &str) -> Option<&'static (&'static MetricDef, Series)> {
    let s = global().series.get(name);
    debug_assert!(s.is_some(), "{name} is not in the metrics catalog");
    s
}

/// Adds one to counter `name` (a catalog name, `…_total`).
pub fn inc(name: &str, labels: &[(&str, &str)]) {
    if let Some((m, Series::Counter(f))) = series(name) {
        f.get_or_create(&Metrics::labels(m, labels)).inc();
    }
}

/// Adds `n` to counter `name`.
pub fn inc_by(name: &str, labels: &[(&str, &str)], n: u64) {
    if let Some((m, Series::Counter(f))) = series(name) {
        f.get_or_create(&Metrics::labels(m, labels)).inc_by(n);
    }
}

/// Records `value` (in the metric's unit: seconds, bytes) in histogram `name`.
pub fn observe(name: &str, labels: &[(&str, &str)], value: f64) {
    if let Some((m, Series::Histogram(f))) = series(name) {
        f.get_or_create(&Metrics::labels(m, labels)).observe(value);
    }
}

/// Sets gauge `name`.
pub fn set(name: &str, labels: &[(&str, &str)], value: f64) {
    if let Some((m, Series::Gauge(f))) = series(name) {
        f.get_or_create(&Metrics::labels(m, labels)).set(value);
    }
}
