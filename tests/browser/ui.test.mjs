// The web UI in headless Chromium against a real clawd and a real
// claw-runner: setup, sign-in, runs, live logs, commands, stop, artifacts,
// roles, reconnects, a 100,000-line log and TOTP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
  const agent = join(work, 'agent.sh');
  writeFileSync(agent, [
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
      PATH: '/usr/bin:/bin', HOME: work,
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
  await page.waitForSelector('.cmd[data-status=completed] .cmd-result', { timeout: 20000 });
  assert.match(await page.textContent('.cmd[data-status=completed] .cmd-result'), new RegExp(work));
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
  await page.waitForSelector('.artifact-text');
  assert.match(await page.textContent('.artifact-text'), /line 30/);
  await shoot(page, 'run-artifacts');

  // The run list shows the run with its final state, command and exit code.
  await page.click('nav a:text("Runs")');
  const row = page.locator(`tr[data-run="${runId}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /stopped|failed/);
  assert.match(await row.textContent(), new RegExp(`sh ${agent}`));
  await shoot(page, 'runs');
});
