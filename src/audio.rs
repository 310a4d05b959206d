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
    let duration_ms =
        if container.content_type == "audio/amr" { amr_duration(path)? } else { probe_duration(path, container.ext) };
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
    loop {
        match format.next_packet() {
            Ok(packet) if packet.track_id() == track.id => {
                end = end.max(packet.ts() + packet.dur());
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
}
