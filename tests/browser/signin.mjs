// Real-browser sign-in test for Portcullis, driven by crates/cli/tests/browser.rs.
//
// The Rust test starts the server (TLS, test CA), registers a confidential first-party client
// (redirects https://127.0.0.1:<https port>/cb and http://127.0.0.1/cb), a public client and a
// user, and serves a small "app" on two loopback ports, http://127.0.0.1:<port> and
// https://127.0.0.1:<port> (the server's own certificate), each with:
//   /start-web?attempt=N       a plain link (#signin) to /authorize for the first-party client,
//                              redirect to the HTTPS app's /cb (silent single sign-on allowed)
//   /start-loopback?attempt=N  the same client, redirect to the HTTP app's /cb (loopback: any
//                              local process could listen there, so always "Continue as")
//   /start-public?attempt=N    the public client, redirect to the HTTP app's /cb
//   /start-v6?attempt=N        (on the IPv6 loopback listener APP_V6_BASE) a public client whose
//                              redirect is http://[::1]:<port>/cb: reached through our
//                              "returning" page, since no CSP form-action can name it
//   /forge                     an attacker page whose form (#forge-submit) POSTs to <issuer>/login
//   /cb                        the redirect URI (a small HTML page that echoes nothing)
//   /csp-canary                a page whose own CSP forbids the image it shows: proves that
//                              violations and console errors are really recorded
// It ends on the account pages: the password change (to NEW_PASSWORD) and the sessions page.
// This script drives Chromium through the hosted pages in ONE browser context and prints one
// JSON line with what it saw on stdout (diagnostics go to stderr). It exits non-zero with a
// clear message on any failure.
//
// Inputs (environment):
//   PORTCULLIS_ISSUER         e.g. https://localhost:4431
//   APP_BASE                  e.g. http://127.0.0.1:5555
//   APP_HTTPS_BASE            e.g. https://127.0.0.1:5556
//   WEB_CLIENT_ID             the confidential first-party client
//   PUBLIC_CLIENT_ID          the public client
//   APP_V6_BASE, V6_CLIENT_ID the IPv6 loopback app (http://[::1]:<port>) and its client
//   USER_EMAIL, USER_PASSWORD the seeded user
//   ARTIFACTS_DIR             where screenshots go (created if missing)
//   CHROMIUM                  optional, defaults to /usr/bin/chromium
//   IGNORE_CERT_SPKI          optional base64 SHA-256 SPKI hash of the server certificate, passed
//                             to --ignore-certificate-errors-spki-list

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const TIMEOUT_MS = 15_000;
/// What step f changes the password to (the Rust test signs in with it afterwards).
const NEW_PASSWORD = 'harbor quill meadow tangent';

function need(name) {
  const v = process.env[name];
  if (!v) {
    fail(`missing environment variable ${name}`);
  }
  return v;
}

function fail(message) {
  process.stderr.write(`signin.mjs: FAILED: ${message}\n`);
  process.stdout.write(JSON.stringify({ ok: false, error: message }) + '\n');
  process.exit(1);
}

class Failure extends Error {}

function check(cond, message) {
  if (!cond) {
    throw new Failure(message);
  }
}

function log(message) {
  process.stderr.write(`signin.mjs: ${message}\n`);
}

const issuer = need('PORTCULLIS_ISSUER').replace(/\/$/, '');
const appBase = need('APP_BASE').replace(/\/$/, '');
const appHttpsBase = need('APP_HTTPS_BASE').replace(/\/$/, '');
const webClientId = need('WEB_CLIENT_ID');
const publicClientId = need('PUBLIC_CLIENT_ID');
const appV6Base = need('APP_V6_BASE').replace(/\/$/, '');
const v6ClientId = need('V6_CLIENT_ID');
const email = need('USER_EMAIL');
const password = need('USER_PASSWORD');
const artifacts = need('ARTIFACTS_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const spki = process.env.IGNORE_CERT_SPKI || '';
mkdirSync(artifacts, { recursive: true });

const issuerUrl = new URL(issuer);

// Observations shared by all steps.
const cspViolations = [];
const consoleErrors = [];
const pageErrors = [];
const loginFormSeenAt = []; // every document (URL) in which form#login was present
const continueFormSeenAt = []; // every document (URL) in which form#continue was present
const documents = []; // main-frame document responses: {step, method, url (no query), status}
const screenshots = [];
let step = 'setup';

// Runs before any page script, in every document, and is not subject to the page's CSP
// (Playwright injects it through the DevTools protocol). The pages themselves allow no script.
// It reports through console.debug with a marker, because window state does not survive the
// navigations we want to watch.
const initScript = () => {
  document.addEventListener(
    'securitypolicyviolation',
    (e) => {
      console.debug(
        '__portcullis_csp__' +
          JSON.stringify({
            documentURI: String(e.documentURI).split('?')[0],
            violatedDirective: e.violatedDirective,
            effectiveDirective: e.effectiveDirective,
            blockedURI: String(e.blockedURI).split('?')[0],
            disposition: e.disposition,
            sample: e.sample,
          }),
      );
    },
    true,
  );
  document.addEventListener('DOMContentLoaded', () => {
    if (document.querySelector('form#login')) {
      console.debug('__portcullis_login_form__' + location.origin + location.pathname);
    }
    if (document.querySelector('form#continue')) {
      console.debug('__portcullis_continue_form__' + location.origin + location.pathname);
    }
  });
};

function stripQuery(u) {
  try {
    const x = new URL(u);
    return x.origin + x.pathname;
  } catch {
    return String(u).split('?')[0];
  }
}

function attachObservers(page) {
  page.on('console', (msg) => {
    const text = msg.text();
    if (text.startsWith('__portcullis_csp__')) {
      cspViolations.push({ step, ...JSON.parse(text.slice('__portcullis_csp__'.length)) });
      return;
    }
    if (text.startsWith('__portcullis_login_form__')) {
      loginFormSeenAt.push({ step, url: text.slice('__portcullis_login_form__'.length) });
      return;
    }
    if (text.startsWith('__portcullis_continue_form__')) {
      continueFormSeenAt.push({ step, url: text.slice('__portcullis_continue_form__'.length) });
      return;
    }
    if (msg.type() === 'error') {
      consoleErrors.push({ step, text, url: stripQuery(msg.location()?.url || '') });
    }
  });
  page.on('pageerror', (err) => pageErrors.push({ step, message: String(err?.message || err) }));
  page.on('response', (res) => {
    const req = res.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      documents.push({ step, method: req.method(), url: stripQuery(res.url()), status: res.status() });
    }
  });
}

// The query of a /cb URL the browser arrived at.
function callbackParams(url) {
  const u = new URL(url);
  return {
    url: stripQuery(url),
    code: u.searchParams.get('code'),
    state: u.searchParams.get('state'),
    iss: u.searchParams.get('iss'),
    error: u.searchParams.get('error'),
  };
}

// Opens an app start page on `base` and clicks its authorization link (a real cross-site
// navigation), after checking that it asks for `expectedClientId` and `base`'s /cb.
async function startAt(page, base, path, expectedClientId) {
  await page.goto(`${base}${path}`, { waitUntil: 'load' });
  const href = await page.getAttribute('a#signin', 'href');
  check(href, `${base}${path}: no a#signin link`);
  const target = new URL(href);
  check(target.origin === issuerUrl.origin, `${path}: the link goes to ${target.origin}, not the issuer`);
  check(
    target.searchParams.get('client_id') === expectedClientId,
    `${path}: the link is for client ${target.searchParams.get('client_id')}, expected ${expectedClientId}`,
  );
  check(
    target.searchParams.get('redirect_uri') === `${base}/cb`,
    `${path}: the link's redirect_uri is ${target.searchParams.get('redirect_uri')}, expected ${base}/cb`,
  );
  await page.click('a#signin');
}

// Waits until the browser is back at `base`'s /cb with a code.
async function waitForCallback(page, what, base) {
  const cbPrefix = `${base}/cb?`;
  try {
    await page.waitForURL((u) => u.href.startsWith(cbPrefix), { timeout: TIMEOUT_MS, waitUntil: 'load' });
  } catch (e) {
    const title = await page.title().catch(() => '?');
    throw new Failure(`${what}: did not reach ${base}/cb (now at ${stripQuery(page.url())}, title "${title}"): ${e.message.split('\n')[0]}`);
  }
  const params = callbackParams(page.url());
  check(!params.error, `${what}: the client got error=${params.error}`);
  check(params.code, `${what}: no code in the callback`);
  await page.waitForSelector('#callback', { timeout: TIMEOUT_MS });
  return params;
}

// An authorization from the HTTPS app that must complete without any page of ours: the
// documents are the start page, the /authorize hop, /authorize/resume answering 302, and /cb.
async function silentAuthorization(page, label, path, what) {
  const beforeLogin = loginFormSeenAt.length;
  const beforeContinue = continueFormSeenAt.length;
  await startAt(page, appHttpsBase, path, webClientId);
  const result = await waitForCallback(page, what, appHttpsBase);
  result.login_form_shown = loginFormSeenAt.length > beforeLogin;
  result.continue_shown = continueFormSeenAt.length > beforeContinue;
  result.documents = documents.filter((d) => d.step === label);
  check(!result.login_form_shown, `${what}: showed the login form`);
  check(!result.continue_shown, `${what}: showed "Continue as" instead of signing in silently`);
  const ours = result.documents.filter((d) => d.url.startsWith(`${issuer}/`));
  const summary = ours.map((d) => `${d.method} ${d.url} ${d.status}`);
  check(
    summary.length === 2 &&
      summary[0] === `GET ${issuer}/authorize 200` &&
      summary[1] === `GET ${issuer}/authorize/resume 302`,
    `${what}: expected only the hop and a 302 from /authorize/resume, got ${JSON.stringify(summary)}`,
  );
  return result;
}

// An authorization from `base` that must stop at "Continue as <email>" and complete after one
// click, without the login form.
async function continueAs(page, label, base, path, clientId, shotName, what) {
  const beforeLogin = loginFormSeenAt.length;
  await startAt(page, base, path, clientId);
  try {
    await page.waitForSelector('form#continue #continue-as', { state: 'visible' });
  } catch (e) {
    throw new Failure(`${what}: no "Continue as" button (now at ${stripQuery(page.url())}, title "${await page.title()}")`);
  }
  check(
    stripQuery(page.url()) === `${issuer}/authorize/resume`,
    `${what}: "Continue as" at ${stripQuery(page.url())}, expected ${issuer}/authorize/resume`,
  );
  const continueText = (await page.textContent('#continue-as')).trim();
  const heading = (await page.textContent('h1')).trim();
  const clientName = (await page.textContent('p.app strong')).trim();
  const injected = await page.$('p.app app');
  check(continueText.includes(email), `${what}: the "Continue as" button says "${continueText}", without ${email}`);
  const shot = join(artifacts, shotName);
  await page.screenshot({ path: shot, fullPage: true });
  screenshots.push(shot);
  await page.click('#continue-as');
  const result = await waitForCallback(page, `${what} after "Continue as"`, base);
  result.continue_shown = true;
  result.continue_text = continueText;
  result.heading = heading;
  result.client_name_text = clientName;
  result.client_name_became_markup = Boolean(injected);
  result.login_form_shown = loginFormSeenAt.length > beforeLogin;
  result.documents = documents.filter((d) => d.step === label);
  return result;
}

function cookieReport(c) {
  // No values: a session cookie is a bearer secret.
  return {
    name: c.name,
    domain: c.domain,
    hostOnly: !c.domain.startsWith('.'),
    path: c.path,
    secure: c.secure,
    httpOnly: c.httpOnly,
    sameSite: c.sameSite,
    session: c.expires === -1,
    valueLength: c.value.length,
  };
}

async function main() {
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  if (spki) {
    args.push(`--ignore-certificate-errors-spki-list=${spki}`);
  }
  const browser = await chromium.launch({ executablePath, headless: true, args, timeout: 20_000 });
  const results = { ok: false, browser: browser.version(), spki_pinned: Boolean(spki) };
  const context = await browser.newContext({ ignoreHTTPSErrors: !spki, viewport: { width: 800, height: 700 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  context.setDefaultNavigationTimeout(TIMEOUT_MS);
  await context.addInitScript(initScript);
  const page = await context.newPage();
  attachObservers(page);
  try {
    // 0. The recorders work: the canary page must produce one img-src violation.
    step = 'canary';
    await page.goto(`${appBase}/csp-canary`, { waitUntil: 'load' });
    const deadline = Date.now() + 5_000;
    while (!cspViolations.some((v) => v.step === 'canary') && Date.now() < deadline) {
      await page.waitForTimeout(50);
    }
    check(cspViolations.some((v) => v.step === 'canary'), 'the CSP canary page produced no recorded violation');

    // a. First sign-in with the confidential first-party client (from the HTTPS app).
    step = 'web-1';
    await startAt(page, appHttpsBase, '/start-web?attempt=1', webClientId);
    await page.waitForURL((u) => u.href.startsWith(`${issuer}/authorize/resume`), { waitUntil: 'load' });
    await page.waitForSelector('form#login #email', { state: 'visible' });
    const loginShot = join(artifacts, 'login.png');
    await page.screenshot({ path: loginShot, fullPage: true });
    screenshots.push(loginShot);
    // The client's name ("Web <App>") must arrive as text, not markup.
    const clientName = (await page.textContent('p.app strong')).trim();
    const injected = await page.$('p.app app');
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.click('#sign-in');
    results.web1 = await waitForCallback(page, 'first sign-in', appHttpsBase);
    results.web1.login_form_shown = true;
    results.web1.client_name_text = clientName;
    results.web1.client_name_became_markup = Boolean(injected);

    // b. The cookies the issuer left in this browser.
    const cookies = await context.cookies(issuer);
    results.cookies = cookies.map(cookieReport);
    const session = cookies.find((c) => c.name === '__Host-portcullis-session');
    check(session, `no __Host-portcullis-session cookie after sign-in (have: ${cookies.map((c) => c.name).join(', ') || 'none'})`);
    check(session.secure, 'session cookie is not Secure');
    check(session.httpOnly, 'session cookie is not HttpOnly');
    check(session.sameSite === 'Strict', `session cookie SameSite is ${session.sameSite}`);
    check(session.path === '/', `session cookie path is ${session.path}`);
    check(session.domain === issuerUrl.hostname, `session cookie domain is ${session.domain} (expected host-only ${issuerUrl.hostname})`);
    const sessionValue = session.value;

    // c. A second authorization from the HTTPS app: silent single sign-on, no page of ours
    // beyond the hop (no login form, no "Continue as"), straight back to /cb.
    step = 'web-2';
    results.web2 = await silentAuthorization(page, 'web-2', '/start-web?attempt=2', 'second authorization (silent SSO)');

    // c2. The same client with its loopback http redirect: never silent, "Continue as" first.
    step = 'loopback-1';
    results.loopback = await continueAs(page, 'loopback-1', appBase, '/start-loopback?attempt=1', webClientId, 'continue-first-party.png', 'first-party client on a loopback redirect');
    check(!results.loopback.login_form_shown, 'the loopback flow of the first-party client showed the login form');

    // d. The public client: "Continue as <email>", one click.
    step = 'public-1';
    results.public = await continueAs(page, 'public-1', appBase, '/start-public?attempt=1', publicClientId, 'continue.png', 'public client');
    check(!results.public.login_form_shown, 'the public client flow showed the login form');

    // d2. The IPv6 loopback client: "Continue as", then the returning page, then its /cb.
    step = 'v6-1';
    results.v6 = await continueAs(page, 'v6-1', appV6Base, '/start-v6?attempt=1', v6ClientId, 'continue-v6.png', 'IPv6 loopback client');

    // e. A forged cross-site POST to /login from the app's origin.
    step = 'forge';
    await page.goto(`${appBase}/forge`, { waitUntil: 'load' });
    const [forged] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${issuer}/login` && r.request().method() === 'POST'),
      page.click('#forge-submit'),
    ]);
    await page.waitForURL(`${issuer}/login`, { waitUntil: 'load' });
    const forgeHeading = (await page.textContent('h1')).trim();
    const afterForge = await context.cookies(issuer);
    const sessionAfter = afterForge.find((c) => c.name === '__Host-portcullis-session');
    results.forge = {
      status: forged.status(),
      heading: forgeHeading,
      set_cookie: Boolean(forged.headers()['set-cookie']),
      session_unchanged: Boolean(sessionAfter) && sessionAfter.value === sessionValue,
      cookie_names: afterForge.map((c) => c.name),
    };
    check(results.forge.status === 403, `the forged POST got ${results.forge.status}, expected 403`);
    check(forgeHeading === 'Request refused', `the forged POST showed "${forgeHeading}", expected "Request refused"`);
    check(results.forge.session_unchanged, 'the session cookie changed after the forged POST');

    // Nothing changed: the next authorization is still silent.
    step = 'web-3';
    results.web3 = await silentAuthorization(page, 'web-3', '/start-web?attempt=3', 'authorization after the forged POST');

    // f. The account pages: change the password (ending other sessions, the default) and land
    // on the sessions page with its notice. Last, since it ends offline access.
    step = 'password';
    await page.goto(`${issuer}/account/password`, { waitUntil: 'load' });
    await page.waitForSelector('form#change-password #current_password', { state: 'visible' });
    const endOthersDefault = await page.isChecked('#end_others');
    await page.fill('#current_password', password);
    await page.fill('#new_password', NEW_PASSWORD);
    await page.fill('#confirm_password', NEW_PASSWORD);
    const passwordShot = join(artifacts, 'password.png');
    await page.screenshot({ path: passwordShot, fullPage: true });
    screenshots.push(passwordShot);
    await page.click('#save-password');
    await page.waitForURL(`${issuer}/account/sessions?password=changed`, { waitUntil: 'load' });
    results.password = {
      end_others_default: endOthersDefault,
      notice: Boolean(await page.$('#password-changed')),
      sessions: (await page.$$('li.session')).length,
      this_browser: Boolean(await page.$('#this-browser')),
    };
    check(results.password.notice, 'the sessions page did not say the password changed');

    // g. The session carries on after the change: single sign-on is still silent, and this
    // code is the one the test exchanges (the change ended the codes issued before it).
    step = 'web-4';
    results.web4 = await silentAuthorization(page, 'web-4', '/start-web?attempt=4', 'authorization after the password change');

    results.cookies_final = (await context.cookies(issuer)).map(cookieReport);
    results.ok = true;
  } catch (e) {
    const shot = join(artifacts, 'failure.png');
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    results.ok = false;
    results.error = `[${step}] ${e instanceof Failure ? e.message : e?.stack || e}`;
    results.failure_url = stripQuery(page.url());
  } finally {
    const notCanary = (x) => x.step !== 'canary';
    results.canary = {
      csp_violations: cspViolations.filter((x) => !notCanary(x)),
      console_errors: consoleErrors.filter((x) => !notCanary(x)),
    };
    results.csp_violations = cspViolations.filter(notCanary);
    results.console_errors = consoleErrors.filter(notCanary);
    results.page_errors = pageErrors;
    results.login_form_seen_at = loginFormSeenAt;
    results.continue_form_seen_at = continueFormSeenAt;
    results.documents = documents;
    results.screenshots = screenshots;
    await context.close().catch(() => {});
    await browser.close().catch(() => {});
  }
  process.stdout.write(JSON.stringify(results) + '\n');
  if (!results.ok) {
    process.stderr.write(`signin.mjs: FAILED: ${results.error}\n`);
    process.exit(1);
  }
}

main().catch((e) => fail(e?.stack || String(e)));
