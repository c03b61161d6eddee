// A 1:1 (MESH) call between two browsers, started from the dashboard.
import { test, expect, expectAccessible, screenshot } from './fixtures.js';
import { api, answer, callFromDashboard, contactOf, hangUp, incomingCall, logIn } from '../harness/people.js';
import { audioEnergyOver, expectRemoteVideoFlowing } from '../harness/media.js';

test('A calls B from the dashboard, both see each other, Mute silences A at B, Hang up ends the call into the history',
  async ({ person, newPage, stack }) => {
    const alice = person('alice', { displayName: 'Alice Field' });
    const bob = person('bob', { displayName: 'Bob Expert' });
    const a = await newPage();
    const b = await newPage();

    await a.goto('/');
    await expect(a.getByRole('button', { name: 'Log in' })).toBeVisible();
    await expectAccessible(a, 'the login page');
    await screenshot(a, 'login');
    await logIn(a, alice);
    await logIn(b, bob);
    await expectAccessible(a, 'the dashboard');
    await screenshot(a, 'dashboard');

    await callFromDashboard(a, bob);
    const popup = incomingCall(b);
    await expect(popup).toBeVisible();
    await expect(popup).toContainText('Alice Field');
    await expectAccessible(b, 'the incoming-call pop-up');
    await screenshot(b, 'incoming-call');
    await answer(b);

    // Both decode the other's camera, and each remote <video> is named.
    await expectRemoteVideoFlowing(a);
    await expectRemoteVideoFlowing(b);
    await expect(a.locator('video[data-contact-id]')).toHaveCount(1);
    await expect(a.getByText('Bob Expert').first()).toBeVisible();
    await expect(b.getByText('Alice Field').first()).toBeVisible();
    await expectAccessible(a, 'the call view');
    await screenshot(a, 'call');

    // Mute: B hears the fake microphone's tone, then nothing.
    const mute = a.getByRole('button', { name: 'Mute' });
    await expect(mute).toHaveAttribute('aria-pressed', 'false');
    const speaking = await audioEnergyOver(b);
    expect(speaking.packets, 'B receives A\'s audio').toBeGreaterThan(20);
    expect(speaking.energy, 'B hears A before Mute').toBeGreaterThan(1e-4);
    await mute.click();
    await expect(mute).toHaveAttribute('aria-pressed', 'true');
    await audioEnergyOver(b, 500); // what was in flight when Mute was pressed
    const muted = await audioEnergyOver(b);
    expect(muted.energy, 'B hears nothing of A after Mute').toBeLessThan(speaking.energy / 100);

    // Camera is a toggle too (its media effect is the client's unit tests' concern).
    const camera = a.getByRole('button', { name: 'Camera' });
    const cameraWas = await camera.getAttribute('aria-pressed');
    expect(['true', 'false']).toContain(cameraWas);
    await camera.click();
    await expect(camera).toHaveAttribute('aria-pressed', cameraWas === 'true' ? 'false' : 'true');
    await camera.click();
    await expect(camera).toHaveAttribute('aria-pressed', cameraWas);

    const alicesApi = await api(stack.baseURL, alice);
    const call = await alicesApi.latestCall();
    expect(call.callType).toBe('MESH');
    expect(call.callStatus).toBe('Started');

    await hangUp(a);
    await expect(a.getByRole('button', { name: 'Hang up' })).toBeHidden();
    await expect(b.getByRole('button', { name: 'Hang up' })).toBeHidden();
    await expect.poll(async () => (await alicesApi.get(`/rtc/getCallLogById?callId=${call.callId}`)).callStatus).toBe('Ended');
    const ended = await alicesApi.get(`/rtc/getCallLogById?callId=${call.callId}`);
    // A left first; a MESH call ends when either side leaves (Leave for B still in, then Ended).
    const events = ended.callEvents.map((e) => `${e.type} ${e.contact?.userId}`);
    expect(events.slice(0, 4)).toEqual([`Created ${alice.userId}`, `Join ${alice.userId}`, `Join ${bob.userId}`, `Leave ${alice.userId}`]);
    expect(events.at(-1)).toMatch(/^Ended /);
    // The dashboard's history shows the call with whom it was.
    await expect(a.getByLabel('Search contacts')).toBeVisible();
    const history = a.getByRole('region', { name: 'History' });
    const entry = history.getByRole('listitem').filter({ hasText: 'Bob Expert' }).first();
    await expect(entry).toBeVisible();
    await entry.click(); // opens its timeline of events
    await expect(entry.getByRole('listitem')).toHaveCount(ended.callEvents.length);
    await screenshot(a, 'history');
  });

test('B on two tabs: declining on one stops the other ringing', async ({ person, newPage, stack }) => {
  const alice = person('alice', { displayName: 'Alice Field' });
  const bob = person('bob', { displayName: 'Bob Expert' });
  const b1 = await newPage();
  const b2 = await b1.context().newPage(); // a second tab of the same browser
  await logIn(b1, bob);
  await b2.goto('/');
  await expect(b2.getByLabel('Search contacts')).toBeVisible(); // the session is shared by the tabs

  // A calls B (over REST, so this holds whatever the dashboard looks like).
  const rest = await api(stack.baseURL, alice);
  const call = await rest.post('/rtc/createCall', {
    callTitle: 'Two tabs', callReason: 'STANDARD', callType: 'MESH',
    invitedContacts: [contactOf(bob)], invitedTeams: [], joinAnonymousAllowed: false,
  });
  const tones = (page) => page.evaluate(() => window.__e2e.tones);
  await expect(incomingCall(b1)).toBeVisible();
  await expect(incomingCall(b2)).toBeVisible();
  await expect.poll(() => tones(b2), 'the second tab rings').toBeGreaterThan(0);
  await incomingCall(b1).getByRole('button', { name: 'Decline' }).click();
  await expect(incomingCall(b1)).toBeHidden();
  await expect(incomingCall(b2)).toBeHidden();
  await expect.poll(() => tones(b2), 'the second tab is silent').toBe(0);
  expect(await tones(b1)).toBe(0);

  // Nobody answered, so the call ended.
  const log = await rest.get(`/rtc/getCallLogById?callId=${call.callId}`);
  const types = log.callEvents.map((e) => e.type);
  expect(types).toContain('Declined');
  expect(types.filter((t) => t === 'Join'), 'only the caller ever joined').toHaveLength(1);
  expect(log.callStatus).toBe('Ended');
});
