//! What an upload is: the container from its magic bytes (never from the client's word), and
//! its duration from the headers or packets, by symphonia (pure Rust, no external tools).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use symphonia::core::codecs::CODEC_TYPE_NULL;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// A recognised container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container {
    pub content_type: &'static str,
    /// Extension for default names.
    pub ext: &'static str,
    /// Recognised by a weak signal only (a bare MPEG/ADTS frame sync): symphonia must confirm it.
    pub weak: bool,
}

const fn c(content_type: &'static str, ext: &'static str) -> Container {
    Container { content_type, ext, weak: false }
}

/// The result of a quick look at the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    Audio(Container),
    /// An ID3 tag: MP3, AAC or FLAC follows; decided once the whole file is there.
    Id3,
    /// Too few bytes to tell yet.
    NeedMore,
    NotAudio,
}

fn at(head: &[u8], offset: usize, magic: &[u8]) -> bool {
    head.get(offset..offset + magic.len()) == Some(magic)
}

fn mpeg_frame(h: &[u8]) -> bool {
    h.len() >= 3
        && h[0] == 0xFF
        && h[1] & 0xE0 == 0xE0
        && (h[1] >> 3) & 3 != 1
        && (h[1] >> 1) & 3 != 0
        && h[2] >> 4 != 0xF
        && (h[2] >> 2) & 3 != 3
}

fn adts_frame(h: &[u8]) -> bool {
    h.len() >= 3 && h[0] == 0xFF && h[1] & 0xF6 == 0xF0 && (h[2] >> 2) & 0xF < 13
}

/// Looks at the first bytes of a file. `complete` says the whole file is in `head`.
pub fn sniff(head: &[u8], complete: bool) -> Sniff {
    if at(head, 0, b"ID3") {
        return Sniff::Id3;
    }
    if head.len() < 12 && !complete {
        return Sniff::NeedMore;
    }
    let found = if (at(head, 0, b"RIFF") || at(head, 0, b"RF64")) && at(head, 8, b"WAVE") {
        Some(c("audio/wav", "wav"))
    } else if at(head, 4, b"ftyp") {
        let brand = head.get(8..11).unwrap_or_default();
        let ext = match brand {
            b"3gp" | b"3g2" => "3gp",
            b"qt " => "mov",
            b"M4A" | b"M4B" => "m4a",
            _ => "mp4",
        };
        Some(c("audio/mp4", ext))
    } else if at(head, 4, b"moov") || at(head, 4, b"wide") || at(head, 4, b"mdat") {
        Some(c("audio/mp4", "mov"))
    } else if at(head, 0, b"OggS") {
        let ext = if at(head, 28, b"OpusHead") {
            "opus"
        } else if at(head, 28, b"Speex   ") {
            "spx"
        } else {
            "ogg"
        };
        Some(c("audio/ogg", ext))
    } else if at(head, 0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        let is_webm = head.windows(4).any(|w| w == b"webm");
        Some(c("audio/webm", if is_webm { "webm" } else { "mka" }))
    } else if at(head, 0, b"fLaC") {
        Some(c("audio/flac", "flac"))
    } else if at(head, 0, b"#!AMR") {
        Some(c("audio/amr", "amr"))
    } else if at(head, 0, b"caff") {
        Some(c("audio/x-caf", "caf"))
    } else if at(head, 0, b"FORM") && (at(head, 8, b"AIFF") || at(head, 8, b"AIFC")) {
        Some(c("audio/aiff", "aiff"))
    } else if adts_frame(head) {
        Some(Container { weak: true, ..c("audio/aac", "aac") })
    } else if mpeg_frame(head) {
        Some(Container { weak: true, ..c("audio/mpeg", "mp3") })
    } else {
        None
    };
    match found {
        Some(container) => Sniff::Audio(container),
        None => Sniff::NotAudio,
    }
}

/// A stored file's type and duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub container: Container,
    pub duration_ms: Option<i64>,
}

/// Wall time always granted to a pass over a file, for opening and probing.
const BASE_TIME: std::time::Duration = std::time::Duration::from_secs(2);
/// Extra time per MiB of file. The file's size is the one length a hostile header cannot
/// inflate; one second per 64 KiB is generous even for 8 kbit/s speech decoded without
/// optimisations, yet stops a small file that decodes to days of silence.
const TIME_PER_MIB: std::time::Duration = std::time::Duration::from_secs(16);

/// How long one pass over a file of `bytes` bytes may take: a decode (see
/// `analysis::Limits`), or the packet walk that finds a duration the header does not give.
pub fn time_budget(bytes: u64) -> std::time::Duration {
    BASE_TIME + TIME_PER_MIB.mul_f64(bytes as f64 / (1024.0 * 1024.0))
}

/// Decides what a finished upload is; `None` when it is not audio we recognise. Blocking.
pub fn detect(path: &Path) -> std::io::Result<Option<Detected>> {
    let mut file = File::open(path)?;
    let mut head = vec![0u8; 4096];
    let n = read_up_to(&mut file, &mut head)?;
    head.truncate(n);
    let complete = n < 4096;
    let container = match sniff(&head, complete) {
        Sniff::Audio(container) => container,
        Sniff::NotAudio | Sniff::NeedMore => return Ok(None),
        Sniff::Id3 => {
            // Skip the tag and look again; a tag with nothing recognisable after it (a recording
            // cut off by a crash) is still an MP3, the user's data.
            let skip = id3_len(&head);
            file.seek(SeekFrom::Start(skip))?;
            let mut after = vec![0u8; 64];
            let n = read_up_to(&mut file, &mut after)?;
            after.truncate(n);
            match sniff(&after, true) {
                Sniff::Audio(c) if c.content_type == "audio/flac" || c.content_type == "audio/aac" => c,
                _ => Container { content_type: "audio/mpeg", ext: "mp3", weak: false },
            }
        }
    };
    let duration_ms = if container.content_type == "audio/amr" {
        amr_duration(path)?
    } else if implausible_structure(path)?.is_some() {
        // Recognisably this container, but with tables symphonia must not be given.
        None
    } else {
        probe_duration(path, container.ext)
    };
    match duration_ms {
        Some(ms) => Ok(Some(Detected { container, duration_ms: Some(ms) })),
        // A bare frame sync that symphonia cannot read as audio is noise, not a recording.
        None if container.weak => Ok(None),
        None => Ok(Some(Detected { container, duration_ms: None })),
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn id3_len(head: &[u8]) -> u64 {
    let Some(h) = head.get(0..10) else { return head.len() as u64 };
    let size = h[6..10].iter().fold(0u64, |acc, b| (acc << 7) | u64::from(b & 0x7F));
    let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
    10 + size + footer
}

/// Duration from symphonia: the header's frame count where there is one, else the last packet's
/// end. Any failure (or a panic on a hostile file) gives `None`: the recording is still kept.
fn probe_duration(path: &Path, ext: &str) -> Option<i64> {
    let path = path.to_path_buf();
    let ext = ext.to_string();
    std::panic::catch_unwind(move || probe_duration_inner(&path, &ext)).ok().flatten()
}

fn probe_duration_inner(path: &Path, ext: &str) -> Option<i64> {
    let file = File::open(path).ok()?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(ext);
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &FormatOptions::default(), &MetadataOptions::default())
        .ok()?;
    let mut format = probed.format;
    let track = format.tracks().iter().find(|t| t.codec_params.codec != CODEC_TYPE_NULL)?.clone();
    let params = &track.codec_params;
    let time_base =
        params.time_base.or_else(|| params.sample_rate.map(|sr| symphonia::core::units::TimeBase::new(1, sr)));
    if let (Some(frames), Some(tb)) = (params.n_frames, time_base) {
        let frames =
            frames.saturating_sub(u64::from(params.delay.unwrap_or(0)) + u64::from(params.padding.unwrap_or(0)));
        let t = tb.calc_time(frames);
        return Some((t.seconds as f64 * 1000.0 + t.frac * 1000.0).round() as i64);
    }
    let tb = time_base?;
    let mut end = 0u64;
    let mut any = false;
    // A reader that lies about its sample tables can hand out empty packets for a very long
    // time; the walk gets the time a decode of the same file would.
    let budget = time_budget(std::fs::metadata(path).ok()?.len());
    let deadline = std::time::Instant::now() + budget;
    loop {
        if std::time::Instant::now() > deadline {
            return None;
        }
        match format.next_packet() {
            Ok(packet) if packet.track_id() == track.id => {
                end = end.max(packet.ts().saturating_add(packet.dur()));
                any = true;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if !any {
        return None;
    }
    let t = tb.calc_time(end);
    Some((t.seconds as f64 * 1000.0 + t.frac * 1000.0).round() as i64)
}

/// Why symphonia must not be given this file, if it must not. Some of its readers reserve memory
/// for the count a table claims before reading one entry; a count of four billion asks for tens
/// of GiB, and an allocation that fails aborts the process instead of returning an error. So the
/// claims are checked against the bytes that would have to hold them first. Blocking.
pub fn implausible_structure(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = [0u8; 12];
    let n = read_up_to(&mut file, &mut head)?;
    match sniff(&head[..n], true) {
        Sniff::Audio(c) if c.content_type == "audio/mp4" => {
            let mut reader = std::io::BufReader::new(file);
            Mp4Check { reader: &mut reader, file_len: len, boxes: 0 }.boxes(0, len, 0)
        }
        Sniff::Audio(c) if c.content_type == "audio/x-caf" => caf_packet_table(&mut file, len),
        _ => Ok(None),
    }
}

/// CAF: symphonia reserves memory for the packet count a `pakt` chunk claims; each packet's entry
/// takes at least one byte of the chunk. Chunks follow the 8-byte file header as a type, a
/// signed 64-bit size and the body.
fn caf_packet_table(file: &mut File, len: u64) -> std::io::Result<Option<String>> {
    let mut at = 8u64;
    for _ in 0..10_000 {
        file.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 20];
        if read_up_to(file, &mut header)? < 20 {
            return Ok(None);
        }
        let size = i64::from_be_bytes([
            header[4], header[5], header[6], header[7], header[8], header[9], header[10], header[11],
        ]);
        // A negative size (the data chunk's "to the end of the file") ends the walk.
        let Ok(size) = u64::try_from(size) else { return Ok(None) };
        if &header[0..4] == b"pakt" {
            let packets = i64::from_be_bytes([
                header[12], header[13], header[14], header[15], header[16], header[17], header[18], header[19],
            ]);
            let room = size.saturating_sub(24);
            return Ok(u64::try_from(packets)
                .is_ok_and(|p| p > room)
                .then(|| format!("a CAF packet table claims {packets} packets in {room} bytes")));
        }
        at = at.saturating_add(12).saturating_add(size);
        if at >= len {
            return Ok(None);
        }
    }
    Ok(Some("too many CAF chunks".to_string()))
}

/// A walk over an MP4's boxes that reads headers and table counts, never payloads it skips.
struct Mp4Check<'a> {
    reader: &'a mut std::io::BufReader<File>,
    file_len: u64,
    /// Boxes seen: a file of millions of tiny boxes is refused rather than walked for long.
    boxes: u32,
}

impl Mp4Check<'_> {
    const MAX_BOXES: u32 = 100_000;
    const MAX_DEPTH: u32 = 16;

    fn read_u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.reader.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn read_u64(&mut self) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.reader.read_exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    /// Checks the boxes in `start..end`. A box that does not fit where it is cut short is left to
    /// symphonia, which reads it as a truncated file; only counts that ask for memory matter here.
    fn boxes(&mut self, start: u64, end: u64, depth: u32) -> std::io::Result<Option<String>> {
        let mut at = start;
        while at + 8 <= end {
            self.boxes += 1;
            if self.boxes > Self::MAX_BOXES || depth > Self::MAX_DEPTH {
                return Ok(Some("too many nested or repeated MP4 boxes".to_string()));
            }
            self.reader.seek(SeekFrom::Start(at))?;
            let Ok(size32) = self.read_u32() else { return Ok(None) };
            let mut kind = [0u8; 4];
            if self.reader.read_exact(&mut kind).is_err() {
                return Ok(None);
            }
            let (header, size) = match size32 {
                0 => (8, end - at),
                1 => match self.read_u64() {
                    Ok(size) => (16, size),
                    Err(_) => return Ok(None),
                },
                size => (8, u64::from(size)),
            };
            if size < header {
                return Ok(None);
            }
            // What the box can really hold: its claimed size, cut at the end of its parent.
            let body = at + header;
            let body_end = at.saturating_add(size).min(end);
            let body_len = body_end.saturating_sub(body);
            let problem = match &kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"udta" | b"mvex" | b"moof"
                | b"traf" => self.boxes(body, body_end, depth + 1)?,
                b"meta" => self.boxes(body + 4, body_end, depth + 1)?,
                b"stts" | b"ctts" | b"co64" => self.table(&kind, 4, 8, body_len)?,
                b"stsc" => self.table(&kind, 4, 12, body_len)?,
                b"stco" | b"stss" => self.table(&kind, 4, 4, body_len)?,
                b"elst" => self.elst(body_len)?,
                b"stsz" => self.stsz(body_len)?,
                _ => None,
            };
            if problem.is_some() {
                return Ok(problem);
            }
            at = at.saturating_add(size);
        }
        Ok(None)
    }

    /// A table: `skip` bytes (version and flags), a u32 count, then `count` entries of `entry`
    /// bytes, which must fit in the box.
    fn table(&mut self, kind: &[u8; 4], skip: u64, entry: u64, body_len: u64) -> std::io::Result<Option<String>> {
        self.reader.seek_relative(skip as i64)?;
        let Ok(count) = self.read_u32() else { return Ok(None) };
        Ok(Self::fits(kind, count, entry, body_len.saturating_sub(skip + 4)))
    }

    fn fits(kind: &[u8; 4], count: u32, entry: u64, room: u64) -> Option<String> {
        (u64::from(count) * entry > room)
            .then(|| format!("an MP4 {} table claims {count} entries in {room} bytes", String::from_utf8_lossy(kind)))
    }

    fn elst(&mut self, body_len: u64) -> std::io::Result<Option<String>> {
        let Ok(version_flags) = self.read_u32() else { return Ok(None) };
        let Ok(count) = self.read_u32() else { return Ok(None) };
        let entry = if version_flags >> 24 == 1 { 20 } else { 12 };
        Ok(Self::fits(b"elst", count, entry, body_len.saturating_sub(8)))
    }

    /// Sample sizes: a variable table must fit, and no sample may be larger than the file, since
    /// each is read into a buffer of its claimed size.
    fn stsz(&mut self, body_len: u64) -> std::io::Result<Option<String>> {
        self.reader.seek_relative(4)?;
        let (Ok(sample_size), Ok(count)) = (self.read_u32(), self.read_u32()) else { return Ok(None) };
        if sample_size != 0 {
            return Ok((u64::from(sample_size) > self.file_len)
                .then(|| format!("MP4 samples of {sample_size} bytes in a file of {}", self.file_len)));
        }
        if let Some(problem) = Self::fits(b"stsz", count, 4, body_len.saturating_sub(12)) {
            return Ok(Some(problem));
        }
        for _ in 0..count {
            let Ok(size) = self.read_u32() else { return Ok(None) };
            if u64::from(size) > self.file_len {
                return Ok(Some(format!("an MP4 sample of {size} bytes in a file of {}", self.file_len)));
            }
        }
        Ok(None)
    }
}

/// AMR (narrow- or wide-band) is a plain sequence of 20 ms frames whose sizes follow from each
/// frame's header byte; symphonia does not read it, so count them.
fn amr_duration(path: &Path) -> std::io::Result<Option<i64>> {
    const NB: [u64; 16] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0];
    const WB: [u64; 16] = [17, 23, 32, 36, 40, 46, 50, 58, 60, 5, 0, 0, 0, 0, 0, 0];
    // Streamed: an AMR upload can be as large as any other, and memory must not grow with it.
    let mut reader = std::io::BufReader::new(File::open(path)?);
    let mut magic = [0u8; 9];
    let n = read_up_to(reader.get_mut(), &mut magic)?;
    let (header_len, sizes) = if magic[..n].starts_with(b"#!AMR-WB\n") {
        (9, &WB)
    } else if magic[..n].starts_with(b"#!AMR\n") {
        (6, &NB)
    } else {
        return Ok(None);
    };
    reader.seek(SeekFrom::Start(header_len))?;
    let mut frames = 0i64;
    let mut header = [0u8; 1];
    while reader.read(&mut header)? == 1 {
        let mode = usize::from((header[0] >> 3) & 0x0F);
        reader.seek_relative(sizes[mode] as i64)?;
        frames += 1;
    }
    Ok(if frames > 0 { Some(frames * 20) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_containers_from_magic() {
        let wav = b"RIFF\x00\x00\x00\x00WAVEfmt ";
        assert!(matches!(sniff(wav, true), Sniff::Audio(c) if c.content_type == "audio/wav"));
        assert_eq!(sniff(b"<!doctype html><html>", true), Sniff::NotAudio);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", true), Sniff::NotAudio);
        assert_eq!(sniff(b"RIFF", false), Sniff::NeedMore);
        assert_eq!(sniff(b"ID3\x04\0\0\0\0\0\x23", false), Sniff::Id3);
        let m4a = b"\0\0\0\x1cftypM4A \0\0\x02\0";
        assert!(matches!(sniff(m4a, true), Sniff::Audio(c) if c.ext == "m4a"));
    }

    #[test]
    fn amr_frames_count_twenty_ms_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.amr");
        let mut data = b"#!AMR\n".to_vec();
        for _ in 0..50 {
            data.push(7 << 3); // mode 7: 31 bytes of payload
            data.extend_from_slice(&[0u8; 31]);
        }
        std::fs::write(&path, &data).expect("write");
        let detected = detect(&path).expect("io").expect("audio");
        assert_eq!(detected.container.content_type, "audio/amr");
        assert_eq!(detected.duration_ms, Some(1000));
    }

    #[test]
    fn refuses_tables_that_claim_more_than_their_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.caf");
        let mut caf = b"caff\0\x01\0\0pakt".to_vec();
        caf.extend_from_slice(&32i64.to_be_bytes());
        caf.extend_from_slice(&(1i64 << 40).to_be_bytes());
        caf.extend_from_slice(&[0u8; 24]);
        std::fs::write(&path, &caf).expect("write");
        assert!(implausible_structure(&path).expect("io").is_some());
        caf[20..28].copy_from_slice(&8i64.to_be_bytes());
        std::fs::write(&path, &caf).expect("write");
        assert_eq!(implausible_structure(&path).expect("io"), None);

        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        assert_eq!(implausible_structure(&fixtures.join("speech.m4a")).expect("io"), None);
        let inflated = fixtures.join("hostile/speech-m4a-stts-count-at-20157-max.m4a");
        assert!(implausible_structure(&inflated).expect("io").is_some_and(|p| p.contains("stts")));
        // Still recognisably the user's MP4, with no duration.
        let detected = detect(&inflated).expect("io").expect("audio");
        assert_eq!((detected.container.ext, detected.duration_ms), ("m4a", None));
    }
}
