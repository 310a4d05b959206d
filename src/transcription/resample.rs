//! Any sample rate to 16 kHz, streamed: a windowed-sinc low-pass interpolator (Blackman window,
//! cut-off at the lower Nyquist frequency), with the filter phases computed once when the two
//! rates have a small common period (44.1, 48, 22.05, 8 kHz…), else per output sample.

use std::collections::VecDeque;

/// Half-length of the filter, in samples of the slower side.
const HALF_TAPS: f64 = 16.0;
/// Phase tables are kept for periods up to this many output samples.
const MAX_PHASES: usize = 1024;

pub struct Resampler {
    /// Input samples per output sample.
    ratio: f64,
    /// Cut-off as a fraction of the input's Nyquist frequency (1 when upsampling).
    cutoff: f64,
    /// Filter half-width in input samples.
    half: usize,
    /// Input samples kept, `history[0]` being input sample number `base`.
    history: VecDeque<f32>,
    base: u64,
    /// The next output sample's number.
    next: u64,
    /// Precomputed filters by phase (output number modulo `period`), when small enough.
    phases: Option<Vec<Vec<f32>>>,
    /// The integer input-sample step of each period of outputs, and the outputs per period.
    period: u64,
    period_inputs: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) }
}

fn blackman(x: f64) -> f64 {
    // x in [-1, 1].
    let t = (x + 1.0) / 2.0;
    0.42 - 0.5 * (2.0 * std::f64::consts::PI * t).cos() + 0.08 * (4.0 * std::f64::consts::PI * t).cos()
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Resampler {
        let (from, to) = (u64::from(from.max(1)), u64::from(to.max(1)));
        let ratio = from as f64 / to as f64;
        let cutoff = (1.0 / ratio).min(1.0) * 0.95;
        let half = (HALF_TAPS / cutoff).ceil() as usize;
        let g = gcd(from, to);
        let (period, period_inputs) = (to / g, from / g);
        let mut r = Resampler {
            ratio,
            cutoff,
            half,
            history: VecDeque::new(),
            base: 0,
            next: 0,
            phases: None,
            period,
            period_inputs,
        };
        if from != to && (period as usize) <= MAX_PHASES {
            let phases = (0..period).map(|j| r.filter(r.position(j).fract())).collect();
            r.phases = Some(phases);
        }
        r
    }

    /// Where output sample `j` falls in the input, in input samples.
    fn position(&self, j: u64) -> f64 {
        j as f64 * self.ratio
    }

    /// The taps for an output at fractional offset `frac` past input sample `i`: weights of
    /// inputs `i - half + 1 ..= i + half`.
    fn filter(&self, frac: f64) -> Vec<f32> {
        let half = self.half as i64;
        ((-half + 1)..=half)
            .map(|k| {
                let x = k as f64 - frac;
                let w = blackman((x / (half as f64)).clamp(-1.0, 1.0));
                (self.cutoff * sinc(self.cutoff * x) * w) as f32
            })
            .collect()
    }

    /// Feeds input samples; appends the output samples they complete to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.same_rate() {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend(input.iter().copied());
        while self.emit(out) {}
    }

    /// The end of the input: the last outputs, with silence after the last sample.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.same_rate() {
            return;
        }
        let end = self.base + self.history.len() as u64;
        self.history.extend(std::iter::repeat_n(0.0, self.half + 1));
        let last = (end as f64 / self.ratio).ceil() as u64;
        while self.next < last {
            if !self.emit(out) {
                break;
            }
        }
    }

    fn same_rate(&self) -> bool {
        self.period == 1 && self.period_inputs == 1
    }

    /// Computes the next output if its inputs are all here.
    fn emit(&mut self, out: &mut Vec<f32>) -> bool {
        let pos = self.position(self.next);
        let i = pos.floor() as u64;
        let needed = i + self.half as u64;
        if needed >= self.base + self.history.len() as u64 {
            return false;
        }
        let taps = match &self.phases {
            Some(phases) => std::borrow::Cow::Borrowed(&phases[(self.next % self.period) as usize]),
            None => std::borrow::Cow::Owned(self.filter(pos.fract())),
        };
        let first = i as i64 - self.half as i64 + 1;
        let mut acc = 0f32;
        for (k, w) in taps.iter().enumerate() {
            let at = first + k as i64;
            if at >= self.base as i64 {
                acc += self.history[(at - self.base as i64) as usize] * w;
            }
        }
        out.push(acc);
        self.next += 1;
        // Inputs before the next output's filter are no longer needed.
        let keep_from = (self.position(self.next).floor() as i64 - self.half as i64 + 1).max(0) as u64;
        while self.base < keep_from && !self.history.is_empty() {
            self.history.pop_front();
            self.base += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n).map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()).collect()
    }

    fn resample(input: &[f32], from: u32, chunk: usize) -> Vec<f32> {
        let mut r = Resampler::new(from, 16_000);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        out
    }

    #[test]
    fn lengths_follow_the_ratio_for_common_rates() {
        for rate in [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000, 44_101] {
            let out = resample(&tone(rate, 440.0, 2.0), rate, 4096);
            assert!((out.len() as i64 - 32_000).abs() <= 2, "{rate} Hz: {} samples", out.len());
        }
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_level_and_chunking_does_not_matter() {
        for rate in [44_100, 48_000, 8_000, 44_101] {
            let input = tone(rate, 1000.0, 1.0);
            let out = resample(&input, rate, 1000);
            let same = resample(&input, rate, 7);
            assert_eq!(out, same, "{rate} Hz: output depends on how the input is cut");
            let expected = tone(16_000, 1000.0, 1.0);
            // Away from the edges the output is the same tone.
            let err =
                out[2000..14_000].iter().zip(&expected[2000..14_000]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 0.02, "{rate} Hz: max error {err}");
        }
    }

    #[test]
    fn frequencies_above_8_khz_are_removed() {
        let out = resample(&tone(48_000, 12_000.0, 1.0), 48_000, 4096);
        let rms = (out[2000..14_000].iter().map(|x| x * x).sum::<f32>() / 12_000.0).sqrt();
        assert!(rms < 0.01, "a 12 kHz tone leaks through at rms {rms}");
    }
}
