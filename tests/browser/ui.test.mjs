// The web UI in headless Chromium against a real clawd and a real
// claw-runner: setup, sign-in, runs, live logs, commands, stop, artifacts,
// roles, reconnects, a 100,000-line log, agent conversations, approvals
// (the agent's requests decided from a phone), notifications (channels on
// the account page, Web Push through the service worker), the phone header,
// coding hosts (enrolled, and sessions started and continued on one) and
// TOTP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createDecipheriv, createECDH, createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway, launchBrowser, shoot, readLog, totp, binDir, shotDir, repo, DESKTOP, PHONE } from './harness.mjs';

const ADMIN = { username: 'admin', password: 'correct horse battery' };
const VIEWER = { username: 'vera', password: 'viewer password 1' };

let gw;
let browser;
let admin; // a signed-in browser context of the administrator
let page;
let runners = [];

before(async () => {
  // Notification targets on this machine (a loopback webhook and push
  // service) are allowed, and a failed delivery is not tried again.
  gw = await Gateway.start('notify_allow_private_targets = true\nnotify_max_attempts = 1\n');
  browser = await launchBrowser({ trust: gw.ca });
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
  await page.check('input[name=kind][value=command]');
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

test('Older runs pages back through every run, also those created in the same millisecond', async () => {
  const bearer = await adminBearer();
  // Created at once: the gateway stores several in one millisecond.
  await Promise.all(Array.from({ length: 120 }, (_, i) => gw.createRun(bearer, `echo page ${i}`)));
  const all = (await gw.fetch('GET', '/api/runs?limit=500', { headers: { authorization: `Bearer ${bearer}` } })).body;
  await page.goto(`${gw.base}/#/runs`);
  await page.reload();
  await page.waitForSelector('table.runs tbody tr');
  const older = page.getByRole('button', { name: 'Older runs' });
  assert.ok(await older.isVisible(), 'more runs than one page');
  while (await older.isVisible()) {
    const before = await page.locator('table.runs tbody tr').count();
    await older.click();
    await page.waitForFunction((n) => document.querySelectorAll('table.runs tbody tr').length > n
      || document.querySelector('button.secondary[hidden]'), before);
  }
  const shown = await page.locator('table.runs tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.run));
  assert.equal(new Set(shown).size, shown.length, 'a run listed twice');
  assert.deepEqual([...shown].sort(), all.map((r) => r.id).sort());
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

// An agent run's events as claw-runner makes them of Claude Code's output.
const ev = (type, data) => ({ type, data: JSON.stringify(data) });
const EDIT_DIFF = [
  '--- a/src/hello.rs', '+++ b/src/hello.rs', '@@ -1,3 +1,3 @@',
  ' fn main() {', '-    println!("helo, world");', '+    println!("hello, world");', ' }', '',
].join('\n');
const TEST_OUTPUT = Array.from({ length: 40 }, (_, i) => `test case_${i + 1} ... ok`).join('\n');

async function commandsOf(runId) {
  const reply = await gw.fetch('GET', `/api/runs/${runId}/commands`, { headers: { authorization: `Bearer ${await adminBearer()}` } });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body;
}

// The page's conversation follows the end; screenshots start at the top.
let agentRun;

test('an agent run is a conversation: markdown, tool cards, diffs, turn costs, changes and the raw log', async () => {
  const bearer = await adminBearer();
  const run = await gw.createAgentRun(bearer, { agent: 'claude', prompt: 'Fix the greeting in src/hello.rs', model: 'claude-sonnet-4-5' });
  agentRun = run;
  assert.match(run.runnerCommand, new RegExp(`^claw-runner start --run-id ${run.id} --token ${run.token} --agent claude$`));
  const [first] = await commandsOf(run.id);
  assert.equal(first.kind, 'prompt');

  // Before the runner starts, the first prompt waits, queued.
  await page.setViewportSize(DESKTOP);
  await page.goto(`${gw.base}/#/runs/${run.id}`);
  await page.locator('.queued .prompt.waiting', { hasText: 'Fix the greeting' }).waitFor();
  assert.equal(await page.getAttribute('#tab-conversation', 'aria-selected'), 'true');
  assert.equal(await page.locator('.composer textarea').isVisible(), true);

  // The stored part of the session arrives as a replay, the rest live.
  await gw.postEvents(run, [
    started('claude -p --output-format stream-json'),
    ev('session', {
      agent: 'claude', sessionId: 'sess-1', model: 'claude-sonnet-4-5', cwd: '/work/project',
      tools: ['Bash', 'Edit', 'Read'], permissionMode: 'acceptEdits',
    }),
    ev('prompt', { text: 'Fix the greeting in src/hello.rs', by: 'admin', promptId: first.id }),
    ev('thinking', { text: 'The greeting is misspelt; an Edit fixes it.' }),
  ]);
  await page.locator('.conv .prompt', { hasText: 'Fix the greeting' }).waitFor();
  await page.waitForSelector('.queued .prompt', { state: 'detached' });
  // A turn runs: Interrupt is offered.
  await page.waitForSelector('#interrupt:visible');
  const thinking = page.locator('.conv details.thinking');
  assert.equal(await thinking.getAttribute('open'), null, 'thinking starts collapsed');

  await gw.postEvents(run, [
    ev('message', { text: 'I will fix **the greeting** in `src/hello.rs`:\n\n```rust\nfn main() {}\n```\n\n- one\n- two' }),
    ev('tool_call', {
      callId: 'toolu_01', tool: 'Edit', summary: 'src/hello.rs',
      input: { file_path: '/work/project/src/hello.rs', old_string: 'helo', new_string: 'hello' },
    }),
    ev('tool_result', { callId: 'toolu_01', output: 'The file src/hello.rs has been updated.', isError: false }),
    ev('file_change', { path: 'src/hello.rs', kind: 'edit', diff: EDIT_DIFF, callId: 'toolu_01' }),
    ev('tool_call', {
      callId: 'toolu_02', tool: 'Bash', summary: 'cargo test',
      input: { command: 'cargo test', description: 'Run the tests' },
    }),
    ev('tool_result', {
      callId: 'toolu_02', output: TEST_OUTPUT, isError: false, truncated: true, fullBytes: 250000,
      artifact: 'tool-output-toolu-02.txt',
    }),
    ev('tool_call', { callId: 'toolu_03', tool: 'Read', summary: 'src/hello.rs', input: { file_path: 'src/hello.rs' } }),
    ev('tool_result', { callId: 'toolu_03', output: 'fn main() {\n    println!("hello, world");\n}\n', isError: false }),
    ev('tool_call', { callId: 'toolu_04', tool: 'Grep', summary: 'println', input: { pattern: 'println', path: 'src' } }),
    ev('tool_result', { callId: 'toolu_04', output: 'src/hello.rs:2', isError: false }),
    ev('tool_call', {
      callId: 'toolu_05', tool: 'Bash', summary: 'cargo clippy -- -D warnings',
      input: { command: 'cargo clippy -- -D warnings' },
    }),
    ev('tool_result', { callId: 'toolu_05', output: 'error: unused variable: `x`\n --> src/lib.rs:3:9', isError: true }),
    ev('tool_call', { callId: 'toolu_06', tool: 'WebFetch', summary: 'https://example.invalid/guide', input: { url: 'https://example.invalid/guide', prompt: 'read' } }),
    { type: 'info', data: 'the agent asked to use WebFetch; acceptEdits mode does not allow it: refused\n' },
    ev('tool_result', { callId: 'toolu_06', output: 'Permission refused', isError: true }),
    ev('message', { text: 'Done: the greeting is fixed and the tests pass.' }),
    ev('turn_end', {
      ok: true, outcome: 'success', durationMs: 12345, costUsd: 0.0123, inputTokens: 1200, outputTokens: 340,
      totalCostUsd: 0.0123, totalInputTokens: 1200, totalOutputTokens: 340,
    }),
    ev('agent_raw', { line: '{"type":"mystery","x":1}', reason: 'unknown message type', truncated: false }),
  ]);
  await page.locator('.conv .turn').waitFor();
  // Between turns there is nothing to interrupt.
  await page.waitForSelector('#interrupt', { state: 'hidden' });

  // The markdown, from the gateway's HTML.
  const message = page.locator('.conv .msg').first();
  assert.equal(await message.locator('strong').textContent(), 'the greeting');
  assert.equal(await message.locator('p code').textContent(), 'src/hello.rs');
  assert.equal(await message.locator('pre code').textContent(), 'fn main() {}\n');
  assert.equal(await message.locator('li').count(), 2);

  // The edit: a coloured diff in its card.
  const edit = page.locator('.tool[data-tool=Edit]');
  assert.equal(await edit.locator('.tool-about').textContent(), 'src/hello.rs');
  assert.equal(await edit.locator('.d-add').textContent(), '+    println!("hello, world");');
  assert.equal(await edit.locator('.d-del').textContent(), '-    println!("helo, world");');
  const colours = await edit.evaluate((el) => ['.d-add', '.d-del', '.dl:not(.d-add):not(.d-del):not(.d-hunk):not(.d-file)']
    .map((s) => getComputedStyle(el.querySelector(s)).backgroundColor));
  assert.equal(new Set(colours).size, 3, `additions, deletions and context differ: ${colours}`);
  assert.equal(await edit.locator('.tool-state').textContent(), 'done');

  // Bash: the command, the first lines of a long output, "show all", and
  // the whole output's artifact once it is uploaded.
  const bash = page.locator('.tool[data-call-id=toolu_02]');
  assert.equal(await bash.locator('.tool-about').textContent(), 'Run the tests');
  assert.equal(await bash.locator('.tool-cmd').textContent(), '$ cargo test');
  assert.equal((await bash.locator('.tool-out').textContent()).split('\n').length, 6);
  await bash.locator('button:text("Show all 40 lines")').click();
  assert.equal((await bash.locator('.tool-out').textContent()).split('\n').length, 40);
  assert.match(await bash.locator('.tool-cut').textContent(), /Output cut \(whole: 244\.1 KiB\)\. Whole output: tool-output-toolu-02\.txt \(not uploaded yet\)/);
  const artifactId = await gw.uploadArtifact(run, 'tool-output-toolu-02.txt', `${TEST_OUTPUT}\n…and the rest\n`);
  const link = bash.locator('.tool-cut a');
  await link.waitFor();
  assert.equal(await link.getAttribute('href'), `/api/artifacts/${artifactId}`);

  // Read and Grep: the path or pattern; the output only on demand.
  const read = page.locator('.tool[data-tool=Read]');
  assert.equal(await read.locator('.tool-about').textContent(), 'src/hello.rs');
  assert.equal(await read.locator('.tool-out').isVisible(), false);
  await read.locator('button:text("Show output (3 lines)")').click();
  assert.match(await read.locator('.tool-out').textContent(), /hello, world/);
  assert.equal(await page.locator('.tool[data-tool=Grep] .tool-about').textContent(), 'println in src');

  // Errors are marked and show their output; other tools their summary.
  const failed = page.locator('.tool[data-call-id=toolu_05]');
  assert.equal(await failed.evaluate((el) => el.classList.contains('is-error')), true);
  assert.equal(await failed.locator('.tool-state').textContent(), 'error');
  assert.match(await failed.locator('.tool-out.err').textContent(), /unused variable/);
  assert.equal(await page.locator('.tool[data-tool=WebFetch] .tool-about').textContent(), 'https://example.invalid/guide');
  assert.match(await page.locator('.conv .note-info').textContent(), /refused/);
  assert.match(await page.locator('.conv .note-raw summary').textContent(), /unknown message type/);
  assert.match(await page.locator('.conv .note-session').textContent(), /Session started · claude-sonnet-4-5 · acceptEdits mode/);

  // The turn's summary: time, cost and tokens, and the session's.
  assert.equal(await page.locator('.turn-this').textContent(), 'Turn 1 · 12.3 s · $0.0123 · 1,200 in / 340 out');
  assert.equal(await page.locator('.turn-total').textContent(), 'Session: $0.0123 · 1,200 in / 340 out');
  await shoot(page, 'agent-conversation');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shoot(page, 'agent-conversation-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // A second turn, live, with its running totals.
  await gw.postEvents(run, [
    ev('prompt', { text: 'Also greet in French', by: 'admin', promptId: 'p-2' }),
    ev('tool_call', { callId: 'toolu_07', tool: 'Write', summary: 'src/bonjour.rs', input: { file_path: 'src/bonjour.rs', content: 'x' } }),
    ev('tool_result', { callId: 'toolu_07', output: 'File created successfully', isError: false }),
    ev('file_change', {
      path: 'src/bonjour.rs', kind: 'create', callId: 'toolu_07',
      diff: '--- /dev/null\n+++ b/src/bonjour.rs\n@@ -0,0 +1,3 @@\n+fn bonjour() {\n+    println!("bonjour");\n+}\n',
    }),
    ev('tool_call', { callId: 'toolu_08', tool: 'Edit', summary: 'src/hello.rs', input: { file_path: 'src/hello.rs' } }),
    ev('tool_result', { callId: 'toolu_08', output: 'ok', isError: false }),
    ev('file_change', {
      path: 'src/hello.rs', kind: 'edit', callId: 'toolu_08',
      diff: '--- a/src/hello.rs\n+++ b/src/hello.rs\n@@ -2,1 +2,2 @@\n     println!("hello, world");\n+    bonjour();\n',
    }),
    ev('turn_end', {
      ok: false, outcome: 'error_max_turns', durationMs: 65000, costUsd: 0.02, inputTokens: 800, outputTokens: 100,
      totalCostUsd: 0.0323, totalInputTokens: 2000, totalOutputTokens: 440, error: 'the agent reached its turn limit',
    }),
  ]);
  const second = page.locator('.conv .turn').nth(1);
  await second.waitFor();
  assert.equal(await second.locator('.turn-this').textContent(), 'Turn ended 2: error_max_turns · 1m 5s · $0.0200 · 800 in / 100 out');
  assert.equal(await second.locator('.turn-total').textContent(), 'Session: $0.0323 · 2,000 in / 440 out');
  assert.equal(await second.locator('.turn-error').textContent(), 'the agent reached its turn limit');

  // Changes: every file, each with its diffs, newest last.
  assert.equal(await page.textContent('#tab-changes'), 'Changes (3)');
  await page.click('#tab-changes');
  const files = page.locator('#panel-changes .file');
  assert.deepEqual(await files.evaluateAll((els) => els.map((e) => e.dataset.path)), ['src/hello.rs', 'src/bonjour.rs']);
  const hello = page.locator('#panel-changes .file[data-path="src/hello.rs"]');
  assert.equal(await hello.locator('.change').count(), 2);
  assert.equal(await hello.locator('.change').last().locator('.d-add').textContent(), '+    bonjour();');
  assert.equal(await hello.locator('summary .counts').textContent(), '+2 −1');
  assert.equal(await page.locator('#panel-conversation').isVisible(), false);
  await shoot(page, 'agent-changes');

  // Log: every event, raw, after its type; commands hold no prompts.
  await page.click('#tab-log');
  await page.locator('.log-line.k-turn_end').first().waitFor();
  const lines = await readLog(page);
  const kinds = new Set(lines.map((l) => l.kind));
  for (const kind of ['marker', 'session', 'prompt', 'thinking', 'message', 'tool_call', 'tool_result', 'file_change', 'turn_end', 'agent_raw', 'info']) {
    assert.ok(kinds.has(kind), `the log shows ${kind}`);
  }
  const call = lines.find((l) => l.kind === 'tool_call');
  assert.equal(JSON.parse(call.text.slice('tool_call '.length)).callId, 'toolu_01');
  assert.equal(await page.locator('.commands .cmd').count(), 0);
  await page.waitForSelector('.artifact-list li[data-name="tool-output-toolu-02.txt"]');
  await shoot(page, 'agent-log');
  await page.click('#tab-conversation');
});

test('agent text cannot become script, image or javascript: link', async () => {
  const run = agentRun;
  await page.goto(`${gw.base}/#/runs/${run.id}`);
  await page.locator('.conv .turn').nth(1).waitFor();
  await page.evaluate(() => { delete window.__xss; });
  await gw.postEvents(run, [
    ev('message', {
      text: 'Careful: <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2"> '
        + 'and [x](javascript:window.__xss=3) and <a href="javascript:window.__xss=4">y</a> '
        + 'and [docs](https://example.invalid/docs) and **abc\u202Edef**',
    }),
    // Whatever HTML a runner sends is replaced by the gateway's.
    ev('message', { text: 'plain words', html: '<img src=x onerror="window.__xss = 5"><script>window.__xss = 6</script>' }),
    ev('thinking', { text: '<img src=x onerror="window.__xss = 7">' }),
    ev('tool_call', { callId: 'toolu_x', tool: 'Bash', summary: '<b>bold</b>', input: { command: '<script>window.__xss = 8</script>' } }),
    ev('tool_result', { callId: 'toolu_x', output: '<img src=x onerror="window.__xss = 9">', isError: false }),
  ]);
  const messages = page.locator('.conv .msg');
  await messages.filter({ hasText: 'plain words' }).waitFor();
  const evil = messages.filter({ hasText: 'Careful' });
  // The raw HTML is shown as text.
  assert.match(await evil.textContent(), /<script>window.__xss = 1<\/script>/);
  assert.match(await evil.textContent(), /<img src=x onerror="window.__xss = 2">/);
  assert.match(await evil.textContent(), /<a href="javascript:window.__xss=4">y<\/a>/);
  // Clicking what was a javascript: link does nothing.
  await evil.locator('a', { hasText: /^x$/ }).click();
  await page.waitForTimeout(300);
  const conv = page.locator('#panel-conversation .conv');
  assert.equal(await conv.locator('img, script, iframe, style, [onerror], [onclick], [style]').count(), 0);
  assert.equal(await conv.locator('a[href^="javascript:" i]').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // Links open in a new tab without a referrer.
  const docs = evil.locator('a[href="https://example.invalid/docs"]');
  assert.equal(await docs.getAttribute('target'), '_blank');
  assert.match(await docs.getAttribute('rel'), /noopener/);
  assert.match(await docs.getAttribute('rel'), /noreferrer/);
  // A bidi control inside the markup shows as an escape.
  assert.equal(await evil.locator('strong').textContent(), 'abc<U+202E>def');
  assert.equal(await evil.locator('strong .ctl').count(), 1);
  assert.equal((await messages.filter({ hasText: 'plain words' }).innerHTML()).trim(), '<p>plain words</p>');
  assert.equal(await page.locator('.tool[data-call-id=toolu_x] .tool-cmd').textContent(), '$ <script>window.__xss = 8</script>');
  await shoot(page, 'agent-xss');
});

test('the composer sends a prompt on Enter, once, with a new line on Shift+Enter; Interrupt ends a turn', async () => {
  const run = agentRun;
  await page.goto(`${gw.base}/#/runs/${run.id}`);
  await page.locator('.conv .turn').nth(1).waitFor();
  const keys = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith(`/api/runs/${run.id}/prompts`)) keys.push(r.headers()['idempotency-key']);
  });
  const box = page.locator('.composer textarea');
  const before = (await commandsOf(run.id)).filter((c) => c.kind === 'prompt').length;
  await box.click();
  await box.pressSequentially('Now add a test');
  await box.press('Shift+Enter');
  await box.pressSequentially('for the French greeting');
  assert.equal(await box.inputValue(), 'Now add a test\nfor the French greeting');
  assert.equal((await commandsOf(run.id)).filter((c) => c.kind === 'prompt').length, before, 'Shift+Enter sends nothing');
  await box.press('Enter');
  await page.waitForFunction(() => document.querySelector('.composer textarea').value === '');
  const prompts = (await commandsOf(run.id)).filter((c) => c.kind === 'prompt');
  assert.equal(prompts.length, before + 1);
  const sent = prompts[prompts.length - 1];
  assert.equal(sent.command, 'Now add a test\nfor the French greeting');
  assert.equal(sent.createdBy, 'admin');
  // Until the runner gives it to the agent, it waits at the end.
  const waiting = page.locator(`.queued .prompt[data-prompt-id="${sent.id}"]`);
  await waiting.waitFor();
  assert.match(await waiting.textContent(), /queued/);

  // Another message, another key.
  await box.fill('And run the tests');
  await box.press('Enter');
  await page.waitForFunction(() => document.querySelector('.composer textarea').value === '');
  assert.equal(keys.length, 2);
  assert.ok(keys.every((k) => /^[\w-]{16,}$/.test(k)) && keys[0] !== keys[1], keys.join(' '));

  // An answer lost on the way: the composer sends again with the same
  // key, and the gateway answers as it did without queueing it again.
  const attempts = [];
  let delivered = null;
  const promptsUrl = `**/api/runs/${run.id}/prompts`;
  await page.route(promptsUrl, async (route) => {
    attempts.push(route.request().headers()['idempotency-key']);
    if (attempts.length > 1) return route.continue();
    delivered = (await route.fetch()).status();
    return route.abort('connectionreset');
  });
  await box.fill('Only once');
  await box.press('Enter');
  await page.waitForFunction(() => document.querySelector('.composer textarea').value === '', null, { timeout: 10000 });
  await page.unroute(promptsUrl);
  assert.equal(delivered, 201, 'the first attempt reached the gateway');
  assert.equal(attempts.length, 2);
  assert.equal(attempts[0], attempts[1]);
  assert.equal((await commandsOf(run.id)).filter((c) => c.command === 'Only once').length, 1);

  // Too long: the gateway's 413, shown; the text stays to be shortened.
  await box.fill('x'.repeat(100001));
  await box.press('Enter');
  await page.waitForSelector('.composer-error:text("Too long")');
  assert.equal((await box.inputValue()).length, 100001);
  await box.fill('');

  // The runner delivers the prompt: the turn runs and can be interrupted.
  await gw.postEvents(run, [ev('prompt', { text: sent.command, by: 'admin', promptId: sent.id })]);
  await page.waitForSelector(`.queued .prompt[data-prompt-id="${sent.id}"]`, { state: 'detached' });
  assert.equal(await page.locator(`.conv .prompt[data-prompt-id="${sent.id}"] .prompt-text`).textContent(), sent.command);
  await page.click('#interrupt');
  await page.waitForSelector('.toast:text("Interrupt sent")');
  assert.equal(await page.textContent('#interrupt'), 'Interrupting…');
  assert.equal(await page.isDisabled('#interrupt'), true);
  assert.ok((await commandsOf(run.id)).some((c) => c.kind === 'interrupt'));
  await shoot(page, 'agent-composer');

  // The run ends: the composer says so and sends nothing.
  await gw.postEvents(run, [finished(0)]);
  await page.waitForSelector('.composer-note:text("The run has finished")');
  assert.equal(await box.isDisabled(), true);
  assert.equal(await page.locator('#interrupt').isVisible(), false);
  await page.locator('.queued .prompt.failed').first().waitFor();
  await shoot(page, 'agent-finished');
});

test('a viewer reads the conversation but has no composer and no Interrupt', async () => {
  const bearer = await adminBearer();
  const run = await gw.createAgentRun(bearer, { agent: 'claude', prompt: 'Explain the parser' });
  const [first] = await commandsOf(run.id);
  await gw.postEvents(run, [
    started('claude'),
    ev('prompt', { text: 'Explain the parser', by: 'admin', promptId: first.id }),
    ev('message', { text: 'The parser is a **recursive descent** parser.' }),
  ]);
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: DESKTOP });
  const viewer = await context.newPage();
  await signIn(viewer, VIEWER);
  await viewer.goto(`${gw.base}/#/runs/${run.id}`);
  await viewer.locator('.conv .msg strong', { hasText: 'recursive descent' }).waitFor();
  assert.equal(await viewer.locator('.composer').count(), 0);
  assert.equal(await viewer.locator('#interrupt').count(), 0);
  assert.equal(await viewer.locator('#stop').count(), 0);
  await shoot(viewer, 'agent-viewer');
  const forged = await viewer.evaluate(async (id) => {
    const json = { 'content-type': 'application/json' };
    const prompt = await fetch(`/api/runs/${id}/prompts`, { method: 'POST', headers: json, body: JSON.stringify({ text: 'hi' }) });
    const interrupt = await fetch(`/api/runs/${id}/interrupt`, { method: 'POST', headers: json, body: '{}' });
    return [prompt.status, interrupt.status];
  }, run.id);
  assert.deepEqual(forged, [403, 403]);
  await context.close();
});

test('New run: a Claude agent with a prompt, model and permission mode, and the runner line to copy', async () => {
  await page.goto(`${gw.base}/#/runs`);
  await page.click('a:text("New run")');
  assert.equal(await page.isChecked('input[name=kind][value=claude]'), true);
  await page.fill('textarea[name=prompt]', 'Update the changelog');
  await page.fill('input[name=model]', 'claude-opus-4-1');
  await page.selectOption('select[name=permissionMode]', 'plan');
  await shoot(page, 'new-agent-run');
  await page.click('button:text("Create run")');
  const line = await page.textContent('#runner-line');
  const runId = await page.textContent('#run-id');
  const token = await page.textContent('#run-token');
  assert.equal(line, `claw-runner start --gateway ${gw.base} --run-id ${runId} --token ${token} --agent claude`);
  await admin.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.base });
  await page.click('#copy-line');
  await page.waitForSelector('.toast:text("Copied")');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), line);
  await shoot(page, 'agent-run-created');
  const created = (await gw.fetch('GET', `/api/runs/${runId}`, { headers: { authorization: `Bearer ${await adminBearer()}` } })).body;
  assert.equal(created.agent, 'claude');
  assert.equal(created.model, 'claude-opus-4-1');
  assert.equal(created.permissionMode, 'plan');
  const [first] = await commandsOf(runId);
  assert.deepEqual([first.kind, first.command], ['prompt', 'Update the changelog']);
  await page.click('a:text("Watch the run")');
  await page.locator('.queued .prompt', { hasText: 'Update the changelog' }).waitFor();
  await page.goto(`${gw.base}/#/runs`);
  assert.match(await page.locator(`tr[data-run="${runId}"] .c-command`).textContent(), /^Claude · claude-opus-4-1$/);
});

// The real Claude Code CLI (tests/agent, installed by scripts/test) run by
// a real claw-runner against the test kit's scripted model server.
const claudeCli = join(repo, 'tests/agent/node_modules/.bin/claude');

async function scriptedModel(dir, script) {
  const scriptFile = join(dir, 'script.json');
  const log = join(dir, 'model.jsonl');
  writeFileSync(scriptFile, JSON.stringify(script));
  const server = spawn(join(binDir, 'scripted-model'), ['--script', scriptFile, '--log', log], { stdio: ['ignore', 'pipe', 'inherit'] });
  runners.push(server);
  const url = await new Promise((ok, fail) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) ok(m[1]);
    });
    server.once('exit', (code) => fail(new Error(`scripted-model exited with ${code}`)));
  });
  const seen = () => readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { url, seen: () => { try { return seen(); } catch { return []; } } };
}

// claw-runner started with the pasted runner line as it is, with the
// runner's own configuration, driving the real Claude Code CLI against
// the scripted model; its stderr collects in `.log`.
function startAgentRunner(line, work, home, modelUrl) {
  const runner = spawn(join(binDir, 'claw-runner'), line.split(' ').slice(1), {
    cwd: work,
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home,
      CLAW_HMAC_SECRET_FILE: join(gw.data, 'secrets/hmac-secret'),
      CLAW_CA_CERT: join(gw.data, 'certs/server.crt'),
      CLAW_STATE_DIR: join(home, 'state'),
      CLAW_CLAUDE_PROGRAM: claudeCli,
      ANTHROPIC_BASE_URL: modelUrl, ANTHROPIC_API_KEY: 'scripted',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  runners.push(runner);
  runner.log = '';
  runner.stderr.on('data', (d) => { runner.log += d; });
  return runner;
}

test('with the real Claude Code: New run, the edit as a diff, and a prompt from the composer reaches the model', async () => {
  const work = mkdtempSync(join(tmpdir(), 'claw-ui-agent-'));
  const home = mkdtempSync(join(tmpdir(), 'claw-ui-home-'));
  writeFileSync(join(work, 'greeting.txt'), 'hello\n');
  const model = await scriptedModel(home, {
    rules: [
      {
        when: 'fix the greeting',
        steps: [
          { text: 'I will fix it.', tool: { name: 'Edit', input: { file_path: join(work, 'greeting.txt'), old_string: 'hello', new_string: 'goodbye' } } },
          { text: 'Done: the greeting is **fixed**.' },
        ],
      },
      { when: 'now wave', steps: [{ text: 'Waving *back* from the model.' }] },
    ],
  });

  await page.setViewportSize(DESKTOP);
  await page.goto(`${gw.base}/#/runs`);
  await page.click('a:text("New run")');
  await page.check('input[name=kind][value=claude]');
  await page.fill('textarea[name=prompt]', 'Please fix the greeting');
  await page.selectOption('select[name=permissionMode]', 'acceptEdits');
  await page.click('button:text("Create run")');
  const line = await page.textContent('#runner-line');
  const runId = await page.textContent('#run-id');
  // The copied line, run as it is, with the runner's own configuration.
  const runner = startAgentRunner(line, work, home, model.url);
  await page.click('a:text("Watch the run")');

  // The model's turn, as the CLI reported it.
  const conv = page.locator('#panel-conversation .conv');
  try {
    await conv.locator('.msg strong', { hasText: 'fixed' }).waitFor({ timeout: 60000 });
  } catch (err) {
    throw new Error(`${err.message}\nclaw-runner: ${runner.log}`);
  }
  const edit = conv.locator('.tool[data-tool=Edit]');
  assert.match(await edit.locator('.tool-about').textContent(), /greeting\.txt/);
  assert.deepEqual(await edit.locator('.diff .dl').evaluateAll((ls) => ls.map((l) => l.textContent).filter((t) => /^[-+][^-+]/.test(t))), ['-hello', '+goodbye']);
  await conv.locator('.turn').first().waitFor();
  assert.match(await conv.locator('.turn .turn-this').first().textContent(), /^Turn 1 · .*\$/);
  assert.equal(readFileSync(join(work, 'greeting.txt'), 'utf8'), 'goodbye\n');
  await page.click('#tab-changes');
  await page.locator('#panel-changes .file[data-path="greeting.txt"]').waitFor();
  await page.click('#tab-conversation');
  await shoot(page, 'agent-real');

  // A prompt typed on a phone reaches the model, and its answer comes back.
  await page.setViewportSize(PHONE);
  const box = page.locator('.composer textarea');
  await box.click();
  await box.pressSequentially('now wave at me');
  await box.press('Enter');
  await conv.locator('.msg em', { hasText: 'back' }).waitFor({ timeout: 60000 });
  assert.ok(model.seen().some((r) => r.prompt.includes('now wave at me')), JSON.stringify(model.seen()));
  assert.equal(await conv.locator('.item.prompt', { hasText: 'now wave at me' }).count(), 1);
  await shoot(page, 'agent-real-prompted');
  await page.setViewportSize(DESKTOP);

  // Stop ends the session: the runner exits and the run is stopped.
  const exited = new Promise((ok) => runner.once('exit', ok));
  await page.click('#stop');
  await page.click('dialog button:text("Stop run")');
  await page.waitForSelector('#run-status [data-status=stopped]', { timeout: 30000 });
  await exited;
  assert.equal((await gw.fetch('GET', `/api/runs/${runId}`, { headers: { authorization: `Bearer ${await adminBearer()}` } })).body.status, 'stopped');
});

// Every part of the page is on a 390 px screen: no sideways scrolling, and
// `selector` in view, big enough to tap and not covered.
async function onScreen(p, selector, minHeight = 44) {
  const box = await p.locator(selector).first().boundingBox();
  const size = p.viewportSize();
  assert.ok(box, `${selector} is shown`);
  assert.ok(box.x >= 0 && box.x + box.width <= size.width && box.y >= 0 && box.y + box.height <= size.height,
    `${selector} is on screen: ${JSON.stringify(box)}`);
  assert.ok(box.height >= minHeight && box.width >= 44, `${selector} is big enough to tap: ${JSON.stringify(box)}`);
  const hit = await p.locator(selector).first().evaluate((el) => {
    const r = el.getBoundingClientRect();
    return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
  });
  assert.ok(hit, `${selector} takes a tap`);
  assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');
}

async function approvalOf(id) {
  const reply = await gw.fetch('GET', `/api/approvals/${id}`, { headers: { authorization: `Bearer ${await adminBearer()}` } });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body;
}

async function pendingApprovals() {
  const reply = await gw.fetch('GET', '/api/approvals?status=pending', { headers: { authorization: `Bearer ${await adminBearer()}` } });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body;
}

test('with the real Claude Code on a phone: the agent asks to run a command, Needs you counts it, Allow once lets it go on', async () => {
  const work = mkdtempSync(join(tmpdir(), 'claw-ui-appr-'));
  const home = mkdtempSync(join(tmpdir(), 'claw-ui-appr-home-'));
  const model = await scriptedModel(home, {
    rules: [{
      when: 'make a file',
      steps: [
        { tool: { name: 'Bash', input: { command: 'touch made-by-agent.txt', description: 'make the file' } } },
        { text: 'It is **made**.' },
      ],
    }],
  });

  // On a phone, a new run in the default mode: the CLI asks before `touch`.
  await page.setViewportSize(PHONE);
  await page.goto(`${gw.base}/#/runs`);
  assert.equal(await page.locator('#nav .needs-you').isVisible(), false, 'nothing needs anyone yet');
  await page.click('a:text("New run")');
  await page.fill('textarea[name=prompt]', 'please make a file');
  assert.equal(await page.inputValue('select[name=permissionMode]'), 'default');
  await page.click('button:text("Create run")');
  const line = await page.textContent('#runner-line');
  const runId = await page.textContent('#run-id');
  const runner = startAgentRunner(line, work, home, model.url);
  await page.click('a:text("Watch the run")');

  // The request: counted in the header, pinned as a card with the command.
  const card = page.locator('.dock .appr');
  try {
    await card.waitFor({ timeout: 90000 });
  } catch (err) {
    throw new Error(`${err.message}\nclaw-runner: ${runner.log}`);
  }
  assert.equal(await card.locator('.appr-cmd').textContent(), '$ touch made-by-agent.txt');
  assert.match(await card.locator('.appr-reason').textContent(), /make the file/);
  assert.match(await card.locator('.appr-expires').textContent(), /^expires in \d+m \d\ds$/);
  await page.waitForSelector('#run-status [data-status=waiting]');
  await page.waitForSelector('#nav .needs-you:visible');
  assert.equal(await page.textContent('#nav .needs-you .needs-count'), '1');
  assert.equal(existsSync(join(work, 'made-by-agent.txt')), false, 'nothing ran before the decision');
  // Its tool call in the conversation waits too.
  const call = page.locator('#panel-conversation .tool[data-tool=Bash]');
  await call.locator('.tool-state', { hasText: 'waiting for a decision' }).waitFor();
  const [approval] = await pendingApprovals();
  assert.equal(approval.runId, runId);
  // The session button says what it allows, from the agent's suggestion if it made one.
  const words = await card.locator('.appr-session-words').textContent();
  assert.match(words, /for the rest of this run$/);
  if ((approval.suggestions || []).some((s) => Array.isArray(s.rules))) assert.match(words, /^Allow Bash/);
  // One thumb: every button on screen and big, the header's count too.
  await page.waitForTimeout(300);
  for (const selector of ['.dock .appr button.appr-allow', '.dock .appr button.appr-deny', '.dock .appr button.appr-session', '#nav .needs-you']) {
    await onScreen(page, selector, 40);
  }
  await page.screenshot({ path: join(shotDir, 'approval-phone-viewport.png') });
  await shoot(page, 'approval-card');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(shotDir, 'approval-phone-viewport-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });

  // The inbox, from the header, and back to the run from its card.
  await page.click('#nav .needs-you');
  const inboxCard = page.locator('.inbox .appr');
  await inboxCard.waitFor();
  assert.equal(await inboxCard.count(), 1);
  assert.equal(await inboxCard.locator('.appr-cmd').textContent(), '$ touch made-by-agent.txt');
  assert.equal(await inboxCard.locator('a.appr-run').getAttribute('href'), `#/runs/${runId}`);
  await onScreen(page, '.inbox .appr button.appr-allow', 44);
  await shoot(page, 'approval-inbox');
  await page.click('.inbox .appr a.appr-run');
  await card.waitFor();

  // Allow once: the agent goes on, and the card says who allowed it, then goes.
  await card.locator('button.appr-allow').click();
  await card.locator('.appr-outcome', { hasText: /^Allowed once by admin/ }).waitFor();
  await page.screenshot({ path: join(shotDir, 'approval-decided-phone.png') });
  const conv = page.locator('#panel-conversation .conv');
  try {
    await conv.locator('.msg strong', { hasText: 'made' }).waitFor({ timeout: 60000 });
  } catch (err) {
    throw new Error(`${err.message}\nclaw-runner: ${runner.log}`);
  }
  await conv.locator('.turn').first().waitFor();
  assert.equal(existsSync(join(work, 'made-by-agent.txt')), true, 'the command ran');
  assert.equal(await call.locator('.tool-state').textContent(), 'done');
  const note = conv.locator('.note-approval');
  await note.locator('.appr-note-outcome', { hasText: 'allowed by admin' }).waitFor();
  assert.equal(await note.textContent(), 'Asked to run touch made-by-agent.txt — allowed by admin');
  await page.waitForSelector('.dock .appr', { state: 'detached', timeout: 15000 });
  await page.waitForSelector('#nav .needs-you', { state: 'hidden' });
  await page.waitForSelector('#run-status [data-status=running]');
  const decided = await approvalOf(approval.id);
  assert.deepEqual([decided.status, decided.decidedBy, decided.scope, decided.delivered], ['allowed', 'admin', 'once', true]);
  await shoot(page, 'approval-allowed');

  // The Log tab has both events, raw.
  await page.click('#tab-log');
  await page.locator('.log-line.k-approval_resolved').first().waitFor();
  const kinds = new Set((await readLog(page)).map((l) => l.kind));
  assert.ok(kinds.has('approval_request') && kinds.has('approval_resolved'), [...kinds].join(','));
  await page.click('#tab-conversation');
  await page.setViewportSize(DESKTOP);

  const exited = new Promise((ok) => runner.once('exit', ok));
  await page.click('#stop');
  await page.click('dialog button:text("Stop run")');
  await page.waitForSelector('#run-status [data-status=stopped]', { timeout: 30000 });
  await exited;
});

const QUESTIONS = {
  questions: [
    {
      question: 'Which colour should the button be?', header: 'Colour', multiSelect: false,
      options: [{ label: 'Blue', description: 'Matches the brand' }, { label: 'Green', description: 'Reads as "go"' }],
    },
    {
      question: 'What should the release include?', header: 'Extras', multiSelect: true,
      options: [{ label: 'Tests', description: 'for the new button' }, { label: 'Docs' }, { label: 'A demo' }],
    },
  ],
};
const PLAN = '# Release plan\n\n1. Bump the version\n2. Tag it\n\n<script>window.__xss = 1</script>\n<img src=x onerror="window.__xss = 2">\n**bold** stays as written';
const approvalRequest = (requestId, fields) => ev('approval_request', { requestId, timeoutSecs: 600, ...fields });

test('approvals from a runner: a question answered, a plan shown as text, a denial with its message, and the inbox across runs', async () => {
  const bearer = await adminBearer();
  const one = await gw.createAgentRun(bearer, { agent: 'claude', prompt: 'Plan the release' });
  const two = await gw.createAgentRun(bearer, { agent: 'claude', prompt: 'Tidy the repository' });
  await gw.postEvents(one, [started('claude'), approvalRequest('q-1', {
    kind: 'question', tool: 'AskUserQuestion', input: QUESTIONS, summary: 'Which colour should the button be?',
  })]);
  await gw.postEvents(two, [started('claude'), approvalRequest('b-1', {
    kind: 'tool', tool: 'Bash', input: { command: 'rm -rf build', description: 'remove the build output' },
    summary: 'rm -rf build', reason: 'remove the build output', callId: 'toolu_rm',
    suggestions: [{ type: 'addRules', rules: [{ toolName: 'Bash', ruleContent: 'rm:*' }], behavior: 'allow', destination: 'localSettings' }],
  })]);
  await gw.postEvents(one, [approvalRequest('p-1', { kind: 'plan', tool: 'ExitPlanMode', input: { plan: PLAN }, summary: 'ExitPlanMode' })]);
  const ids = Object.fromEntries((await pendingApprovals()).map((a) => [a.requestId, a.id]));

  // The inbox on a phone: every run's approvals, oldest first, with their runs.
  await page.setViewportSize(PHONE);
  await page.goto(`${gw.base}/#/approvals`);
  const cards = page.locator('.inbox .appr');
  await page.waitForFunction(() => document.querySelectorAll('.inbox .appr').length === 3);
  assert.deepEqual(await cards.evaluateAll((els) => els.map((e) => e.dataset.approvalId)), [ids['q-1'], ids['b-1'], ids['p-1']]);
  assert.deepEqual(await cards.locator('a.appr-run').evaluateAll((els) => els.map((e) => e.getAttribute('href'))),
    [`#/runs/${one.id}`, `#/runs/${two.id}`, `#/runs/${one.id}`]);
  assert.equal(await page.textContent('#nav .needs-count'), '3');
  assert.equal(await page.textContent('#inbox-count'), '3 waiting, oldest first');
  // Allow for the session, in words from the agent's suggestion.
  const rm = cards.filter({ has: page.locator('.appr-cmd', { hasText: 'rm -rf build' }) });
  assert.equal(await rm.locator('.appr-session-words').textContent(), 'Allow Bash(rm:*) for the rest of this run');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');
  await shoot(page, 'approvals-inbox');

  // The run list shows who waits.
  await page.goto(`${gw.base}/#/runs`);
  await page.locator(`tr[data-run="${one.id}"] .badge[data-status=waiting]`).waitFor();
  assert.ok((await page.$$eval('select[name=status] option', (os) => os.map((o) => o.value))).includes('waiting'));

  // Deny with a message, from the inbox.
  await page.goto(`${gw.base}/#/approvals`);
  await rm.waitFor();
  await rm.locator('input.appr-message').fill('keep the build output');
  await rm.locator('button.appr-deny').click();
  await rm.locator('.appr-outcome', { hasText: /^Denied by admin: keep the build output/ }).waitFor();
  let stored = await approvalOf(ids['b-1']);
  assert.deepEqual([stored.status, stored.decidedBy, stored.message], ['denied', 'admin', 'keep the build output']);
  await page.waitForFunction(() => document.querySelectorAll('.inbox .appr').length === 2, null, { timeout: 15000 });
  assert.equal(await page.textContent('#nav .needs-count'), '2');
  // The runner writes it to the agent; the run's conversation notes it.
  await gw.postEvents(two, [ev('approval_resolved', { requestId: 'b-1', status: 'denied', approvalId: ids['b-1'], message: 'keep the build output' })]);
  await page.goto(`${gw.base}/#/runs/${two.id}`);
  const denied = page.locator('.conv .note-approval');
  await denied.locator('.appr-note-outcome', { hasText: 'denied by admin: keep the build output' }).waitFor();
  assert.equal(await denied.textContent(), 'Asked to run rm -rf build — denied by admin: keep the build output');
  assert.equal(await page.locator('.dock .appr').count(), 0);

  // The question, on its run's page: one choice, several, and one's own words.
  await page.goto(`${gw.base}/#/runs/${one.id}`);
  const question = page.locator('.dock .appr-question');
  await question.waitFor();
  await page.evaluate(() => { delete window.__xss; });
  const sets = question.locator('fieldset.appr-q');
  assert.equal(await sets.count(), 2);
  assert.equal(await sets.nth(0).locator('input[type=radio]').count(), 3, 'two options and Other');
  assert.equal(await sets.nth(1).locator('input[type=checkbox]').count(), 4, 'three options and Other');
  assert.match(await sets.nth(0).textContent(), /Matches the brand/);
  await shoot(page, 'approval-question');
  // Nothing chosen for the second question: the card says what is missing.
  await sets.nth(0).locator('label.appr-opt', { hasText: 'Green' }).click();
  await question.locator('button:text("Submit answers")').click();
  await question.locator('.appr-error', { hasText: 'Answer each question' }).waitFor();
  await sets.nth(0).locator('label.appr-opt', { hasText: 'Blue' }).click();
  await sets.nth(1).locator('label.appr-opt', { hasText: 'Tests' }).click();
  await sets.nth(1).locator('label.appr-opt', { hasText: 'A demo' }).click();
  await sets.nth(1).locator('input.appr-other').fill('a changelog');
  const posted = page.waitForRequest((r) => r.url().endsWith(`/api/approvals/${ids['q-1']}/decision`));
  await question.locator('button:text("Submit answers")').click();
  const request = await posted;
  assert.match(request.headers()['idempotency-key'], /^[\w-]{16,}$/);
  const answers = {
    'Which colour should the button be?': 'Blue',
    'What should the release include?': 'Tests, A demo, a changelog',
  };
  assert.deepEqual(JSON.parse(request.postData()), { decision: 'allow', answers });
  await question.locator('.appr-outcome', { hasText: /^Answered by admin/ }).waitFor();
  stored = await approvalOf(ids['q-1']);
  assert.equal(stored.status, 'allowed');
  assert.deepEqual(stored.answers, answers);

  // The plan: its markdown as text, its markup inert; approved.
  const plan = page.locator('.dock .appr-plan');
  await plan.waitFor();
  assert.equal(await plan.locator('pre.appr-plan-text').textContent(), PLAN);
  assert.equal(await plan.locator('script, img, strong, h1, ol').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await page.waitForSelector('.dock .appr-question', { state: 'detached', timeout: 15000 });
  await shoot(page, 'approval-plan');
  await plan.locator('button:text("Approve plan")').click();
  await plan.locator('.appr-outcome', { hasText: /^Plan approved by admin/ }).waitFor();
  assert.equal((await approvalOf(ids['p-1'])).status, 'allowed');
  await page.waitForSelector('#nav .needs-you', { state: 'hidden' });
  await page.waitForSelector('#run-status [data-status=running]');
  await page.waitForSelector('.dock .appr', { state: 'detached', timeout: 15000 });
  // Both notes in the conversation: the request, and who decided.
  const notes = page.locator('.conv .note-approval .appr-note-outcome');
  assert.deepEqual(await notes.allTextContents(), ['answered by admin', 'plan approved by admin']);
  await page.setViewportSize(DESKTOP);
  await gw.postEvents(one, [finished(0)]);
  await gw.postEvents(two, [finished(0)]);
});

test('a viewer sees approvals without buttons; a decision after another person\'s gets 409 with who was first; expired cards go', async () => {
  const bearer = await adminBearer();
  const run = await gw.createAgentRun(bearer, { agent: 'claude', prompt: 'Ship it' });
  await gw.postEvents(run, [started('claude'), approvalRequest('push-1', {
    kind: 'tool', tool: 'Bash', input: { command: 'git push --force' }, summary: 'git push --force', reason: 'publish the branch',
  })]);
  const [pending] = await pendingApprovals();

  // A viewer: the card and the count, no controls, and the API refuses.
  const viewerContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: PHONE });
  const viewer = await viewerContext.newPage();
  await signIn(viewer, VIEWER);
  await viewer.goto(`${gw.base}/#/runs/${run.id}`);
  const seen = viewer.locator('.dock .appr');
  await seen.waitFor();
  assert.equal(await seen.locator('.appr-cmd').textContent(), '$ git push --force');
  // No way to decide: only the fold of a pinned card is a button.
  assert.equal(await seen.locator('.appr-decide, input, button:not(.appr-fold)').count(), 0);
  assert.match(await seen.locator('.appr-viewer').textContent(), /operator or administrator decides/);
  await viewer.waitForSelector('#nav .needs-you:visible');
  await viewer.click('#nav .needs-you');
  await viewer.locator('.inbox .appr').waitFor();
  assert.equal(await viewer.locator('.inbox .appr button').count(), 0);
  await shoot(viewer, 'approval-viewer');
  const forged = await viewer.evaluate(async (id) => (await fetch(`/api/approvals/${id}/decision`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'allow' }),
  })).status, pending.id);
  assert.equal(forged, 403);

  // A second operator whose page has not heard of the decision yet.
  const lateContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: PHONE });
  const late = await lateContext.newPage();
  await late.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((m) => { if (!String(m).includes('"type":"approval"')) ws.send(m); });
  });
  await signIn(late, ADMIN);
  await late.goto(`${gw.base}/#/runs/${run.id}`);
  const lateCard = late.locator('.dock .appr');
  await lateCard.waitFor();

  await page.goto(`${gw.base}/#/runs/${run.id}`);
  const first = page.locator('.dock .appr');
  await first.locator('button.appr-allow').click();
  await first.locator('.appr-outcome', { hasText: /^Allowed once by admin/ }).waitFor();
  // The viewer's page follows.
  await viewer.locator('.inbox .appr[data-status=allowed]').waitFor();

  await lateCard.locator('input.appr-message').fill('not today');
  await lateCard.locator('button.appr-deny').click();
  const error = lateCard.locator('.appr-error');
  await error.waitFor();
  assert.match(await error.textContent(), new RegExp(`approval ${pending.id} was already decided: allowed by admin at `));
  // The card is refreshed: it shows the decision that stands.
  await late.locator('.dock .appr[data-status=allowed] .appr-outcome', { hasText: /^Allowed once by admin/ }).waitFor();
  assert.equal(await lateCard.locator('button.appr-deny').isVisible(), false);
  await late.screenshot({ path: join(shotDir, 'approval-conflict-phone.png') });
  assert.equal((await approvalOf(pending.id)).status, 'allowed');

  // A request nobody decided in time: the runner's word, and the card goes.
  await gw.postEvents(run, [approvalRequest('push-2', {
    kind: 'tool', tool: 'Bash', input: { command: 'git push --tags' }, summary: 'git push --tags', timeoutSecs: 1,
  })]);
  const second = page.locator('.dock .appr', { has: page.locator('.appr-cmd', { hasText: 'git push --tags' }) });
  await second.waitFor();
  await gw.postEvents(run, [ev('approval_resolved', { requestId: 'push-2', status: 'expired', message: 'no decision arrived in time' })]);
  await second.waitFor({ state: 'detached' });
  await page.locator('.conv .note-approval[data-status=expired] .appr-note-outcome', { hasText: 'expired: the agent was told no decision arrived' }).waitFor();
  await page.waitForSelector('#nav .needs-you', { state: 'hidden' });

  // An edit: the diff it would make; folded and shown again; allowed for the session.
  await gw.postEvents(run, [approvalRequest('edit-1', {
    kind: 'tool', tool: 'Edit', input: { file_path: 'src/lib.rs', old_string: 'old()', new_string: 'new()' },
    summary: 'src/lib.rs', diff: '--- a/src/lib.rs\n+++ b/src/lib.rs\n@@\n-old()\n+new()\n',
  })]);
  const edit = page.locator('.dock .appr', { has: page.locator('.diff') });
  await edit.waitFor();
  const [editApproval] = await pendingApprovals();
  assert.equal(await edit.locator('.appr-what').textContent(), 'src/lib.rs');
  assert.equal(await edit.locator('.diff .d-del').textContent(), '-old()');
  assert.equal(await edit.locator('.diff .d-add').textContent(), '+new()');
  assert.equal(await edit.locator('.appr-session-words').textContent(), 'Allow this same Edit request without asking for the rest of this run');
  await edit.locator('button.appr-fold').click();
  assert.equal(await edit.locator('.diff').isVisible(), false);
  assert.equal(await edit.locator('button.appr-allow').isVisible(), false);
  await edit.locator('button.appr-fold:text("Show")').click();
  await edit.locator('button.appr-session').click();
  await edit.locator('.appr-outcome', { hasText: /^Allowed for this session by admin/ }).waitFor();
  const session = await approvalOf(editApproval.id);
  assert.deepEqual([session.status, session.scope], ['allowed', 'session']);
  await gw.postEvents(run, [ev('approval_resolved', { requestId: 'edit-1', status: 'allowed', approvalId: editApproval.id })]);
  await page.locator('.conv .note-approval', { hasText: 'Asked to edit src/lib.rs — allowed for this session by admin' }).waitFor();
  await gw.postEvents(run, [finished(0)]);
  await viewerContext.close();
  await lateContext.close();
});

test('on a phone every page of the header is on screen', async () => {
  await page.setViewportSize(PHONE);
  await page.goto(`${gw.base}/#/runs`);
  await page.waitForSelector('#nav:not([hidden])');
  const items = ['nav a:text("Runs")', 'nav a:text("Hosts")', 'nav a:text("Status")', 'nav a:text("Users")', 'nav a:text("Audit")',
    'nav a:text("Account")', '#nav button:text("Sign out")'];
  for (const selector of items) {
    const box = await page.locator(selector).boundingBox();
    assert.ok(box, `${selector} is shown`);
    assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width && box.y >= 0 && box.y + box.height <= PHONE.height,
      `${selector} is on screen: ${JSON.stringify(box)}`);
    assert.ok(box.height >= 36 && box.width >= 44, `${selector} is big enough to tap: ${JSON.stringify(box)}`);
    // Nothing covers it: a tap lands on it.
    const hit = await page.locator(selector).evaluate((el) => {
      const r = el.getBoundingClientRect();
      return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
    });
    assert.ok(hit, `${selector} takes a tap`);
  }
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');
  await page.click('nav a:text("Audit")');
  await page.waitForSelector('table.audit');
  await page.screenshot({ path: join(shotDir, 'header-phone.png') });
  // The agent run's page on a phone: the composer is at the bottom of the screen.
  await page.goto(`${gw.base}/#/runs/${agentRun.id}`);
  await page.locator('.conv .turn').nth(1).waitFor();
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(shotDir, 'agent-phone-viewport.png') });
  await page.setViewportSize(DESKTOP);
});

test('a long conversation loads quickly and grows by appending', async () => {
  const run = await gw.createAgentRun(await adminBearer(), { agent: 'claude' });
  const turns = 400;
  const events = [started('claude')];
  for (let t = 1; t <= turns; t += 1) {
    events.push(
      ev('prompt', { text: `Step ${t}`, by: 'admin', promptId: `p${t}` }),
      ev('message', { text: `Working on **step ${t}**:\n\n- reading\n- editing` }),
      ev('tool_call', { callId: `b${t}`, tool: 'Bash', summary: 'make', input: { command: 'make', description: `Build ${t}` } }),
      ev('tool_result', { callId: `b${t}`, output: Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n'), isError: false }),
      ev('tool_call', { callId: `e${t}`, tool: 'Edit', summary: `src/f${t % 20}.rs`, input: {} }),
      ev('tool_result', { callId: `e${t}`, output: 'ok', isError: false }),
      ev('file_change', { path: `src/f${t % 20}.rs`, kind: 'edit', callId: `e${t}`, diff: `--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old ${t}\n+new ${t}\n` }),
      ev('turn_end', {
        ok: true, outcome: 'success', durationMs: 1000, costUsd: 0.001, inputTokens: 10, outputTokens: 5,
        totalCostUsd: 0.001 * t, totalInputTokens: 10 * t, totalOutputTokens: 5 * t,
      }),
    );
  }
  for (let i = 0; i < events.length; i += 500) await gw.postEvents(run, events.slice(i, i + 500));

  const began = Date.now();
  await page.goto(`${gw.base}/#/runs/${run.id}`);
  await page.waitForFunction((n) => document.querySelectorAll('.conv .turn').length === n, turns, { timeout: 30000 });
  const loaded = Date.now() - began;
  // The view follows the end of the conversation.
  await page.waitForFunction(() => window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 150);
  // Live events add to what is there: the first nodes are the same ones.
  await page.evaluate(() => { document.querySelector('.conv .msg').dataset.mark = 'kept'; });
  const appended = Date.now();
  await gw.postEvents(run, [ev('message', { text: 'One more **thing**' })]);
  await page.locator('.conv .msg strong', { hasText: 'thing' }).waitFor();
  const live = Date.now() - appended;
  assert.equal(await page.locator('.conv .msg[data-mark=kept]').count(), 1);
  assert.ok(await page.evaluate(() => window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 150), 'still at the end');
  assert.equal(await page.textContent('#tab-changes'), `Changes (${turns})`);
  console.log(`# ${events.length} agent events shown in ${loaded} ms; a live message in ${live} ms`);
  assert.ok(loaded < 15000, `loaded in ${loaded} ms`);
});

test('an agent conversation resumes after a cut connection without gaps or repeats', async () => {
  const run = await gw.createAgentRun(await adminBearer(), { agent: 'claude' });
  await gw.postEvents(run, [started('claude')]);
  const flaky = await admin.newPage();
  let dropping = false;
  let current = null;
  await flaky.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((message) => { if (!dropping) ws.send(message); });
    current = { ws, server };
  });
  await flaky.goto(`${gw.base}/#/runs/${run.id}`);
  await flaky.waitForSelector('.live-state.s-open');
  let next = 1;
  const say = async (upTo) => {
    for (; next <= upTo; next += 1) await gw.postEvents(run, [ev('message', { text: `message **${next}**` })]);
  };
  const cut = async () => {
    dropping = true;
    await say(next + 5);
    await current.ws.close({ code: 4000, reason: 'test cut' });
    await current.server.close();
    dropping = false;
  };
  await say(10);
  await cut();
  await say(30);
  await flaky.waitForSelector('.live-state.s-open');
  await say(40);
  await cut();
  await say(50);
  await flaky.waitForFunction(() => document.querySelectorAll('.conv .msg').length >= 50);
  await flaky.waitForTimeout(300);
  const shown = await flaky.$$eval('.conv .msg strong', (els) => els.map((e) => Number(e.textContent)));
  assert.deepEqual(shown, Array.from({ length: 50 }, (_, i) => i + 1));
  await flaky.close();
});

// Polls `fn` in the page until it gives something truthy (waitForFunction
// takes the promise of an async function as its answer).
async function until(p, fn, arg, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await p.evaluate(fn, arg);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not so within ${timeout} ms: ${fn}`);
    await p.waitForTimeout(100);
  }
}

test('notifications on the account page: a webhook added, its secret shown once, its kinds and runs changed, removed', async () => {
  await admin.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.base });
  const bearer = await adminBearer();
  const listed = async () => (await gw.fetch('GET', '/api/notify/channels', { headers: { authorization: `Bearer ${bearer}` } })).body;
  await page.setViewportSize(PHONE);
  await page.goto(`${gw.base}/#/account`);
  const card = page.locator('#notifications');
  await card.locator('.channels-empty').waitFor();
  // Headless Chromium without the permission: the button is offered.
  await card.locator('#notify-enable').waitFor();

  // A webhook: its signing secret, once, to copy.
  await card.locator('.notify-add label:has-text("Webhook")').click();
  assert.equal(await card.locator('input[name=token]').isVisible(), false, 'a webhook takes no token');
  await card.locator('input[name=target]').fill('http://127.0.0.1:9/claw-hook');
  await card.locator('input[name=name]').fill('Build bot');
  await card.locator('button:text("Add channel")').click();
  const secret = card.locator('#webhook-secret');
  await secret.waitFor();
  const value = await secret.textContent();
  assert.match(value, /^whsec_[A-Za-z0-9+/=]{32}$/);
  assert.match(await card.locator('.notify-secret').textContent(), /Signing secret of Build bot — shown only now/);
  await card.locator('#copy-secret').click();
  await card.locator('#copy-secret:text("Copied")').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), value);
  const item = card.locator('.channel[data-kind=webhook]');
  assert.equal(await item.locator('.channel-name').textContent(), 'Build bot');
  assert.equal(await item.locator('.channel-target').textContent(), '127.0.0.1:9/claw-hook');
  // The default kinds: approvals, questions, failures; the runs one started.
  assert.deepEqual(await item.locator('input[name=kind]:checked').evaluateAll((els) => els.map((e) => e.value)),
    ['approval', 'question', 'failed']);
  assert.equal(await item.locator('input[value=own]').isChecked(), true);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');
  await page.screenshot({ path: join(shotDir, 'notify-secret-phone.png') });
  let [channel] = await listed();
  assert.deepEqual([channel.kind, channel.name, channel.target, channel.owner], ['webhook', 'Build bot', 'http://127.0.0.1:9/claw-hook', 'admin']);
  assert.ok(!JSON.stringify(channel).includes(value), 'the secret is not listed');

  // Done: the secret is gone, and a new visit does not show it either.
  await card.locator('.notify-secret button:text("Done")').click();
  assert.equal(await secret.count(), 0);
  await page.reload();
  await item.waitFor();
  assert.equal(await page.locator('#webhook-secret').count(), 0);
  assert.ok(!(await page.textContent('main')).includes(value));

  // Kinds and runs, saved as they are changed.
  await item.locator('label.pill:has-text("Questions")').click();
  await item.locator('.channel-saved:text("Saved")').waitFor();
  await item.locator('label.pill:has-text("Finished")').click();
  await until(page, async () => {
    const r = await fetch('/api/notify/channels');
    const [c] = await r.json();
    return c.events.join() === 'approval,finished,failed';
  });
  await item.locator('label:has-text("All I can see")').click();
  await until(page, async () => (await (await fetch('/api/notify/channels')).json())[0].scope === 'all');
  await onScreen(page, '.channel label.pill:has-text("Approvals")');
  await onScreen(page, '.channel label:has-text("All I can see")');
  // One kind at least: the last cannot be unticked.
  await item.locator('label.pill:has-text("Approvals")').click();
  await item.locator('label.pill:has-text("Finished")').click();
  await item.locator('.channel-saved:text("Saved")').waitFor();
  await until(page, async () => (await (await fetch('/api/notify/channels')).json())[0].events.join() === 'failed');
  await item.locator('label.pill:has-text("Failed")').click();
  await item.locator('.channel-saved', { hasText: 'Keep at least one' }).waitFor();
  assert.equal(await item.locator('input[value=failed]').isChecked(), true);
  await item.locator('label.pill:has-text("Approvals")').click();
  await until(page, async () => (await (await fetch('/api/notify/channels')).json())[0].events.join() === 'approval,failed');
  [channel] = await listed();
  assert.deepEqual([channel.events, channel.scope], [['approval', 'failed'], 'all']);

  // A global ntfy topic with a token, an administrator's.
  await card.locator('.notify-add label:has-text("ntfy topic")').click();
  await card.locator('input[name=target]').fill('http://127.0.0.1:9/claw-alerts');
  await card.locator('input[name=token]').fill('tk_secret_token');
  await card.locator('input[name=global]').check();
  await card.locator('button:text("Add channel")').click();
  const topic = card.locator('.channel[data-kind=ntfy]');
  await topic.waitFor();
  assert.equal(await topic.locator('.channel-name').textContent(), '127.0.0.1:9', 'named after its host');
  assert.match(await topic.textContent(), /for everyone.*For everyone: every run, whoever started it/);
  assert.equal(await card.locator('#webhook-secret').count(), 0, 'a topic has no secret to show');
  const global = (await listed()).find((c) => c.kind === 'ntfy');
  assert.equal(global.owner, null);
  assert.ok(!JSON.stringify(global).includes('tk_secret_token'));
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');
  await page.waitForSelector('#toast:not(.show)', { state: 'attached' });
  await shoot(page, 'notify-account');

  // Removed, after a question.
  await item.locator('button:text("Remove")').click();
  await page.click('dialog button:text("Remove")');
  await item.waitFor({ state: 'detached' });
  await topic.locator('button:text("Remove")').click();
  await page.click('dialog button:text("Remove")');
  await card.locator('.channels-empty').waitFor();
  assert.deepEqual(await listed(), []);
  await page.setViewportSize(DESKTOP);
});

// A push service on this machine: it keeps what the gateway sends.
async function pushService() {
  const received = [];
  let wake = () => {};
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(201);
      res.end();
      wake();
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    received,
    // The `index`th message, once it is here.
    async message(index, timeout = 15000) {
      const deadline = Date.now() + timeout;
      while (received.length <= index) {
        if (Date.now() > deadline) throw new Error(`the gateway pushed ${received.length} messages, not ${index + 1}`);
        await new Promise((ok) => { wake = ok; setTimeout(ok, 200); });
      }
      return received[index];
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
}

// What a browser does with a push message (RFC 8291, aes128gcm of RFC
// 8188, one record): the plain text the gateway encrypted for `ua`.
function decryptPush(body, ua, auth) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const serverKey = body.subarray(21, 21 + idlen);
  const data = body.subarray(21 + idlen);
  assert.ok(data.length <= body.readUInt32BE(16), 'one record');
  const hmac = (key, input) => createHmac('sha256', key).update(input).digest();
  const prkKey = hmac(auth, ua.computeSecret(serverKey));
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), ua.getPublicKey(), serverKey, Buffer.from([1])]);
  const prk = hmac(salt, hmac(prkKey, keyInfo));
  const cek = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01')).subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01')).subarray(0, 12);
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(data.subarray(-16));
  const padded = Buffer.concat([decipher.update(data.subarray(0, -16)), decipher.final()]);
  let end = padded.length - 1;
  while (end > 0 && padded[end] === 0) end -= 1;
  assert.equal(padded[end], 2, 'the last record\'s delimiter');
  return padded.subarray(0, end).toString('utf8');
}

test('Web Push: the gateway pushes an approval, the service worker shows it, and its click opens the approval card', async () => {
  const service = await pushService();
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: PHONE });
  await context.grantPermissions(['notifications'], { origin: gw.base });
  const p = await context.newPage();
  p.on('pageerror', (err) => { console.error('page error:', err); });
  try {
    await signIn(p, ADMIN);
    // Notifications allowed: the page registers the service worker.
    assert.equal(await p.evaluate(async () => (await navigator.serviceWorker.ready).scope), `${gw.base}/`);

    // Enable: headless Chromium has the permission but no push service;
    // the page says so.
    await p.goto(`${gw.base}/#/account`);
    await p.click('#notify-enable');
    await p.locator('.notify-device .error', { hasText: /^This browser could not subscribe to its push service: / }).waitFor();
    assert.equal(await p.locator('#notify-enable').isEnabled(), true, 'it may be tried again');
    // Headless Chromium has no push service to subscribe with: the
    // subscription it would make (a P-256 key and an auth secret) is made
    // here and sent as the page would, with the page's session.
    const ua = createECDH('prime256v1');
    ua.generateKeys();
    const auth = randomBytes(16);
    const subscription = {
      endpoint: `${service.base}/push/chromium-1`, expirationTime: null,
      keys: { p256dh: ua.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
      name: 'Headless Chromium',
    };
    const made = await p.evaluate(async (body) => {
      const r = await fetch('/api/notify/push', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    }, subscription);
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.deepEqual([made.body.kind, made.body.name, made.body.events], ['webpush', 'Headless Chromium', ['approval', 'question', 'failed']]);
    await p.reload();
    const device = p.locator('#notifications .channel[data-kind=webpush]');
    await device.waitFor();
    assert.match(await device.textContent(), /^PushHeadless Chromium/);
    assert.equal(await device.locator('.channel-target').textContent(), `via ${new URL(service.base).host}`);

    // An agent asks; the gateway pushes to the service.
    const bearer = await adminBearer();
    const run = await gw.createAgentRun(bearer, { agent: 'claude', prompt: 'Tag release 1.2' });
    await gw.postEvents(run, [started('claude'), approvalRequest('tag-1', {
      kind: 'tool', tool: 'Bash', input: { command: 'git tag v1.2' }, summary: 'git tag v1.2', reason: 'tag the release',
    })]);
    const approval = (await pendingApprovals()).find((a) => a.runId === run.id);
    const push = await service.message(0);
    assert.equal(push.url, '/push/chromium-1');
    assert.equal(push.headers['content-encoding'], 'aes128gcm');
    assert.match(push.headers.authorization, /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/);
    const payload = decryptPush(push.body, ua, auth);
    const sent = JSON.parse(payload);
    assert.deepEqual([sent.kind, sent.runId, sent.approvalId, sent.tool, sent.summary],
      ['approval', run.id, approval.id, 'Bash', 'git tag v1.2']);
    const link = `#/runs/${run.id}/approval/${approval.id}`;
    assert.ok(sent.url.endsWith(`/${link}`), sent.url);

    // The browser gets it, as from its push service (DevTools' "Push").
    await p.goto(`${gw.base}/#/runs`);
    const cdp = await context.newCDPSession(p);
    const registrations = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    const deadline = Date.now() + 10000;
    while (!registrations.some((r) => r.scopeURL === `${gw.base}/` && !r.isDeleted) && Date.now() < deadline) await p.waitForTimeout(100);
    const registration = registrations.find((r) => r.scopeURL === `${gw.base}/` && !r.isDeleted);
    assert.ok(registration, JSON.stringify(registrations));
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: gw.base, registrationId: registration.registrationId, data: payload });
    const shown = await until(p, async () => {
      const list = await (await navigator.serviceWorker.ready).getNotifications();
      return list.length ? list.map((n) => ({ title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url })) : null;
    });
    assert.deepEqual(shown, [{ title: sent.title, body: 'git tag v1.2', tag: sent.id, url: `${gw.base}/${link}` }]);

    // A click on it: the open page goes to the approval's card, in view,
    // focused and marked.
    const worker = context.serviceWorkers().find((w) => w.url() === `${gw.base}/sw.js`)
      || await context.waitForEvent('serviceworker');
    await worker.evaluate(async () => {
      const [n] = await self.registration.getNotifications();
      self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }));
    });
    await p.waitForFunction((hash) => location.hash === hash, link);
    const target = p.locator(`.dock .appr.appr-target[data-approval-id="${approval.id}"]`);
    await target.waitFor();
    await p.waitForFunction((id) => document.activeElement && document.activeElement.dataset.approvalId === id, approval.id);
    assert.equal(await target.evaluate((el) => getComputedStyle(el).outlineStyle), 'solid');
    assert.equal(await p.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).length), 0, 'the notification closed');
    await onScreen(p, '.appr-target button.appr-allow', 48);
    await p.waitForTimeout(2100); // the highlight's flash, over
    await p.screenshot({ path: join(shotDir, 'notify-approval-phone.png') });

    // Decided; the same link later shows the decided card.
    await target.locator('button.appr-allow').click();
    await target.locator('.appr-outcome', { hasText: /^Allowed once by admin/ }).waitFor();
    await p.goto(`${gw.base}/#/runs`);
    await p.waitForSelector('table.runs');
    await p.goto(`${gw.base}/${link}`);
    const decided = p.locator(`.linked-approval .appr.decided.appr-target[data-approval-id="${approval.id}"]`);
    await decided.waitFor();
    assert.match(await decided.locator('.appr-outcome').textContent(), /^Allowed once by admin/);
    await p.waitForFunction((id) => document.activeElement && document.activeElement.dataset.approvalId === id, approval.id);
    assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');
    await p.waitForTimeout(2100);
    await p.screenshot({ path: join(shotDir, 'notify-approval-decided-phone.png') });
    await decided.locator('button:text("Close")').click();
    await decided.waitFor({ state: 'detached' });

    assert.equal((await gw.fetch('DELETE', `/api/notify/channels/${made.body.id}`, { headers: { authorization: `Bearer ${bearer}` } })).status, 200);
    await gw.postEvents(run, [finished(0)]);
  } finally {
    await context.close();
    await service.close();
  }
});

test('the status page counts notifications and says what to do about dead ones', async () => {
  await page.goto(`${gw.base}/#/status`);
  await page.locator('#notify-delivered').waitFor();
  const bearer = await adminBearer();
  const auth = { authorization: `Bearer ${bearer}` };
  const counts = async () => (await gw.fetch('GET', '/api/notify/status', { headers: auth })).body;
  assert.equal(await page.locator('#notify-dead').isVisible(), false);
  // A webhook nobody listens at: with notify_max_attempts = 1 its first
  // failure is final.
  const hook = await gw.fetch('POST', '/api/notify/channels', {
    headers: auth, body: { kind: 'webhook', name: 'Nobody home', target: 'http://127.0.0.1:9/hook', events: ['approval'] },
  });
  assert.equal(hook.status, 201, JSON.stringify(hook.body));
  const run = await gw.createAgentRun(bearer, { agent: 'claude', prompt: 'Nobody listens' });
  await gw.postEvents(run, [started('claude'), approvalRequest('dead-1', { kind: 'tool', tool: 'Bash', input: { command: 'true' }, summary: 'true' })]);
  await page.waitForSelector('#notify-dead:visible', { timeout: 15000 });
  const n = await counts();
  assert.equal(await page.textContent('#notify-dead-count'), String(n.dead));
  assert.equal(await page.textContent('#notify-channels'), String(n.channels));
  assert.equal(await page.textContent('#notify-delivered'), String(n.delivered));
  assert.equal(await page.textContent('#notify-dead'),
    n.dead === 1
      ? '1 notification could not be delivered — an administrator can see it with clawctl notify list --dead.'
      : `${n.dead} notifications could not be delivered — an administrator can see them with clawctl notify list --dead.`);
  await shoot(page, 'status-notify');
  assert.equal((await gw.fetch('DELETE', `/api/notify/channels/${hook.body.channel.id}`, { headers: auth })).status, 200);
  await gw.postEvents(run, [finished(0)]);
});

test('hosts: an admin adds one on a phone and copies its command; a real claw-runner enrols and serves, shows online, and exits 78 when revoked', async () => {
  await admin.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.base });
  const runnerBin = join(binDir, 'claw-runner');
  const home = mkdtempSync(join(tmpdir(), 'claw-host-'));
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'claw-host-work-')));
  const env = {
    PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home, CLAW_STATE_DIR: join(home, 'state'),
    CLAW_CLAUDE_PROGRAM: claudeCli, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1',
  };
  const enroll = (token) => spawnSync(runnerBin, ['enroll', '--gateway', gw.base,
    '--ca-cert', join(gw.data, 'certs/server.crt'), '--token', token], { env, encoding: 'utf8' });
  const noSideways = async () => assert.ok(
    await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');

  await page.setViewportSize(PHONE);
  await page.goto(`${gw.base}/#/runs`);
  await page.click('nav a:text("Hosts")');
  await page.locator('.hosts-empty').waitFor();

  // Added: the command to run on the host, once, to copy.
  await page.fill('input[name=hostName]', 'build-box-1');
  await page.click('button:text("Add host")');
  const box = page.locator('#host-enrol');
  await box.locator('#enroll-command').waitFor();
  const first = await box.locator('#enroll-command').textContent();
  assert.match(first, /^claw-runner enroll --gateway https:\/\/\S+ --token [0-9a-f]+( --fingerprint \S+)?$/);
  assert.match(await box.textContent(), /Valid until .+, once — shown only now\./);
  assert.match(await box.textContent(), /systemctl enable --now claw-runner/);
  const card = page.locator('.host[data-host="build-box-1"]');
  await card.locator('.badge[data-state=pending]:text("pending")').waitFor();
  // The list never shows a token.
  const bearer = await adminBearer();
  const listed = await gw.fetch('GET', '/api/hosts', { headers: { authorization: `Bearer ${bearer}` } });
  assert.ok(!JSON.stringify(listed.body).includes(first.match(/--token (\S+)/)[1]), 'the token is not listed');

  // The token expired, say: New token gives another command; the first no longer works.
  await card.locator('button:text("New token")').click();
  await page.waitForFunction((old) => {
    const el = document.querySelector('#enroll-command');
    return el && el.textContent !== old;
  }, first);
  const line = await box.locator('#enroll-command').textContent();
  await box.locator('#copy-enroll').click();
  await box.locator('#copy-enroll:text("Copied")').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), line);
  await noSideways();
  // What the phone shows: the command in view, the header at the top.
  await page.screenshot({ path: join(shotDir, 'hosts-enrol-phone.png') });
  const old = enroll(first.match(/--token (\S+)/)[1]);
  assert.notEqual(old.status, 0, 'the replaced token is refused');
  assert.match(old.stderr, /unknown or was used already/);

  // On the host: the copied command's token, then the service.
  const enrolled = enroll(line.match(/--token (\S+)/)[1]);
  assert.equal(enrolled.status, 0, enrolled.stderr);
  assert.match(enrolled.stdout, /enrolled as host build-box-1/);
  const config = join(home, 'runner.toml');
  writeFileSync(config, `workspaces = ["${work}"]\nsession_limit = 2\n`);
  const serve = spawn(runnerBin, ['--config', config, 'serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  runners.push(serve);
  let serveLog = '';
  serve.stderr.on('data', (d) => { serveLog += d; });
  const exited = new Promise((ok) => { serve.once('exit', (code) => ok(code)); });

  // The page reads the list again by itself: online, with what it said.
  try {
    await card.locator('.badge[data-state=online]:text("online")').waitFor({ timeout: 30000 });
  } catch (err) {
    throw new Error(`${err.message}\nclaw-runner serve:\n${serveLog}`);
  }
  await box.locator('text=build-box-1 is enrolled: its token is spent.').waitFor();
  const claudeVersion = execFileSync(claudeCli, ['--version'], { env, encoding: 'utf8' }).split('\n')[0].trim();
  const runnerVersion = execFileSync(runnerBin, ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
  assert.deepEqual(await card.locator('.host-workspaces li').allTextContents(), [work]);
  assert.equal(await card.locator('.host-agents li[data-agent=claude]').textContent(), `claude ${claudeVersion}`);
  assert.equal(await card.locator('.host-version').textContent(), runnerVersion);
  assert.equal(await card.locator('.host-load').textContent(), '0 running / 2');
  assert.match(await card.locator('dd time').first().textContent(), /just now|\d+ s ago/);
  assert.match(await page.textContent('.host-count'), /^1 of 1 online$/);
  // A name the gateway would refuse is caught in the form; an enrolled
  // host added again is refused with what to do.
  await page.fill('input[name=hostName]', '-bad name');
  assert.equal(await page.locator('input[name=hostName]:invalid').count(), 1);
  await page.fill('input[name=hostName]', 'build-box-1');
  await page.click('button:text("Add host")');
  await page.locator('.host-add .error:text("host build-box-1 is enrolled already: revoke and remove it to enrol it again")').waitFor();
  await page.fill('input[name=hostName]', '');
  await noSideways();
  await shoot(page, 'hosts-online');
  await page.setViewportSize(PHONE);

  // A viewer sees the host, and no controls.
  const viewerContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: PHONE });
  const viewer = await viewerContext.newPage();
  await signIn(viewer, VIEWER);
  await viewer.click('nav a:text("Hosts")');
  await viewer.locator('.host[data-host="build-box-1"] .badge[data-state=online]').waitFor();
  assert.equal(await viewer.locator('.hosts-page button').count(), 0);
  assert.equal(await viewer.locator('input[name=hostName]').count(), 0);
  await viewer.screenshot({ path: join(shotDir, 'hosts-viewer-phone.png'), fullPage: true });
  await viewerContext.close();

  // Revoked, after a confirmation: the card says so at once, and the
  // service, refused, stops for good.
  await card.locator('button:text("Revoke")').click();
  const dialog = page.locator('dialog');
  assert.match(await dialog.textContent(), /Revoke build-box-1\? It is cut off at once, and its key never works again\./);
  await dialog.locator('button:text("Revoke")').click();
  await card.locator('.badge[data-state=revoked]:text("revoked")').waitFor();
  assert.equal(await card.locator('button:text("Revoke")').count(), 0);
  const code = await Promise.race([exited, new Promise((ok) => { setTimeout(() => ok('still running'), 20000); })]);
  assert.equal(code, 78, `claw-runner serve exited 78 when revoked:\n${serveLog}`);
  await shoot(page, 'hosts-revoked');
  await page.setViewportSize(PHONE);

  // Removed, after a confirmation.
  await card.locator('button:text("Remove")').click();
  await page.locator('dialog button:text("Remove")').click();
  await page.locator('.hosts-empty').waitFor();
  assert.equal((await gw.fetch('GET', '/api/hosts', { headers: { authorization: `Bearer ${bearer}` } })).body.length, 0);

  // Left, the page stops asking.
  let asked = 0;
  const count = (request) => { if (request.url().endsWith('/api/hosts')) asked += 1; };
  await page.click('nav a:text("Runs")');
  await page.waitForSelector('h1:text("Runs")');
  page.on('request', count);
  await page.waitForTimeout(10500);
  page.off('request', count);
  assert.equal(asked, 0, 'no refresh after leaving the page');
  await page.setViewportSize(DESKTOP);
  rmSync(home, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

test('sessions on a host from a phone: New session starts one, Stop, then Continue resumes it; a folder outside the workspace is refused', async () => {
  const runnerBin = join(binDir, 'claw-runner');
  const home = mkdtempSync(join(tmpdir(), 'claw-sess-'));
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'claw-sess-work-')));
  const model = await scriptedModel(home, {
    rules: [
      { when: 'say hello', steps: [{ text: 'Hello from the host.' }] },
      { when: 'say goodbye', steps: [{ text: 'Goodbye, resumed.' }] },
    ],
  });
  const bearer = await adminBearer();
  const auth = { authorization: `Bearer ${bearer}` };
  const runs = async () => (await gw.fetch('GET', '/api/runs?limit=200', { headers: auth })).body;

  // A host enrolled and serving, its sessions talking to the scripted model.
  const added = await gw.fetch('POST', '/api/hosts', { body: { name: 'build-2' }, headers: auth });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  const env = {
    PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home, CLAW_STATE_DIR: join(home, 'state'),
    CLAW_CLAUDE_PROGRAM: claudeCli, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1',
    ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'scripted',
  };
  const enrolled = spawnSync(runnerBin, ['enroll', '--gateway', gw.base, '--ca-cert', join(gw.data, 'certs/server.crt'),
    '--token', added.body.enrolmentToken], { env, encoding: 'utf8' });
  assert.equal(enrolled.status, 0, enrolled.stderr);
  const config = join(home, 'runner.toml');
  writeFileSync(config, `workspaces = ["${work}"]\nsession_limit = 2\n`);
  const serve = spawn(runnerBin, ['--config', config, 'serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  runners.push(serve);
  let serveLog = '';
  serve.stderr.on('data', (d) => { serveLog += d; });
  const hostNow = async () => (await gw.fetch('GET', '/api/hosts', { headers: auth })).body.find((x) => x.name === 'build-2');
  for (let i = 0; ; i += 1) {
    const host = await hostNow();
    if (host.state === 'online' && host.info) break;
    assert.ok(i < 150, `build-2 comes online:\n${serveLog}`);
    await new Promise((ok) => { setTimeout(ok, 200); });
  }
  const noSideways = async () => assert.ok(
    await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing scrolls sideways');

  // From the Runs page: the form offers the online host, its workspace
  // and agent, and the permission modes with what each allows.
  await page.setViewportSize(PHONE);
  await page.goto(`${gw.base}/#/runs`);
  await page.click('a.new-session:text("New session")');
  await page.waitForSelector('#session-host');
  const hostId = (await hostNow()).id;
  assert.equal(await page.textContent(`#session-host option[value="${hostId}"]`), 'build-2 — 0 of 2 running');
  await page.selectOption('#session-host', hostId);
  assert.deepEqual(await page.locator('#session-workspace option').allTextContents(), [work]);
  assert.equal(await page.inputValue('#session-agent'), 'claude');
  assert.deepEqual(await page.locator('.mode-opt strong').allTextContents(), ['Ask first', 'Edit freely', 'Plan only']);
  assert.equal(await page.locator('.mode-opt input[value=default]').isChecked(), true);
  assert.equal(await page.textContent('.session-where'), `Starts in ${work}`);
  await noSideways();
  await shoot(page, 'session-new');
  await page.setViewportSize(PHONE);

  // A subfolder that leaves the workspace: the gateway's refusal, under
  // the form, and no run.
  const before = (await runs()).length;
  await page.fill('#session-subfolder', '../../etc');
  assert.equal(await page.textContent('.session-where'), `Starts in ${work}/../../etc`);
  await page.fill('#session-prompt', 'say hello');
  await page.click('#session-start');
  const refusal = page.locator('.session-error:visible');
  await refusal.waitFor();
  assert.match(await refusal.textContent(), /is not one of host build-2's workspaces .* nor inside one/);
  assert.equal((await runs()).length, before, 'no run was made');
  assert.equal(await page.locator('#session-start').isEnabled(), true);
  await noSideways();
  await page.screenshot({ path: join(shotDir, 'session-refused-phone.png') });

  // From the host's card: the form with build-2 chosen; the start shows
  // its progress, then the run's page the agent's answer.
  await page.click('nav a:text("Hosts")');
  const card = page.locator('.host[data-host="build-2"]');
  await card.locator('.badge[data-state=online]').waitFor();
  await card.locator('a:text("Start a session here")').click();
  await page.waitForSelector('#session-host');
  assert.equal(await page.inputValue('#session-host'), hostId);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'session-prompt');
  await page.fill('#session-prompt', 'say hello');
  await page.check('.mode-opt input[value=acceptEdits]');
  // The host answers in a moment: held a little, the wait shows.
  await page.route('**/api/runs', async (route) => {
    await new Promise((ok) => { setTimeout(ok, 1500); });
    await route.continue();
  });
  await page.click('#session-start');
  await page.locator('.session-progress:visible', { hasText: 'Starting on build-2…' }).waitFor();
  assert.equal(await page.locator('#session-start').textContent(), 'Starting…');
  await page.screenshot({ path: join(shotDir, 'session-starting-phone.png') });
  await page.waitForURL(/#\/runs\/[\w-]+$/, { timeout: 30000 });
  await page.unroute('**/api/runs');
  const runId = page.url().split('#/runs/')[1];
  const conv = page.locator('#panel-conversation .conv');
  try {
    await conv.locator('.msg', { hasText: 'Hello from the host.' }).waitFor({ timeout: 90000 });
  } catch (err) {
    throw new Error(`${err.message}\nclaw-runner serve:\n${serveLog}`);
  }
  assert.match(await page.textContent('.agent-settings'), /acceptEdits mode · on build-2$/);
  await page.click('.run-details summary');
  assert.equal(await page.textContent('#run-host'), 'build-2');
  assert.equal(await page.textContent('#run-workspace'), work);
  await page.click('.run-details summary');

  // Stopped, the composer offers to continue the session on its host.
  await page.click('#stop');
  await page.click('dialog button:text("Stop run")');
  await page.waitForSelector('#run-status [data-status=stopped]', { timeout: 30000 });
  const resume = page.locator('.composer .composer-resume');
  await resume.waitFor();
  assert.equal(await resume.textContent(), 'Continue this session on build-2');
  assert.equal(await page.locator('.composer button.send-prompt').textContent(), 'Continue');
  await onScreen(page, '.composer textarea', 40);
  await page.screenshot({ path: join(shotDir, 'session-stopped-phone.png') });

  // Continued: the same run goes on, its answer after the first.
  const box = page.locator('.composer textarea');
  await box.click();
  await box.pressSequentially('now say goodbye');
  await box.press('Enter');
  try {
    await conv.locator('.msg', { hasText: 'Goodbye, resumed.' }).waitFor({ timeout: 90000 });
  } catch (err) {
    throw new Error(`${err.message}\nclaw-runner serve:\n${serveLog}`);
  }
  assert.equal(page.url().split('#/runs/')[1], runId);
  assert.deepEqual((await conv.locator('.msg').allTextContents()).map((t) => t.trim()), ['Hello from the host.', 'Goodbye, resumed.']);
  assert.equal(await conv.locator('.item.prompt', { hasText: 'now say goodbye' }).count(), 1);
  assert.deepEqual((await conv.locator('.note-session strong').allTextContents()), ['Session started', 'Session resumed']);
  assert.ok(model.seen().some((r) => r.prompt.includes('now say goodbye')), JSON.stringify(model.seen()));
  await page.waitForSelector('#run-status [data-status=running]');
  assert.equal(await page.locator('.composer-resume').count(), 0);
  await noSideways();
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await page.screenshot({ path: join(shotDir, 'session-continued-phone-viewport.png') });
  await shoot(page, 'session-continued');
  await page.setViewportSize(PHONE);
  const view = (await gw.fetch('GET', `/api/runs/${runId}`, { headers: auth })).body;
  assert.equal(view.workspace, work);
  assert.equal(view.hostId, hostId);
  assert.equal((await runs()).length, before + 1, 'one run for both turns');

  // Stopped again with its host gone offline: the composer says so.
  await page.click('#stop');
  await page.click('dialog button:text("Stop run")');
  await page.waitForSelector('#run-status [data-status=stopped]', { timeout: 30000 });
  const gone = new Promise((ok) => { serve.once('exit', ok); });
  serve.kill('SIGTERM');
  await gone;
  await page.locator('.composer-note', { hasText: 'build-2 is offline: start claw-runner there to continue this session.' })
    .waitFor({ timeout: 20000 });
  assert.equal(await box.isDisabled(), true);
  await page.screenshot({ path: join(shotDir, 'session-offline-phone.png') });

  // The list says where each session runs.
  await page.click('nav a:text("Runs")');
  await page.locator(`tr[data-run="${runId}"] .run-host`, { hasText: 'on build-2' }).waitFor();
  await page.setViewportSize(DESKTOP);
  assert.equal((await gw.fetch('DELETE', '/api/hosts/build-2', { headers: auth })).status, 200);
  rmSync(home, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
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
