//! The results: one plain-text table on stdout and the same data as JSON, with the machine
//! they were measured on.

use serde_json::{Map, Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether a row checks a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Info,
    Ok,
    Miss,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Info => "",
            Verdict::Ok => "ok",
            Verdict::Miss => "MISS",
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    section: &'static str,
    what: String,
    result: String,
    reference: String,
    verdict: Verdict,
}

/// The sections of the table, in the order they are printed (rows are added as they are
/// measured, which is not always this order).
const SECTIONS: &[&str] = &[
    "upload",
    "concurrency",
    "download",
    "webdav",
    "s3",
    "list",
    "login",
    "load",
    "analysis",
    "transcription",
    "memory",
    "startup",
];

/// The machine the numbers come from.
#[derive(Debug, Clone)]
pub struct Machine {
    cpu: String,
    cores: usize,
    sha_extensions: bool,
    memory: String,
    kernel: String,
    filesystem: String,
    load: String,
}

impl Machine {
    /// Reads `/proc` for the CPU, kernel, memory and load, and `/proc/mounts` for the file
    /// system holding `dir`.
    pub fn detect(dir: &Path) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown CPU")
            .to_string();
        let sha_extensions =
            cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "sha_ni"));
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or("unknown".to_string(), |kib| format!("{:.1} GiB", kib as f64 / (1u64 << 20) as f64));
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").map_or("unknown".into(), |k| k.trim().into());
        let load = fs::read_to_string("/proc/loadavg")
            .map_or("unknown".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sha_extensions,
            memory,
            kernel,
            filesystem: filesystem_of(dir),
            load,
        }
    }

    fn lines(&self) -> Vec<String> {
        let sha = if self.sha_extensions { "SHA extensions present" } else { "no SHA extensions" };
        vec![
            format!("cpu:         {}, {} cores ({sha}), {} RAM", self.cpu, self.cores, self.memory),
            format!("kernel:      Linux {}", self.kernel),
            format!("temp dir on: {}", self.filesystem),
            format!("load avg:    {} (at start)", self.load),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "cpu": self.cpu,
            "cores": self.cores,
            "sha_extensions": self.sha_extensions,
            "memory": self.memory,
            "kernel": self.kernel,
            "filesystem": self.filesystem,
            "load_average_at_start": self.load,
        })
    }
}

/// "ext4 on /dev/vda (mounted at /)": the longest mount point that holds `dir`.
fn filesystem_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [device, mount, fs_type, ..] if dir.starts_with(mount) => Some((mount.len(), device, mount, fs_type)),
                _ => None,
            }
        })
        .max_by_key(|(len, ..)| *len)
        .map_or("unknown file system".into(), |(_, device, mount, fs_type)| {
            format!("{fs_type} on {device} (mounted at {mount}), {}", dir.display())
        })
}

/// The rows, targets and raw numbers of one run.
pub struct Report {
    mode: &'static str,
    machine: Machine,
    rows: Vec<Row>,
    metrics: Map<String, Value>,
    notes: Vec<String>,
}

impl Report {
    pub fn new(mode: &'static str, machine: Machine) -> Report {
        Report { mode, machine, rows: Vec::new(), metrics: Map::new(), notes: Vec::new() }
    }

    /// A measurement with no target.
    pub fn row(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        result: impl Into<String>,
        reference: impl Into<String>,
    ) {
        self.push(section, what.into(), result.into(), reference.into(), Verdict::Info);
    }

    /// A measurement checked against a target.
    pub fn target(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        result: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) {
        let verdict = if met { Verdict::Ok } else { Verdict::Miss };
        self.push(section, what.into(), result.into(), target.into(), verdict);
    }

    fn push(&mut self, section: &'static str, what: String, result: String, reference: String, verdict: Verdict) {
        self.rows.push(Row { section, what, result, reference, verdict });
    }

    /// A raw number (or object) for the JSON, under a dotted key.
    pub fn metric(&mut self, key: &str, value: impl Into<Value>) {
        self.metrics.insert(key.to_string(), value.into());
    }

    /// A line printed under the table.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    fn ordered_rows(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| SECTIONS.iter().position(|s| *s == r.section).unwrap_or(SECTIONS.len()));
        rows
    }

    pub fn missed(&self) -> Vec<String> {
        self.ordered_rows()
            .into_iter()
            .filter(|r| r.verdict == Verdict::Miss)
            .map(|r| format!("{}: {}", r.section, r.what))
            .collect()
    }

    /// The table, as printed.
    pub fn table(&self, total: Duration) -> String {
        let header = Row {
            section: "section",
            what: "what".into(),
            result: "result".into(),
            reference: "reference / target".into(),
            verdict: Verdict::Info,
        };
        let width = |f: fn(&Row) -> usize| self.rows.iter().chain([&header]).map(f).max().unwrap_or(0);
        let w_section = width(|r| r.section.chars().count());
        let w_what = width(|r| r.what.chars().count());
        let w_result = width(|r| r.result.chars().count());
        let w_reference = width(|r| r.reference.chars().count());
        let line = |section: &str, r: &Row, verdict: &str| {
            let text = format!(
                "{section:<w_section$}  {:<w_what$}  {:<w_result$}  {:<w_reference$}  {verdict}",
                r.what, r.result, r.reference
            );
            text.trim_end().to_string()
        };

        let mut out =
            vec![format!("recorder benchmark ({} mode), total run time {:.0} s", self.mode, total.as_secs_f64())];
        out.extend(self.machine.lines());
        out.push(String::new());
        out.push(line(header.section, &header, "verdict"));
        out.push("-".repeat(w_section + w_what + w_result + w_reference + 16));
        let mut previous = "";
        for row in self.ordered_rows() {
            if !previous.is_empty() && row.section != previous {
                out.push(String::new());
            }
            let section = if row.section == previous { "" } else { row.section };
            out.push(line(section, row, row.verdict.label()));
            previous = row.section;
        }
        if !self.notes.is_empty() {
            out.push(String::new());
            out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        }
        out.join("\n")
    }

    /// Writes the JSON next to the table's other outputs; returns its path.
    pub fn write_json(&self, dir: &Path, total: Duration) -> PathBuf {
        let file = if self.mode == "quick" { "results-quick.json" } else { "results.json" };
        let path = dir.join(file);
        let rows: Vec<Value> = self
            .ordered_rows()
            .into_iter()
            .map(|r| {
                json!({
                    "section": r.section,
                    "what": r.what,
                    "result": r.result,
                    "reference": r.reference,
                    "verdict": r.verdict.label(),
                })
            })
            .collect();
        let date =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let document = json!({
            "mode": self.mode,
            "finished_at": date,
            "total_seconds": total.as_secs_f64(),
            "machine": self.machine.to_json(),
            "rows": rows,
            "missed": self.missed(),
            "notes": self.notes,
            "metrics": self.metrics,
        });
        let text = serde_json::to_string_pretty(&document).expect("the results serialize");
        fs::write(&path, text + "\n").unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}
