// The SFU call's stage as pure functions: which tiles there are (people, their
// screens), the grid's shape for a number of tiles, and who is large in focus mode.

/**
 * The SFU's `tracks` list as a Map mid -> {contactId, kind, source}; entries that
 * are not well formed are dropped (the list comes from the wire).
 */
export function tracksByMid(list) {
  const out = new Map();
  for (const t of Array.isArray(list) ? list : []) {
    if (!t || t.mid === undefined || t.mid === null || typeof t.contactId !== 'number') continue;
    if (t.kind !== 'audio' && t.kind !== 'video') continue;
    out.set(String(t.mid), { contactId: t.contactId, kind: t.kind, source: t.source === 'screen' ? 'screen' : 'camera' });
  }
  return out;
}

/** The key of a tile: one per person (camera and voice), one per shared screen. */
export const tileKey = (contactId, source = 'camera') => `${contactId}:${source}`;

/**
 * The tiles of the stage, in a stable order: the remote people (those in the call
 * by its log, and anyone the SFU sends media of), then their screens. `feeds` are
 * the live received tracks [{contactId, kind, source, track}], `inCall` the contact
 * ids joined now, `left` those whose last word was Leave (their media may still be
 * in flight: never shown). Returns [{key, contactId, source, video, audio, paused}]
 * (`paused`: the SFU holds that video back for our bandwidth).
 */
export function tilesOf({ feeds = [], inCall = [], left = [], selfId }) {
  const gone = new Set(left);
  const people = new Map();
  const screens = new Map();
  const person = (id) => {
    if (!people.has(id)) people.set(id, { key: tileKey(id), contactId: id, source: 'camera', video: null, audio: null, paused: false });
    return people.get(id);
  };
  for (const id of inCall) if (id !== selfId && !gone.has(id)) person(id);
  for (const f of feeds) {
    if (f.contactId === selfId || gone.has(f.contactId)) continue;
    if (f.source === 'screen') {
      if (f.kind !== 'video') continue;
      const key = tileKey(f.contactId, 'screen');
      screens.set(key, { key, contactId: f.contactId, source: 'screen', video: f.track ?? null, audio: null, paused: !!f.paused });
    } else {
      const p = person(f.contactId);
      p[f.kind] = f.track ?? null;
      if (f.kind === 'video') p.paused = !!f.paused;
    }
  }
  const byId = (a, b) => a.contactId - b.contactId;
  return [...[...people.values()].sort(byId), ...[...screens.values()].sort(byId)];
}

/**
 * The grid for n tiles of aspect `aspect` (width / height) in a w x h stage with
 * `gap` pixels between cells: {cols, rows}, the shape whose tiles are largest.
 */
export function gridShape(n, w, h, { aspect = 16 / 9, gap = 10 } = {}) {
  if (n <= 0) return { cols: 1, rows: 1 };
  if (!(w > 0) || !(h > 0)) {
    const cols = Math.ceil(Math.sqrt(n));
    return { cols, rows: Math.ceil(n / cols) };
  }
  let best = { cols: 1, rows: n, area: -1 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cellW = (w - gap * (cols - 1)) / cols;
    const cellH = (h - gap * (rows - 1)) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    // The video's own rectangle inside the cell (it is cropped or boxed to the cell).
    const tileW = Math.min(cellW, cellH * aspect);
    const area = tileW * (tileW / aspect);
    // Equal areas: fewer empty cells.
    if (area > best.area + 1 || (Math.abs(area - best.area) <= 1 && cols * rows < best.cols * best.rows)) {
      best = { cols, rows, area };
    }
  }
  return { cols: best.cols, rows: best.rows };
}

/**
 * The tile key shown large in focus mode: the pinned one while it exists, else the
 * newest shared screen, else the active speaker (not ourselves), else the last
 * speaker still there, else the first tile. null when there is no remote tile.
 */
export function focusOf({ tiles, pinned = null, speaker = null, lastSpeaker = null, selfId }) {
  const keys = new Set(tiles.map((t) => t.key));
  if (pinned && keys.has(pinned)) return pinned;
  const screen = [...tiles].reverse().find((t) => t.source === 'screen');
  if (screen) return screen.key;
  for (const id of [speaker, lastSpeaker]) {
    if (id === null || id === undefined || id === selfId) continue;
    if (keys.has(tileKey(id))) return tileKey(id);
  }
  return tiles[0]?.key ?? null;
}

/** "3 in the call": how many are in, ourselves included. */
export function headcount(inCall, selfId) {
  const ids = new Set(inCall);
  ids.add(selfId);
  return ids.size;
}

/**
 * Ids whose last Join/Leave/Ended event is not a Join: gone, even if the SFU has
 * not said so yet. `events`: the call log's callEvents, in order.
 */
export function leftOf(events) {
  const last = new Map();
  for (const e of events || []) {
    if (e.type === 'Join' || e.type === 'Leave') last.set(e.contact?.id, e.type);
    else if (e.type === 'Ended') for (const id of last.keys()) last.set(id, 'Leave');
  }
  return [...last].filter(([, type]) => type !== 'Join').map(([id]) => id);
}
