//! WebDAV on its own port, for the apps people already have: folder-sync and recorder apps with
//! a WebDAV target, rclone, desktop file managers.
//!
//! Rocket cannot route WebDAV's methods, so this is a second listener (hyper) in the same
//! process, sharing the server's state and stopping with it. The protocol (XML, PROPFIND, LOCK,
//! Range, conditional headers) is `dav-server`'s; what it sees is [`RecordingsFs`], a file system
//! of our own over one user's recordings:
//!
//! - `/` holds the live recordings, each a file named by its recording's name, and `/Trash/`.
//! - Names are shown as they are, but for a `/` (shown as U+2215) and for duplicates: the folder
//!   is listed in name order, the oldest of several recordings with one name has it plain, each
//!   other is `stem [xxxxxxxx].ext` with the last 8 hex digits of its id. A recording named
//!   `Trash` always has the suffix (the folder has the plain name).
//! - `PUT` is a new recording through [`ingest::record`], as every upload; a taken name gets a
//!   ` (2)` suffix, the same bytes under the same name are the recording already there.
//! - `DELETE` moves to the trash (deletes for good inside `/Trash/`), `MOVE` renames, trashes
//!   (into `/Trash/`) or restores (out of it).
//!
//! Authentication is HTTP Basic with the username and an app token (never the password: a hash
//! per request would be too slow on small hardware), throttled as logins are.

mod caller;
mod files;
mod fs;
mod guard;
mod meta;
mod server;
mod xml;

pub use server::{Listener, start, stopped};
