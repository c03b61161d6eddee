// The SDK against a real callhub server: the seed's flow, the broker flow, a
// refresh during a long watch, and resuming after the server restarts.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { Callhub, CallhubError } from "../src/index.js";
import { PASSWORD, TestServer, collect, contact, eventually, popups } from "./server.js";

const servers: TestServer[] = [];
const hubs: { close(): void }[] = [];
after(async () => {
  hubs.forEach((n) => n.close());
  await Promise.all(servers.map((s) => s.dispose()));
});

async function server(env: Record<string, string> = {}): Promise<TestServer> {
  const s = await TestServer.start({ env });
  servers.push(s);
  return s;
}

function login(s: TestServer, username: string): Promise<Callhub> {
  return Callhub.login({ baseUrl: s.url, username, password: PASSWORD, domain: "ubimax" });
}

/** A server with the seed's two accounts, both logged in. */
async function callerAndTester(env: Record<string, string> = {}) {
  const s = await server(env);
  s.userAdd("callertest1");
  const testerInfo = s.userAdd("tester");
  return { s, testerInfo, caller: await login(s, "callertest1"), tester: await login(s, "tester") };
}

/** Watches `hub`'s notifications from now on (after the socket's hello). */
async function watch(hub: Callhub, options: { presence?: boolean } = {}) {
  const notes = hub.notifications(options);
  hubs.push(notes);
  const frames = collect(notes);
  await eventually("the notification socket is open", () => notes.since !== undefined);
  return { notes, frames };
}

test("the seed's flow: create a call, the invitee's pop-up, join, read the log", async () => {
  const { testerInfo, caller, tester } = await callerAndTester();
  const { frames } = await watch(tester);

  const created = await caller.rtc.createCallForContacts({
    callTitle: "Test Call",
    callReason: "STANDARD",
    callType: "SFU",
    invitedContacts: [contact(testerInfo)],
    invitedTeams: [],
    joinAnonymousAllowed: true,
    informOthersDirectly: true,
  });
  await eventually("the tester's pop-up", () => popups(frames, created.callId).length === 1);
  await tester.rtc.joinCall(created.callId);
  const log = await caller.rtc.getCallLogById(created.callId);
  const joins = log.callEvents.filter((e) => e.type === "Join").map((e) => e.contact.userId);
  assert.deepEqual(joins, ["callertest1", "tester"]);
  const page = await tester.rtc.getCallLogs({ size: 5 });
  assert.ok(page.content.some((c) => c.callId === created.callId));

  await tester.logout();
  await assert.rejects(tester.rtc.getCallLogs(), (e: unknown) => e instanceof CallhubError && e.status === 401);
});

test("notifications with presence: false get the pop-up and no presence frames", async () => {
  const { testerInfo, caller, tester } = await callerAndTester();
  const glasses = await watch(tester, { presence: false });
  const browser = await watch(tester);
  const created = await caller.rtc.createCallForContacts({
    callTitle: "Presence",
    callType: "MESH",
    invitedContacts: [contact(testerInfo)],
  });
  // The caller joined at creation: busy. The browser hears it; the glasses do not.
  await eventually("the browser's presence frame", () =>
    browser.frames.some((f) => f.type === "presence" && f.presence === "busy"),
  );
  await eventually("the glasses' pop-up", () => popups(glasses.frames, created.callId).length === 1);
  // The same batch reached every socket that hears presence; give the glasses time to show one.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(
    glasses.frames.filter((f) => f.type === "presence"),
    [],
  );
});

test("a refused request throws a CallhubError carrying the problem and its request id", async () => {
  const s = await server();
  s.userAdd("callertest1");
  const caller = await login(s, "callertest1");
  const unknown = "5e0b6f4e-0000-4000-8000-000000000000";
  const error = await caller.rtc.getCallLogById(unknown).then(
    () => assert.fail("an unknown call is not found"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CallhubError);
  assert.equal(error.problem.status, 404);
  assert.match(error.problem.detail, /visible/);
  assert.match(error.requestId ?? "", /^[0-9a-f]{32}$/);

  const byToken = Callhub.withToken({ baseUrl: s.url, accessToken: await caller.accessToken() });
  assert.equal((await byToken.rtc.getCallLogs()).totalElements, 0);
  await assert.rejects(
    Callhub.login({ baseUrl: s.url, username: "callertest1", password: "wrong password" }),
    (e: unknown) => e instanceof CallhubError && e.status === 401,
  );
});

test("the broker flow: the expert rings first, the glasses user once the expert answers", async () => {
  const s = await server();
  s.userAdd("connector", ["broker"]);
  const glassesInfo = s.userAdd("glasses");
  const expertInfo = s.userAdd("expert");
  const connector = await login(s, "connector");
  const glasses = await watch(await login(s, "glasses"));
  const expertHub = await login(s, "expert");
  const expert = await watch(expertHub);

  const created = await connector.rtc.createCallForContacts({
    callTitle: "Pump 7",
    callReason: "SERVICE_REQUEST",
    callType: "SFU",
    invitedContacts: [contact(expertInfo), contact(connector.user!)],
    invitedTeams: [],
    joinAnonymousAllowed: false,
    creatorUser: glassesInfo.userDbId,
  });
  assert.equal(created.creatorContact.userId, "glasses");
  await eventually("the expert's pop-up", () => popups(expert.frames, created.callId).length === 1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(popups(glasses.frames, created.callId).length, 0, "the glasses do not ring before the expert answers");

  await expertHub.rtc.joinCall(created.callId);
  await eventually("the glasses' pop-up", () => popups(glasses.frames, created.callId).length === 1);
});

test("a long watch outlives its access token: refreshed once at a time, the socket kept", async () => {
  const { testerInfo, caller, tester } = await callerAndTester({ CALLHUB_ACCESS_TOKEN_TTL_SECS: "2" });
  const first = await tester.accessToken();
  const { notes, frames } = await watch(tester);

  const seen: string[] = [];
  for (let round = 0; round < 3; round++) {
    // Past 80% of the token's life: each round's requests refresh first.
    await new Promise((resolve) => setTimeout(resolve, 1800));
    const call = await caller.rtc.createCallForContacts({
      callTitle: `Round ${round}`,
      callType: "MESH",
      invitedContacts: [contact(testerInfo)],
    });
    await eventually(`the pop-up of round ${round}`, () => popups(frames, call.callId).length === 1);
    // Concurrent requests share one refresh: a second would spend the token twice and revoke the session.
    const answers = await Promise.all([
      tester.rtc.getCallLogById(call.callId),
      tester.rtc.getCallLogs(),
      tester.rtc.getIceServers(),
    ]);
    assert.equal(answers[0].callId, call.callId);
    seen.push(await tester.accessToken());
  }
  assert.notEqual(seen[0], first, "the token was refreshed");
  assert.equal(new Set(seen).size, 3, "a new token each round");
  assert.equal(notes.connections, 1, "the socket stayed open throughout");
});

test("notifications resume after the server restarts on the same data dir", async () => {
  const { s, testerInfo, caller, tester } = await callerAndTester();
  const { notes, frames } = await watch(tester);
  const request = { callTitle: "Before", callType: "MESH" as const, invitedContacts: [contact(testerInfo)] };
  const before = await caller.rtc.createCallForContacts(request);
  await eventually("the first pop-up", () => popups(frames, before.callId).length === 1);

  await s.stop();
  // Down long enough for the client's reconnects to back off.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const again = await TestServer.start({ dataDir: s.dataDir, port: s.port });
  servers.push(again);
  const during = await caller.rtc.createCallForContacts({ ...request, callTitle: "After" });

  await eventually("the pop-up of the call made after the restart", () => popups(frames, during.callId).length === 1);
  assert.ok(notes.connections >= 2, "the socket was opened again");
  assert.equal(popups(frames, before.callId).length, 1, "nothing is given twice");
  const seqs = frames.filter((f) => typeof f.seq === "number").map((f) => f.seq!);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in order");
});
