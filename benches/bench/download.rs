//! Downloads: the big file in one request beside reading the stored file from disk, and random
//! `Range` requests beside `pread` of the same ranges. Both sides read from the page cache.

use crate::client::Account;
use crate::report::Report;
use crate::stats::{Samples, count, mb_per_s, median, ms, rate, ratio, size};
use crate::upload::BigFile;
use crate::{Bench, progress};
use rand::{Rng, SeedableRng};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Download target: at least this fraction of the rate of reading the stored file.
const DOWNLOAD_VS_READ: f64 = 0.8;

pub fn run(bench: &Bench, account: &Account, big: &BigFile, report: &mut Report) {
    let plan = &bench.plan;
    let path = bench.setup.recording_path(&big.id);
    let client = bench.client(account);
    let mut buf = vec![0u8; 256 << 10];
    let label = size(big.size as u64);

    progress(&format!("download: warming the page cache with {label}"));
    read_file(&path, &mut buf);
    let (mut reads, mut downloads, mut sockets) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..=plan.big_runs {
        progress(&format!("download: file read, download, loopback TCP ({run}/{})", plan.big_runs));
        let read = read_file(&path, &mut buf);
        let (len, etag, elapsed) = client.download(&big.id, &mut buf);
        assert_eq!(len, big.size, "downloaded length");
        assert_eq!(etag, big.sha256, "downloaded ETag");
        let socket = loopback_tcp(big.size, &mut buf);
        // Run 0 only warms up the connection and the server's path.
        if run > 0 {
            reads.push(read);
            downloads.push(elapsed);
            sockets.push(socket);
        }
    }
    let (download, read, socket) = (median(&downloads), median(&reads), median(&sockets));
    let download_rate = mb_per_s(big.size, download);
    let (read_rate, socket_rate) = (mb_per_s(big.size, read), mb_per_s(big.size, socket));
    let runs = if plan.big_runs > 1 { format!(", median of {}", plan.big_runs) } else { String::new() };
    report.row(
        "download",
        format!("{label} in one request{runs}"),
        format!("{}, {}", ms(download), rate(download_rate)),
        format!("read of the stored file: {}, {} (both page cache)", ms(read), rate(read_rate)),
    );
    report.target(
        "download",
        "download rate / file read rate",
        ratio(download_rate / read_rate),
        format!("target >= {DOWNLOAD_VS_READ}"),
        download_rate >= DOWNLOAD_VS_READ * read_rate,
    );
    report.row(
        "download",
        "download rate / loopback TCP rate",
        ratio(download_rate / socket_rate),
        format!("same bytes over loopback TCP, no HTTP: {}, {}", ms(socket), rate(socket_rate)),
    );
    report.note("the download and the file read both come from the page cache (the file was just written and read)");
    report.metric("download.big.seconds", downloads.iter().map(Duration::as_secs_f64).collect::<Vec<_>>());
    report.metric("download.big.mb_per_s", download_rate);
    report.metric("download.file_read.mb_per_s", read_rate);
    report.metric("download.loopback_tcp.mb_per_s", socket_rate);

    let len = plan.range_size as u64;
    let label = format!("{} random {} Range requests", count(plan.ranges), size(len));
    progress(&format!("download: {label}"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let offsets: Vec<u64> = (0..plan.ranges).map(|_| rng.gen_range(0..=big.size as u64 - len)).collect();
    let mut requests = Vec::with_capacity(offsets.len());
    for &offset in &offsets {
        let (got, elapsed) = client.range(&big.id, offset, len, &mut buf);
        assert_eq!(got as u64, len, "length of a range answer");
        requests.push(elapsed);
    }
    let file = File::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let preads: Vec<Duration> = offsets
        .iter()
        .map(|&offset| {
            let started = Instant::now();
            file.read_exact_at(&mut buf[..len as usize], offset).expect("pread of the stored file");
            started.elapsed()
        })
        .collect();
    let (requests, preads) = (Samples::new(requests), Samples::new(preads));
    report.row("download", label, requests.summary(), format!("pread of the same ranges: {}", preads.summary()));
    report.metric("download.ranges", requests.to_json());
    report.metric("download.ranges_pread", preads.to_json());
}

/// Sends `total` bytes from memory through one loopback TCP connection in 256 KiB writes and
/// reads them in 256 KiB reads, without HTTP: the ceiling of any download on this machine.
fn loopback_tcp(total: usize, buf: &mut [u8]) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback socket");
    let address = listener.local_addr().expect("the loopback socket's address");
    thread::scope(|scope| {
        scope.spawn(|| {
            let (mut socket, _) = listener.accept().expect("accepting the loopback connection");
            let chunk = vec![0x5Au8; 256 << 10];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len());
                socket.write_all(&chunk[..n]).expect("writing to the loopback connection");
                left -= n;
            }
        });
        let started = Instant::now();
        let mut socket = TcpStream::connect(address).expect("connecting over loopback");
        let mut received = 0;
        while received < total {
            match socket.read(buf) {
                Ok(0) => panic!("the loopback connection closed after {received} bytes"),
                Ok(n) => received += n,
                Err(e) => panic!("reading from the loopback connection: {e}"),
            }
        }
        started.elapsed()
    })
}

/// Reads a whole file through a 256 KiB buffer; returns the time taken.
fn read_file(path: &Path, buf: &mut [u8]) -> Duration {
    let started = Instant::now();
    let mut file = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    loop {
        match file.read(buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
    }
}
