// Connection quality from a peer connection's getStats(): round trip, loss and
// bitrate since the last reading, and the four-bar level the call view shows.

/**
 * report: an RTCStatsReport (or any iterable Map of stats); last: the previous
 * reading's totals (or null); now: ms. Returns {rtt (ms), loss (%), kbps, totals}.
 */
export function qualityOf(report, last, now) {
  let rtt = null, lost = 0, received = 0, bytes = 0;
  let pairId = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  report.forEach((s) => {
    if (s.type === 'candidate-pair' && (s.id === pairId || (!pairId && s.nominated && s.state === 'succeeded'))) {
      if (typeof s.currentRoundTripTime === 'number') rtt = s.currentRoundTripTime * 1000;
    }
    if (s.type === 'inbound-rtp') {
      lost += s.packetsLost || 0;
      received += s.packetsReceived || 0;
      bytes += s.bytesReceived || 0;
    }
  });
  const before = last || { lost: 0, received: 0, bytes: 0, at: now };
  const dLost = Math.max(0, lost - before.lost), dRecv = Math.max(0, received - before.received);
  const secs = (now - before.at) / 1000;
  return {
    rtt,
    loss: dLost + dRecv > 0 ? (100 * dLost) / (dLost + dRecv) : null,
    kbps: secs > 0 ? ((bytes - before.bytes) * 8) / 1000 / secs : null,
    totals: { lost, received, bytes, at: now },
  };
}

/** 4 (good) .. 1 (poor) from round trip and loss. */
export function levelOf({ rtt, loss }) {
  let level = 4;
  if ((rtt ?? 0) > 150 || (loss ?? 0) > 2) level = 3;
  if ((rtt ?? 0) > 300 || (loss ?? 0) > 5) level = 2;
  if ((rtt ?? 0) > 600 || (loss ?? 0) > 12) level = 1;
  return level;
}
