// The seed's connector request (REST) rings the expert's browser; the smart-glasses
// user it was made for rings next and talks to the expert (the broker flow).
import { test, expect, expectAccessible, screenshot } from './fixtures.js';
import { api, answer, incomingCall, logIn } from '../harness/people.js';
import { expectRemoteVideoFlowing } from '../harness/media.js';

test('the seed\'s createCall from a connector rings B\'s browser, who then talks to A\'s browser',
  async ({ person, newPage, stack }) => {
    const glasses = person('glasses', { displayName: 'Glasses Wearer' });
    const expert = person('tester', { displayName: 'Tester' });
    const connector = person('connector', { displayName: 'Connector', role: 'broker' });
    const a = await newPage();
    const b = await newPage();
    await logIn(a, glasses);
    await logIn(b, expert);

    // The seed's fetch, byte for byte but for the ids, the MESH type (1:1 media;
    // SFU comes with its own issue) and creatorUser (the broker flow).
    const body = `{"callType":"MESH","invitedContacts":[{"userId":"${expert.userId}","userDbId":${expert.userDbId},"email":"${expert.email}","domain":"ubimax","displayName":"Tester","phoneNumber":null}],"invitedTeams":[],"joinAnonymousAllowed":false,"callTitle":"New Call","plannedDateTime":null,"callReason":"STANDARD","creatorUser":${glasses.userDbId}}`;
    const rest = await api(stack.baseURL, connector);
    const created = await rest.post('/rtc/createCall', body);
    expect(created.callStatus).toBe('Started');

    // The expert rings first; the glasses ring once the expert answers.
    await expect(incomingCall(b)).toBeVisible();
    await expect(incomingCall(a)).toBeHidden();
    await expectAccessible(b, 'the incoming-call pop-up (connector\'s call)');
    await screenshot(b, 'connector-incoming-call');
    await answer(b);
    await answer(a);
    await expectRemoteVideoFlowing(a);
    await expectRemoteVideoFlowing(b);
    await expect(b.getByText('Glasses Wearer').first()).toBeVisible();
    await expectAccessible(b, 'the call view (connector\'s call)');
    await screenshot(b, 'connector-call');

    const log = await rest.get(`/rtc/getCallLogById?callId=${created.callId}`);
    const joined = log.callEvents.filter((e) => e.type === 'Join').map((e) => e.contact.userId);
    expect(joined.sort()).toEqual([expert.userId, glasses.userId].sort());
  });
