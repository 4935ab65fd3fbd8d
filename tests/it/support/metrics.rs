//! Reading `/metrics` (on the admin listener) as Prometheus does: parsed by
//! a text-format parser (prometheus-parse), never by matching lines.

use super::TestApp;
use prometheus_parse::{Sample, Value};
use std::collections::HashMap;

/// One scrape of `/metrics`, parsed.
pub struct Scrape {
    samples: Vec<Sample>,
    /// Family names with their help text, samples or not.
    docs: HashMap<String, String>,
}

/// Fetches and parses `/metrics` from the admin listener.
pub async fn scrape(app: &TestApp) -> Scrape {
    let response = app
        .http()
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("the metrics parse");
    Scrape {
        samples: parsed.samples,
        docs: parsed.docs,
    }
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(_) | Value::Summary(_) => panic!("not a single number: {value:?}"),
    }
}

impl Scrape {
    /// The sample `name` with exactly `labels`; 0 when there is none (a
    /// labelled counter appears once it first moves).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.metric == name && *s.labels == wanted)
            .map_or(0.0, |s| number(&s.value))
    }

    /// The sum of every sample named `name`, whatever its labels.
    pub fn total(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| number(&s.value))
            .sum()
    }

    /// Whether the family `name` is declared (it has a help text), even
    /// before any of its series has moved.
    pub fn has_family(&self, name: &str) -> bool {
        self.docs.contains_key(name)
    }
}
