//! Decoding a whole recording for analysis (levels now, waveforms later): every packet of its
//! audio track through symphonia's decoder, streamed, so memory stays bounded whatever the
//! file's length, and time stays bounded whatever the file claims.
//!
//! Uploads are hostile input: a header can claim a billion frames per packet, a container can
//! lie about its lengths, and a decoder can panic on bytes it never expected. Every one of those
//! ends as an `Err` here, never as a panic, an allocation of gigabytes or a loop without end.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};
use symphonia::core::audio::{SampleBuffer, SignalSpec};
use symphonia::core::codecs::{CODEC_TYPE_ALAC, CODEC_TYPE_NULL, CodecParameters, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// What decoding a whole file found.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The decoded audio's length: the sum of every decoded packet's frames over its rate.
    pub duration_ms: i64,
    /// The largest absolute sample value over all channels, 1.0 being full scale.
    pub peak: f32,
    /// Decoded frames (one sample per channel each).
    pub frames: u64,
    /// The sample rate of the first decoded packet.
    pub sample_rate: u32,
    /// The channel count of the first decoded packet.
    pub channels: usize,
    /// The waveform: the peak of each `bucket_ms` of audio.
    pub waveform: Waveform,
}

/// A recording's shape: the largest absolute sample (over all channels) of each bucket of time,
/// 0 to 255 for silence to full scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waveform {
    pub bucket_ms: u32,
    pub peaks: Vec<u8>,
}

/// Buckets start at 10 ms and double whenever there would be more than this many, so memory is
/// bounded whatever the length; at the end they are halved to at most `MAX_BUCKETS`.
const GROW_AT: usize = 2 * MAX_BUCKETS;
/// At most this many buckets; at least half as many (1,000 or more) once a recording is long
/// enough for 10 ms buckets to reach that.
pub const MAX_BUCKETS: usize = 4000;
const FIRST_BUCKET_MS: u32 = 10;

/// Peaks gathered while decoding.
struct Peaks {
    rate: u64,
    bucket_ms: u32,
    peaks: Vec<f32>,
    current: f32,
    frames: u64,
    /// The frame at which the current bucket ends.
    boundary: u64,
}

impl Peaks {
    fn new(rate: u32) -> Peaks {
        let mut peaks = Peaks {
            rate: u64::from(rate.max(1)),
            bucket_ms: FIRST_BUCKET_MS,
            peaks: Vec::with_capacity(GROW_AT),
            current: 0.0,
            frames: 0,
            boundary: 0,
        };
        peaks.boundary = peaks.end_of(0);
        peaks
    }

    /// The first frame after bucket `index`.
    fn end_of(&self, index: usize) -> u64 {
        ((index as u64 + 1) * u64::from(self.bucket_ms) * self.rate).div_ceil(1000)
    }

    /// One frame's peak over its channels.
    fn push(&mut self, value: f32) {
        // NaN compares false and is skipped: a float file full of it has no level.
        if value > self.current {
            self.current = value;
        }
        self.frames += 1;
        if self.frames >= self.boundary {
            self.peaks.push(self.current);
            self.current = 0.0;
            if self.peaks.len() >= GROW_AT {
                self.double();
            }
            self.boundary = self.end_of(self.peaks.len());
        }
    }

    fn double(&mut self) {
        let merged: Vec<f32> = self.peaks.chunks(2).map(|pair| pair.iter().copied().fold(0.0, f32::max)).collect();
        self.peaks = merged;
        self.bucket_ms *= 2;
    }

    fn finish(mut self) -> Waveform {
        // The last, partial bucket.
        let start = match self.peaks.len() {
            0 => 0,
            n => self.end_of(n - 1),
        };
        if self.frames > start {
            self.peaks.push(self.current);
        }
        while self.peaks.len() > MAX_BUCKETS {
            self.double();
        }
        let peaks = self.peaks.iter().map(|p| (p.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        Waveform { bucket_ms: self.bucket_ms, peaks }
    }
}

/// Why a file could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a container that can be read: {0}")]
    Format(String),
    #[error("no audio track")]
    NoTrack,
    #[error("no decoder for this codec: {0}")]
    Unsupported(String),
    #[error("implausible stream: {0}")]
    Implausible(String),
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    #[error("no complete packet of audio")]
    NoAudio,
    #[error("decoding took longer than its budget of {0:?}")]
    TimedOut(Duration),
    #[error("the decoder failed on unexpected input: {0}")]
    Panicked(String),
}

/// Bounds on one decode. A header that asks for more than these is refused before a decoder
/// allocates for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time of the decoding thread for the whole decode, checked between packets. (The
    /// worker runs at idle priority: on a busy machine its wall time is other work's time.) Wall
    /// time is capped at `WALL_FACTOR` times this, for a thread that gets no CPU at all.
    pub time_budget: Duration,
    /// Frames one packet may decode to. FLAC's largest block is 65535 frames, Vorbis's 8192, and
    /// symphonia's PCM packets are far smaller; a decoder allocates its output buffer from this.
    pub max_frames_per_packet: u64,
    /// Channels per frame.
    pub max_channels: usize,
    /// Samples per second.
    pub max_sample_rate: u32,
}

impl Limits {
    /// The limits for a file of `bytes` bytes.
    pub fn for_size(bytes: u64) -> Limits {
        Limits {
            time_budget: crate::audio::time_budget(bytes),
            max_frames_per_packet: 1 << 17,
            max_channels: 32,
            max_sample_rate: 768_000,
        }
    }
}

/// Decodes every packet of the first audio track of the file at `path`, within
/// `Limits::for_size` of its size. Blocking; never panics.
pub fn decode(path: &Path) -> Result<Decoded, DecodeError> {
    let bytes = std::fs::metadata(path)?.len();
    decode_with(path, &Limits::for_size(bytes))
}

/// `decode` within explicit limits.
pub fn decode_with(path: &Path, limits: &Limits) -> Result<Decoded, DecodeError> {
    // Decoders index and do arithmetic on values straight from the file; a panic there is a
    // refusal of this file, and nothing outlives the closure to be left half-updated.
    catch_unwind(AssertUnwindSafe(|| decode_inner(path, limits)))
        .unwrap_or_else(|payload| Err(DecodeError::Panicked(panic_message(payload.as_ref()))))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// The wall-clock cap of a decode, as a multiple of its CPU-time budget.
const WALL_FACTOR: u32 = 20;

/// CPU time this thread has used (Linux: `/proc/thread-self/stat`, in 10 ms clock ticks), or
/// `None` where that cannot be read.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name may hold spaces and parentheses: the fields follow its last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Whether a decode is out of time: checked against the wall clock between packets (cheap), and
/// when that has passed, against the thread's CPU time (which moves the wall deadline on).
struct Budget {
    started: Instant,
    cpu_at_start: Option<Duration>,
    budget: Duration,
    deadline: Instant,
    hard_deadline: Instant,
}

impl Budget {
    fn new(budget: Duration) -> Budget {
        let started = Instant::now();
        Budget {
            started,
            cpu_at_start: thread_cpu_time(),
            budget,
            deadline: started + budget,
            hard_deadline: started + budget.saturating_mul(WALL_FACTOR),
        }
    }

    fn out_of_time(&mut self) -> bool {
        let now = Instant::now();
        if now <= self.deadline {
            return false;
        }
        let used = match (self.cpu_at_start, thread_cpu_time()) {
            (Some(start), Some(now_cpu)) => now_cpu.saturating_sub(start),
            _ => now - self.started,
        };
        if used >= self.budget || now >= self.hard_deadline {
            return true;
        }
        self.deadline = now + (self.budget - used).max(Duration::from_millis(50));
        false
    }
}

/// A file's first audio track, opened for decoding within `limits`.
struct Track {
    format: Box<dyn symphonia::core::formats::FormatReader>,
    decoder: Box<dyn symphonia::core::codecs::Decoder>,
    id: u32,
}

fn open_track(path: &Path, limits: &Limits) -> Result<Track, DecodeError> {
    if let Some(problem) = crate::audio::implausible_structure(path)? {
        return Err(DecodeError::Implausible(problem));
    }
    let file = File::open(path)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // Gapless: encoder delay and padding are trimmed, so the duration is the audio's own.
    let options = FormatOptions { enable_gapless: true, ..FormatOptions::default() };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &options, &MetadataOptions::default())
        .map_err(|e| DecodeError::Format(e.to_string()))?;
    let format = probed.format;
    let track = format.tracks().iter().find(|t| t.codec_params.codec != CODEC_TYPE_NULL).ok_or(DecodeError::NoTrack)?;
    let track_id = track.id;
    check_params(&track.codec_params, limits)?;
    let decoder = codecs().make(&track.codec_params, &DecoderOptions::default()).map_err(|e| match e {
        SymphoniaError::Unsupported(what) => DecodeError::Unsupported(what.to_string()),
        other => DecodeError::Implausible(other.to_string()),
    })?;
    Ok(Track { format, decoder, id: track_id })
}

fn decode_inner(path: &Path, limits: &Limits) -> Result<Decoded, DecodeError> {
    let mut budget = Budget::new(limits.time_budget);
    let Track { mut format, mut decoder, id: track_id } = open_track(path, limits)?;
    let mut samples: Option<(SampleBuffer<f32>, SignalSpec)> = None;
    let mut first: Option<SignalSpec> = None;
    let mut shape: Option<Peaks> = None;
    let mut frames = 0u64;
    let mut seconds = 0f64;
    let mut peak = 0f32;
    loop {
        if budget.out_of_time() {
            return Err(DecodeError::TimedOut(limits.time_budget));
        }
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            // The end of the stream: symphonia's readers report it as an unexpected EOF.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::IoError(e)) => return Err(DecodeError::Io(e)),
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder.decode(&packet).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        let spec = *decoded.spec();
        let n = decoded.frames() as u64;
        if n > limits.max_frames_per_packet || decoded.capacity() as u64 > limits.max_frames_per_packet {
            return Err(DecodeError::Implausible(format!("a packet of {n} frames")));
        }
        check_spec(&spec, limits)?;
        if n == 0 {
            continue;
        }
        first.get_or_insert(spec);
        let shape = shape.get_or_insert_with(|| Peaks::new(spec.rate));
        frames += n;
        seconds += n as f64 / f64::from(spec.rate);
        // One conversion buffer, reused; made again only when a packet outgrows it or the
        // stream's layout changes, so it is never larger than the largest allowed packet.
        let reuse = matches!(&samples, Some((buf, s)) if *s == spec && buf.capacity() >= decoded.capacity());
        if !reuse {
            samples = Some((SampleBuffer::new(decoded.capacity() as u64, spec), spec));
        }
        if let Some((buf, _)) = samples.as_mut() {
            buf.copy_interleaved_ref(decoded);
            let channels = spec.channels.count().max(1);
            for frame in buf.samples().chunks(channels) {
                let level = frame.iter().fold(0f32, |m, s| if s.abs() > m { s.abs() } else { m });
                shape.push(level);
                if level > peak {
                    peak = level;
                }
            }
        }
    }
    let spec = first.ok_or(DecodeError::NoAudio)?;
    Ok(Decoded {
        duration_ms: (seconds * 1000.0).round() as i64,
        peak,
        frames,
        sample_rate: spec.rate,
        channels: spec.channels.count(),
        waveform: shape.map(Peaks::finish).unwrap_or(Waveform { bucket_ms: FIRST_BUCKET_MS, peaks: Vec::new() }),
    })
}

/// A recording decoded a packet at a time to mono samples (the channels averaged), for work
/// that needs the sound itself (transcription): memory holds one packet, whatever the length.
/// Within the same limits as analysis; a panic in a decoder is an `Err`.
pub struct MonoStream {
    track: Track,
    limits: Limits,
    buffer: Option<(SampleBuffer<f32>, SignalSpec)>,
    mono: Vec<f32>,
}

impl MonoStream {
    pub fn open(path: &Path, limits: Limits) -> Result<MonoStream, DecodeError> {
        let track = catch_unwind(AssertUnwindSafe(|| open_track(path, &limits)))
            .unwrap_or_else(|payload| Err(DecodeError::Panicked(panic_message(payload.as_ref()))))?;
        Ok(MonoStream { track, limits, buffer: None, mono: Vec::new() })
    }

    /// The next packet's samples and their rate; `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> Result<Option<(&[f32], u32)>, DecodeError> {
        let next = catch_unwind(AssertUnwindSafe(|| self.decode_next()))
            .unwrap_or_else(|payload| Err(DecodeError::Panicked(panic_message(payload.as_ref()))))?;
        Ok(next.map(|rate| (self.mono.as_slice(), rate)))
    }

    fn decode_next(&mut self) -> Result<Option<u32>, DecodeError> {
        loop {
            let packet = match self.track.format.next_packet() {
                Ok(packet) => packet,
                Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(SymphoniaError::IoError(e)) => return Err(DecodeError::Io(e)),
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            };
            if packet.track_id() != self.track.id {
                continue;
            }
            let decoded = self.track.decoder.decode(&packet).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            let spec = *decoded.spec();
            let n = decoded.frames() as u64;
            if n > self.limits.max_frames_per_packet || decoded.capacity() as u64 > self.limits.max_frames_per_packet {
                return Err(DecodeError::Implausible(format!("a packet of {n} frames")));
            }
            check_spec(&spec, &self.limits)?;
            if n == 0 {
                continue;
            }
            let reuse = matches!(&self.buffer, Some((buf, s)) if *s == spec && buf.capacity() >= decoded.capacity());
            if !reuse {
                self.buffer = Some((SampleBuffer::new(decoded.capacity() as u64, spec), spec));
            }
            let Some((buf, _)) = self.buffer.as_mut() else { continue };
            buf.copy_interleaved_ref(decoded);
            let channels = spec.channels.count().max(1);
            self.mono.clear();
            self.mono.extend(buf.samples().chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32));
            return Ok(Some(spec.rate));
        }
    }
}

/// symphonia's decoders, and Opus (pure Rust, in every build: `opus.rs`).
fn codecs() -> &'static symphonia::core::codecs::CodecRegistry {
    static CODECS: std::sync::OnceLock<symphonia::core::codecs::CodecRegistry> = std::sync::OnceLock::new();
    CODECS.get_or_init(|| {
        let mut registry = symphonia::core::codecs::CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_all::<crate::opus::OpusDecoder>();
        registry
    })
}

/// Refuses what the container claims before a decoder sizes its buffers from it.
fn check_params(params: &CodecParameters, limits: &Limits) -> Result<(), DecodeError> {
    if let Some(max) = params.max_frames_per_packet
        && max > limits.max_frames_per_packet
    {
        return Err(DecodeError::Implausible(format!("{max} frames per packet")));
    }
    if let Some(rate) = params.sample_rate
        && (rate == 0 || rate > limits.max_sample_rate)
    {
        return Err(DecodeError::Implausible(format!("a sample rate of {rate}")));
    }
    if let Some(channels) = params.channels
        && channels.count() > limits.max_channels
    {
        return Err(DecodeError::Implausible(format!("{} channels", channels.count())));
    }
    // ALAC's decoder allocates its output from the frame length in its magic cookie, which the
    // container's parameters do not carry.
    if params.codec == CODEC_TYPE_ALAC
        && let Some(frame_length) = params.extra_data.as_deref().and_then(alac_frame_length)
        && u64::from(frame_length) > limits.max_frames_per_packet
    {
        return Err(DecodeError::Implausible(format!("ALAC frames of {frame_length} samples")));
    }
    Ok(())
}

fn check_spec(spec: &SignalSpec, limits: &Limits) -> Result<(), DecodeError> {
    if spec.rate == 0 || spec.rate > limits.max_sample_rate {
        return Err(DecodeError::Implausible(format!("a sample rate of {}", spec.rate)));
    }
    if spec.channels.count() > limits.max_channels {
        return Err(DecodeError::Implausible(format!("{} channels", spec.channels.count())));
    }
    Ok(())
}

/// The frame length of an ALAC magic cookie, read the way symphonia reads it: optionally inside
/// `frma` and `alac` atoms, then the ALACSpecificConfig whose first field it is.
fn alac_frame_length(cookie: &[u8]) -> Option<u32> {
    let mut at = 0;
    if cookie.get(4..8) == Some(b"frma") {
        at += 12;
    }
    if cookie.get(at + 4..at + 8) == Some(b"alac") {
        at += 12;
    }
    let field: [u8; 4] = cookie.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(field))
}

/// `[analysis]`: decoding in the background for the exact duration and the waveform.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    pub enabled: bool,
    /// Time budget of one analysis, in seconds per hour of audio
    /// (`max_seconds_per_hour_of_audio`).
    pub seconds_per_hour: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    /// Durations as ffprobe reports them (tests/fixtures/README.md). The AAC files decode to
    /// 1024 frames of encoder priming and the padding of the last frame (about 110 ms) more than
    /// ffprobe's figure: symphonia does not trim AAC. ADTS has no header length (ffprobe's 4.51 s
    /// is an estimate); its audio is the same 4.179 s sentence. The MP3's LAME header lets
    /// symphonia trim its delay and padding, so it decodes to 4.179 s, not ffprobe's 4.284 s.
    const DURATIONS: &[(&str, i64)] = &[
        ("speech.wav", 4179),
        ("speech.flac", 4179),
        ("speech.mp3", 4284),
        ("speech.m4a", 4179),
        ("speech.3gp", 4179),
        ("speech.aac", 4179),
        ("speech.ogg", 4179),
    ];

    #[test]
    fn every_fixture_decodes_to_its_length() {
        for (name, truth) in DURATIONS {
            let decoded = decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!((decoded.duration_ms - truth).abs() <= 150, "{name}: decoded {decoded:?}, truth {truth} ms");
            assert!(decoded.peak > 0.5 && decoded.peak <= 1.0, "{name}: peak {}", decoded.peak);
            assert_eq!((decoded.channels, decoded.sample_rate), (1, 16000), "{name}");
        }
    }

    #[test]
    fn waveforms_have_between_1000_and_4000_buckets_and_follow_the_sound() {
        let decoded = decode(&fixture("speech.wav")).expect("decodes");
        let w = &decoded.waveform;
        // 4.179 s in 10 ms buckets: fewer than 1,000 only because they would be under 10 ms.
        assert_eq!(w.bucket_ms, 10);
        assert_eq!(w.peaks.len(), 418);
        assert_eq!(w.peaks.iter().copied().max(), Some((decoded.peak * 255.0).round() as u8));
        assert!(w.peaks.iter().any(|&p| p < 10), "speech has pauses");

        // Long recordings: buckets grow, never more than 4,000, never fewer than 1,000.
        for seconds in [9.0, 10.5, 39.9, 80.0, 81.0, 3600.0, 3.0 * 3600.0] {
            let rate = 8000;
            let mut peaks = Peaks::new(rate);
            let frames = (seconds * f64::from(rate)) as u64;
            for i in 0..frames {
                peaks.push(if i % 8000 == 0 { 1.0 } else { 0.25 });
            }
            let w = peaks.finish();
            let expected = (seconds * 1000.0 / f64::from(w.bucket_ms)).ceil() as usize;
            assert_eq!(w.peaks.len(), expected, "{seconds} s in {} ms buckets", w.bucket_ms);
            assert!(w.peaks.len() <= MAX_BUCKETS, "{seconds} s: {}", w.peaks.len());
            if seconds >= 10.0 {
                assert!(w.peaks.len() >= 1000, "{seconds} s: {}", w.peaks.len());
            }
            assert!(w.peaks.iter().all(|&p| p == 64 || p == 255), "{seconds} s");
        }
    }

    #[test]
    fn opus_in_ogg_and_webm_decodes_to_its_length_in_every_build() {
        for name in ["speech.opus", "speech.webm"] {
            let decoded = decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!((decoded.duration_ms - 4179).abs() <= 150, "{name}: {decoded:?}");
            assert!(decoded.peak > 0.5, "{name}: peak {}", decoded.peak);
        }
    }

    #[test]
    fn a_recording_cut_before_its_first_frame_has_no_audio() {
        assert!(matches!(decode(&fixture("truncated.mp3")), Err(DecodeError::NoAudio)));
    }

    #[test]
    fn refuses_what_it_cannot_bound() {
        let tight = Limits { max_frames_per_packet: 1000, ..Limits::for_size(0) };
        assert!(matches!(decode_with(&fixture("speech.flac"), &tight), Err(DecodeError::Implausible(_))));
        let no_time = Limits { time_budget: Duration::ZERO, ..Limits::for_size(0) };
        assert!(matches!(decode_with(&fixture("speech.wav"), &no_time), Err(DecodeError::TimedOut(_))));
        for not_audio in ["empty.wav", "image.png", "page.html", "text-named.mp3"] {
            assert!(decode(&fixture(&format!("not-audio/{not_audio}"))).is_err(), "{not_audio}");
        }
    }
}
