//! Latency samples, percentiles and the number formats the table uses.

use serde_json::{Value, json};
use std::time::Duration;

/// Latencies of one kind of request.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    pub fn new(mut durations: Vec<Duration>) -> Samples {
        durations.sort_unstable();
        Samples { sorted: durations }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100); zero when there are no samples.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }

    /// "p50 1.23 ms, p99 4.56 ms".
    pub fn summary(&self) -> String {
        format!("p50 {}, p99 {}", ms(self.p50()), ms(self.p99()))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "n": self.len(),
            "p50_ms": rounded_millis(self.p50()),
            "p99_ms": rounded_millis(self.p99()),
            "max_ms": rounded_millis(self.max()),
        })
    }
}

/// The middle value (the upper one of an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds to the microsecond, for the JSON.
fn rounded_millis(d: Duration) -> f64 {
    (millis(d) * 1000.0).round() / 1000.0
}

/// A duration with a unit that suits it: "8 µs", "0.84 ms", "12.3 ms", "2.01 s".
pub fn ms(d: Duration) -> String {
    let m = millis(d);
    if m < 0.1 {
        format!("{:.0} µs", m * 1000.0)
    } else if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 1000.0 {
        format!("{m:.1} ms")
    } else {
        format!("{:.2} s", m / 1000.0)
    }
}

/// Decimal megabytes per second.
pub fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// "273 MB/s" or "2.36 GB/s".
pub fn rate(mb_s: f64) -> String {
    if mb_s >= 1000.0 { format!("{:.2} GB/s", mb_s / 1000.0) } else { format!("{mb_s:.0} MB/s") }
}

/// Binary size of a byte count: "512 MiB", "64 KiB", "9.8 MiB".
pub fn size(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.0} KiB", bytes as f64 / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

/// A count with thousands separators: "1,000,000".
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio, "0.58".
pub fn ratio(value: f64) -> String {
    format!("{value:.2}")
}
