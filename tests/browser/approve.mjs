// Opens an approval link in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), checks the confirm page shows the request and the reviewer context,
// clicks Approve and checks the outcome page. JavaScript is switched off in the browser:
// the page must work without it.
//
// Usage: node tests/browser/approve.mjs <link> <screenshot.png>
// Writes <screenshot.png> (the confirm page, phone-sized) and <screenshot>-outcome.png.
// Exits non-zero with a message on the first failed check.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { check, launch } from './chromium.mjs';

const [link, screenshot] = process.argv.slice(2);
if (!link || !screenshot) {
  console.error('usage: node tests/browser/approve.mjs <link> <screenshot.png>');
  process.exit(2);
}
const requestId = new URL(link).pathname.split('/').pop();

mkdirSync(dirname(screenshot), { recursive: true });
let browser;
try {
  browser = await launch({
    // A phone: the page must be readable without zooming.
    viewport: { width: 390, height: 844 },
    isMobile: true,
  });
  const page = browser.page;
  // Generous: on a busy machine cargo-lambda may be rebuilding the function being called.
  page.setDefaultTimeout(90_000);

  const response = await page.goto(link);
  check(response && response.status() === 200, `the confirm page answered ${response?.status()}`);
  check((await page.locator('h1').innerText()) === 'Approve temporary access?', 'not the confirm page');
  const text = await page.locator('body').innerText();
  for (const needle of [requestId, 'alice', 'Reason', 'What the requester has been doing']) {
    check(text.includes(needle), `the confirm page does not show "${needle}"`);
  }
  check(await page.locator('.warn').first().isVisible(), 'the context warning is not highlighted');
  // Readable on a phone: nothing wider than the screen.
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth).catch(() => null);
  check(scrollWidth === null || scrollWidth <= 390, `the page scrolls sideways (${scrollWidth}px)`);
  await page.screenshot({ path: screenshot, fullPage: true });

  await page.locator('#comment').fill('approved from the browser test');
  // The form posts back to the link's own URL, so the URL barely changes: wait for the page.
  await page.locator('button[value="approve"]').click();
  await page.locator('h1', { hasText: 'Decision recorded' }).waitFor();
  const outcome = await page.locator('body').innerText();
  check(/approved request/.test(outcome), `the outcome page says: ${outcome}`);
  check(/approved by \w+/.test(outcome), `the outcome page does not say who decided: ${outcome}`);
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-outcome.png'), fullPage: true });
  console.log(JSON.stringify({ ok: true, request: requestId }));
} catch (err) {
  console.error(`browser test failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
