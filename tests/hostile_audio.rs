//! Hostile audio: every fixture, mutated thousands of ways (truncated, bit-flipped, with length
//! fields inflated, spliced with another), goes through what an upload goes through (`audio::sniff`
//! and `audio::detect`) and through the analysis decoder. No panic may escape, no input may take
//! longer than `TIME_CAP`, and the whole process must stay under `RSS_CAP`.
//!
//! Its own test binary, so the peak RSS it reads is its own. Deterministic: the mutations come
//! from a fixed seed. An input that fails is written to `tests/fixtures/hostile/`, named after
//! how it was made, and every file there runs first on every later run.
//!
//! `HOSTILE_VERBOSE=1` prints each input's name before it runs, to find one that kills the
//! process outright (an abort cannot be caught).

use recorder::{analysis, audio};
use std::cell::Cell;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The slowest single input (detect and decode together), in a debug build. The slowest took
/// about 0.3 s when measured; a hang or a quadratic blow-up shows far above.
const TIME_CAP: Duration = Duration::from_secs(5);
/// The process's peak resident memory after any one input. Measured at about 46 MiB (the test
/// binary itself included), no input adding 2 MiB; a decoder that sized a buffer from a lying
/// header would pass this by far.
const RSS_CAP_KIB: u64 = 128 * 1024;
const SEED: u64 = 0x5EED_A0D1_0BAD_F00D;

/// A small, fixed PRNG (SplitMix64): the same inputs on every run and every `rand` version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

struct Fixture {
    name: String,
    ext: String,
    bytes: Vec<u8>,
}

struct Input {
    /// How it was made: fixture, mutation and its parameters. Also its file name if it fails.
    label: String,
    ext: String,
    bytes: Vec<u8>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load_fixtures() -> Vec<Fixture> {
    let mut paths = Vec::new();
    for dir in [fixtures_dir(), fixtures_dir().join("not-audio")] {
        for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
            let path = entry.expect("dir entry").path();
            if path.is_file() && path.extension().is_some_and(|e| e != "md") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| Fixture {
            name: path.file_stem().and_then(|s| s.to_str()).unwrap_or("fixture").to_string(),
            ext: path.extension().and_then(|s| s.to_str()).unwrap_or("bin").to_string(),
            bytes: std::fs::read(&path).expect("read fixture"),
        })
        .collect()
}

// ---- Length fields, by container ----

/// An integer field in a file: where, how wide, and its byte order.
#[derive(Clone, Copy)]
struct Field {
    at: usize,
    width: usize,
    big_endian: bool,
    what: &'static str,
}

fn be(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let b = bytes.get(at..at + width)?;
    Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn le(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let b = bytes.get(at..at + width)?;
    Some(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn put(bytes: &mut [u8], field: Field, value: u64) {
    for i in 0..field.width {
        let shift = 8 * if field.big_endian { field.width - 1 - i } else { i };
        if let Some(b) = bytes.get_mut(field.at + i) {
            *b = (value >> shift) as u8;
        }
    }
}

fn riff_fields(b: &[u8]) -> Vec<Field> {
    let f = |at, width, what| Field { at, width, big_endian: false, what };
    let mut out = vec![f(4, 4, "riff-size")];
    let mut p = 12;
    while let Some(size) = le(b, p + 4, 4) {
        out.push(f(p + 4, 4, "chunk-size"));
        if b.get(p..p + 4) == Some(b"fmt ") {
            out.extend([
                f(p + 10, 2, "fmt-channels"),
                f(p + 12, 4, "fmt-rate"),
                f(p + 16, 4, "fmt-byte-rate"),
                f(p + 20, 2, "fmt-block-align"),
                f(p + 22, 2, "fmt-bits"),
            ]);
        }
        p += 8 + size as usize + (size as usize & 1);
    }
    out
}

fn mp4_fields(b: &[u8], start: usize, end: usize, out: &mut Vec<Field>) {
    let f = |at, width, what| Field { at, width, big_endian: true, what };
    let mut p = start;
    while p + 8 <= end {
        let Some(size) = be(b, p, 4) else { break };
        let kind = &b[p + 4..p + 8];
        out.push(f(p, 4, "box-size"));
        let size = size as usize;
        if size < 8 || p + size > end {
            break;
        }
        match kind {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"udta" | b"mvex" => {
                mp4_fields(b, p + 8, p + size, out)
            }
            b"meta" => mp4_fields(b, p + 12, p + size, out),
            // A sample description: entries after its count; an audio entry's children (esds)
            // after its 28 bytes of fields.
            b"stsd" => {
                out.push(f(p + 12, 4, "stsd-count"));
                if let Some(entry) = be(b, p + 16, 4) {
                    out.push(f(p + 16, 4, "sample-entry-size"));
                    out.extend([f(p + 16 + 24, 2, "entry-channels"), f(p + 16 + 32, 4, "entry-rate")]);
                    mp4_fields(b, p + 16 + 36, (p + 16 + entry as usize).min(p + size), out);
                }
            }
            b"stts" | b"stsc" | b"stco" | b"co64" | b"ctts" | b"stss" | b"elst" => {
                out.push(f(p + 12, 4, "table-count"));
                out.push(f(p + 16, 4, "first-entry"));
            }
            b"stsz" => {
                out.extend([f(p + 12, 4, "stsz-sample-size"), f(p + 16, 4, "stsz-count"), f(p + 20, 4, "stsz-first")])
            }
            b"mdhd" | b"mvhd" => out.extend([f(p + 20, 4, "timescale"), f(p + 24, 4, "duration")]),
            b"esds" => out.push(f(p + 13, 1, "esds-descriptor-len")),
            _ => {}
        }
        p += size;
    }
}

fn ogg_pages(b: &[u8]) -> Vec<usize> {
    let mut pages = Vec::new();
    let mut p = 0;
    while let Some(found) = b.get(p..).and_then(|rest| rest.windows(4).position(|w| w == b"OggS")) {
        pages.push(p + found);
        p += found + 4;
    }
    pages
}

fn ogg_fields(b: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    for page in ogg_pages(b) {
        out.push(Field { at: page + 6, width: 8, big_endian: false, what: "ogg-granule" });
        out.push(Field { at: page + 26, width: 1, big_endian: false, what: "ogg-segments" });
        let segments = b.get(page + 26).copied().unwrap_or(0) as usize;
        for i in [0, 1, segments / 2, segments.saturating_sub(1)] {
            if i < segments {
                out.push(Field { at: page + 27 + i, width: 1, big_endian: false, what: "ogg-lacing" });
            }
        }
    }
    out
}

/// Ogg pages carry a CRC; a mutation that leaves it wrong is refused at the page and never
/// reaches the codec, so the CRC-fixed variants are the ones that test the parsers behind it.
fn ogg_fix_crcs(b: &mut [u8]) {
    for page in ogg_pages(b) {
        let Some(&segments) = b.get(page + 26) else { continue };
        let table = page + 27;
        let body: usize = b.get(table..table + segments as usize).map_or(0, |t| t.iter().map(|&x| x as usize).sum());
        let end = (table + segments as usize + body).min(b.len());
        if page + 26 >= end {
            continue;
        }
        b[page + 22..page + 26].fill(0);
        let mut crc = 0u32;
        for &byte in &b[page..end] {
            crc ^= u32::from(byte) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
            }
        }
        b[page + 22..page + 26].copy_from_slice(&crc.to_le_bytes());
    }
}

fn flac_fields(b: &[u8]) -> Vec<Field> {
    let f = |at, width, what| Field { at, width, big_endian: true, what };
    let mut out = vec![
        f(8, 2, "streaminfo-min-block"),
        f(10, 2, "streaminfo-max-block"),
        f(12, 3, "streaminfo-min-frame"),
        f(15, 3, "streaminfo-max-frame"),
        // Rate (20 bits), channels (3), bits (5), total samples (36), as whole bytes.
        f(18, 3, "streaminfo-rate"),
        f(21, 5, "streaminfo-total-samples"),
    ];
    let mut p = 4;
    while let Some(&header) = b.get(p) {
        out.push(f(p + 1, 3, "metadata-block-len"));
        let Some(len) = be(b, p + 1, 3) else { break };
        p += 4 + len as usize;
        if header & 0x80 != 0 {
            break;
        }
    }
    out
}

fn mp3_fields(b: &[u8]) -> Vec<Field> {
    let f = |at, width, what| Field { at, width, big_endian: true, what };
    let mut out = Vec::new();
    if b.starts_with(b"ID3") {
        out.push(f(6, 4, "id3-size"));
        // The first frame inside the tag.
        out.push(f(14, 4, "id3-frame-size"));
    }
    for tag in [&b"Xing"[..], b"Info"] {
        if let Some(at) = b.windows(4).position(|w| w == tag) {
            out.extend([f(at + 8, 4, "xing-frames"), f(at + 12, 4, "xing-bytes")]);
        }
    }
    if let Some(at) = b.windows(4).position(|w| w == b"LAME") {
        out.push(f(at + 21, 3, "lame-delay-padding"));
    }
    out
}

fn adts_fields(b: &[u8]) -> Vec<Field> {
    // The 13-bit frame length spans bytes 3 to 5; writing all three bytes also moves the bits
    // around it, which is hostile too.
    let mut out = Vec::new();
    let mut p = 0;
    let mut frame = 0;
    while p + 7 <= b.len() && b[p] == 0xFF && b[p + 1] & 0xF6 == 0xF0 {
        if frame < 4 || frame % 40 == 0 {
            out.push(Field { at: p + 3, width: 3, big_endian: true, what: "adts-frame-len" });
            out.push(Field { at: p + 6, width: 1, big_endian: true, what: "adts-fullness-blocks" });
        }
        let len = ((usize::from(b[p + 3]) & 3) << 11) | (usize::from(b[p + 4]) << 3) | (usize::from(b[p + 5]) >> 5);
        if len < 7 {
            break;
        }
        p += len;
        frame += 1;
    }
    out
}

/// EBML (Matroska/WebM): each element's size is a variable-length integer; the fields are those
/// sizes, in the master elements the reader walks through.
fn ebml_fields(b: &[u8], start: usize, end: usize, depth: usize, out: &mut Vec<Field>) {
    const MASTERS: &[u64] = &[
        0x1A45_DFA3,
        0x1853_8067,
        0x114D_9B74,
        0x1549_A966,
        0x1654_AE6B,
        0xAE,
        0xE1,
        0x1F43_B675,
        0xA0,
        0x1C53_BB6B,
        0x1254_C367,
    ];
    let vint_len = |first: u8| first.leading_zeros() as usize + 1;
    let mut p = start;
    let mut blocks = 0;
    while p < end {
        let Some(&id0) = b.get(p) else { break };
        let id_len = vint_len(id0);
        if id_len > 4 {
            break;
        }
        let Some(id) = be(b, p, id_len) else { break };
        let Some(&s0) = b.get(p + id_len) else { break };
        let size_len = vint_len(s0);
        if size_len > 8 {
            break;
        }
        let Some(raw) = be(b, p + id_len, size_len) else { break };
        let size = raw & ((1u64 << (7 * size_len)) - 1);
        // SimpleBlocks are hundreds; the first few and every 50th are enough.
        let is_block = id == 0xA3;
        if !is_block || blocks < 4 || blocks % 50 == 0 {
            out.push(Field { at: p + id_len, width: size_len, big_endian: true, what: "ebml-size" });
        }
        blocks += usize::from(is_block);
        let body = p + id_len + size_len;
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        if MASTERS.contains(&id) && depth < 6 {
            let child_end = if unknown { end } else { (body + size as usize).min(end) };
            ebml_fields(b, body, child_end, depth + 1, out);
            if unknown {
                break;
            }
        }
        if unknown {
            break;
        }
        p = body + size as usize;
    }
}

fn length_fields(fixture: &Fixture) -> Vec<Field> {
    let b = &fixture.bytes;
    match fixture.ext.as_str() {
        "wav" => riff_fields(b),
        "m4a" | "3gp" | "mp4" => {
            let mut out = Vec::new();
            mp4_fields(b, 0, b.len(), &mut out);
            out
        }
        "ogg" | "opus" => ogg_fields(b),
        "flac" => flac_fields(b),
        "mp3" => mp3_fields(b),
        "aac" => adts_fields(b),
        "webm" => {
            let mut out = Vec::new();
            ebml_fields(b, 0, b.len(), 0, &mut out);
            out
        }
        _ => Vec::new(),
    }
}

/// Values a lying length field takes: huge, the sign bit, zero, one less and one more than the
/// truth, and the truth times a thousand.
fn hostile_values(field: Field, original: u64) -> Vec<(&'static str, u64)> {
    let max = if field.width >= 8 { u64::MAX } else { (1u64 << (8 * field.width)) - 1 };
    let mut values = vec![("max", max), ("half", max / 2 + 1), ("zero", 0), ("plus1", original.wrapping_add(1) & max)];
    if field.width >= 2 {
        values.push(("minus1", original.wrapping_sub(1) & max));
        values.push(("x1000", original.saturating_mul(1000) & max));
    }
    // An EBML size keeps its length marker, or it is no longer a size: all ones is "unknown",
    // the largest known size is all ones but the last bit.
    if field.what == "ebml-size" {
        let marker = 1u64 << (8 * field.width - field.width);
        let bits = marker - 1;
        values = vec![
            ("unknown", marker | bits),
            ("huge", marker | (bits - 1)),
            ("zero", marker),
            ("plus1", marker | ((original + 1) & bits)),
        ];
    }
    values
}

// ---- The inputs ----

fn truncations(fixture: &Fixture, rng: &mut Rng, out: &mut Vec<Input>) {
    let len = fixture.bytes.len();
    let mut cuts: Vec<usize> = (0..len.min(64)).collect();
    cuts.extend((1..48).map(|i| len * i / 48));
    cuts.extend((0..16).map(|_| rng.below(len)));
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts.into_iter().filter(|&c| c < len) {
        out.push(input(fixture, format!("truncated-at-{cut}"), fixture.bytes[..cut].to_vec()));
    }
}

fn bit_flips(fixture: &Fixture, rng: &mut Rng, count: usize, out: &mut Vec<Input>) {
    let len = fixture.bytes.len();
    if len == 0 {
        return;
    }
    let is_ogg = fixture.bytes.starts_with(b"OggS");
    for i in 0..count {
        let mut bytes = fixture.bytes.clone();
        let flips = 1 + rng.below(8);
        // Half the flips land in the first 2 KiB, where the headers the parsers trust are.
        let span = if i % 2 == 0 { len.min(2048) } else { len };
        let mut at = Vec::with_capacity(flips);
        for _ in 0..flips {
            let bit = rng.below(span * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            at.push(bit);
        }
        let mut label = format!("bitflip-{}", at.iter().map(|b| b.to_string()).collect::<Vec<_>>().join("_"));
        if is_ogg && i % 2 == 1 {
            ogg_fix_crcs(&mut bytes);
            label.push_str("-crc-fixed");
        }
        out.push(input(fixture, label, bytes));
    }
}

fn inflated_lengths(fixture: &Fixture, rng: &mut Rng, out: &mut Vec<Input>) {
    let is_ogg = fixture.bytes.starts_with(b"OggS");
    let mut fields = length_fields(fixture);
    // Whatever the container, any 32-bit word near the start may be a length: some at random,
    // in both byte orders.
    let head = fixture.bytes.len().min(4096).saturating_sub(4);
    for i in 0..16 {
        fields.push(Field { at: rng.below(head + 1), width: 4, big_endian: i % 2 == 0, what: "word" });
    }
    for field in fields {
        let read = if field.big_endian { be } else { le };
        let Some(original) = read(&fixture.bytes, field.at, field.width) else { continue };
        for (name, value) in hostile_values(field, original) {
            if value == original {
                continue;
            }
            let mut bytes = fixture.bytes.clone();
            put(&mut bytes, field, value);
            if is_ogg {
                ogg_fix_crcs(&mut bytes);
            }
            out.push(input(fixture, format!("{}-at-{}-{}", field.what, field.at, name), bytes));
        }
    }
}

fn splices(a: &Fixture, fixtures: &[Fixture], out: &mut Vec<Input>) {
    if a.bytes.len() > 1024 {
        for b in fixtures.iter().filter(|f| f.bytes.len() > 1024) {
            if std::ptr::eq(a, b) {
                continue;
            }
            let (la, lb) = (a.bytes.len(), b.bytes.len());
            let cuts = [(1024, 1024), (la / 2, lb / 2), (la / 3, 0)];
            for (ca, cb) in cuts {
                let mut bytes = a.bytes[..ca.min(la)].to_vec();
                bytes.extend_from_slice(&b.bytes[cb.min(lb)..]);
                let label = format!("spliced-{}-at-{}-with-{}-{}-from-{}", a.ext, ca, b.name, b.ext, cb);
                out.push(input(a, label, bytes));
            }
        }
    }
}

fn input(fixture: &Fixture, mutation: String, bytes: Vec<u8>) -> Input {
    Input { label: format!("{}-{}-{}", fixture.name, fixture.ext, mutation), ext: fixture.ext.clone(), bytes }
}

/// One fixture's inputs. Made a fixture at a time, so the test never holds more than one
/// fixture's worth and its own RSS stays small next to what it measures.
fn inputs_for(fixture: &Fixture, fixtures: &[Fixture], rng: &mut Rng) -> Vec<Input> {
    // The fixture itself is the baseline: it must pass too.
    let mut out = vec![input(fixture, "original".to_string(), fixture.bytes.clone())];
    truncations(fixture, rng, &mut out);
    bit_flips(fixture, rng, if fixture.bytes.len() > 1024 { 100 } else { 16 }, &mut out);
    inflated_lengths(fixture, rng, &mut out);
    splices(fixture, fixtures, &mut out);
    out
}

fn regression_inputs() -> Vec<Input> {
    let dir = fixtures_dir().join("hostile");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .map(|path| Input {
            label: format!("regression {}", path.display()),
            ext: path.extension().and_then(|s| s.to_str()).unwrap_or("bin").to_string(),
            bytes: std::fs::read(&path).expect("read regression fixture"),
        })
        .collect()
}

// ---- Running them ----

thread_local! {
    /// Set while an input runs: panics there are counted, not printed (thousands of them would
    /// bury the one line that matters). Panics anywhere else print as usual.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static CONTAINED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn install_panic_counter() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if QUIET.with(Cell::get) {
            let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            if let Ok(mut seen) = CONTAINED.lock() {
                seen.push(at);
            }
        } else {
            default(info);
        }
    }));
}

fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result
}

/// Starts a new peak: Linux resets VmHWM to the current RSS when "5" is written to clear_refs, so
/// the peak read after an input is that input's own (plus what the process already held).
/// Without it (an older kernel) peaks only accumulate, which errs on the strict side.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's current resident set, in KiB.
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// The process's peak resident set since the last reset, in KiB.
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    tried: usize,
    detected_audio: usize,
    refused: usize,
    decoded: usize,
    decode_errors: usize,
    slowest: (Duration, String),
    /// The highest peak RSS after any input, and that input.
    peak: (u64, String),
    /// The most one input raised RSS above what the process held before it, and that input.
    biggest_rise: (u64, String),
    failures: Vec<String>,
}

fn run(input: &Input, dir: &Path, tally: &mut Tally, verbose: bool) {
    if verbose {
        let _ = writeln!(std::io::stderr(), "input {}", input.label);
    }
    let path = dir.join(format!("upload.{}", input.ext));
    std::fs::write(&path, &input.bytes).expect("write input");
    reset_peak_rss();
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut problems = Vec::new();

    // The upload path: the first bytes decide whether to keep reading, then the whole file.
    let head = &input.bytes[..input.bytes.len().min(64)];
    if quietly(|| audio::sniff(head, false)).is_err() {
        problems.push("sniff panicked".to_string());
    }
    match quietly(|| audio::detect(&path)) {
        Ok(Ok(Some(_))) => tally.detected_audio += 1,
        Ok(Ok(None)) => tally.refused += 1,
        Ok(Err(e)) => problems.push(format!("detect failed to read its own file: {e}")),
        Err(_) => problems.push("detect panicked".to_string()),
    }
    match quietly(|| analysis::decode(&path)) {
        Ok(Ok(_)) => tally.decoded += 1,
        Ok(Err(_)) => tally.decode_errors += 1,
        Err(_) => problems.push("decode panicked".to_string()),
    }

    let took = started.elapsed();
    if took > TIME_CAP {
        problems.push(format!("took {took:?}"));
    }
    let rss_after = peak_rss_kib();
    if rss_after > RSS_CAP_KIB {
        problems.push(format!("peak RSS reached {rss_after} KiB"));
    }
    tally.tried += 1;
    if took > tally.slowest.0 {
        tally.slowest = (took, input.label.clone());
    }
    if rss_after > tally.peak.0 {
        tally.peak = (rss_after, input.label.clone());
    }
    if rss_after.saturating_sub(rss_before) > tally.biggest_rise.0 {
        tally.biggest_rise = (rss_after - rss_before, input.label.clone());
    }
    if !problems.is_empty() {
        let saved = keep_as_regression(input);
        tally.failures.push(format!("{}: {} (saved as {})", input.label, problems.join(", "), saved));
    }
}

/// Writes a failing input where the next run (and the repository) keeps it.
fn keep_as_regression(input: &Input) -> String {
    if input.label.starts_with("regression ") {
        return "already a regression fixture".to_string();
    }
    let dir = fixtures_dir().join("hostile");
    let name: String =
        input.label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let path = dir.join(format!("{name}.{}", input.ext));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &input.bytes)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("not saved: {e}"),
    }
}

#[test]
fn hostile_audio_never_panics_hangs_or_balloons() {
    install_panic_counter();
    let verbose = std::env::var_os("HOSTILE_VERBOSE").is_some();
    let fixtures = load_fixtures();
    assert!(fixtures.len() >= 10, "the fixtures are missing");
    let regressions = regression_inputs();
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut tally = Tally::default();
    for input in &regressions {
        run(input, dir.path(), &mut tally, verbose);
    }
    let mut rng = Rng(SEED);
    for fixture in &fixtures {
        for input in inputs_for(fixture, &fixtures, &mut rng) {
            run(&input, dir.path(), &mut tally, verbose);
        }
    }
    // With resets, VmHWM now is the last input's; the run's peak is the highest seen.
    let peak = tally.peak.0.max(peak_rss_kib());
    let contained = CONTAINED.lock().map(|c| c.clone()).unwrap_or_default();
    let mut places: Vec<&String> = contained.iter().collect();
    places.sort();
    places.dedup();

    let _ = writeln!(
        std::io::stderr(),
        "hostile audio: {} inputs ({} regression fixtures) in {:.1} s; detect: {} audio, {} refused; decode: {} ok, {} errors; \
         panics contained inside the wrappers: {} at {} places; peak RSS {:.1} MiB (cap {} MiB, reached on {}; largest rise in one input {} KiB, on {}); \
         slowest input {:?} ({}); failures: {}",
        tally.tried,
        regressions.len(),
        started.elapsed().as_secs_f64(),
        tally.detected_audio,
        tally.refused,
        tally.decoded,
        tally.decode_errors,
        contained.len(),
        places.len(),
        peak as f64 / 1024.0,
        RSS_CAP_KIB / 1024,
        tally.peak.1,
        tally.biggest_rise.0,
        tally.biggest_rise.1,
        tally.slowest.0,
        tally.slowest.1,
        tally.failures.len(),
    );
    for place in &places {
        let _ = writeln!(std::io::stderr(), "  contained panic at {place}");
    }
    for failure in &tally.failures {
        let _ = writeln!(std::io::stderr(), "  FAILED {failure}");
    }
    assert!(tally.failures.is_empty(), "{} hostile inputs failed; see above", tally.failures.len());
    assert!(peak < RSS_CAP_KIB, "peak RSS {peak} KiB is over the cap of {RSS_CAP_KIB} KiB");
    assert!(tally.tried >= 3000, "only {} inputs", tally.tried);
}
