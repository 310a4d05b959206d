//! Running a Whisper model (CTranslate2 format, through `ct2rs`) over a whole recording.
//!
//! The parts around the model are ours: the audio is decoded and resampled to 16 kHz as a
//! stream, each 30 s window's log-mel features are computed here (`mel.rs`), the prompt is the
//! one the model was trained with (English-only models take no language or task token), the
//! output's timestamp tokens cut it into segments, and the next window starts where the last
//! complete segment ended, so a word at a window's edge is heard whole in the next one (as
//! openai-whisper seeks). Memory holds one window of audio and features, whatever the length.

use super::mel::{self, FRAMES, HOP, Mel, WINDOW_SAMPLES};
use super::resample::Resampler;
use super::{Segment, Transcript};
use crate::analysis::{Limits, MonoStream};
use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper, WhisperOptions};
use std::path::Path;

/// How the model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// CPU threads of the model.
    pub threads: usize,
    /// `int8` or `float32`.
    pub int8: bool,
    /// A language code (`en`, `de`…) or `None` to detect it (multilingual models).
    pub language: Option<String>,
    /// Beam width (1: greedy).
    pub beam_size: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { threads: 1, int8: true, language: None, beam_size: 5 }
    }
}

/// A loaded model.
pub struct Model {
    whisper: Whisper,
    vocabulary: Vec<String>,
    /// The id of `<|0.00|>`: every id from it on is a timestamp (20 ms steps). Looked up by text,
    /// as the numbering differs between English-only and multilingual vocabularies.
    timestamp_begin: usize,
    multilingual: bool,
    mel: Mel,
    options: Options,
    /// The model directory's name, for the transcript's `model`.
    pub name: String,
}

/// Why a model cannot be used.
pub fn load_error(dir: &Path, why: impl std::fmt::Display) -> String {
    format!("transcription.model {}: {why}", dir.display())
}

fn read_vocabulary(dir: &Path) -> Result<Vec<String>, String> {
    let txt = dir.join("vocabulary.txt");
    if txt.is_file() {
        let text = std::fs::read_to_string(&txt).map_err(|e| load_error(dir, format!("vocabulary.txt: {e}")))?;
        return Ok(text.lines().map(str::to_string).collect());
    }
    let json = dir.join("vocabulary.json");
    if json.is_file() {
        let text = std::fs::read_to_string(&json).map_err(|e| load_error(dir, format!("vocabulary.json: {e}")))?;
        return serde_json::from_str(&text).map_err(|e| load_error(dir, format!("vocabulary.json: {e}")));
    }
    Err(load_error(dir, "no vocabulary.txt or vocabulary.json: not a CTranslate2 Whisper model directory"))
}

impl Model {
    /// Loads the model in `dir`. Every way a directory can be wrong is an `Err` naming it.
    pub fn load(dir: &Path, options: Options) -> Result<Model, String> {
        if !dir.is_dir() {
            return Err(load_error(dir, "not a directory"));
        }
        for file in ["model.bin", "config.json"] {
            if !dir.join(file).is_file() {
                return Err(load_error(dir, format!("{file} is missing: not a CTranslate2 Whisper model directory")));
            }
        }
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load_error(dir, format!("config.json: {e}")))?;
        serde_json::from_str::<serde_json::Value>(&config_text)
            .map_err(|e| load_error(dir, format!("config.json is not JSON: {e}")))?;
        let vocabulary = read_vocabulary(dir)?;
        let id = |text: &str| vocabulary.iter().position(|t| t == text);
        let timestamp_begin = id("<|0.00|>")
            .or_else(|| id("<|notimestamps|>").map(|n| n + 1))
            .ok_or_else(|| load_error(dir, "the vocabulary has no timestamp tokens: not a Whisper model"))?;
        if id("<|startoftranscript|>").is_none() || id("<|endoftext|>").is_none() {
            return Err(load_error(dir, "the vocabulary lacks Whisper's special tokens"));
        }
        let config = Config {
            device: Device::CPU,
            compute_type: if options.int8 { ComputeType::INT8 } else { ComputeType::FLOAT32 },
            num_threads_per_replica: options.threads.max(1),
            ..Config::default()
        };
        let whisper = Whisper::new(dir, config).map_err(|e| load_error(dir, format!("cannot load: {e}")))?;
        let multilingual = whisper.is_multilingual();
        let n_mels = whisper.n_mels();
        if n_mels != 80 && n_mels != 128 {
            return Err(load_error(dir, format!("{n_mels} mel bins (Whisper models have 80 or 128)")));
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Model { whisper, vocabulary, timestamp_begin, multilingual, mel: Mel::new(n_mels), options, name })
    }

    /// The language of a window's features (multilingual models), as a code like `de`.
    fn detect_language(&self, features: &StorageView) -> Result<String, String> {
        let found = self.whisper.detect_language(features).map_err(|e| e.to_string())?;
        // The result's fields are private: its Debug form is `DetectionResult { language:
        // "<|de|>", probability: … }`.
        let best = found.first().and_then(|langs| langs.first()).map(|r| format!("{r:?}")).unwrap_or_default();
        best.split("<|")
            .nth(1)
            .and_then(|rest| rest.split("|>").next())
            .map(str::to_string)
            .ok_or_else(|| "the model detected no language".to_string())
    }

    /// Transcribes the audio file at `path`. `keep_going` is asked between windows (false: stop,
    /// `Ok(None)`); `limits` bound the decoding as analysis bounds it.
    pub fn transcribe(
        &self,
        path: &Path,
        limits: Limits,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Transcript>, String> {
        let mut audio = Audio16k::open(path, limits)?;
        let options = WhisperOptions {
            beam_size: self.options.beam_size.max(1),
            return_scores: true,
            return_no_speech_prob: true,
            ..WhisperOptions::default()
        };
        let mut language = if self.multilingual { self.options.language.clone() } else { Some("en".to_string()) };
        let mut segments = Vec::new();
        // Where the next window starts, in mel frames (10 ms) from the start of the audio.
        let mut seek: usize = 0;
        loop {
            if !keep_going() {
                return Ok(None);
            }
            let start = seek * HOP;
            let samples = audio.window(start)?;
            // Less than one frame of audio left: the end.
            if samples.len() < HOP {
                break;
            }
            let window_frames = (samples.len() / HOP).min(FRAMES);
            let mut features = self.mel.window(samples);
            let view = StorageView::new(&[1, self.mel.n_mels(), FRAMES], &mut features, Device::CPU)
                .map_err(|e| format!("features: {e}"))?;
            if language.is_none() {
                language = Some(self.detect_language(&view)?);
            }
            let prompt = self.prompt(language.as_deref());
            let results = self.whisper.generate(&view, &[prompt], &options).map_err(|e| e.to_string())?;
            let Some(result) = results.into_iter().next() else { break };
            let ids = result.sequences_ids.first().cloned().unwrap_or_default();
            let score = result.scores.first().copied().unwrap_or(0.0);
            let offset_ms = (seek * 10) as i64;
            // Silence (or noise) the model would invent words for: skipped, as faster-whisper does.
            let silent = result.no_speech_prob > 0.6 && score < -1.0;
            let (found, advance) = self.segments(&ids, offset_ms, window_frames);
            if !silent {
                segments.extend(found);
            }
            seek += advance.clamp(1, window_frames.max(1));
            if samples.len() < WINDOW_SAMPLES && seek * HOP >= start + samples.len() {
                break;
            }
        }
        Ok(Some(Transcript {
            language: language.unwrap_or_else(|| "en".to_string()),
            model: self.name.clone(),
            segments: merge_repeats(segments),
        }))
    }

    fn prompt(&self, language: Option<&str>) -> Vec<String> {
        let mut prompt = vec!["<|startoftranscript|>".to_string()];
        if self.multilingual {
            prompt.push(format!("<|{}|>", language.unwrap_or("en")));
            prompt.push("<|transcribe|>".to_string());
        }
        prompt
    }

    /// Cuts one window's tokens into timed segments; returns them and how many frames the next
    /// window moves on (to the end of the last complete segment, or the whole window).
    fn segments(&self, ids: &[usize], offset_ms: i64, window_frames: usize) -> (Vec<Segment>, usize) {
        let begin = self.timestamp_begin;
        let is_time = |id: usize| id >= begin;
        // A timestamp token is 20 ms (2 frames).
        let ms_of = |id: usize| ((id - begin) * 20) as i64;
        let text_of = |tokens: &[usize]| {
            super::text::decode(
                tokens.iter().filter(|&&t| t < begin).filter_map(|&t| self.vocabulary.get(t).map(String::as_str)),
            )
        };
        let mut segments = Vec::new();
        let ends_with_single_time = ids.len() >= 2 && is_time(ids[ids.len() - 1]) && !is_time(ids[ids.len() - 2]);
        // Pairs of timestamps side by side end one segment and start the next.
        let cuts: Vec<usize> = (1..ids.len()).filter(|&i| is_time(ids[i]) && is_time(ids[i - 1])).collect();
        if cuts.is_empty() {
            let text = text_of(ids);
            let last_time = ids.iter().rev().find(|&&id| is_time(id)).map(|&id| ms_of(id)).filter(|&ms| ms > 0);
            let end = last_time.unwrap_or((window_frames * 10) as i64);
            if !text.trim().is_empty() {
                segments.push(Segment { start_ms: offset_ms, end_ms: offset_ms + end, text: text.trim().to_string() });
            }
            return (segments, window_frames);
        }
        let mut bounds = cuts.clone();
        if ends_with_single_time {
            bounds.push(ids.len());
        }
        let mut last = 0;
        for &cut in &bounds {
            let piece = &ids[last..cut];
            last = cut;
            let (Some(&first), Some(&end)) = (piece.first(), piece.last()) else { continue };
            if !is_time(first) || !is_time(end) {
                continue;
            }
            let text = text_of(piece);
            if text.trim().is_empty() {
                continue;
            }
            segments.push(Segment {
                start_ms: offset_ms + ms_of(first),
                end_ms: offset_ms + ms_of(end),
                text: text.trim().to_string(),
            });
        }
        let advance = if ends_with_single_time {
            window_frames
        } else {
            // The last complete segment ends at the timestamp before the last cut.
            let last_cut = *cuts.last().unwrap_or(&0);
            let end = ids.get(last_cut.saturating_sub(1)).copied().filter(|&id| is_time(id)).map_or(0, ms_of);
            (end / 10) as usize
        };
        (segments, advance)
    }
}

/// Consecutive segments with the same text are one (a window that heard its last words twice).
fn merge_repeats(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for mut segment in segments {
        if let Some(prev) = out.last_mut()
            && prev.text == segment.text
        {
            prev.end_ms = prev.end_ms.max(segment.end_ms);
            continue;
        }
        if let Some(prev) = out.last() {
            // Times never go back.
            segment.start_ms = segment.start_ms.max(prev.start_ms);
        }
        segment.end_ms = segment.end_ms.max(segment.start_ms);
        out.push(segment);
    }
    out
}

/// A recording as 16 kHz mono samples, kept from the current window on.
struct Audio16k {
    stream: MonoStream,
    resampler: Option<(u32, Resampler)>,
    /// Samples from sample number `base` on.
    samples: Vec<f32>,
    base: usize,
    ended: bool,
}

impl Audio16k {
    fn open(path: &Path, limits: Limits) -> Result<Audio16k, String> {
        let stream = MonoStream::open(path, limits).map_err(|e| e.to_string())?;
        Ok(Audio16k { stream, resampler: None, samples: Vec::new(), base: 0, ended: false })
    }

    /// Up to 30 s of samples from sample number `start` (fewer only at the end).
    fn window(&mut self, start: usize) -> Result<&[f32], String> {
        // What is before the window is not needed again.
        if start > self.base {
            let drop = (start - self.base).min(self.samples.len());
            self.samples.drain(..drop);
            self.base += drop;
        }
        while !self.ended && self.base + self.samples.len() < start + WINDOW_SAMPLES {
            match self.stream.next_chunk().map_err(|e| e.to_string())? {
                Some((chunk, rate)) => {
                    if self.resampler.as_ref().is_none_or(|(r, _)| *r != rate) {
                        self.resampler = Some((rate, Resampler::new(rate, mel::SAMPLE_RATE)));
                    }
                    if let Some((_, r)) = self.resampler.as_mut() {
                        r.push(chunk, &mut self.samples);
                    }
                }
                None => {
                    if let Some((_, r)) = self.resampler.as_mut() {
                        r.finish(&mut self.samples);
                    }
                    self.ended = true;
                }
            }
        }
        let from = start.saturating_sub(self.base).min(self.samples.len());
        let to = (from + WINDOW_SAMPLES).min(self.samples.len());
        Ok(&self.samples[from..to])
    }
}
