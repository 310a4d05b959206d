//! Whisper's input: the log-mel spectrogram of 30 s of 16 kHz mono audio, computed as
//! openai-whisper computes it (and faster-whisper after it): a 400-point STFT with a periodic
//! Hann window and a hop of 160 samples, centred with reflected padding, the power spectrum
//! through a Slaney-style mel filterbank (librosa's `filters.mel(sr=16000, n_fft=400)`), log10
//! clamped at 1e-10, floored at 8 below its maximum, then scaled as (x + 4) / 4.

use rustfft::num_complex::Complex32;
use std::sync::Arc;

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Frames in one window of the model (30 s at 10 ms).
pub const FRAMES: usize = 3000;
/// Samples in one window.
pub const WINDOW_SAMPLES: usize = FRAMES * HOP;
const BINS: usize = N_FFT / 2 + 1;

/// Computes windows of features for a model with `n_mels` mel bins (80, or 128 for large-v3).
pub struct Mel {
    n_mels: usize,
    filters: Vec<f32>,
    hann: Vec<f32>,
    fft: Arc<dyn rustfft::Fft<f32>>,
}

impl Mel {
    pub fn new(n_mels: usize) -> Mel {
        let hann = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        let fft = rustfft::FftPlanner::new().plan_fft_forward(N_FFT);
        Mel { n_mels, filters: filterbank(n_mels), hann, fft }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The features of up to 30 s of samples (zero-padded to 30 s): `n_mels` rows of `FRAMES`
    /// values, row after row.
    pub fn window(&self, samples: &[f32]) -> Vec<f32> {
        let samples = &samples[..samples.len().min(WINDOW_SAMPLES)];
        let at = |i: usize| samples.get(i).copied().unwrap_or(0.0);
        let n = WINDOW_SAMPLES;
        let pad = N_FFT / 2;
        // The centred frame t covers padded[t*HOP .. t*HOP + N_FFT], where padded reflects the
        // window's samples at both ends (numpy's "reflect": the edge sample is not repeated).
        let padded = |j: usize| -> f32 {
            if j < pad {
                at(pad - j)
            } else if j - pad < n {
                at(j - pad)
            } else {
                let k = j - pad - n;
                at(n - 2 - k)
            }
        };
        let mut out = vec![0f32; self.n_mels * FRAMES];
        let mut buf = vec![Complex32::new(0.0, 0.0); N_FFT];
        let mut scratch = vec![Complex32::new(0.0, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = [0f32; BINS];
        for t in 0..FRAMES {
            let start = t * HOP;
            for (i, slot) in buf.iter_mut().enumerate() {
                *slot = Complex32::new(padded(start + i) * self.hann[i], 0.0);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            for (k, p) in power.iter_mut().enumerate() {
                *p = buf[k].norm_sqr();
            }
            for m in 0..self.n_mels {
                let row = &self.filters[m * BINS..(m + 1) * BINS];
                let energy: f32 = row.iter().zip(power.iter()).map(|(w, p)| w * p).sum();
                out[m * FRAMES + t] = energy.max(1e-10).log10();
            }
        }
        let max = out.iter().copied().fold(f32::MIN, f32::max);
        for v in &mut out {
            *v = ((*v).max(max - 8.0) + 4.0) / 4.0;
        }
        out
    }
}

fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let (min_log_hz, min_log_mel, logstep) = (1000.0, 1000.0 / f_sp, 6.4f64.ln() / 27.0);
    if hz >= min_log_hz { min_log_mel + (hz / min_log_hz).ln() / logstep } else { hz / f_sp }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let (min_log_hz, min_log_mel, logstep) = (1000.0, 1000.0 / f_sp, 6.4f64.ln() / 27.0);
    if mel >= min_log_mel { min_log_hz * (logstep * (mel - min_log_mel)).exp() } else { f_sp * mel }
}

/// The mel filterbank, `n_mels` rows of `N_FFT / 2 + 1` weights (librosa's Slaney scale and
/// area normalisation, 0 to 8 kHz).
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let sr = f64::from(SAMPLE_RATE);
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let points: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(low + (high - low) * i as f64 / (n_mels + 1) as f64)).collect();
    let freqs: Vec<f64> = (0..BINS).map(|k| k as f64 * sr / N_FFT as f64).collect();
    let mut weights = vec![0f32; n_mels * BINS];
    for m in 0..n_mels {
        let (left, centre, right) = (points[m], points[m + 1], points[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in freqs.iter().enumerate() {
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            weights[m * BINS + k] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filterbank_triangles_have_unit_area_and_climb_the_spectrum() {
        let w = filterbank(80);
        // Slaney normalisation: each triangle's area over Hz is 1. Rows wide enough to span
        // many 40 Hz bins sum (times the bin width) to 1 within the sampling error.
        for m in 41..80 {
            let area: f32 = w[m * BINS..(m + 1) * BINS].iter().sum::<f32>() * 40.0;
            assert!((area - 1.0).abs() < 0.05, "row {m}: area {area}");
        }
        // Row 0 spans 0 to ~75 Hz: its one non-zero bin is bin 1 (40 Hz).
        assert_eq!(w[0], 0.0);
        assert!(w[1] > 0.02 && w[1] < 0.03, "row 0 bin 1: {}", w[1]);
        assert!(w[2..BINS].iter().all(|&x| x == 0.0));
        // Every row has weight somewhere, and the rows' supports move up the spectrum.
        let firsts: Vec<usize> =
            (0..80).map(|m| w[m * BINS..(m + 1) * BINS].iter().position(|&x| x > 0.0).unwrap_or(BINS)).collect();
        assert!(firsts.iter().all(|&f| f < BINS));
        assert!(firsts.windows(2).all(|p| p[0] <= p[1]));
        assert!(w[79 * BINS + BINS - 2] > 0.0, "the top row reaches near 8 kHz");
    }

    #[test]
    fn a_tone_lights_the_mel_bins_of_its_frequency() {
        let mel = Mel::new(80);
        let tone: Vec<f32> =
            (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin()).collect();
        let features = mel.window(&tone);
        assert_eq!(features.len(), 80 * FRAMES);
        // In the middle of the tone, the loudest bin is the one centred near 1 kHz.
        let t = 50;
        let loudest = (0..80).max_by(|&a, &b| features[a * FRAMES + t].total_cmp(&features[b * FRAMES + t]));
        let centre =
            |m: usize| mel_to_hz(hz_to_mel(0.0) + (hz_to_mel(8000.0) - hz_to_mel(0.0)) * (m + 1) as f64 / 81.0);
        let m = loudest.unwrap_or(0);
        assert!((centre(m) - 1000.0).abs() < 80.0, "loudest bin {m} is centred at {} Hz", centre(m));
        // After the tone (1 s) comes the zero padding: the floor, 8 below the maximum.
        let max = features.iter().copied().fold(f32::MIN, f32::max);
        assert!((features[2000] - (max - 2.0)).abs() < 1e-5);
    }
}
