// Opens a `jitctl report --format html` page from disk in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core) with JavaScript switched off and every network
// request refused, and checks that it is whole on its own: the sections an auditor needs, the
// request id, the verdict, no request for anything outside the file, no sideways scrolling on a
// laptop-sized window. Writes a full-page screenshot.
//
// Usage: node tests/browser/report.mjs <report.html> <screenshot.png> <request id> <verdict text>
// Exits non-zero with a message on the first failed check.

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { check, launch } from './chromium.mjs';

const [file, screenshot, requestId, verdict] = process.argv.slice(2);
if (!file || !screenshot || !requestId || !verdict) {
  console.error('usage: node tests/browser/report.mjs <report.html> <screenshot.png> <request id> <verdict text>');
  process.exit(2);
}

mkdirSync(dirname(screenshot), { recursive: true });
let browser;
try {
  browser = await launch({ viewport: { width: 1024, height: 768 } });
  const page = browser.page;
  page.setDefaultTimeout(60_000);
  const url = pathToFileURL(resolve(file)).href;
  // Self-contained means the page asks for nothing but itself.
  const outside = [];
  await page.route('**/*', (route) => {
    if (route.request().url() !== url) {
      outside.push(route.request().url());
      return route.abort();
    }
    return route.continue();
  });
  await page.goto(url);
  check((await page.locator('h1').innerText()) === 'Access request', 'not a request report');
  const text = await page.locator('body').innerText();
  for (const needle of [
    requestId,
    verdict,
    'Who asked, for what, and why',
    'What the reviewers were shown',
    'Decisions',
    'Credentials issued',
    'What the access was used for',
    'Revoke',
    'Integrity',
    'Ledger events',
  ]) {
    check(text.includes(needle), `the report does not show "${needle}"`);
  }
  check(outside.length === 0, `the report asked for ${outside.join(', ')}`);
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth).catch(() => null);
  check(scrollWidth === null || scrollWidth <= 1024, `the page scrolls sideways (${scrollWidth}px)`);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ok: true, request: requestId }));
} catch (err) {
  console.error(`browser test failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
