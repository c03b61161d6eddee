// The ringtone, made in the page with WebAudio (no sound file is fetched): a
// two-tone ring for a call, a short soft beep for a call waiting during a call.

let ctx = null;
let stopCurrent = null;

function audio() {
  ctx ||= new AudioContext();
  if (ctx.state === 'suspended') ctx.resume().catch(() => {});
  return ctx;
}

/** Plays until stop(); kind: 'ring' | 'waiting'. */
export function start(kind = 'ring') {
  stop();
  let ac;
  try { ac = audio(); } catch { return; }
  const out = ac.createGain();
  out.gain.value = kind === 'ring' ? 0.18 : 0.08;
  out.connect(ac.destination);
  const freqs = kind === 'ring' ? [440, 480] : [620];
  const oscs = freqs.map((f) => {
    const o = ac.createOscillator();
    o.frequency.value = f;
    o.connect(out);
    o.start();
    return o;
  });
  // Cadence: ring 2 s on / 4 s off (waiting: 0.3 s every 4 s), by gain automation.
  const on = kind === 'ring' ? 2 : 0.3;
  const period = 4 + (kind === 'ring' ? 2 : 0);
  const level = out.gain.value;
  let next = ac.currentTime;
  const plan = () => {
    while (next < ac.currentTime + 12) {
      out.gain.setValueAtTime(level, next);
      out.gain.setValueAtTime(0, next + on);
      next += period;
    }
  };
  plan();
  const topUp = setInterval(plan, 4000);
  stopCurrent = () => {
    clearInterval(topUp);
    for (const o of oscs) { try { o.stop(); } catch { /* already stopped */ } }
    out.disconnect();
  };
  document.documentElement.dataset.ringtone = kind;
}

export function stop() {
  stopCurrent?.();
  stopCurrent = null;
  delete document.documentElement.dataset.ringtone;
}
