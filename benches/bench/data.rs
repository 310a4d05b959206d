//! What the benchmark sends and seeds: WAV files the server accepts as audio, and time-ordered
//! UUIDv7 ids.

use rand::RngCore;

/// The canonical 44-byte header of 16-bit stereo PCM at 48 kHz.
const HEADER_LEN: usize = 44;

/// A valid WAV file of exactly `len` bytes: RIFF/WAVE, a `fmt ` chunk and a `data` chunk whose
/// size is right, then pseudo-random samples (`seed` varies them). The server sniffs the
/// container and reads the duration from the header without decoding the samples.
pub fn wav(len: usize, seed: u64) -> Vec<u8> {
    assert!(len >= HEADER_LEN && len - HEADER_LEN <= u32::MAX as usize, "a WAV file of {len} bytes cannot be built");
    let data_len = (len - HEADER_LEN) as u32;
    let (channels, rate, bits) = (2u16, 48_000u32, 16u16);
    let block_align = channels * bits / 8;
    let mut out = Vec::with_capacity(len);
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
    out.resize(len, 0);
    fill_noise(&mut out[HEADER_LEN..], seed);
    out
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
