//! Real clients of the server, run as programs: rclone over WebDAV, and tus-js-client (its Node
//! build) over tus. Without one, a test that needs it says loudly that it skipped, and fails
//! instead when its `RECORDER_REQUIRE_*` flag is set (as in CI).

use super::dav::DavUser;
use super::process::run_for;
use super::server::Server;
use super::{find_program, skip};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// rclone.

/// How long one rclone command may run before it is killed and the test fails.
const RCLONE_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Rclone {
    bin: PathBuf,
    /// Its config file and home: nothing touches ~/.config.
    dir: tempfile::TempDir,
    url: String,
    user: String,
    obscured: String,
}

/// What one rclone command did.
pub struct RcloneRan {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Rclone {
    /// rclone on PATH (or RECORDER_RCLONE); `None` after saying why (panics instead when
    /// RECORDER_REQUIRE_RCLONE=1).
    pub fn find(test: &str) -> Option<PathBuf> {
        let found = find_program("RECORDER_RCLONE", &["rclone"]);
        if found.is_none() {
            let why = "rclone was not found: install it with `apt-get install rclone` (Debian/Ubuntu), \
                       or point RECORDER_RCLONE at it";
            skip("RECORDER_REQUIRE_RCLONE", "rclone", test, why);
        }
        found
    }

    pub fn new(bin: PathBuf, s: &Server, user: &DavUser) -> Rclone {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rclone.conf"), "").expect("an empty rclone config");
        let mut rclone = Rclone { bin, dir, url: s.dav_url("/"), user: user.name.clone(), obscured: String::new() };
        // `--`: a token may start with `-`, which rclone would take for a flag.
        let obscured = rclone.command(&["obscure", "--", &user.app]);
        assert!(obscured.ok, "rclone obscure: {}", obscured.stderr);
        rclone.obscured = obscured.stdout.trim().to_string();
        rclone
    }

    /// Runs rclone with its own config and home, killed after `RCLONE_TIMEOUT`.
    pub fn command(&self, args: &[&str]) -> RcloneRan {
        let home = self.dir.path();
        let config = home.join("rclone.conf");
        // The config first: after `--` (see `new`) it would be taken for an argument.
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("RCLONE_CONFIG", &config);
        let ran = run_for(&mut cmd, RCLONE_TIMEOUT);
        let Some(status) = ran.status else {
            panic!("rclone {args:?} ran over {RCLONE_TIMEOUT:?}: {}", ran.stderr);
        };
        RcloneRan { ok: status.success(), stdout: ran.stdout, stderr: ran.stderr }
    }

    /// An rclone command on the on-the-fly `:webdav:` remote of this server and user. Retries
    /// are off, so every refusal shows.
    pub fn remote(&self, args: &[&str]) -> RcloneRan {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--webdav-url",
            self.url.as_str(),
            "--webdav-vendor",
            "other",
            "--webdav-user",
            self.user.as_str(),
            "--webdav-pass",
            self.obscured.as_str(),
            "--retries",
            "1",
            "--low-level-retries",
            "1",
            "--contimeout",
            "10s",
            "--timeout",
            "60s",
        ]);
        self.command(&all)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let ran = self.remote(args);
        assert!(ran.ok, "rclone {args:?} failed:\n{}\n{}", ran.stdout, ran.stderr);
        ran.stdout
    }
}

// ---------------------------------------------------------------------------------------------
// tus-js-client.

/// How long one run of the tus client may take before it is killed and the test fails.
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

/// Node and the installed tus-js-client (`tests/tus/upload.mjs` runs it).
pub struct TusClient {
    node: PathBuf,
    script: PathBuf,
}

impl TusClient {
    /// Finds them, or returns `None` after saying loudly why (panics instead when required).
    pub fn find(test: &str) -> Option<TusClient> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus");
        let node = find_program("RECORDER_NODE", &["node", "nodejs"]);
        let installed = dir.join("node_modules/tus-js-client/package.json").is_file();
        let why = match (&node, installed) {
            (Some(node), true) => return Some(TusClient { node: node.clone(), script: dir.join("upload.mjs") }),
            (None, _) => {
                "Node.js was not found (install Node.js 18 or later, e.g. `apt-get install nodejs npm`, \
                          or point RECORDER_NODE at it), and then run `npm ci --prefix tests/tus`"
            }
            (Some(_), false) => {
                "tus-js-client is not installed in tests/tus/node_modules: run `npm ci --prefix tests/tus`"
            }
        };
        skip("RECORDER_REQUIRE_TUS_CLIENT", "tus client", test, why);
        None
    }

    /// Runs `upload.mjs` with these arguments and the token, killed after `NODE_TIMEOUT`.
    pub fn run(&self, args: &[String], token: &str) -> TusRun {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.script).args(args).env("TUS_TOKEN", token);
        let ran = run_for(&mut cmd, NODE_TIMEOUT);
        let Some(status) = ran.status else {
            let (out, err) = (ran.stdout, ran.stderr);
            panic!("the tus client ran over {NODE_TIMEOUT:?} and was killed\nstdout:\n{out}\nstderr:\n{err}");
        };
        TusRun { status, stdout: ran.stdout, stderr: ran.stderr, took: ran.took }
    }
}

/// What one run of the client did.
pub struct TusRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl TusRun {
    /// The client's last JSON line.
    pub fn report(&self) -> Value {
        let line = self.stdout.lines().rev().find(|l| l.starts_with('{'));
        line.and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON report from the client\n{self}"))
    }
}

impl std::fmt::Display for TusRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node: {} after {:?}\nstdout:\n{}\nstderr:\n{}", self.status, self.took, self.stdout, self.stderr)
    }
}
