// The local camera and microphone: opening them (falling back to audio only, or
// nothing, when a device is missing or refused), switching devices, screen capture.

/** Opens microphone and (if video) camera; never throws: an empty stream at worst. */
export async function openLocal({ video = true, audioId, videoId } = {}) {
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  const cam = videoId ? { deviceId: { exact: videoId } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
  const tries = video ? [{ audio, video: cam }, { audio }, { video: cam }] : [{ audio }];
  let lastError = null;
  for (const constraints of tries) {
    try {
      return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: lastError };
    } catch (e) {
      lastError = e;
    }
  }
  return { stream: new MediaStream(), error: lastError };
}

/** A new camera track, or null when none can be opened. */
export async function openCamera(videoId) {
  try {
    const s = await navigator.mediaDevices.getUserMedia({
      video: videoId ? { deviceId: { exact: videoId } } : { width: { ideal: 1280 }, height: { ideal: 720 } },
    });
    return s.getVideoTracks()[0];
  } catch {
    return null;
  }
}

export async function openMicrophone(audioId) {
  try {
    const s = await navigator.mediaDevices.getUserMedia({ audio: audioId ? { deviceId: { exact: audioId } } : true });
    return s.getAudioTracks()[0];
  } catch {
    return null;
  }
}

/** The screen (or a window) to share, or null when the person cancels. */
export async function openScreen() {
  try {
    const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    return s.getVideoTracks()[0];
  } catch {
    return null;
  }
}

/** {cameras, microphones}: MediaDeviceInfo lists (labels once permission is given). */
export async function devices() {
  const all = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  return {
    cameras: all.filter((d) => d.kind === 'videoinput'),
    microphones: all.filter((d) => d.kind === 'audioinput'),
  };
}

/** Swaps the track of its kind in `stream` for `track` (or removes it), stopping the old one. */
export function swapTrack(stream, kind, track) {
  for (const old of stream.getTracks().filter((t) => t.kind === kind)) {
    stream.removeTrack(old);
    old.stop();
  }
  if (track) stream.addTrack(track);
}
