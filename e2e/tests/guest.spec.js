// A guest follows the link in the invitation mail (delivered to the real SMTP
// process) and talks to the call's creator.
import { test, expect, expectAccessible, screenshot } from './fixtures.js';
import { api, logIn } from '../harness/people.js';
import { guestLink, mailsTo } from '../harness/mail.js';
import { expectRemoteVideoFlowing } from '../harness/media.js';

test('a guest opens the invitation mail\'s link and talks to the creator', async ({ person, newPage, stack }) => {
  const alice = person('alice', { displayName: 'Alice Field' });
  const visitor = `visitor-${Date.now()}@example.com`;
  const rest = await api(stack.baseURL, alice);
  const call = await rest.post('/rtc/createCall', {
    callTitle: 'Pump 7 leaks', callReason: 'SERVICE_REQUEST', callType: 'MESH',
    invitedContacts: [{ displayName: 'Visitor', domain: '', email: visitor, phoneNumber: '', userId: '' }],
    invitedTeams: [], joinAnonymousAllowed: true, informOthersDirectly: true,
  });

  // The creator opens the ongoing call from the dashboard and waits in it.
  const a = await newPage();
  await logIn(a, alice);
  await a.getByRole('listitem').filter({ hasText: 'Pump 7 leaks' }).getByRole('button', { name: 'Join' }).first().click();
  await expect(a.getByRole('button', { name: 'Hang up' })).toBeVisible();

  await expect.poll(() => mailsTo(stack.mailDir, visitor).length, { timeout: 20000 }).toBe(1);
  const link = guestLink(mailsTo(stack.mailDir, visitor)[0]);
  expect(link).toBe(call.joinUrl);

  const g = await newPage();
  await g.goto(link);
  await expect(g.getByLabel('Your name')).toBeVisible();
  await expectAccessible(g, 'the guest page');
  await screenshot(g, 'guest');
  await g.getByLabel('Your name').fill('Vera Visitor');
  await g.getByRole('button', { name: 'Join' }).click();

  await expectRemoteVideoFlowing(g);
  await expectRemoteVideoFlowing(a);
  await expect(a.getByText('Vera Visitor').first()).toBeVisible();
  await screenshot(g, 'guest-call');

  const log = await rest.get(`/rtc/getCallLogById?callId=${call.callId}`);
  const guest = log.invitedContacts.concat(log.callEvents.map((e) => e.contact)).find((c) => c.anonymous);
  expect(guest?.displayName).toBe('Vera Visitor');
});
