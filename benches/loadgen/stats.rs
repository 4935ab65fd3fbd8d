//! Percentiles and the printed report.

use std::collections::BTreeMap;
use std::time::Duration;

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `p50=… p90=… p99=… max=…` in milliseconds.
pub fn latency_line(mut values: Vec<Duration>) -> String {
    values.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50={:.1}ms p90={:.1}ms p99={:.1}ms max={:.1}ms",
        ms(percentile(&values, 50.0)),
        ms(percentile(&values, 90.0)),
        ms(percentile(&values, 99.0)),
        ms(values.last().copied().unwrap_or_default())
    )
}

/// `250=1990 421@greeting=10`.
pub fn codes_line(codes: &BTreeMap<String, u64>) -> String {
    codes
        .iter()
        .map(|(code, count)| format!("{code}={count}"))
        .collect::<Vec<_>>()
        .join(" ")
}
