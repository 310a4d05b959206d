// The public page of a share link (/s/<token>): draws the recording's waveform above the
// player, shows how much has played, and seeks where it is clicked. The page works without it.

const main = document.querySelector('main.share');
const audio = main?.querySelector('audio');
const canvas = main?.querySelector('canvas.share-waveform');
const BAR = 3; // CSS pixels per bar, gap included

async function fetchWaveform(url) {
  try {
    const response = await fetch(url);
    if (!response.ok) return null;
    const wave = await response.json();
    return Array.isArray(wave.peaks) && wave.peaks.length > 0 && wave.bucket_ms > 0 ? wave : null;
  } catch {
    return null;
  }
}

function colors() {
  const style = getComputedStyle(canvas);
  return {
    played: style.getPropertyValue('--played').trim() || '#0064d2',
    rest: style.getPropertyValue('--rest').trim() || '#aeaeb2',
  };
}

function start(wave) {
  const { peaks } = wave;
  const fallback = (peaks.length * wave.bucket_ms) / 1000;
  const duration = () => (Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration : fallback);

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext('2d');
    ctx.scale(ratio, ratio);
    const { played, rest } = colors();
    const bars = Math.max(1, Math.floor(width / BAR));
    const per = peaks.length / bars;
    const progress = audio.currentTime / duration();
    for (let i = 0; i < bars; i++) {
      const from = Math.floor(i * per);
      const to = Math.max(from + 1, Math.floor((i + 1) * per));
      let peak = 0;
      for (let j = from; j < to && j < peaks.length; j++) peak = Math.max(peak, peaks[j]);
      const h = Math.max(1, (peak / 255) * height);
      ctx.fillStyle = (i + 0.5) / bars <= progress ? played : rest;
      ctx.fillRect(i * BAR, (height - h) / 2, BAR - 1, h);
    }
  }

  canvas.hidden = false;
  canvas.addEventListener('click', (event) => {
    const box = canvas.getBoundingClientRect();
    const at = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    audio.currentTime = at * duration();
    draw();
  });
  for (const name of ['timeupdate', 'seeked', 'durationchange', 'loadedmetadata']) audio.addEventListener(name, draw);
  window.addEventListener('resize', draw);
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', draw);
  draw();
}

if (main && audio && canvas && main.dataset.waveform) {
  fetchWaveform(main.dataset.waveform).then((wave) => {
    if (wave) start(wave);
  });
}
