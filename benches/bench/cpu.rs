//! CPU time from `/proc`, without `unsafe`: the calling thread's own, a thread of another process,
//! and that of this process's waited-for children (what `getrusage(RUSAGE_CHILDREN)` reports).
//! `stat` counts in clock ticks (`getconf CLK_TCK`, 100 a second on Linux), good to about 10 ms:
//! measure seconds of work, not milliseconds. `schedstat` (another process's thread) counts in
//! nanoseconds.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Whose time a `stat` file's fields are read for.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    /// `utime` + `stime` (fields 14 and 15).
    Itself,
    /// `cutime` + `cstime` (fields 16 and 17): children that have exited and been waited for.
    WaitedChildren,
}

/// User + system time from a `/proc/.../stat` file; `None` when it cannot be read.
pub fn stat_cpu(path: &Path, who: Who) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3.
    let (user, system) = match who {
        Who::Itself => (14, 15),
        Who::WaitedChildren => (16, 17),
    };
    let ticks: u64 = fields.get(user - 3)?.parse::<u64>().ok()? + fields.get(system - 3)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second() as f64))
}

/// CPU time of one task (`/proc/<pid>/task/<tid>`): from `schedstat` in nanoseconds when the
/// kernel keeps it, else from `stat` in clock ticks.
pub fn task_cpu(task: &Path) -> Option<Duration> {
    let nanos = std::fs::read_to_string(task.join("schedstat"))
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()));
    match nanos {
        Some(nanos) => Some(Duration::from_nanos(nanos)),
        None => stat_cpu(&task.join("stat"), Who::Itself),
    }
}

/// CPU time of the calling thread, in clock ticks (as ffmpeg's is counted, for comparison).
pub fn this_thread() -> Duration {
    stat_cpu(Path::new("/proc/thread-self/stat"), Who::Itself).expect("reading /proc/thread-self/stat")
}

/// CPU time of this process's children that have exited and been waited for.
pub fn waited_children() -> Duration {
    stat_cpu(Path::new("/proc/self/stat"), Who::WaitedChildren).expect("reading /proc/self/stat")
}

/// `getconf CLK_TCK`, or Linux's 100 when it cannot be asked. Asked once (the first call runs a
/// child process: make it before measuring children).
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}
