//! WebDAV: a real client (Debian's rclone) copies many small files and one big file into the
//! server through its WebDAV port, beside the same files uploaded through the JSON API
//! (`POST /api/v1/recordings`) by the harness's own client, with as many connections, in the
//! same run. Without rclone the rows say so instead of failing.

use crate::client::{Account, PASSWORD};
use crate::report::Report;
use crate::stats::{count, mb_per_s, median, ms, rate, ratio, size};
use crate::upload::run_jobs;
use crate::{Bench, data, progress};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// rclone's parallel transfers (its default), and the API clients beside it.
const TRANSFERS: usize = 4;

pub fn run(bench: &Bench, report: &mut Report) {
    let plan = &bench.plan;
    let (n, each, big) = (plan.dav_small_count, plan.small_size, plan.dav_big_size);
    let small_label = format!("{} x {}", count(n), size(each as u64));
    let big_label = size(big as u64);
    let rows =
        [format!("{small_label} via rclone copy, {TRANSFERS} transfers"), format!("{big_label} via rclone copy")];
    let Some(dav) = bench.setup.dav_base() else {
        for what in rows {
            report.row("webdav", what, "skipped: the server runs without WebDAV", "");
        }
        return;
    };
    let Some(rclone) = find_rclone() else {
        progress("webdav: rclone not found, skipping (install it with `apt-get install rclone`)");
        for what in rows {
            report.row("webdav", what, "skipped: rclone not found", "apt-get install rclone");
        }
        report.metric("webdav.rclone", "not found");
        return;
    };
    wait_until_served(&dav);

    let dir = bench.work.join("webdav");
    let (small_dir, big_dir) = (dir.join("small"), dir.join("big"));
    progress(&format!("webdav: writing {small_label} and one {big_label} WAV file to copy"));
    fs::create_dir_all(&small_dir).expect("creating the small files' dir");
    fs::create_dir_all(&big_dir).expect("creating the big file's dir");
    let small_files: Vec<PathBuf> = (0..n)
        .map(|i| {
            let path = small_dir.join(format!("small-{i:04}.wav"));
            fs::write(&path, data::wav(each, 0xDA7 + i as u64)).expect("writing a small file");
            path
        })
        .collect();
    let big_file = big_dir.join("big.wav");
    fs::write(&big_file, data::wav(big, 0xB16_DA7)).expect("writing the big file");

    let over_dav = bench.signup("bench-webdav");
    let over_api = bench.signup("bench-webdav-api");
    let token = app_token(&bench.server.base, &over_dav);
    let remote = Remote::new(rclone, &dir.join("rclone"), &dav, &over_dav.username, &token);
    let floor = median(&(0..3).map(|_| remote.time(&["version"])).collect::<Vec<_>>());

    // Small files: rclone, then the same files through the API.
    progress(&format!("webdav: rclone copy of {small_label}"));
    let dav_small = remote.time(&remote.with_flags(&["copy", &small_dir.display().to_string(), ":webdav:"]));
    let stored = bench.client(&over_dav).me().0;
    assert_eq!(stored["recordings"].as_u64(), Some(n as u64), "recordings stored by rclone's copy: {stored}");
    assert_eq!(stored["bytes"].as_u64(), Some((n * each) as u64), "bytes stored by rclone's copy: {stored}");
    progress(&format!("webdav: the same {small_label} through the JSON API, {TRANSFERS} clients"));
    let (_, api_small) = run_jobs(
        TRANSFERS,
        n,
        || bench.client(&over_api),
        |client, i| {
            let started = Instant::now();
            let body = fs::read(&small_files[i]).expect("reading a small file");
            client.upload(&format!("small-{i:04}.wav"), &body);
            started.elapsed()
        },
    );

    // The big file.
    progress(&format!("webdav: rclone copy of {big_label}"));
    let dav_big = remote.time(&remote.with_flags(&["copy", &big_dir.display().to_string(), ":webdav:"]));
    let stored = bench.client(&over_dav).me().0;
    assert_eq!(stored["bytes"].as_u64(), Some((n * each + big) as u64), "bytes stored after the big copy: {stored}");
    progress(&format!("webdav: the same {big_label} through the JSON API"));
    let body = fs::read(&big_file).expect("reading the big file");
    let (recording, api_big) = bench.client(&over_api).upload("big.wav", &body);
    assert_eq!(recording["size"].as_u64(), Some(big as u64), "stored size of the big upload");
    drop(body);

    let (dav_files, api_files) = (n as f64 / dav_small.as_secs_f64(), n as f64 / api_small.as_secs_f64());
    let (dav_small_rate, api_small_rate) = (mb_per_s(n * each, dav_small), mb_per_s(n * each, api_small));
    report.row(
        "webdav",
        rows[0].clone(),
        format!("{dav_files:.0} files/s, {} ({})", rate(dav_small_rate), ms(dav_small)),
        format!("JSON API, {TRANSFERS} clients: {api_files:.0} files/s, {} ({})", rate(api_small_rate), ms(api_small)),
    );
    report.row("webdav", "rclone / JSON API, small files", ratio(dav_files / api_files), "files/s, same run");
    let (dav_big_rate, api_big_rate) = (mb_per_s(big, dav_big), mb_per_s(big, api_big));
    report.row(
        "webdav",
        rows[1].clone(),
        format!("{}, {}", ms(dav_big), rate(dav_big_rate)),
        format!("JSON API, one request: {}, {}", ms(api_big), rate(api_big_rate)),
    );
    report.row("webdav", "rclone / JSON API, big file", ratio(dav_big_rate / api_big_rate), "MB/s, same run");
    report.row("webdav", "exec of `rclone version` (median of 3)", ms(floor), "in each rclone time above");
    report.note(format!(
        "webdav: rclone ({}) copies with --transfers {TRANSFERS}, each file a PUT and a PROPFIND to check it; its \
         times run from exec to exit, the listing of the folder included; the API side reads the same files from \
         disk and uploads them over {TRANSFERS} keep-alive connections",
        remote.version
    ));
    report.metric("webdav.small.files", n);
    report.metric("webdav.small.bytes_each", each);
    report.metric("webdav.small.rclone_seconds", dav_small.as_secs_f64());
    report.metric("webdav.small.rclone_files_per_s", dav_files);
    report.metric("webdav.small.rclone_mb_per_s", dav_small_rate);
    report.metric("webdav.small.api_seconds", api_small.as_secs_f64());
    report.metric("webdav.small.api_files_per_s", api_files);
    report.metric("webdav.small.api_mb_per_s", api_small_rate);
    report.metric("webdav.big.bytes", big);
    report.metric("webdav.big.rclone_seconds", dav_big.as_secs_f64());
    report.metric("webdav.big.rclone_mb_per_s", dav_big_rate);
    report.metric("webdav.big.api_seconds", api_big.as_secs_f64());
    report.metric("webdav.big.api_mb_per_s", api_big_rate);
    report.metric("webdav.rclone_exec_seconds", floor.as_secs_f64());

    // Later phases see the server as before: both accounts and their files go.
    for account in [&over_dav, &over_api] {
        delete_account(&bench.server.base, account);
    }
    let _ = fs::remove_dir_all(&dir);
}

/// rclone on PATH.
fn find_rclone() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("rclone"))
        .find(|path| path.is_file())
}

/// Waits (bounded) until the WebDAV port answers.
fn wait_until_served(dav: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(ureq::request("OPTIONS", dav).call(), Err(ureq::Error::Transport(_))) {
        assert!(Instant::now() < deadline, "nothing answers on the WebDAV port at {dav}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A new app token of the account (`POST /api/v1/tokens`).
fn app_token(base: &str, account: &Account) -> String {
    let response = ureq::post(&format!("{base}/api/v1/tokens"))
        .set("Authorization", &format!("Bearer {}", account.token))
        .send_json(serde_json::json!({"name": "rclone"}))
        .unwrap_or_else(|e| panic!("creating an app token: {e}"));
    let created: serde_json::Value = response.into_json().expect("the token answer is JSON");
    created["token"].as_str().expect("the answer has the token").to_string()
}

/// `DELETE /api/v1/me`: the account and all its recordings.
fn delete_account(base: &str, account: &Account) {
    ureq::delete(&format!("{base}/api/v1/me"))
        .set("Authorization", &format!("Bearer {}", account.token))
        .send_json(serde_json::json!({"password": PASSWORD}))
        .unwrap_or_else(|e| panic!("deleting {}: {e}", account.username));
}

/// rclone with its own config file and home (nothing touches ~/.config), and the flags of an
/// on-the-fly `:webdav:` remote for one user.
struct Remote {
    bin: PathBuf,
    home: PathBuf,
    flags: Vec<String>,
    version: String,
}

impl Remote {
    fn new(bin: PathBuf, home: &Path, dav: &str, username: &str, token: &str) -> Remote {
        fs::create_dir_all(home).expect("creating rclone's home");
        fs::write(home.join("rclone.conf"), "").expect("writing rclone's empty config");
        let mut remote = Remote { bin, home: home.to_path_buf(), flags: Vec::new(), version: String::new() };
        let obscured = remote.output(&["obscure", token]);
        let transfers = TRANSFERS.to_string();
        let version = remote.output(&["version"]);
        remote.version = version.lines().next().unwrap_or("rclone").trim().to_string();
        remote.flags = [
            "--webdav-url",
            dav,
            "--webdav-vendor",
            "other",
            "--webdav-user",
            username,
            "--webdav-pass",
            obscured.trim(),
            "--transfers",
            transfers.as_str(),
            "--checkers",
            transfers.as_str(),
            "--retries",
            "1",
            "--low-level-retries",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        remote
    }

    fn command(&self, args: &[String]) -> Command {
        let config = self.home.join("rclone.conf");
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--config")
            .arg(&config)
            .env_clear()
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("RCLONE_CONFIG", &config)
            .stdin(Stdio::null());
        cmd
    }

    /// The arguments and the remote's flags.
    fn with_flags(&self, args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).chain(self.flags.iter().cloned()).collect()
    }

    fn output(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = self.command(&args).output().unwrap_or_else(|e| panic!("running rclone: {e}"));
        assert!(out.status.success(), "rclone {:?}: {}", args.first(), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs rclone to its end; the time from exec to exit. A failure stops the benchmark.
    fn time(&self, args: &[impl AsRef<str>]) -> Duration {
        let args: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
        let started = Instant::now();
        let out = self
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("running rclone: {e}"));
        let elapsed = started.elapsed();
        assert!(out.status.success(), "rclone {:?} failed: {}", args.first(), String::from_utf8_lossy(&out.stderr));
        elapsed
    }
}
