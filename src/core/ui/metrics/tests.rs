//! Tests of the metrics catalog: naming conventions, the exporter's view of it, and the
//! Grafana dashboard generated from it.

use super::*;

#[test]
fn the_catalog_follows_the_conventions() {
    assert_eq!(check_catalog(CATALOG), Vec::<String>::new());
}

#[test]
fn bad_definitions_are_named() {
    let ok = CATALOG[0];
    let cases: Vec<(MetricDef, &str)> = vec![
        (
            MetricDef {
                name: "webhooks_total",
                ..ok
            },
            "sluice_",
        ),
        (
            MetricDef {
                name: "sluice_Webhooks_total",
                ..ok
            },
            "[a-z0-9_]",
        ),
        (
            MetricDef {
                name: "sluice_webhooks",
                ..ok
            },
            "ends with _total",
        ),
        (
            MetricDef {
                name: "sluice_depth_total",
                kind: Kind::Gauge,
                ..ok
            },
            "only counters",
        ),
        (
            MetricDef {
                name: "sluice_wait_ms",
                kind: Kind::Gauge,
                ..ok
            },
            "needs the unit",
        ),
        (
            MetricDef {
                name: "sluice_wait",
                kind: Kind::Gauge,
                unit: Unit::Seconds,
                ..ok
            },
            "unit seconds ends",
        ),
        (
            MetricDef {
                help: "no full stop",
                ..ok
            },
            "one sentence",
        ),
        (
            MetricDef {
                kind: Kind::Histogram,
                name: "sluice_x_seconds",
                unit: Unit::Seconds,
                ..ok
            },
            "histograms have them",
        ),
        (
            MetricDef {
                kind: Kind::Histogram,
                name: "sluice_x_seconds",
                unit: Unit::Seconds,
                buckets: &[1.0, 1.0],
                ..ok
            },
            "buckets ascend",
        ),
        (
            MetricDef {
                labels: &[Label {
                    name: "le",
                    values: &["other"],
                }],
                ..ok
            },
            "reserved",
        ),
        (
            MetricDef {
                labels: &[Label {
                    name: "event",
                    values: &["push"],
                }],
                ..ok
            },
            "has `other`",
        ),
    ];
    for (def, want) in cases {
        let got = check_catalog(&[def]);
        assert!(
            got.iter().any(|g| g.contains(want)),
            "{}: {got:?}",
            def.name
        );
    }
    let twice = check_catalog(&[ok, ok]);
    assert!(
        twice.iter().any(|g| g.contains("defined twice")),
        "{twice:?}"
    );
}

#[test]
fn registration_names_and_label_values() {
    let cases = [
        (
            "sluice_webhook_requests_total",
            ("sluice_webhook_requests", Unit::None),
        ),
        (
            "sluice_webhook_duration_seconds",
            ("sluice_webhook_duration", Unit::Seconds),
        ),
        (
            "sluice_job_log_stored_bytes_total",
            ("sluice_job_log_stored", Unit::Bytes),
        ),
        ("sluice_jobs", ("sluice_jobs", Unit::None)),
    ];
    for (name, want) in cases {
        assert_eq!(find(name).expect(name).registration(), want, "{name}");
    }
    let m = find("sluice_webhook_requests_total").unwrap();
    assert_eq!(label_value(m, "event", "push"), "push");
    assert_eq!(label_value(m, "event", "<script>"), "other");
    assert_eq!(label_value(m, "nope", "push"), "other");
}

/// Registered with prometheus-client as the server does, every catalog name comes out exactly
/// as written in the catalog (the exporter adds `_total` and units itself).
#[test]
fn the_exporter_writes_the_catalog_names() {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::{Registry, Unit as PUnit};

    type Labels = Vec<(String, String)>;
    let mut registry = Registry::default();
    for m in CATALOG {
        let labels: Labels = m
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.values[0].to_string()))
            .collect();
        let (name, unit) = m.registration();
        let unit = match unit {
            Unit::Seconds => Some(PUnit::Seconds),
            Unit::Bytes => Some(PUnit::Bytes),
            Unit::None => None,
        };
        fn register(
            registry: &mut Registry,
            name: &str,
            help: &str,
            unit: &Option<PUnit>,
            metric: impl prometheus_client::registry::Metric,
        ) {
            match unit {
                Some(u) => registry.register_with_unit(name, help, u.clone(), metric),
                None => registry.register(name, help, metric),
            }
        }
        match m.kind {
            Kind::Counter => {
                let f = Family::<Labels, Counter>::default();
                f.get_or_create(&labels).inc();
                register(&mut registry, name, m.help, &unit, f);
            }
            Kind::Gauge => {
                let f = Family::<Labels, Gauge>::default();
                f.get_or_create(&labels).set(3);
                register(&mut registry, name, m.help, &unit, f);
            }
            Kind::Histogram => {
                let buckets = m.buckets;
                let f = Family::<Labels, Histogram, _>::new_with_constructor(move || {
                    Histogram::new(buckets.iter().copied())
                });
                f.get_or_create(&labels).observe(0.2);
                register(&mut registry, name, m.help, &unit, f);
            }
        }
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let samples: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    for m in CATALOG {
        let want = match m.kind {
            Kind::Histogram => format!("{}_bucket", m.name),
            _ => m.name.to_string(),
        };
        assert!(samples.contains(want.as_str()), "{want} not in\n{text}");
        let ty = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let family = m.name.strip_suffix("_total").unwrap_or(m.name);
        assert!(
            text.contains(&format!("# TYPE {family} {ty}\n")),
            "{family}\n{text}"
        );
    }
}

/// `examples/grafana/sluice-dashboard.json` is the dashboard generated from the catalog
/// (regenerate with `SLUICE_BLESS=1 cargo test --lib grafana`), and its queries read only
/// catalog metrics, every one of them.
#[test]
fn the_grafana_dashboard_matches_the_catalog() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/grafana/sluice-dashboard.json");
    let generated = serde_json::to_string_pretty(&grafana_dashboard(CATALOG)).unwrap() + "\n";
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not the generated dashboard; regenerate it with SLUICE_BLESS=1 cargo test --lib grafana",
        path.display()
    );
    let dash: Value = serde_json::from_str(&committed).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names_in(expr);
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert!(
                    find(&n).is_some(),
                    "{expr} reads {n}, which is not in the catalog"
                );
                seen.insert(n);
            }
        }
    }
    let all: std::collections::BTreeSet<String> =
        CATALOG.iter().map(|m| m.name.to_string()).collect();
    assert_eq!(seen, all);
    assert_eq!(
        metric_names_in(
            "histogram_quantile(0.99, sum by (le) (rate(sluice_lock_wait_seconds_bucket[5m]))) + sluice_jobs_bucket"
        ),
        vec!["sluice_lock_wait_seconds", "sluice_jobs_bucket"]
    );
}
