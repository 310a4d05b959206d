//! Opus for symphonia, in pure Rust: symphonia 0.5 reads Ogg and WebM but has no Opus decoder,
//! so this wraps the `opus-decoder` crate (RFC 8251 conformant, no unsafe, no C) as one. It is
//! in every build: browsers' own recordings (WebM/Opus) and Android's (Ogg/Opus) get their
//! waveform, exact duration, silences and transcript without a C toolchain. (The `opus`
//! feature's libopus stays as the reference the tests compare against.)

use symphonia::core::audio::{AsAudioBufferRef, AudioBuffer, AudioBufferRef, Channels, Layout, Signal, SignalSpec};
use symphonia::core::codecs::{
    CODEC_TYPE_OPUS, CodecDescriptor, CodecParameters, Decoder, DecoderOptions, FinalizeResult,
};
use symphonia::core::errors::{Error, Result};
use symphonia::core::formats::Packet;
use symphonia::core::support_codec;

/// Opus decodes at 48 kHz here, whatever rate the container names: the rate every stream can be
/// decoded at and the one the conformance vectors hold a decoder to.
const RATE: u32 = 48_000;
/// The longest a packet decodes to: 120 ms at 48 kHz.
const MAX_FRAMES: usize = 5760;

pub struct OpusDecoder {
    params: CodecParameters,
    decoder: opus_decoder::OpusDecoder,
    rate: u32,
    channels: usize,
    /// Samples per channel still to drop from the start (the stream's pre-skip).
    skip: usize,
    pre_skip: usize,
    pcm: Vec<f32>,
    buf: AudioBuffer<f32>,
}

/// The pre-skip of an `OpusHead` (RFC 7845 §5.1): bytes 10 and 11, little-endian.
fn pre_skip(head: &[u8]) -> usize {
    match head {
        [b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', _version, _channels, lo, hi, ..] => {
            usize::from(u16::from_le_bytes([*lo, *hi]))
        }
        _ => 0,
    }
}

fn layout(channels: usize) -> Option<Channels> {
    match channels {
        1 => Some(Layout::Mono.into_channels()),
        2 => Some(Layout::Stereo.into_channels()),
        _ => None,
    }
}

impl Decoder for OpusDecoder {
    fn try_new(params: &CodecParameters, _options: &DecoderOptions) -> Result<Self> {
        // Ogg gives the channels; WebM may give only a layout, or only the OpusHead.
        let head_channels = params.extra_data.as_deref().and_then(|head| match head {
            [b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', _version, channels, ..] => Some(usize::from(*channels)),
            _ => None,
        });
        let channels = params
            .channels
            .map(|c| c.count())
            .or(params.channel_layout.map(|l| l.into_channels().count()))
            .or(head_channels)
            .unwrap_or(0);
        let Some(layout) = layout(channels) else {
            return Err(Error::Unsupported("opus: only mono and stereo streams are decoded"));
        };
        let rate = RATE;
        let decoder = opus_decoder::OpusDecoder::new(rate, channels)
            .map_err(|_| Error::Unsupported("opus: the decoder refused the stream's parameters"))?;
        // The pre-skip counts 48 kHz samples.
        let pre_skip = params.extra_data.as_deref().map(pre_skip).unwrap_or(0) * rate as usize / RATE as usize;
        let mut params = params.clone();
        params.with_sample_rate(rate).with_channels(layout);
        Ok(OpusDecoder {
            params,
            decoder,
            rate,
            channels,
            skip: pre_skip,
            pre_skip,
            pcm: vec![0.0; MAX_FRAMES * channels],
            buf: AudioBuffer::new(MAX_FRAMES as u64, SignalSpec::new(rate, layout)),
        })
    }

    fn supported_codecs() -> &'static [CodecDescriptor] {
        &[support_codec!(CODEC_TYPE_OPUS, "opus", "Opus (pure Rust)")]
    }

    fn reset(&mut self) {
        if let Ok(fresh) = opus_decoder::OpusDecoder::new(self.rate, self.channels) {
            self.decoder = fresh;
        }
        self.skip = self.pre_skip;
    }

    fn codec_params(&self) -> &CodecParameters {
        &self.params
    }

    fn decode(&mut self, packet: &Packet) -> Result<AudioBufferRef<'_>> {
        let frames = self
            .decoder
            .decode_float(&packet.data, &mut self.pcm, false)
            .map_err(|_| Error::DecodeError("opus: a packet could not be decoded"))?;
        let frames = frames.min(MAX_FRAMES);
        self.buf.clear();
        self.buf.render_reserved(Some(frames));
        let pcm = &self.pcm[..frames * self.channels];
        if self.channels == 1 {
            self.buf.chan_mut(0)[..frames].copy_from_slice(pcm);
        } else {
            let (left, right) = self.buf.chan_pair_mut(0, 1);
            for (i, pair) in pcm.chunks_exact(2).enumerate() {
                left[i] = pair[0];
                right[i] = pair[1];
            }
        }
        let skipped = self.skip.min(frames);
        self.skip -= skipped;
        let start = (skipped + packet.trim_start() as usize).min(frames);
        let end = (packet.trim_end() as usize).min(frames - start);
        self.buf.trim(start, end);
        Ok(self.buf.as_audio_buffer_ref())
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> AudioBufferRef<'_> {
        self.buf.as_audio_buffer_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::path::{Path, PathBuf};
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::CodecRegistry;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    /// Every sample of the file's first track, interleaved, through `registry`'s decoder.
    fn pcm(path: &Path, registry: &CodecRegistry) -> (u32, usize, Vec<f32>) {
        pcm_at(path, registry, None)
    }

    /// As `pcm`, telling the decoder the stream's rate is `rate` (libopus decodes at the rate it
    /// is told).
    fn pcm_at(path: &Path, registry: &CodecRegistry, rate: Option<u32>) -> (u32, usize, Vec<f32>) {
        let file = std::fs::File::open(path).expect("fixture");
        let stream = MediaSourceStream::new(Box::new(file), Default::default());
        let probed = symphonia::default::get_probe()
            .format(&Hint::new(), stream, &FormatOptions::default(), &MetadataOptions::default())
            .expect("probe");
        let mut format = probed.format;
        let track = format.default_track().expect("a track").clone();
        let mut params = track.codec_params.clone();
        if let Some(rate) = rate {
            params.with_sample_rate(rate);
        }
        let mut decoder = registry.make(&params, &DecoderOptions::default()).expect("a decoder");
        let (mut out, mut rate, mut channels) = (Vec::new(), 0, 0);
        while let Ok(packet) = format.next_packet() {
            if packet.track_id() != track.id {
                continue;
            }
            let decoded = decoder.decode(&packet).expect("a packet");
            let spec = *decoded.spec();
            (rate, channels) = (spec.rate, spec.channels.count());
            let mut samples = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
            samples.copy_interleaved_ref(decoded);
            out.extend_from_slice(samples.samples());
        }
        (rate, channels, out)
    }

    fn ours() -> CodecRegistry {
        let mut registry = CodecRegistry::new();
        registry.register_all::<OpusDecoder>();
        registry
    }

    #[test]
    fn the_opus_head_gives_the_pre_skip() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        assert_eq!(pre_skip(&head), 312);
        assert_eq!(pre_skip(b"OpusHea"), 0);
        assert_eq!(pre_skip(b"NotAHeadAtAll!!!!!"), 0);
    }

    #[test]
    fn the_fixtures_decode_to_their_length() {
        for name in ["speech.opus", "speech.webm"] {
            let (rate, channels, samples) = pcm(&fixture(name), &ours());
            assert_eq!(rate, RATE, "{name}");
            let ms = samples.len() / channels.max(1) * 1000 / rate as usize;
            assert!(ms.abs_diff(4179) <= 150, "{name}: {ms} ms");
            assert!(samples.iter().any(|s| s.abs() > 0.3), "{name}: speech, not silence");
        }
    }

    /// libopus (the `opus` feature) is the reference: at 48 kHz the same packets decode to the
    /// same sound, sample for sample within the precision of 16-bit output.
    #[test]
    #[cfg(feature = "opus")]
    fn decodes_as_libopus_does() {
        let mut reference = CodecRegistry::new();
        reference.register_all::<symphonia_adapter_libopus::OpusDecoder>();
        for name in ["speech.opus", "speech.webm"] {
            let (_, channels, ours) = pcm(&fixture(name), &ours());
            let (_, ref_channels, theirs) = pcm_at(&fixture(name), &reference, Some(RATE));
            assert_eq!(channels, ref_channels, "{name}");
            let n = ours.len().min(theirs.len());
            assert!(
                ours.len().abs_diff(theirs.len()) <= 960 * channels,
                "{name}: {} against {}",
                ours.len(),
                theirs.len()
            );
            let signal: f64 = theirs[..n].iter().map(|s| f64::from(*s).powi(2)).sum();
            let noise: f64 = ours[..n].iter().zip(&theirs[..n]).map(|(a, b)| f64::from(a - b).powi(2)).sum();
            let snr = 10.0 * (signal / noise.max(1e-12)).log10();
            assert!(snr > 40.0, "{name}: {snr:.1} dB from libopus's output");
        }
    }

    /// Hostile Opus: the fixtures with bytes flipped, runs overwritten and tails cut, decoded as
    /// uploads are (`analysis::decode`: within a time budget, a panic caught as a refusal). Each
    /// one ends, ready or refused; none hangs or takes the process down.
    #[test]
    fn mangled_opus_is_decoded_or_refused_never_hangs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0b05);
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut decoded, mut refused) = (0, 0);
        for name in ["speech.opus", "speech.webm"] {
            let original = std::fs::read(fixture(name)).expect("fixture");
            for case in 0..150 {
                let mut bytes = original.clone();
                match case % 3 {
                    0 => {
                        for _ in 0..rng.gen_range(1..40) {
                            let at = rng.gen_range(0..bytes.len());
                            bytes[at] ^= 1 << rng.gen_range(0..8);
                        }
                    }
                    1 => {
                        let at = rng.gen_range(0..bytes.len());
                        let len = rng.gen_range(1..256).min(bytes.len() - at);
                        let fill: u8 = rng.r#gen();
                        bytes[at..at + len].iter_mut().for_each(|b| *b = fill);
                    }
                    _ => bytes.truncate(rng.gen_range(0..bytes.len())),
                }
                let path = dir.path().join(format!("{case}-{name}"));
                std::fs::write(&path, &bytes).expect("write");
                let started = std::time::Instant::now();
                match crate::analysis::decode(&path) {
                    Ok(_) => decoded += 1,
                    Err(_) => refused += 1,
                }
                assert!(started.elapsed() < std::time::Duration::from_secs(20), "{name} case {case} took too long");
            }
        }
        assert_eq!(decoded + refused, 300);
        assert!(decoded > 0, "most small damage still decodes: {decoded} decoded, {refused} refused");
    }
}
