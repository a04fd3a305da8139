// Headless Debian Chromium (/usr/bin/chromium) through playwright-core, as every browser test
// of trailgate starts it: a fresh profile each run (no cookie, cache or extension state leaks
// between runs), no sandbox (the tests run as root), JavaScript off unless asked for (the
// pages must work without it), and none of Chromium's background connections, which this
// machine's closed network refuses.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Opens a browser context with `options` (viewport, isMobile, ...) over the defaults; returns
// it with `close()`, which also removes the profile.
export async function launch(options = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'trailgate-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      javaScriptEnabled: false,
      timeout: 60_000,
      ...options,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const close = async () => {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    };
    return { context, page, close };
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
}

export function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}
