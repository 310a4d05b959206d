//! What the benchmark sends and seeds: WAV files the server accepts as audio (noise, or speech
//! from the fixtures), and time-ordered UUIDv7 ids.

use rand::RngCore;
use std::path::{Path, PathBuf};

/// The canonical 44-byte header of 16-bit stereo PCM at 48 kHz.
const HEADER_LEN: usize = 44;

/// A valid WAV file of exactly `len` bytes: RIFF/WAVE, a `fmt ` chunk and a `data` chunk whose
/// size is right, then pseudo-random samples (`seed` varies them). The server sniffs the
/// container and reads the duration from the header without decoding the samples.
pub fn wav(len: usize, seed: u64) -> Vec<u8> {
    assert!(len >= HEADER_LEN && len - HEADER_LEN <= u32::MAX as usize, "a WAV file of {len} bytes cannot be built");
    let mut out = Vec::with_capacity(len);
    wav_header(&mut out, 2, 48_000, (len - HEADER_LEN) as u32);
    out.resize(len, 0);
    fill_noise(&mut out[HEADER_LEN..], seed);
    out
}

/// The canonical header of 16-bit PCM with `data_len` bytes of samples following it.
fn wav_header(out: &mut Vec<u8>, channels: u16, rate: u32, data_len: u32) {
    let bits = 16u16;
    let block_align = channels * bits / 8;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(data_len + 36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
}

/// The speech fixtures (`tests/fixtures/speech.*`, 4.18 s of one sentence each).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A WAV file of `seconds` of real speech (16 kHz, mono, 16-bit): the sentence of
/// `tests/fixtures/speech.wav` over and over, so a decoder and the waveform see speech, not noise.
pub fn speech_wav(seconds: u32) -> Vec<u8> {
    let path = fixture("speech.wav");
    let file = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let sentence = wav_samples(&file).unwrap_or_else(|| panic!("{} is not 16 kHz mono 16-bit PCM", path.display()));
    let len = SPEECH_RATE as usize * 2 * seconds as usize;
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    wav_header(&mut out, 1, SPEECH_RATE, u32::try_from(len).expect("a WAV file under 4 GiB"));
    while out.len() < HEADER_LEN + len {
        let missing = HEADER_LEN + len - out.len();
        out.extend_from_slice(&sentence[..missing.min(sentence.len())]);
    }
    out
}

const SPEECH_RATE: u32 = 16_000;

/// The samples of a 16 kHz mono 16-bit PCM WAV file: its `data` chunk.
fn wav_samples(file: &[u8]) -> Option<&[u8]> {
    if file.get(..4)? != b"RIFF" || file.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut format_ok = false;
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().ok()?) as usize;
        let body = file.get(at + 8..at + 8 + len)?;
        if id == b"fmt " {
            let channels = u16::from_le_bytes(body.get(2..4)?.try_into().ok()?);
            let rate = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
            let bits = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?);
            format_ok = (channels, rate, bits) == (1, SPEECH_RATE, 16);
        } else if id == b"data" {
            return format_ok.then_some(body);
        }
        at += 8 + len + (len & 1);
    }
    None
}

/// Fills a buffer with xorshift64* output: fast, and nothing along the way can compress it.
fn fill_noise(buf: &mut [u8], seed: u64) {
    let mut state = seed | 1;
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    for byte in words.into_remainder() {
        *byte = state as u8;
    }
}

/// A UUIDv7 for a millisecond timestamp, hyphenated: ids of increasing timestamps sort in
/// increasing order, which is the order the list uses.
pub fn uuid_v7(unix_ms: u64, rng: &mut impl RngCore) -> String {
    let mut random = [0u8; 10];
    rng.fill_bytes(&mut random);
    uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid().hyphenated().to_string()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
