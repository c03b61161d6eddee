import { defineConfig } from '@playwright/test';
import { launchOptions } from './harness/browser.js';

// One worker: two cores, and a 1:1 call is two pages at about 0.6 core (MEDIA.md).
export default defineConfig({
  testDir: './tests',
  globalSetup: './global-setup.js',
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  timeout: 90_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  use: {
    launchOptions,
    baseURL: 'http://127.0.0.1:8080',
    actionTimeout: 10_000,
  },
});
