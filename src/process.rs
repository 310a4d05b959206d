//! Other processes of this installation (a migration, a recovery, a killed server): whether one
//! that left a note is still running, so that its notes are left to it.

use std::path::Path;

/// Whether a process is running (a zombie is not).
pub fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself hold spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}
