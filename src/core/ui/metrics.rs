//! The Prometheus metrics Sluice exports on `/metrics`: one catalog ([`CATALOG`]) of names,
//! types, help texts, units, labels (with their closed value sets, so cardinality is bounded)
//! and histogram buckets, and the sample Grafana dashboard generated from it
//! ([`grafana_dashboard`], committed as `examples/grafana/sluice-dashboard.json`).
//!
//! Names follow Prometheus's conventions (prometheus.io/docs/practices/naming): the `sluice_`
//! prefix, base units in the name (`_seconds`, `_bytes`), `_total` on counters and only on
//! counters; [`check_catalog`] enforces them. The server registers each entry with
//! `prometheus-client` under [`MetricDef::registration`] (that crate appends `_total` and the
//! unit itself); a test registers the whole catalog and checks the exposition names.
//!
//! Pure data: recording values is the server's job.

use serde_json::{Value, json};

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric's base unit, as its name ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Bytes,
    /// A count of things (no suffix).
    None,
}

impl Unit {
    /// The name suffix (without `_`).
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Unit::Seconds => Some("seconds"),
            Unit::Bytes => Some("bytes"),
            Unit::None => None,
        }
    }
}

/// A label and every value it may take; anything else is recorded as `other`
/// ([`label_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

/// One metric of the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    /// The full name as scraped (with `_total` for counters and the unit suffix).
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
    pub labels: &'static [Label],
    /// Upper bounds of a histogram's buckets (seconds), ascending; empty for other kinds.
    pub buckets: &'static [f64],
}

impl MetricDef {
    /// The name and unit to register with `prometheus-client`, which appends the unit and, for
    /// counters, `_total` itself: `sluice_webhook_requests_total` → (`sluice_webhook_requests`,
    /// None); `sluice_webhook_duration_seconds` → (`sluice_webhook_duration`, Seconds).
    pub fn registration(&self) -> (&'static str, Unit) {
        let mut n = self.name;
        if self.kind == Kind::Counter {
            n = n.strip_suffix("_total").unwrap_or(n);
        }
        if let Some(u) = self.unit.suffix() {
            n = n
                .strip_suffix(u)
                .and_then(|n| n.strip_suffix('_'))
                .unwrap_or(n);
        }
        (n, self.unit)
    }

    pub fn label_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.labels.iter().map(|l| l.name)
    }
}

/// `value` if `label` of `metric` allows it, else `other` (unknown events, new job kinds): a
/// label never takes a value from outside its set, so a hostile input cannot create series.
pub fn label_value(metric: &MetricDef, label: &str, value: &str) -> &'static str {
    metric
        .labels
        .iter()
        .find(|l| l.name == label)
        .and_then(|l| l.values.iter().find(|v| **v == value).copied())
        .unwrap_or("other")
}

/// Buckets for request latencies (5 ms … 10 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets for waits and terraform steps (1 s … 1 h).
pub const STEP_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

const OTHER: &str = "other";

const EVENT: Label = Label {
    name: "event",
    values: &[
        "pull_request",
        "issue_comment",
        "pull_request_review",
        "push",
        "merge_group",
        "check_run",
        "ping",
        "installation",
        OTHER,
    ],
};
const INTAKE_RESULT: Label = Label {
    name: "result",
    values: &[
        "accepted",
        "duplicate",
        "ignored",
        "bad_signature",
        "too_large",
        "bad_request",
        "not_allowed",
        "error",
        OTHER,
    ],
};
const JOB_KIND: Label = Label {
    name: "kind",
    values: &["plan", "apply", "drift_check", OTHER],
};
const JOB_STATE: Label = Label {
    name: "state",
    values: &[
        "waiting",
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "interrupted",
        OTHER,
    ],
};
const STEP: Label = Label {
    name: "step",
    values: &["init", "plan", "show", "apply", OTHER],
};
const STEP_RESULT: Label = Label {
    name: "result",
    values: &["ok", "error", "timeout", "cancelled", OTHER],
};
const GITHUB_RESULT: Label = Label {
    name: "result",
    values: &[
        "ok",
        "client_error",
        "server_error",
        "rate_limited",
        "network_error",
        OTHER,
    ],
};
const GITHUB_RESOURCE: Label = Label {
    name: "resource",
    values: &["core", "graphql", "search", OTHER],
};
const SYNC_STATUS: Label = Label {
    name: "status",
    values: &[
        "synced",
        "drifted",
        "out_of_sync",
        "applying",
        "check_failed",
        "unknown",
        "stale",
        OTHER,
    ],
};
const AUDIT_ACTION: Label = Label {
    name: "action",
    values: &[
        "plan",
        "apply",
        "policy",
        "override",
        "lock_taken",
        "lock_released",
        "unlock",
        "config_rejected",
        "webhook_rejected",
        "drift",
        OTHER,
    ],
};

const WRITE_WINDOW: Label = Label {
    name: "window",
    values: &["minute", "hour", OTHER],
};

/// The `action` label of `sluice_audit_entries_total` for an audit action
/// (`AuditAction::as_str`): related actions share one value (every `drift_*` is `drift`), so
/// the series stay few.
pub fn audit_action_label(action: &str) -> &'static str {
    match action {
        "plan" | "plan_refused" => "plan",
        "apply" | "apply_refused" => "apply",
        "policy_check" => "policy",
        "policy_override" => "override",
        "lock_acquired" => "lock_taken",
        "lock_released" | "admin_lock_release" => "lock_released",
        "unlock" => "unlock",
        "config_rejected" => "config_rejected",
        "webhook_rejected" => "webhook_rejected",
        a if a.starts_with("drift_") => "drift",
        _ => OTHER,
    }
}

/// Every metric Sluice exports.
pub const CATALOG: &[MetricDef] = &[
    MetricDef {
        name: "sluice_webhook_requests_total",
        kind: Kind::Counter,
        unit: Unit::None,
        help: "Webhook deliveries received, by event and result.",
        labels: &[EVENT, INTAKE_RESULT],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_webhook_duration_seconds",
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        help: "Time from a webhook's request head to its answer, by event.",
        labels: &[EVENT],
        buckets: LATENCY_BUCKETS,
    },
    MetricDef {
        name: "sluice_queue_depth",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "Jobs waiting to start (queued or waiting for locks), by job kind.",
        labels: &[JOB_KIND],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_queue_wait_seconds",
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        help: "Time from a job's creation to its start, by job kind.",
        labels: &[JOB_KIND],
        buckets: STEP_BUCKETS,
    },
    MetricDef {
        name: "sluice_jobs",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "Jobs in the store, by kind and state.",
        labels: &[JOB_KIND, JOB_STATE],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_terraform_step_duration_seconds",
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        help: "Duration of each terraform command a job runs, by step and result.",
        labels: &[STEP, STEP_RESULT],
        buckets: STEP_BUCKETS,
    },
    MetricDef {
        name: "sluice_lock_wait_seconds",
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        help: "Time a run waited for the locks of its projects.",
        labels: &[],
        buckets: STEP_BUCKETS,
    },
    MetricDef {
        name: "sluice_github_requests_total",
        kind: Kind::Counter,
        unit: Unit::None,
        help: "GitHub API calls, by result.",
        labels: &[GITHUB_RESULT],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_github_rate_limit_remaining",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "Requests left in GitHub's current rate-limit window (X-RateLimit-Remaining), by resource.",
        labels: &[GITHUB_RESOURCE],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_github_writes_pending",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "GitHub writes (reviews, summaries, check runs) the write scheduler holds or sends now.",
        labels: &[],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_github_writes_paused",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "1 while the write scheduler pauses writes after a GitHub rate limit, else 0.",
        labels: &[],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_github_write_budget_remaining",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "Writes the scheduler may still send in the rolling minute and hour, by window.",
        labels: &[WRITE_WINDOW],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_outbox_backlog",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "Outbox items (comments, statuses, check runs) not yet delivered to GitHub.",
        labels: &[],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_outbox_oldest_age_seconds",
        kind: Kind::Gauge,
        unit: Unit::Seconds,
        help: "Age of the oldest undelivered outbox item (0 when the outbox is empty).",
        labels: &[],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_drift_projects",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "Projects on default branches, by sync status.",
        labels: &[SYNC_STATUS],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_drift_oldest_age_seconds",
        kind: Kind::Gauge,
        unit: Unit::Seconds,
        help: "Age of the oldest unresolved drift (0 when there is none).",
        labels: &[],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_audit_entries_total",
        kind: Kind::Counter,
        unit: Unit::None,
        help: "Audit log entries written, by action.",
        labels: &[AUDIT_ACTION],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_live_log_viewers",
        kind: Kind::Gauge,
        unit: Unit::None,
        help: "Open live log streams (Server-Sent Events connections).",
        labels: &[],
        buckets: &[],
    },
    MetricDef {
        name: "sluice_job_log_stored_bytes_total",
        kind: Kind::Counter,
        unit: Unit::Bytes,
        help: "Bytes of (redacted) job output stored in the log.",
        labels: &[],
        buckets: &[],
    },
];

/// The metric named `name`.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|m| m.name == name)
}

/// What is wrong with `catalog` by Prometheus's naming conventions (empty when nothing).
pub fn check_catalog(catalog: &[MetricDef]) -> Vec<String> {
    let mut bad = Vec::new();
    let ident = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    for (i, m) in catalog.iter().enumerate() {
        let n = m.name;
        if !ident(n) || !n.starts_with("sluice_") {
            bad.push(format!("{n}: names are sluice_ and [a-z0-9_]"));
        }
        if catalog[..i].iter().any(|o| o.name == n) {
            bad.push(format!("{n}: defined twice"));
        }
        match (m.kind, n.ends_with("_total")) {
            (Kind::Counter, false) => bad.push(format!("{n}: a counter ends with _total")),
            (Kind::Gauge | Kind::Histogram, true) => {
                bad.push(format!("{n}: only counters end with _total"))
            }
            _ => {}
        }
        let base = n.strip_suffix("_total").unwrap_or(n);
        match m.unit.suffix() {
            Some(u) if !base.ends_with(&format!("_{u}")) => {
                bad.push(format!("{n}: the unit {u} ends the name"))
            }
            None if ["_seconds", "_bytes", "_milliseconds", "_ms"]
                .iter()
                .any(|s| base.ends_with(s)) =>
            {
                bad.push(format!("{n}: a unit in the name needs the unit set"))
            }
            _ => {}
        }
        if m.help.is_empty() || !m.help.ends_with('.') {
            bad.push(format!("{n}: help is one sentence"));
        }
        if (m.kind == Kind::Histogram) == m.buckets.is_empty() {
            bad.push(format!(
                "{n}: buckets are for histograms, and histograms have them"
            ));
        }
        if m.buckets.windows(2).any(|w| w[0] >= w[1]) {
            bad.push(format!("{n}: buckets ascend"));
        }
        for l in m.labels {
            if !ident(l.name) || ["le", "quantile", "job", "instance"].contains(&l.name) {
                bad.push(format!("{n}: label {} is reserved or malformed", l.name));
            }
            if !l.values.contains(&OTHER) || l.values.iter().any(|v| v.is_empty()) {
                bad.push(format!(
                    "{n}: label {} has `other` and no empty value",
                    l.name
                ));
            }
        }
    }
    bad
}

/// The PromQL a dashboard panel plots for `m`: rates for counters (per second over 5 minutes),
/// p50/p99 for histograms, the value for gauges; summed by the first label.
pub fn panel_queries(m: &MetricDef) -> Vec<(String, String)> {
    let by = m
        .labels
        .first()
        .map(|l| format!(" by ({})", l.name))
        .unwrap_or_default();
    let legend = m
        .labels
        .first()
        .map(|l| format!("{{{{{}}}}}", l.name))
        .unwrap_or_else(|| m.name.to_string());
    match m.kind {
        Kind::Counter => vec![(format!("sum{by} (rate({}[5m]))", m.name), legend)],
        Kind::Gauge => vec![(format!("sum{by} ({})", m.name), legend)],
        Kind::Histogram => {
            let by_le = match m.labels.first() {
                Some(l) => format!(" by (le, {})", l.name),
                None => " by (le)".to_string(),
            };
            [("0.5", "p50"), ("0.99", "p99")]
                .iter()
                .map(|(q, p)| {
                    (
                        format!(
                            "histogram_quantile({q}, sum{by_le} (rate({}_bucket[5m])))",
                            m.name
                        ),
                        format!("{p} {legend}"),
                    )
                })
                .collect()
        }
    }
}

/// The sample Grafana dashboard: one time-series panel per metric of `catalog`, two per row,
/// on a Prometheus data source chosen at import (`DS_PROMETHEUS`). Grafana's dashboard JSON
/// model (schemaVersion 39).
pub fn grafana_dashboard(catalog: &[MetricDef]) -> Value {
    let panels: Vec<Value> = catalog
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let targets: Vec<Value> = panel_queries(m)
                .into_iter()
                .enumerate()
                .map(|(j, (expr, legend))| {
                    let ref_id = ["A", "B", "C"][j.min(2)];
                    json!({
                        "datasource": { "type": "prometheus", "uid": "${DS_PROMETHEUS}" },
                        "expr": expr,
                        "legendFormat": legend,
                        "refId": ref_id,
                    })
                })
                .collect();
            let unit = match (m.kind, m.unit) {
                (Kind::Counter, Unit::Bytes) => "Bps",
                (Kind::Counter, _) => "reqps",
                (_, Unit::Seconds) => "s",
                (_, Unit::Bytes) => "bytes",
                (_, Unit::None) => "short",
            };
            json!({
                "id": i + 1,
                "type": "timeseries",
                "title": m.name,
                "description": m.help,
                "datasource": { "type": "prometheus", "uid": "${DS_PROMETHEUS}" },
                "gridPos": { "h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8 },
                "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
                "options": { "legend": { "displayMode": "list", "placement": "bottom" } },
                "targets": targets,
            })
        })
        .collect();
    json!({
        "__inputs": [{
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "title": "Sluice",
        "uid": "sluice-overview",
        "description": "Generated from Sluice's metrics catalog (src/core/ui/metrics.rs).",
        "tags": ["sluice", "terraform"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "panels": panels,
    })
}

/// The metric names a PromQL expression reads (`sluice_…`, with `_bucket`/`_sum`/`_count`
/// of histograms mapped to the histogram).
pub fn metric_names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sluice_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| find(b).is_some_and(|m| m.kind == Kind::Histogram))
            })
            .unwrap_or(name);
        out.push(name.to_string());
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
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

    /// Every audit action has a label value of the catalog; related ones share one.
    #[test]
    fn audit_actions_map_to_few_catalog_labels() {
        let def = find("sluice_audit_entries_total").unwrap();
        let values = def.labels[0].values;
        for (action, label) in [
            ("plan", "plan"),
            ("plan_refused", "plan"),
            ("apply_refused", "apply"),
            ("policy_check", "policy"),
            ("policy_override", "override"),
            ("lock_acquired", "lock_taken"),
            ("admin_lock_release", "lock_released"),
            ("unlock", "unlock"),
            ("drift_acknowledged", "drift"),
            ("drift_check_failed", "drift"),
            ("command_rejected", "other"),
            ("", "other"),
        ] {
            assert_eq!(audit_action_label(action), label, "{action}");
            assert!(values.contains(&label), "{label}");
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
}
