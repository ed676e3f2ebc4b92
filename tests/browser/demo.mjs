// Real-browser test of the demo app (examples/demo), driven by crates/cli/tests/demo.rs.
//
// The Rust test starts Portcullis (TLS, test CA), registers the demo as a confidential
// first-party client (redirect, post-logout and back-channel logout URIs on the demo) and a
// user, and runs the demo in-process on https://127.0.0.1:<port> with the server's leaf
// certificate. This script drives Chromium through the demo in one browser context:
//   1. home -> "Sign in with Portcullis" -> Portcullis's sign-in form -> callback -> /me;
//   2. (the test moves the demo's clock past the access token's expiry) /me again: still
//      signed in, one silent refresh, a new expiry;
//   3. "Sign out" (a form with the CSRF token) -> Portcullis's logout -> /signed-out; /me
//      then says "not signed in";
//   4. sign in again; (the test ends the user's sessions at Portcullis with the CLI, which
//      sends a back-channel logout to the demo) /me then says "not signed in".
// At each pause it prints `CHECKPOINT <json>` on stdout and waits for a line `go` on stdin.
// The last stdout line is one JSON object with what it saw; diagnostics go to stderr.
//
// Inputs (environment): DEMO_URL, PORTCULLIS_ISSUER, USER_EMAIL, USER_PASSWORD, USER_SUB,
// ARTIFACTS_DIR, CHROMIUM (default /usr/bin/chromium), IGNORE_CERT_SPKI (base64 SHA-256 of
// the certificate key, for --ignore-certificate-errors-spki-list).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const TIMEOUT_MS = 15_000;

class Failure extends Error {}

function need(name) {
  const v = process.env[name];
  if (!v) {
    process.stdout.write(JSON.stringify({ ok: false, error: `missing ${name}` }) + '\n');
    process.exit(1);
  }
  return v;
}

function check(cond, message) {
  if (!cond) {
    throw new Failure(message);
  }
}

const demo = need('DEMO_URL').replace(/\/$/, '');
const issuer = need('PORTCULLIS_ISSUER').replace(/\/$/, '');
const email = need('USER_EMAIL');
const password = need('USER_PASSWORD');
const sub = need('USER_SUB');
const artifacts = need('ARTIFACTS_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const spki = process.env.IGNORE_CERT_SPKI || '';
mkdirSync(artifacts, { recursive: true });

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function checkpoint(name, data = {}) {
  process.stdout.write('CHECKPOINT ' + JSON.stringify({ name, ...data }) + '\n');
  const { value, done } = await stdinLines.next();
  check(!done && value.trim() === 'go', `checkpoint ${name}: the test answered ${done ? 'nothing' : value}`);
}

const cspViolations = [];
const consoleErrors = [];
const pageErrors = [];
const documents = [];
const screenshots = [];
let step = 'setup';

const initScript = () => {
  document.addEventListener(
    'securitypolicyviolation',
    (e) => {
      console.debug(
        '__demo_csp__' +
          JSON.stringify({
            documentURI: String(e.documentURI).split('?')[0],
            effectiveDirective: e.effectiveDirective,
            blockedURI: String(e.blockedURI).split('?')[0],
          }),
      );
    },
    true,
  );
};

function stripQuery(u) {
  try {
    const x = new URL(u);
    return x.origin + x.pathname;
  } catch {
    return String(u).split('?')[0];
  }
}

function cookieReport(c) {
  // No values: they are bearer secrets.
  return {
    name: c.name,
    domain: c.domain,
    hostOnly: !c.domain.startsWith('.'),
    path: c.path,
    secure: c.secure,
    httpOnly: c.httpOnly,
    sameSite: c.sameSite,
    valueLength: c.value.length,
  };
}

async function shot(page, name) {
  const path = join(artifacts, name);
  await page.screenshot({ path, fullPage: true });
  screenshots.push(path);
}

async function text(page, selector) {
  return (await page.textContent(selector, { timeout: TIMEOUT_MS }))?.trim();
}

// From the demo's home page through Portcullis's sign-in form back to /me.
async function signIn(page, what) {
  await page.goto(`${demo}/`, { waitUntil: 'load' });
  await page.waitForSelector('a#signin');
  if (what === 'first') {
    await shot(page, 'demo-home.png');
  }
  await page.click('a#signin');
  try {
    await page.waitForSelector('form#login #email', { state: 'visible' });
  } catch {
    throw new Failure(`${what} sign-in: no Portcullis sign-in form (at ${stripQuery(page.url())})`);
  }
  check(page.url().startsWith(`${issuer}/`), `${what} sign-in: the form is at ${stripQuery(page.url())}, not Portcullis`);
  if (what === 'first') {
    await shot(page, 'portcullis-sign-in.png');
  }
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#sign-in');
  try {
    await page.waitForURL(`${demo}/me`, { waitUntil: 'load' });
    await page.waitForSelector('#sub');
  } catch {
    throw new Failure(`${what} sign-in: did not reach ${demo}/me (at ${stripQuery(page.url())}, "${await page.title()}")`);
  }
}

async function meState(page) {
  return {
    sub: await text(page, '#sub'),
    email: await text(page, '#email'),
    expires_at: Number(await text(page, '#expires-at')),
    refreshes: Number(await text(page, '#refreshes')),
    scope: await text(page, '#scope'),
    claims: await page.$$eval('td.claim', (tds) => Object.fromEntries(tds.map((td) => [td.dataset.name, td.textContent]))),
  };
}

// /me when signed out: the same-site hop, then "You are not signed in".
async function expectSignedOut(page, what) {
  await page.goto(`${demo}/me`, { waitUntil: 'load' });
  try {
    await page.waitForSelector('#not-signed-in');
  } catch {
    throw new Failure(`${what}: /me did not say "not signed in" (at ${stripQuery(page.url())}, "${await page.title()}")`);
  }
}

async function main() {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (spki) {
    args.push(`--ignore-certificate-errors-spki-list=${spki}`);
  }
  const browser = await chromium.launch({ executablePath, headless: true, args, timeout: 20_000 });
  const results = { ok: false, browser: browser.version() };
  const context = await browser.newContext({ ignoreHTTPSErrors: !spki, viewport: { width: 900, height: 800 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  context.setDefaultNavigationTimeout(TIMEOUT_MS);
  await context.addInitScript(initScript);
  const page = await context.newPage();
  page.on('console', (msg) => {
    const t = msg.text();
    if (t.startsWith('__demo_csp__')) {
      cspViolations.push({ step, ...JSON.parse(t.slice('__demo_csp__'.length)) });
    } else if (msg.type() === 'error') {
      consoleErrors.push({ step, text: t, url: stripQuery(msg.location()?.url || '') });
    }
  });
  page.on('pageerror', (err) => pageErrors.push({ step, message: String(err?.message || err) }));
  page.on('response', (res) => {
    const req = res.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      documents.push({ step, method: req.method(), url: stripQuery(res.url()), status: res.status() });
    }
  });
  try {
    // 1. Sign in.
    step = 'sign-in';
    await signIn(page, 'first');
    results.first = await meState(page);
    check(results.first.sub === sub, `/me shows ${results.first.sub}, expected ${sub}`);
    check(results.first.email === email, `/me shows ${results.first.email}, expected ${email}`);
    await shot(page, 'demo-me.png');
    results.first.documents = documents.filter((d) => d.step === step);
    results.cookies = (await context.cookies(`${demo}/callback`)).map(cookieReport);

    // 2. The access token expires (the test moves the demo's clock); the next view refreshes.
    await checkpoint('signed_in', { expires_at: results.first.expires_at });
    step = 'refresh';
    await page.goto(`${demo}/me`, { waitUntil: 'load' });
    await page.waitForSelector('#sub');
    results.refreshed = await meState(page);
    results.refreshed.url = stripQuery(page.url());
    await shot(page, 'demo-me-refreshed.png');
    await checkpoint('refreshed');

    // 3. Sign out through the form: the demo, then Portcullis, then back to /signed-out.
    step = 'logout';
    await page.click('#sign-out');
    try {
      await page.waitForURL(`${demo}/signed-out`, { waitUntil: 'load' });
      await page.waitForSelector('#signed-out');
    } catch {
      throw new Failure(`logout: did not reach ${demo}/signed-out (at ${stripQuery(page.url())}, "${await page.title()}")`);
    }
    await shot(page, 'demo-signed-out.png');
    results.logout = { documents: documents.filter((d) => d.step === step) };
    results.logout.cookies_after = (await context.cookies(demo)).map(cookieReport);
    await expectSignedOut(page, 'after logout');
    await checkpoint('logged_out');

    // 4. Sign in again; Portcullis ends the session and tells the demo over the back channel.
    step = 'sign-in-again';
    await signIn(page, 'second');
    results.second = await meState(page);
    check(results.second.sub === sub, `second sign-in: /me shows ${results.second.sub}`);
    check(results.second.refreshes === 0, `second sign-in: a new session has ${results.second.refreshes} refreshes`);
    await checkpoint('signed_in_again', { sid: results.second.claims.sid });
    step = 'backchannel';
    await expectSignedOut(page, 'after back-channel logout');
    await shot(page, 'demo-after-backchannel-logout.png');
    results.after_backchannel = { documents: documents.filter((d) => d.step === step) };
    results.ok = true;
  } catch (e) {
    await page.screenshot({ path: join(artifacts, 'demo-failure.png'), fullPage: true }).catch(() => {});
    results.error = `[${step}] ${e instanceof Failure ? e.message : e?.stack || e}`;
    results.failure_url = stripQuery(page.url());
  } finally {
    results.csp_violations = cspViolations;
    results.console_errors = consoleErrors;
    results.page_errors = pageErrors;
    results.documents = documents;
    results.screenshots = screenshots;
    await context.close().catch(() => {});
    await browser.close().catch(() => {});
  }
  process.stdout.write(JSON.stringify(results) + '\n');
  if (!results.ok) {
    process.stderr.write(`demo.mjs: FAILED: ${results.error}\n`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e?.stack || e) }) + '\n');
  process.exit(1);
});
