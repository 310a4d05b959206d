//! The server as a process: the built binary run with a clean environment, its commands, and
//! the server it starts (`Running`), read from its log; and other programs run with a time limit.

use super::http::{bearer, send_json};
use super::server::Server;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_recorder");

/// The binary with a clean environment (no RECORDER_* from outside, HOME in the temp dir).
pub fn recorder(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    // HTTPS is on by default: its ports are ephemeral here, as the plain one is.
    cmd.env_clear()
        .env("HOME", home)
        .current_dir(home)
        .env("RECORDER_TLS_PORT", "0")
        .env("RECORDER_WEBDAV_TLS_PORT", "0");
    cmd
}

/// A server the binary started, on the loopback address it announced.
pub struct Running {
    pub child: Child,
    pub base: String,
    /// Every line of its stderr so far (see `log`).
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Runs the command on loopback and waits for the address it announces first.
    pub fn start(cmd: Command) -> Running {
        Running::start_announcing(cmd, |_| true)
    }

    /// Runs the command on loopback and waits for the first address it announces that `api`
    /// accepts (a server with more than one listener announces each).
    pub fn start_announcing(mut cmd: Command, api: impl Fn(&str) -> bool + Send + 'static) -> Running {
        let mut child = cmd.arg("--address").arg("127.0.0.1").stderr(Stdio::piped()).spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1).map(str::trim).filter(|a| api(a)) {
                    let _ = tx.send(addr.to_string());
                }
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("server announced its address");
        Running { child, base: format!("http://{addr}"), log }
    }

    /// `host:port` of the server.
    pub fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// A raw connection to the server.
    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(self.host()).expect("connect")
    }

    pub fn req(&self, method: &str, path: &str) -> ureq::Request {
        ureq::request(method, &format!("{}{path}", self.base))
    }

    /// A request with a Bearer token.
    pub fn auth(&self, method: &str, path: &str, token: &str) -> ureq::Request {
        self.req(method, path).set("Authorization", &bearer(token))
    }

    /// The lines of its log so far.
    pub fn log(&self) -> MutexGuard<'_, Vec<String>> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to its end with `stdin` as its input: (exit code, stdout, stderr).
pub fn run(mut cmd: Command, stdin: &str) -> (i32, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    // A command may exit before reading its input (a refused `user add`): that is not an error here.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The binary serving `data` on an ephemeral port.
pub fn serve(home: &Path, data: &Path) -> Running {
    let mut cmd = recorder(home);
    cmd.arg("--data-dir").arg(data).arg("--port").arg("0");
    Running::start(cmd)
}

/// Signs up on a running binary and returns the token.
pub fn signup(server: &Running, username: &str) -> String {
    let body = json!({"username": username, "password": "password123"});
    let r = send_json(server.req("POST", "/api/v1/auth/signup"), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_string()
}

/// Runs a command of the binary on a data directory with these environment variables:
/// (exit code, stdout, stderr).
pub fn command_with(data: &Path, env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = recorder(home.path());
    cmd.envs(env.iter().cloned()).args(args).arg("--data-dir").arg(data);
    run(cmd, "")
}

/// Runs a command of the binary on a server's data directory, with its object store settings.
pub fn command_on(server: &Server, args: &[&str]) -> (i32, String, String) {
    command_with(&server.data(), &server.store_env(), args)
}

/// What a program run by `run_for` printed, and how it ended.
pub struct Ran {
    /// `None`: it ran over its time and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Runs a program (its stdin empty) until it exits, or kills it once it has run for `limit`.
pub fn run_for(cmd: &mut Command, limit: Duration) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", cmd.get_program().to_string_lossy()));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.read_to_string(&mut out);
            out
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for the program") {
            Some(status) => break Some(status),
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Ran {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        took: started.elapsed(),
    }
}
