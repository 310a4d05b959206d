//! The audio the tests make: one WAV writer (`wav_claiming`), and the sounds built on it.

/// The WAV writer: a 44-byte header for mono PCM of `bits` (8 or 16) a sample at `rate` that
/// claims `data_len` bytes of sound, then `body` as it is (which may hold more or less than the
/// header claims).
pub fn wav_claiming(rate: u32, bits: u16, data_len: u32, body: &[u8]) -> Vec<u8> {
    let block_align = bits / 8;
    let mut out = Vec::with_capacity(44 + body.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// `len` pseudo-random bytes (xorshift64 from `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// A valid 16-bit mono WAV at `rate` whose sound is `data_len` bytes of noise: accepted as
/// audio, and incompressible.
pub fn noise_wav_at(rate: u32, data_len: usize, seed: u64) -> Vec<u8> {
    let claimed = u32::try_from(data_len).expect("a data chunk under 4 GiB");
    wav_claiming(rate, 16, claimed, &noise(data_len, seed))
}

/// A valid 16-bit mono WAV at 16 kHz of exactly `total` bytes with pseudo-random samples.
pub fn noise_wav(total: usize, seed: u64) -> Vec<u8> {
    assert!(total > 44);
    noise_wav_at(16_000, total - 44, seed)
}

/// A noise WAV of `len` bytes (see `noise_wav`) written to `name` in a temp dir: the dir (kept
/// by the caller for as long as the file is needed), the file's path, and its bytes.
pub fn wav_file(name: &str, len: usize, seed: u64) -> (tempfile::TempDir, String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = noise_wav(len, seed);
    let path = dir.path().join(name);
    std::fs::write(&path, &bytes).expect("write the WAV");
    (dir, path.display().to_string(), bytes)
}

/// A 16-bit mono PCM WAV file of `samples` at `rate` Hz.
pub fn pcm_wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let body: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let data_len = u32::try_from(body.len()).expect("a data chunk under 4 GiB");
    wav_claiming(rate, 16, data_len, &body)
}

/// A 440 Hz tone at 8 kHz whose level (0 to 1 of full scale) may change over its frames.
pub fn tone_wav(seconds: u32, level: impl Fn(u32, u32) -> f64) -> Vec<u8> {
    const RATE: u32 = 8000;
    let frames = seconds * RATE;
    let samples: Vec<i16> = (0..frames)
        .map(|i| {
            let t = f64::from(i) / f64::from(RATE);
            (level(i, frames) * 32767.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()).round() as i16
        })
        .collect();
    pcm_wav(RATE, &samples)
}

/// A steady 440 Hz tone of `seconds` at 0.3 of full scale.
pub fn steady_tone_wav(seconds: u32) -> Vec<u8> {
    tone_wav(seconds, |_, _| 0.3)
}

/// A tone that is loud (0.8) for its first half and nearly silent (0.02) after: a waveform with
/// a shape to see.
pub fn loud_then_quiet_wav(seconds: u32) -> Vec<u8> {
    tone_wav(seconds, |i, frames| if i < frames / 2 { 0.8 } else { 0.02 })
}

/// An 8-bit WAV of `seconds` at `rate`: a tone that is loud for the first tenth, then quiet.
pub fn long_wav(seconds: u32, rate: u32) -> Vec<u8> {
    let frames = (seconds * rate) as usize;
    let loud_until = frames / 10;
    let body: Vec<u8> = (0..frames)
        .map(|i| {
            let amplitude = if i < loud_until { 120.0 } else { 12.0 };
            (128.0 + amplitude * ((i as f64) * 0.3).sin()).round() as u8
        })
        .collect();
    wav_claiming(rate, 8, frames as u32, &body)
}

/// A 16 kHz sine of `seconds` (a sound with no words in it).
pub fn sine_wav(seconds: f32) -> Vec<u8> {
    let samples: Vec<i16> =
        (0..(16_000.0 * seconds) as usize).map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16).collect();
    pcm_wav(16_000, &samples)
}
