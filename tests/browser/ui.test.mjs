// The web UI in headless Chromium against a real clawd and a real
// claw-runner: setup, sign-in, runs, live logs, commands, stop, artifacts,
// roles, reconnects, a 100,000-line log and TOTP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway, launchBrowser, shoot, readLog, totp, binDir, shotDir, DESKTOP } from './harness.mjs';

const ADMIN = { username: 'admin', password: 'correct horse battery' };
const VIEWER = { username: 'vera', password: 'viewer password 1' };

let gw;
let browser;
let admin; // a signed-in browser context of the administrator
let page;
let runners = [];

before(async () => {
  gw = await Gateway.start();
  browser = await launchBrowser();
  admin = await browser.newContext({ ignoreHTTPSErrors: true, viewport: DESKTOP });
  page = await admin.newPage();
  page.on('pageerror', (err) => { console.error('page error:', err); });
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error('console:', m.text()); });
});

after(async () => {
  // The last state of the page, for a reviewer when something failed.
  if (page) await page.screenshot({ path: join(shotDir, 'last-page.png'), fullPage: true }).catch(() => {});
  for (const r of runners) if (r.exitCode === null) r.kill('SIGKILL');
  if (browser) await browser.close();
  if (gw) {
    await gw.stop();
    if (process.exitCode) console.error(gw.log);
    gw.cleanup();
  }
});

async function signIn(p, user, code) {
  await p.goto(`${gw.base}/#/login`);
  await p.fill('input[name=username]', user.username);
  await p.fill('input[name=password]', user.password);
  await p.click('button[type=submit]');
  if (code) {
    await p.waitForSelector('input[name=totpCode]:visible');
    await p.fill('input[name=totpCode]', code());
    await p.click('button[type=submit]');
  }
  await p.waitForSelector('#nav:not([hidden])');
}

async function adminBearer() {
  return (await gw.login(ADMIN.username, ADMIN.password)).token;
}

test('setup, sign-in, a run streamed by claw-runner, a command, stop and artifacts', async () => {
  // First visit: the setup page asks for the token.
  await page.goto(gw.base);
  await page.waitForSelector('input[name=setupToken]');
  await shoot(page, 'setup');
  await page.fill('input[name=setupToken]', gw.setupToken());
  await page.fill('input[name=username]', ADMIN.username);
  await page.fill('input[name=password]', ADMIN.password);
  await page.fill('input[name=password2]', ADMIN.password);
  await page.click('button[type=submit]');
  await page.waitForSelector('h1:text("Runs")');

  // Sign out and in again through the login page.
  await page.click('button:text("Sign out")');
  await page.waitForSelector('h1:text("Sign in to claw")');
  await shoot(page, 'login');
  await signIn(page, ADMIN);

  // Create a run: the page shows id, token and the line to paste, once.
  const work = mkdtempSync(join(tmpdir(), 'claw-agent-'));
  // The agent works in a git checkout, so `git diff` has something to show.
  writeFileSync(join(work, 'notes.txt'), 'first line\n');
  execFileSync('git', ['init', '-q'], { cwd: work });
  execFileSync('git', ['add', 'notes.txt'], { cwd: work });
  execFileSync('git', ['-c', 'user.email=t@example.invalid', '-c', 'user.name=t', 'commit', '-qm', 'start'], { cwd: work });
  const agent = join(work, 'agent.sh');
  writeFileSync(agent, [
    'echo "changed by the agent" >> notes.txt',
    'for i in $(seq 1 30); do echo "line $i"; sleep 0.02; done',
    'printf "\\033[31mred alert\\033[0m plain\\n"',
    'echo "<b>not bold</b> & <script>alert(1)</script>"',
    'echo "to stderr" >&2',
    'exec sleep 300',
  ].join('\n'));
  await page.click('a:text("New run")');
  await page.fill('input[name=command]', `sh ${agent}`);
  await page.click('button:text("Create run")');
  const line = await page.textContent('#runner-line');
  const runId = await page.textContent('#run-id');
  const token = await page.textContent('#run-token');
  assert.equal(line, `claw-runner start --gateway ${gw.base} --run-id ${runId} --token ${token} -- sh ${agent}`);
  await shoot(page, 'run-created');
  await page.click('a:text("Watch the run")');
  await page.waitForSelector('#run-status [data-status=pending]');

  // Start the runner with exactly the pasted line's arguments.
  const args = line.split(' ').slice(1);
  const runner = spawn(join(binDir, 'claw-runner'), args, {
    cwd: work,
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin', HOME: work,
      CLAW_HMAC_SECRET_FILE: join(gw.data, 'secrets/hmac-secret'),
      CLAW_CA_CERT: join(gw.data, 'certs/server.crt'),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  runners.push(runner);
  let runnerLog = '';
  runner.stderr.on('data', (d) => { runnerLog += d; });

  // The output arrives live, in order, colours kept, HTML shown as text.
  await page.waitForSelector('#run-status [data-status=running]');
  await page.locator('.log-line', { hasText: 'to stderr' }).waitFor({ timeout: 20000 });
  const lines = await readLog(page);
  const numbered = lines.filter((l) => /^line \d+$/.test(l.text)).map((l) => l.text);
  assert.deepEqual(numbered, Array.from({ length: 30 }, (_, i) => `line ${i + 1}`));
  const seqs = lines.map((l) => l.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'lines in sequence order');
  assert.equal(lines.find((l) => l.text === 'to stderr').kind, 'stderr');
  assert.equal(lines.find((l) => l.text.startsWith('line 1')).kind, 'stdout');
  assert.ok(lines.some((l) => l.kind === 'marker' && l.text.startsWith('▶ started')));
  await page.locator('.log').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  assert.equal(await page.textContent('.log-line .fg-1'), 'red alert');
  const html = page.locator('.log-line', { hasText: 'not bold' });
  assert.equal(await html.textContent(), '<b>not bold</b> & <script>alert(1)</script>');
  assert.equal(await html.locator('b, script').count(), 0);

  // Search within the log.
  await page.fill('.log-search', 'line 2');
  await page.waitForSelector('.match-count:text("1/11")');
  assert.equal(await page.locator('.log-line.current').textContent(), 'line 2');
  await page.fill('.log-search', '');

  // A command from the allowlist: suggestions, then the runner's answer.
  const suggestions = await page.$$eval('#allowed-commands option', (o) => o.map((x) => x.value));
  assert.ok(suggestions.includes('pwd') && suggestions.includes('git status'), suggestions.join(','));
  await page.fill('input[name=command]', 'rm -rf /');
  await page.waitForSelector('.hint:text("Not on the allowlist")');
  await page.click('form.send button');
  await page.waitForSelector('.toast.error:text("not on the allowlist")');
  await page.fill('input[name=command]', 'pwd');
  await page.click('form.send button');
  const pwd = page.locator('.cmd[data-status=completed]', { hasText: 'pwd' });
  await pwd.locator('.cmd-result').waitFor({ timeout: 20000 });
  assert.match(await pwd.locator('.cmd-result').textContent(), new RegExp(work));
  // `git diff` from the UI: its output, and the diff as an artifact viewed inline.
  await page.fill('input[name=command]', 'git diff');
  await page.click('form.send button');
  await page.waitForSelector('.artifact-list li[data-name="latest.diff"]', { timeout: 20000 });
  await page.locator('.artifact-list li[data-name="latest.diff"] button:text("View")').click();
  await page.waitForSelector('.artifact-text .d-add');
  assert.equal(await page.textContent('.artifact-text .d-add'), '+changed by the agent');
  assert.match(await page.textContent('.artifact-text .d-hunk'), /^@@ /);
  await shoot(page, 'run-detail');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shoot(page, 'run-detail-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Stop, with a confirmation; the runner stops the agent and uploads its log.
  await page.click('#stop');
  await page.click('dialog button:text("Stop run")');
  await page.waitForSelector('#run-status [data-status=stopped], #run-status [data-status=failed]', { timeout: 30000 });
  await page.waitForSelector('.artifact-list li[data-name$=".log"]', { timeout: 30000 });
  const exit = await new Promise((ok) => (runner.exitCode !== null ? ok(runner.exitCode) : runner.once('exit', ok)));
  assert.notEqual(exit, null, runnerLog);

  // Download the log and view it inline.
  const item = page.locator('.artifact-list li[data-name$=".log"]');
  const [download] = await Promise.all([page.waitForEvent('download'), item.locator('a:text("Download")').click()]);
  const saved = join(work, 'downloaded.log');
  await download.saveAs(saved);
  const downloaded = readFileSync(saved, 'utf8');
  assert.match(downloaded, /line 1\n[\s\S]*line 30\n/);
  await item.locator('button:text("View")').click();
  // The viewer shows latest.diff until the log has arrived.
  await page.locator('.artifact-text', { hasText: 'line 30' }).waitFor();
  await shoot(page, 'run-artifacts');

  // The run list shows the run with its final state, command and exit code.
  await page.click('nav a:text("Runs")');
  const row = page.locator(`tr[data-run="${runId}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /stopped|failed/);
  assert.match(await row.textContent(), new RegExp(`sh ${agent}`));
  await shoot(page, 'runs');
});

const started = (command) => ({ type: 'marker', data: JSON.stringify({ event: 'started', command }) });
const finished = (exitCode) => ({ type: 'marker', data: JSON.stringify({ event: 'finished', exitCode }) });

test('the run list follows status changes live and filters by state', async () => {
  await page.goto(`${gw.base}/#/runs`);
  await page.waitForSelector('table.runs tbody tr');
  const run = await gw.createRun(await adminBearer(), 'claude -p "live list"');
  await gw.postEvents(run, [started('claude -p "live list"')]);
  const row = page.locator(`tr[data-run="${run.id}"]`);
  await row.locator('[data-status=running]').waitFor();
  await gw.postEvents(run, [{ type: 'stdout', data: 'hello\n' }, finished(0)]);
  await row.locator('[data-status=done]').waitFor();
  assert.match(await row.textContent(), /claude -p "live list"/);

  await page.selectOption('select[name=status]', 'failed');
  await page.waitForSelector(`tr[data-run="${run.id}"]`, { state: 'detached' });
  await page.selectOption('select[name=status]', 'done');
  await row.waitFor();
  assert.equal(await page.locator('table.runs tbody tr').count(), 1);
  await page.selectOption('select[name=status]', '');
});

test('bidirectional and invisible controls in output and commands show as escapes', async () => {
  const command = 'claude -p "abc\u202Edef"';
  const run = await gw.createRun(await adminBearer(), command);
  await gw.postEvents(run, [
    started(command),
    { type: 'stdout', data: 'abc\u202Edef zero\u200Bwidth \u001b[32mgreen\u2066txt\u2069\u001b[0m \uFEFFend\n' },
  ]);
  await page.goto(`${gw.base}/#/runs/${run.id}`);
  const line = page.locator('.log-line.k-stdout', { hasText: 'zero' });
  await line.waitFor();
  const text = await line.textContent();
  assert.equal(text, 'abc<U+202E>def zero<U+200B>width green<U+2066>txt<U+2069> <U+FEFF>end');
  assert.doesNotMatch(text, /[\u202e\u200b\u2066\u2069\ufeff]/);
  // Each escape is its own span that reads as one, with the name as a tooltip.
  const escape = line.locator('.ctl').first();
  assert.equal(await escape.textContent(), '<U+202E>');
  assert.equal(await escape.getAttribute('title'), 'U+202E RIGHT-TO-LEFT OVERRIDE');
  assert.equal(await line.locator('.ctl').count(), 5);
  const look = await escape.evaluate((el) => {
    const style = getComputedStyle(el);
    return { border: style.borderTopStyle, color: style.color, output: getComputedStyle(el.parentElement).color };
  });
  assert.equal(look.border, 'solid');
  assert.notEqual(look.color, look.output);
  // The colour of the output around an escape is kept.
  assert.match(await line.locator('.fg-2').first().textContent(), /^green/);

  // The marker line, the run's facts and the run list show the command so too.
  assert.equal(await page.locator('.log-line.k-marker').textContent(), '▶ started: claude -p "abc<U+202E>def"');
  const fact = page.locator('.facts dd code').first();
  assert.equal(await fact.textContent(), 'claude -p "abc<U+202E>def"');
  assert.equal(await fact.locator('.ctl').count(), 1);
  // Search finds an escape by its code point.
  await page.fill('.log-search', 'u+202e');
  await page.waitForSelector('.match-count:text("1/2")');
  await shoot(page, 'run-controls');
  await page.fill('.log-search', '');

  await page.goto(`${gw.base}/#/runs`);
  const cell = page.locator(`tr[data-run="${run.id}"] .c-command`);
  await cell.waitFor();
  assert.equal(await cell.textContent(), 'claude -p "abc<U+202E>def"');
  assert.equal(await cell.locator('.ctl').count(), 1);
});

test('users: add, change role, reset password, delete; a viewer sees no controls and the API refuses', async () => {
  await page.click('nav a:text("Users")');
  await page.waitForSelector('tr[data-user=admin]');
  const addUser = async (user, role) => {
    await page.fill('form input[name=username]', user.username);
    await page.fill('form input[name=password]', user.password);
    await page.selectOption('form select[name=role]', role);
    await page.click('form button:text("Add user")');
    await page.waitForSelector(`tr[data-user=${user.username}]`);
  };
  await addUser({ username: VIEWER.username, password: 'first password 1' }, 'operator');
  await page.locator(`tr[data-user=${VIEWER.username}] select`).selectOption('viewer');
  await page.waitForSelector('.toast:text("is now viewer")');
  const vera = page.locator(`tr[data-user=${VIEWER.username}]`);
  await vera.locator('button:text("Reset password")').click();
  await page.fill('dialog input', VIEWER.password);
  await page.click('dialog button:text("Save")');
  await page.waitForSelector('.toast:text("Password reset")');
  await addUser({ username: 'temporary', password: 'temporary password' }, 'viewer');
  await page.locator('tr[data-user=temporary] button:text("Delete")').click();
  await page.click('dialog button:text("Delete")');
  await page.waitForSelector('tr[data-user=temporary]', { state: 'detached' });
  await shoot(page, 'users');
  const bearer = await adminBearer();
  const users = (await gw.fetch('GET', '/api/auth/users', { headers: { authorization: `Bearer ${bearer}` } })).body;
  assert.deepEqual(users.map((u) => [u.username, u.role]).sort(), [['admin', 'admin'], ['vera', 'viewer']]);

  // A running run: the administrator may stop it, the viewer may not.
  const run = await gw.createRun(bearer, 'claude');
  await gw.postEvents(run, [started('claude'), { type: 'stdout', data: 'working\n' }]);
  await page.goto(`${gw.base}/#/runs/${run.id}`);
  await page.waitForSelector('#stop');
  assert.equal(await page.locator('form.send').count(), 1);

  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: DESKTOP });
  const viewer = await context.newPage();
  await signIn(viewer, VIEWER);
  assert.equal(await viewer.locator('a:text("New run")').count(), 0);
  assert.equal(await viewer.locator('nav a:text("Users")').count(), 0);
  assert.equal(await viewer.locator('nav a:text("Audit")').count(), 0);
  await viewer.goto(`${gw.base}/#/runs/${run.id}`);
  await viewer.locator('.log-line', { hasText: 'working' }).waitFor();
  assert.equal(await viewer.locator('#stop').count(), 0);
  assert.equal(await viewer.locator('form.send').count(), 0);
  await shoot(viewer, 'run-detail-viewer');
  const forged = await viewer.evaluate(async (id) => {
    const stop = await fetch(`/api/runs/${id}/stop`, { method: 'POST' });
    const command = await fetch(`/api/runs/${id}/command`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ command: 'git status' }),
    });
    return [stop.status, command.status];
  }, run.id);
  assert.deepEqual(forged, [403, 403]);
  const after = (await gw.fetch('GET', `/api/runs/${run.id}`, { headers: { authorization: `Bearer ${bearer}` } })).body;
  assert.equal(after.stopRequestedAt, null);
  await context.close();
});

test('a cut WebSocket reconnects and resumes without gaps or duplicates', async () => {
  const run = await gw.createRun(await adminBearer(), 'claude');
  await gw.postEvents(run, [started('claude')]);
  const flaky = await admin.newPage();
  let connections = 0;
  let dropping = false;
  let current = null;
  await flaky.routeWebSocket(/\/ws$/, (ws) => {
    connections += 1;
    const server = ws.connectToServer();
    // Server-to-page messages pass unless the link is "dropping" them.
    server.onMessage((message) => { if (!dropping) ws.send(message); });
    current = { ws, server };
  });
  await flaky.goto(`${gw.base}/#/runs/${run.id}`);
  await flaky.waitForSelector('.live-state.s-open');

  const total = 400;
  let next = 2; // sequence 1 is the started marker
  const post = async (upTo) => {
    for (; next <= upTo; next += 1) {
      const reply = await gw.signed('POST', '/api/ingest/event', run.id, run.token, {
        type: next % 7 ? 'stdout' : 'stderr', data: `event ${next}\n`, sequence: next,
      });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
    }
  };
  const cut = async () => {
    // Messages already on their way are lost, then the connection drops.
    dropping = true;
    await post(next + 20);
    const { ws, server } = current;
    await ws.close({ code: 4000, reason: 'test cut' });
    await server.close();
    dropping = false;
  };
  await post(120);
  await cut();
  await post(200); // while the page is disconnected
  await flaky.waitForSelector('.live-state.s-open');
  await post(300);
  await cut();
  await post(total);
  await flaky.waitForFunction((n) => Number(document.querySelector('.log-wrap').dataset.lines) >= n, total);
  const lines = await readLog(flaky);
  assert.deepEqual(lines.map((l) => l.seq), Array.from({ length: total }, (_, i) => i + 1));
  assert.deepEqual(lines.slice(1).map((l) => l.text), Array.from({ length: total - 1 }, (_, i) => `event ${i + 2}`));
  assert.ok(connections >= 3, `reconnected (${connections} connections)`);
  await flaky.close();
});

test('a log of 100,000 lines loads, follows, pauses when scrolled up, and searches', async () => {
  const run = await gw.createRun(await adminBearer(), 'claude');
  const batch = (from, count) => Array.from({ length: count }, (_, i) => ({
    type: 'stdout', data: `row ${from + i} \u001b[32mok\u001b[0m\n`, sequence: from + i,
  }));
  for (let from = 1; from <= 99000; from += 1000) await gw.postEvents(run, batch(from, 1000));

  const began = Date.now();
  await page.goto(`${gw.base}/#/runs/${run.id}`);
  await page.waitForFunction(() => Number(document.querySelector('.log-wrap')?.dataset.lines) === 99000, null, { timeout: 60000 });
  const loaded = Date.now() - began;
  // Still responsive: a round trip into the page comes back at once.
  const rtt = Date.now();
  await page.evaluate(() => 1);
  console.log(`# 99,000 stored lines shown in ${loaded} ms; page round trip ${Date.now() - rtt} ms`);

  await gw.postEvents(run, batch(99001, 1000));
  await page.waitForFunction(() => Number(document.querySelector('.log-wrap').dataset.lines) === 100000);
  await page.locator('.log-line', { hasText: 'row 100000 ok' }).waitFor();

  // The reader scrolls up: new output no longer moves the view.
  await page.locator('.log').hover();
  await page.mouse.wheel(0, -5000);
  await page.waitForFunction(() => document.querySelector('.log-wrap').dataset.following === 'false');
  const top = await page.locator('.log').evaluate((el) => el.scrollTop);
  await gw.postEvents(run, batch(100001, 1));
  await page.waitForSelector('button.follow:text("1 new")');
  assert.equal(await page.locator('.log').evaluate((el) => el.scrollTop), top);
  await page.click('button.follow');
  await page.locator('.log-line', { hasText: 'row 100001 ok' }).waitFor();

  await page.fill('.log-search', 'row 99999');
  await page.waitForSelector('.match-count:text("1/1")');
  assert.equal(await page.locator('.log-line.current').textContent(), 'row 99999 ok');
  assert.equal(await page.locator('.log-line.current mark').textContent(), 'row 99999');
  await shoot(page, 'run-100k');
});

test('TOTP: enrol with a QR code, then sign-in asks for a code', async () => {
  await page.goto(`${gw.base}/#/account`);
  await page.click('button:text("Set up an authenticator")');
  await page.waitForSelector('img.qr');
  const size = await page.locator('img.qr').evaluate((img) => img.naturalWidth);
  assert.ok(size > 0, 'the QR code renders');
  await shoot(page, 'totp-enrol');
  const secret = await page.locator('#totp-secret').textContent();
  await page.fill('input[name=code]', totp(secret));
  await page.click('button:text("Confirm")');
  await page.waitForSelector('#totp-state:text("on")');

  await page.click('button:text("Sign out")');
  await page.waitForSelector('h1:text("Sign in to claw")');
  // The next time step: the code just used for confirmation cannot be replayed.
  await signIn(page, ADMIN, () => totp(secret, Date.now() + 30000));
  assert.equal(await page.locator('.who').textContent(), 'admin admin');

  // The users page shows who has it; an administrator resets another's.
  const vera = await gw.login(VIEWER.username, VIEWER.password);
  const auth = { headers: { authorization: `Bearer ${vera.token}` } };
  const enrolled = await gw.fetch('POST', '/api/auth/totp/enroll', { ...auth, body: {} });
  const confirmed = await gw.fetch('POST', '/api/auth/totp/confirm', { ...auth, body: { code: totp(enrolled.body.secret) } });
  assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
  assert.equal((await gw.fetch('POST', '/api/auth/login', { body: VIEWER })).body.totpRequired, true);
  await page.click('nav a:text("Users")');
  await page.locator('tr[data-user=admin] td:text("on")').waitFor();
  assert.equal(await page.locator('tr[data-user=admin] button:text("Reset TOTP")').count(), 0);
  const veraRow = page.locator('tr[data-user=vera]');
  await veraRow.locator('td:text("on")').waitFor();
  await veraRow.locator('button:text("Reset TOTP")').click();
  await page.click('dialog button:text("Reset TOTP")');
  await veraRow.locator('td:text("off")').waitFor();
  assert.equal((await gw.fetch('POST', '/api/auth/login', { body: VIEWER })).status, 200);

  // The audit log records it all and its chain holds.
  await page.click('nav a:text("Audit")');
  await page.fill('input[name=action]', 'login');
  await page.click('form.filters button');
  // The unfiltered list is on the page already: wait for the filtered one.
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('table.audit tbody tr')];
    return rows.length > 0 && rows.every((r) => (r.dataset.action || '').startsWith('login'));
  });
  const actions = await page.$$eval('table.audit tbody tr', (rows) => rows.map((r) => r.dataset.action));
  assert.ok(actions.length >= 3 && actions.every((a) => a.startsWith('login')), actions.join(','));
  await page.click('button:text("Verify chain")');
  await page.waitForSelector('#audit-verdict:text("chain intact")');
  await page.fill('input[name=action]', '');
  await page.click('form.filters button');
  await shoot(page, 'audit');

  await page.click('nav a:text("Status")');
  await page.waitForSelector('#health:text("ok")');
  // Pages closed earlier may take a moment to be counted out; the page polls.
  await page.waitForSelector('#browsers:text-is("1")', { timeout: 15000 });
  await shoot(page, 'status');
});
