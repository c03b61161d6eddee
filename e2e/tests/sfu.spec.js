// A group (SFU) call between web client pages: everyone decodes everyone through
// the node's forwarder, a late joiner sees all at once, a screen share reaches the
// others, and who hangs up disappears from every page. Four pages in one browser
// (contexts of their own) with small video: about the ceiling of two cores.
import { test, expect, expectAccessible, screenshot } from './fixtures.js';
import { api, answer, contactOf, hangUp, incomingCall, logIn } from '../harness/people.js';
import { sleep } from '../harness/media.js';
import { blockPorts, localPorts } from '../harness/outage.js';

// The camera's size: E2E_SFU_VIDEO (640x360; at 320x180 Chromium sends only the `h`
// layer of three). E2E_SFU_SIMULCAST=0 sends one layer (the client's switch).
const [w, h] = (process.env.E2E_SFU_VIDEO || '640x360').split('x').map(Number);
const SMALL = { width: w, height: h, simulcast: process.env.E2E_SFU_SIMULCAST !== '0' };

/** The remote <video> of a person's camera (or screen) on a page. */
const videoOf = (page, contactId, source = 'camera') =>
  page.locator(`video[data-contact-id="${contactId}"][data-source="${source}"]`);

/**
 * Per remote <video> of the page, by "<contactId>:<source>": frames shown, width, and
 * the video frames decoded by the connection for its mid (getStats, all connections).
 */
async function tileMedia(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const v of document.querySelectorAll('video[data-contact-id]')) {
      out[`${v.dataset.contactId}:${v.dataset.source}`] = {
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
        width: v.videoWidth,
        track: v.srcObject?.getVideoTracks()[0]?.id ?? null,
      };
    }
    let decoded = 0, decoders = 0;
    for (const pc of window.__e2e.pcs) {
      if (pc.connectionState === 'closed') continue;
      for (const s of (await pc.getStats()).values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0) {
          decoded += s.framesDecoded;
          decoders += 1;
        }
      }
    }
    return { tiles: out, decoded, decoders };
  });
}

/** The page's SFU connection as the client sees it: transceivers, the SFU's tracks list, inbound stats by mid. */
async function sfuDump(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__e2e.pcs) {
      const stats = [...(await pc.getStats()).values()];
      out.push({
        state: pc.connectionState, signaling: pc.signalingState,
        transceivers: pc.getTransceivers().map((t) => {
          const s = stats.find((x) => x.type === 'inbound-rtp' && x.mid === t.mid);
          return `${t.mid} ${t.receiver.track.kind} ${t.direction}/${t.currentDirection} muted=${t.receiver.track.muted}`
            + (s ? ` rx=${s.packetsReceived} dec=${s.framesDecoded ?? '-'} ssrc=${s.ssrc}` : '');
        }),
        sending: stats.filter((x) => x.type === 'outbound-rtp' && x.kind === 'video')
          .map((x) => `mid=${x.mid} rid=${x.rid ?? '-'} ${x.frameWidth ?? 0}x${x.frameHeight ?? 0} sent=${x.packetsSent} active=${x.active} limit=${x.qualityLimitationReason} plis=${x.pliCount} firs=${x.firCount} nacks=${x.nackCount}`),
        remoteSdpVideo: (pc.remoteDescription?.sdp.match(/^(m=video.*|a=mid:.*|a=(sendonly|recvonly|inactive|sendrecv)|a=ssrc:\d+ msid.*|a=simulcast.*)$/gm) || []).join(' | '),
      });
    }
    return { pcs: out, frames: window.__e2e.sfu.filter((f) => !f.endsWith('candidate')) };
  });
}

/** Waits until the page shows moving video in the tile of each of `keys` ("3:camera"). */
async function expectDecoding(page, keys, { timeout = 30000, what = '', also = [] } = {}) {
  const until = Date.now() + timeout;
  let last;
  for (;;) {
    const a = await tileMedia(page);
    if (keys.every((k) => a.tiles[k]?.frames > 0 && a.tiles[k]?.width > 0) && a.decoders >= keys.length) {
      await sleep(400);
      const b = await tileMedia(page);
      if (keys.every((k) => b.tiles[k].frames > a.tiles[k].frames)) return b;
    }
    last = a;
    if (Date.now() > until) {
      throw new Error(`${what}: not every tile of ${keys.join(', ')} decodes within ${timeout} ms: ${JSON.stringify(last)}\n${JSON.stringify(await sfuDump(page), null, 1)}\nthe others: ${JSON.stringify(await Promise.all(also.map(sfuDump)), null, 1)}`);
    }
    await sleep(250);
  }
}

/** A picture of the stage as people see it: no passing message, no pointer over a tile. */
async function stageShot(page, name) {
  await page.mouse.move(1, 1);
  await expect(page.locator('.toast')).toHaveCount(0, { timeout: 8000 });
  await sleep(300); // the pin buttons fade out
  await screenshot(page, name);
}

/**
 * Audio received from each person (by contact id) over `ms`, from their tile's
 * audio track's inbound-rtp: its energy, or with `what: 'packetsReceived'` its packets.
 */
async function voicesOver(page, ms = 2000, what = 'totalAudioEnergy') {
  const read = () => page.evaluate(async (what) => {
    const byTrack = new Map();
    for (const pc of window.__e2e.pcs) {
      if (pc.connectionState === 'closed') continue;
      for (const s of (await pc.getStats()).values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') byTrack.set(s.trackIdentifier, s[what] ?? 0);
      }
    }
    const out = {};
    for (const v of document.querySelectorAll('video[data-source="camera"]')) {
      const t = v.srcObject?.getAudioTracks()[0];
      out[v.dataset.contactId] = t ? byTrack.get(t.id) ?? 0 : 0;
    }
    return out;
  }, what);
  const before = await read();
  await sleep(ms);
  const after = await read();
  return Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - (before[k] ?? 0)]));
}

/** The caption under a person's camera tile. */
const captionOf = (page, contactId) =>
  page.locator(`figure[data-contact-id="${contactId}"][data-source="camera"] figcaption`);

test('an SFU call: three see, hear and name each other, a late fourth decodes all within 2 s, a screen share arrives, who hangs up is gone',
  async ({ person, newPage, stack }) => {
    test.setTimeout(300_000);
    const people = {
      alice: person('alice', { displayName: 'Alice Martin' }),
      bob: person('bob', { displayName: 'Bob Keller' }),
      carol: person('carol', { displayName: 'Carol Nguyen' }),
      dave: person('dave', { displayName: 'Dave Okafor' }),
    };
    const { alice, bob, carol, dave } = people;
    const a = await newPage({ small: SMALL });
    const b = await newPage({ small: SMALL });
    const c = await newPage({ small: SMALL });
    await Promise.all([logIn(b, bob), logIn(c, carol)]);

    // Alice starts a group call for Bob and Carol (the dashboard makes the same request for several people).
    const rest = await api(stack.baseURL, alice);
    const call = await rest.post('/rtc/createCall', {
      callTitle: 'Line 3 stand-up', callReason: 'STANDARD', callType: 'SFU',
      invitedContacts: [contactOf(bob), contactOf(carol)], invitedTeams: [],
      joinAnonymousAllowed: false, informOthersDirectly: true,
    });
    expect(call.callType).toBe('SFU');
    await Promise.all([expect(incomingCall(b)).toBeVisible(), expect(incomingCall(c)).toBeVisible()]);
    await logIn(a, alice);
    await a.getByRole('listitem').filter({ hasText: 'Line 3 stand-up' }).getByRole('button', { name: 'Join' }).first().click();
    await expect(a.getByRole('button', { name: 'Hang up' })).toBeVisible();
    await Promise.all([answer(b), answer(c)]);

    // Contact ids in this call, by account.
    const idOf = async (user) => {
      const log = await rest.get(`/rtc/getCallLogById?callId=${call.callId}`);
      const all = [log.creatorContact, ...log.invitedContacts, ...log.callEvents.map((e) => e.contact)].filter(Boolean);
      const found = all.find((x) => x.userDbId === user.userDbId);
      if (!found) throw new Error(`${user.userId} is not in call ${call.callId}`);
      return found.id;
    };
    const id = { alice: await idOf(alice), bob: await idOf(bob), carol: await idOf(carol) };

    // Each of the three decodes the other two, under the right names.
    const pages = { alice: a, bob: b, carol: c };
    for (const [who, page] of Object.entries(pages)) {
      const others = Object.keys(pages).filter((o) => o !== who);
      await expectDecoding(page, others.map((o) => `${id[o]}:camera`), { what: who, also: others.map((o) => pages[o]) });
      for (const o of others) await expect(captionOf(page, id[o])).toHaveText(people[o].displayName);
      await expect(page.locator('video[data-source="camera"]')).toHaveCount(2);
      await expect(page.getByText('3 in the call'), `${who}: ${JSON.stringify((await sfuDump(page)).frames.filter((f) => !f.includes(' sfu') && !f.includes('sdp') && !f.includes('tracks')))}`).toBeVisible();
    }
    // Voices go through the SFU too: Bob hears Alice and Carol, then not Alice once she mutes.
    const heard = await voicesOver(b);
    expect(heard[id.alice], `Bob hears Alice (${JSON.stringify(heard)})`).toBeGreaterThan(1e-4);
    expect(heard[id.carol], `Bob hears Carol (${JSON.stringify(heard)})`).toBeGreaterThan(1e-4);
    await a.getByRole('button', { name: 'Mute' }).click();
    await expect(a.getByRole('button', { name: 'Mute' })).toHaveAttribute('aria-pressed', 'true');
    await sleep(500); // what was in flight
    const muted = await voicesOver(b);
    expect(muted[id.alice], `Alice is silent at Bob after Mute (${JSON.stringify(muted)})`).toBeLessThan(heard[id.alice] / 100);
    expect(muted[id.carol], 'Carol is still heard').toBeGreaterThan(1e-4);
    // Her muted microphone sends digital silence, which the SFU does not forward.
    const packets = await voicesOver(b, 2000, 'packetsReceived');
    expect(packets[id.alice], `no packets of Alice's silence reach Bob (${JSON.stringify(packets)})`).toBeLessThan(5);
    expect(packets[id.carol], `Carol's do (${JSON.stringify(packets)})`).toBeGreaterThan(50);
    await a.getByRole('button', { name: 'Mute' }).click();
    await sleep(500);
    const unmuted = await voicesOver(b);
    expect(unmuted[id.alice], `Bob hears Alice again after Unmute (${JSON.stringify(unmuted)})`).toBeGreaterThan(1e-4);
    await expectAccessible(a, 'the SFU call view (grid)');
    await stageShot(a, 'sfu-grid-3');

    // A fourth person joins late: every tile decodes within 2 s of their SFU connection being up.
    const d = await newPage({ small: SMALL });
    await logIn(d, dave);
    await rest.post(`/rtc/inviteContacts?callId=${call.callId}`, { invitedContacts: [contactOf(dave)], invitedTeams: [] });
    await expect(incomingCall(d)).toBeVisible({ timeout: 15000 });
    await answer(d);
    id.dave = await idOf(dave);
    pages.dave = d;
    const three = ['alice', 'bob', 'carol'].map((o) => `${id[o]}:camera`);
    await expectDecoding(d, three, { what: 'dave (late)' });
    const late = await d.evaluate((keys) => ({
      connectedAt: window.__e2e.connectedAt[0],
      frames: keys.map((k) => window.__e2e.firstFrames[k]),
    }), three);
    const lateMs = Math.max(...late.frames) - late.connectedAt;
    console.log(`late joiner: all 3 videos ${Math.round(lateMs)} ms after the SFU connection was up (each: ${late.frames.map((f) => Math.round(f - late.connectedAt)).join(', ')} ms)`);
    expect(lateMs, 'the late joiner decodes everyone within 2 s of connecting').toBeLessThan(2000);
    for (const o of ['alice', 'bob', 'carol']) await expect(captionOf(d, id[o])).toHaveText(people[o].displayName);
    // ... and the three already in decode the newcomer.
    for (const who of ['alice', 'bob', 'carol']) {
      await expectDecoding(pages[who], [`${id.dave}:camera`], { what: `${who} sees dave` });
      await expect(captionOf(pages[who], id.dave)).toHaveText('Dave Okafor');
    }
    await expect(a.getByText('4 in the call')).toBeVisible();
    await stageShot(a, 'sfu-grid-4');

    // Focus mode: the toggle, then a pinned person large.
    const grid = a.getByRole('group', { name: 'Layout' }).getByRole('button', { name: 'Grid' });
    const focus = a.getByRole('group', { name: 'Layout' }).getByRole('button', { name: 'Focus' });
    await expect(grid).toHaveAttribute('aria-pressed', 'true');
    await focus.click();
    await expect(focus).toHaveAttribute('aria-pressed', 'true');
    await expect(a.locator('figure.focused')).toHaveCount(1);
    await a.getByRole('button', { name: 'Pin Carol Nguyen' }).click();
    await expect(a.locator('figure.focused')).toHaveAttribute('data-contact-id', String(id.carol));
    await expect(a.getByRole('button', { name: 'Unpin Carol Nguyen' })).toHaveAttribute('aria-pressed', 'true');
    await expectAccessible(a, 'the SFU call view (focus)');
    await stageShot(a, 'sfu-focus');

    // Bob shares his screen: it reaches the others as a tile of its own.
    await b.getByRole('button', { name: 'Share screen' }).click();
    await expect(b.getByRole('button', { name: 'Share screen' })).toHaveAttribute('aria-pressed', 'true');
    for (const who of ['alice', 'carol', 'dave']) {
      await expectDecoding(pages[who], [`${id.bob}:screen`], { what: `${who} sees bob's screen` });
      await expect(pages[who].locator(`figure[data-contact-id="${id.bob}"][data-source="screen"] figcaption`)).toHaveText('Bob Keller\'s screen');
    }
    // Alice unpins: her focus goes to the shared screen.
    await a.getByRole('button', { name: 'Unpin Carol Nguyen' }).click();
    await expect(a.locator('figure.focused')).toHaveAttribute('data-source', 'screen');
    await stageShot(a, 'sfu-focus-screen');
    await grid.click();
    await stageShot(a, 'sfu-grid-screen');
    // Bob stops sharing: the screen tile goes away everywhere.
    await b.getByRole('button', { name: 'Share screen' }).click();
    for (const who of ['alice', 'carol', 'dave']) await expect(videoOf(pages[who], id.bob, 'screen')).toHaveCount(0, { timeout: 10000 });

    // Carol hangs up: her tile leaves every page within a few seconds.
    const leftAt = Date.now();
    await hangUp(c);
    await expect(c.getByRole('button', { name: 'Hang up' })).toBeHidden();
    for (const who of ['alice', 'bob', 'dave']) {
      await expect(videoOf(pages[who], id.carol)).toHaveCount(0, { timeout: 5000 });
      await expect(pages[who].getByText('3 in the call')).toBeVisible();
    }
    console.log(`Carol's tile gone from the three others ${Date.now() - leftAt} ms after Hang up`);
    // The others still see each other.
    await expectDecoding(d, [`${id.alice}:camera`, `${id.bob}:camera`], { what: 'dave after carol left' });

    await stageShot(b, 'sfu-after-leave');
    for (const who of ['alice', 'bob', 'dave']) await hangUp(pages[who]);
    await expect.poll(async () => (await rest.get(`/rtc/getCallLogById?callId=${call.callId}`)).callStatus).toBe('Ended');
  });

test('an SFU participant offline for 14 s or more: a new connection replaces the old, all see each other again within 10 s, nobody leaves',
  async ({ person, newPage, stack }) => {
    test.setTimeout(180_000);
    const people = {
      erin: person('erin', { displayName: 'Erin Schulz' }),
      farid: person('farid', { displayName: 'Farid Haddad' }),
      gina: person('gina', { displayName: 'Gina Rossi' }),
    };
    const pages = {};
    for (const who of Object.keys(people)) pages[who] = await newPage({ small: SMALL });
    await logIn(pages.farid, people.farid);
    await logIn(pages.gina, people.gina);
    const rest = await api(stack.baseURL, people.erin);
    const call = await rest.post('/rtc/createCall', {
      callTitle: 'Roof check', callReason: 'STANDARD', callType: 'SFU',
      invitedContacts: [contactOf(people.farid), contactOf(people.gina)], invitedTeams: [],
      joinAnonymousAllowed: false, informOthersDirectly: true,
    });
    await expect(incomingCall(pages.farid)).toBeVisible();
    await logIn(pages.erin, people.erin);
    await pages.erin.getByRole('listitem').filter({ hasText: 'Roof check' }).getByRole('button', { name: 'Join' }).first().click();
    await Promise.all([answer(pages.farid), answer(pages.gina)]);
    const log = await rest.get(`/rtc/getCallLogById?callId=${call.callId}`);
    const id = Object.fromEntries(Object.entries(people).map(([who, u]) => [who,
      [log.creatorContact, ...log.invitedContacts].find((c) => c.userDbId === u.userDbId).id]));
    const key = (who) => `${id[who]}:camera`;
    const everyone = async (timeout) => {
      for (const [who, page] of Object.entries(pages)) {
        await expectDecoding(page, Object.keys(pages).filter((o) => o !== who).map(key), { what: who, timeout, also: Object.values(pages) });
      }
    };
    await everyone(30000);

    // Gina loses her network: her page goes offline (HTTP, WebSocket) and her media ports are blocked.
    const g = pages.gina;
    const ports = await localPorts(g);
    expect(ports.length).toBeGreaterThan(0);
    await g.context().setOffline(true);
    const unblock = blockPorts(ports);
    const offAt = Date.now();
    await expect(g.getByRole('status').filter({ hasText: 'Reconnecting…' })).toBeVisible({ timeout: 15000 });
    const noticedMs = Date.now() - offAt;
    // Chromium notices in about 5 s (more on a busy machine); the client lets ICE stay
    // 'disconnected' 5 s more, then opens a new connection (which waits for the network).
    await sleep(Math.max(14000 - noticedMs, 8000));
    unblock();
    await g.context().setOffline(false);
    const back = Date.now();
    await everyone(10000);
    const recoveredMs = Date.now() - back;
    const pcs = await g.evaluate(() => window.__e2e.pcs.map((pc) => pc.connectionState));
    const hellos = await g.evaluate(() => window.__e2e.sfu.filter((f) => f.includes(' hello ')).length);
    const iceStates = await g.evaluate(() => window.__e2e.iceStates.join(' '));
    console.log(`SFU recovery: offline noticed after ${noticedMs} ms; everyone decodes everyone ${recoveredMs} ms after the network came back; Gina's connections: ${pcs.join(', ')}; her socket said hello ${hellos} times; ICE: ${iceStates}`);
    expect(recoveredMs).toBeLessThan(10000);
    expect(pcs.length, 'a new connection replaced the old one').toBeGreaterThan(1);
    expect(pcs.filter((s) => s === 'connected'), 'one live connection to the SFU').toHaveLength(1);
    await expect(g.getByRole('status').filter({ hasText: 'Reconnecting…' })).toBeHidden();
    const after = await rest.get(`/rtc/getCallLogById?callId=${call.callId}`);
    expect(after.callStatus).toBe('Started');
    expect(after.callEvents.map((e) => e.type)).not.toContain('Leave');
    for (const page of Object.values(pages)) await hangUp(page);
  });
