// A stand-in SFU in a browser page, for working on the web client's SFU view
// without the server: one RTCPeerConnection per participant, every received track
// forwarded to every other participant, with the `tracks` message before each of
// its offers (API.md, SFU part). Impolite: it ignores a client's offer while its own
// is pending. No simulcast, no speaker detection (activeSpeaker cycles every 4 s).
const bc = new BroadcastChannel('fake-sfu');
const peers = new Map(); // contactId -> {pc, session, fwd: Map(key -> forwarding transceiver)}
let sessions = 0;
const log = (...a) => { document.getElementById('log').textContent += a.join(' ') + '\n'; };
const send = (to, payload) => bc.postMessage({ to, frame: { type: 'sfu', callId: 'fake', payload } });

function peerOf(id) {
  if (peers.has(id)) return peers.get(id);
  const pc = new RTCPeerConnection();
  const p = { id, pc, session: ++sessions, fwd: new Map(), queue: Promise.resolve(), again: false };
  pc.ontrack = () => setTimeout(refresh, 0);
  peers.set(id, p);
  return p;
}

const gathered = (pc) => new Promise((r) => {
  if (pc.iceGatheringState === 'complete') return r();
  pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
});

/** What each participant sends, by the order of its m-lines: first video camera, later ones screen. */
function published(p) {
  const out = [];
  let videos = 0;
  for (const t of p.pc.getTransceivers()) {
    // The client's sendonly m-lines are recvonly here; our forwarding ones are sendonly.
    if (!t.mid || t.stopped || t.currentDirection !== 'recvonly') continue;
    const kind = t.receiver.track.kind;
    const source = kind === 'video' && videos++ > 0 ? 'screen' : 'camera';
    out.push({ key: `${p.id}:${p.session}:${t.mid}`, contactId: p.id, kind, source, track: t.receiver.track });
  }
  return out;
}

/** Brings every participant's forwarded tracks in line with what everyone publishes. */
function refresh() {
  const all = [...peers.values()].flatMap(published);
  for (const p of peers.values()) {
    let changed = false;
    const want = all.filter((f) => f.contactId !== p.id);
    for (const f of want) {
      const t = p.fwd.get(f.key);
      if (!t) {
        p.fwd.set(f.key, Object.assign(p.pc.addTransceiver(f.track, { direction: 'sendonly' }), { info: f }));
        changed = true;
      } else if (t.direction !== 'sendonly') {
        t.direction = 'sendonly';
        t.sender.replaceTrack(f.track);
        changed = true;
      }
    }
    for (const [key, t] of p.fwd) {
      if (!want.some((f) => f.key === key) && t.direction !== 'inactive') {
        t.direction = 'inactive';
        changed = true;
      }
    }
    if (changed) offer(p);
  }
}

function offer(p) {
  p.queue = p.queue.then(async () => {
    if (p.pc.signalingState !== 'stable') { p.again = true; return; }
    await p.pc.setLocalDescription();
    await gathered(p.pc);
    const tracks = [...p.fwd.values()].filter((t) => t.direction === 'sendonly' && t.mid)
      .map((t) => ({ mid: t.mid, contactId: t.info.contactId, kind: t.info.kind, source: t.info.source }));
    send(p.id, { tracks });
    send(p.id, { sdp: { type: 'offer', sdp: p.pc.localDescription.sdp } });
    log('offer to', p.id, JSON.stringify(tracks));
  }).catch((e) => log('offer failed', p.id, e));
}

bc.onmessage = ({ data }) => {
  if (data.to !== 'hub') return;
  const payload = data.frame.payload || {};
  let p = peerOf(data.from);
  p.queue = p.queue.then(async () => {
    if (payload.sdp?.type === 'offer') {
      const fp = /a=fingerprint:(\S+ \S+)/.exec(payload.sdp.sdp)?.[1];
      if (p.fp && fp !== p.fp) {
        // A new connection of the same participant replaces the old session.
        log('new session of', p.id);
        p.pc.close();
        peers.delete(p.id);
        p = peerOf(data.from);
        p.fp = fp;
        setTimeout(refresh, 0);
      }
      p.fp = fp;
      if (p.pc.signalingState !== 'stable') { log('glare: ignoring the offer of', p.id); return; }
      await p.pc.setRemoteDescription(payload.sdp);
      await p.pc.setLocalDescription();
      await gathered(p.pc);
      send(p.id, { sdp: { type: 'answer', sdp: p.pc.localDescription.sdp } });
      log('answered', p.id);
      setTimeout(refresh, 0);
    } else if (payload.sdp?.type === 'answer') {
      if (p.pc.signalingState === 'have-local-offer') await p.pc.setRemoteDescription(payload.sdp);
      if (p.again) { p.again = false; offer(p); }
    } else if (payload.candidate) {
      await p.pc.addIceCandidate(payload.candidate).catch(() => {});
    }
  }).catch((e) => log('failed', p.id, e));
};

let turn = 0;
setInterval(() => {
  const ids = [...peers.keys()];
  if (!ids.length) return;
  const speaker = ids[turn++ % ids.length];
  for (const id of ids) send(id, { activeSpeaker: speaker });
}, 4000);
log('hub ready');
