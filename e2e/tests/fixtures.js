// Test fixtures: the running stack (global-setup.js), fresh accounts per test,
// pages that observe media, and the accessibility and screenshot checks.
import { test as base, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addUser } from '../harness/stack.js';
import { openPage } from '../harness/people.js';

const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');

export const test = base.extend({
  stack: async ({}, use) => {
    await use({
      baseURL: process.env.E2E_BASE_URL,
      mailDir: process.env.E2E_MAIL_DIR,
      env: JSON.parse(process.env.E2E_STACK_ENV),
      serverPid: Number(process.env.E2E_SERVER_PID),
    });
  },
  /** person('alice', {displayName}) -> a new account of the test's own. */
  person: async ({ stack }, use) => {
    await use((userId, opts = {}) => addUser(stack.env, { userId, ...opts }));
  },
  /** newPage({relay}) -> a page in a context of its own (another device). */
  newPage: async ({ browser, stack }, use) => {
    const pages = [];
    await use(async (opts) => {
      const page = await openPage(browser, stack.baseURL, opts);
      pages.push(page);
      return page;
    });
    for (const page of pages) await page.context().close();
  },
});

/** No serious or critical axe-core violation on the page as it is now. */
export async function expectAccessible(page, what) {
  // A page still fading in has colours of its own; endless ones (a ringing pulse) never settle.
  await page.waitForFunction(() => document.getAnimations()
    .every((a) => a.playState !== 'running' || a.effect?.getComputedTiming().iterations === Infinity));
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect.soft(bad.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`).join('; ')})`),
    `axe-core on ${what}`).toEqual([]);
}

/** e2e/screenshots/<name>.png, for people to look at (gitignored). */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

export { expect };
