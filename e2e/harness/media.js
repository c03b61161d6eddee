// Reads a page's WebRTC state through the peer connections observeMedia() kept.

/** Sums of every live connection's inbound-rtp and the selected candidate pair. */
export async function mediaStats(page) {
  return page.evaluate(async () => {
    const out = { framesDecoded: 0, audioEnergy: 0, audioPackets: 0, pcs: 0, policies: [], pairs: [] };
    for (const pc of window.__e2e.pcs) {
      if (pc.connectionState === 'closed') continue;
      out.pcs += 1;
      out.policies.push(pc.getConfiguration().iceTransportPolicy);
      const stats = await pc.getStats();
      const byId = new Map([...stats.values()].map((s) => [s.id, s]));
      for (const s of stats.values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded += s.framesDecoded ?? 0;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          out.audioEnergy += s.totalAudioEnergy ?? 0;
          out.audioPackets += s.packetsReceived ?? 0;
        }
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          const pair = byId.get(s.selectedCandidatePairId);
          const local = pair && byId.get(pair.localCandidateId);
          const remote = pair && byId.get(pair.remoteCandidateId);
          if (local && remote) {
            out.pairs.push({ local: local.candidateType, remote: remote.candidateType, localPort: local.port, protocol: local.protocol, state: pair.state });
          }
        }
      }
    }
    return out;
  });
}

/** Frames each remote <video data-contact-id> has shown so far, by contact id. */
export async function remoteVideoFrames(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('video[data-contact-id]')].map((v) => [
    v.dataset.contactId,
    { frames: v.getVideoPlaybackQuality().totalVideoFrames, width: v.videoWidth },
  ])));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the page decodes remote video (getStats framesDecoded > 0) and a
 * remote <video> shows frames that keep advancing. Returns the last readings.
 */
export async function expectRemoteVideoFlowing(page, { timeout = 20000 } = {}) {
  const until = Date.now() + timeout;
  let last;
  for (;;) {
    const stats = await mediaStats(page);
    const videos = Object.values(await remoteVideoFrames(page));
    if (stats.framesDecoded > 0 && videos.some((v) => v.frames > 0 && v.width > 0)) {
      await sleep(500);
      const later = Object.values(await remoteVideoFrames(page));
      const stats2 = await mediaStats(page);
      const advancing = later.some((v, i) => v.frames > (videos[i]?.frames ?? 0));
      if (advancing && stats2.framesDecoded > stats.framesDecoded) return { stats: stats2, videos: later };
    }
    last = { stats, videos };
    if (Date.now() > until) throw new Error(`no remote video flowing within ${timeout} ms: ${JSON.stringify(last)}`);
    await sleep(250);
  }
}

/** Audio energy received over `ms` (totalAudioEnergy grows with loudness x time). */
export async function audioEnergyOver(page, ms = 2000) {
  const before = await mediaStats(page);
  await sleep(ms);
  const after = await mediaStats(page);
  return { energy: after.audioEnergy - before.audioEnergy, packets: after.audioPackets - before.audioPackets };
}

export { sleep };
