// Test harness: a real clawd on a temporary data directory and a free port,
// a signed runner client written from PROTOCOL.md, TOTP codes, and Debian's
// headless Chromium driven by playwright-core.

import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent, request as httpsRequest } from 'node:https';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '../..');
export const binDir = process.env.CLAW_BIN_DIR || join(repo, 'target/debug');
export const shotDir = process.env.CLAW_SCREENSHOT_DIR || join(repo, 'target/ui-screenshots');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

export class Gateway {
  static async start(config = '') {
    const gw = new Gateway();
    gw.dir = mkdtempSync(join(tmpdir(), 'claw-ui-'));
    gw.data = join(gw.dir, 'data');
    mkdirSync(gw.data, { mode: 0o700 });
    gw.config = join(gw.dir, 'clawd.toml');
    // The suite signs in many times from one address within a minute.
    writeFileSync(gw.config, `rate_limit_per_minute = 0\nlogin_max_failures = 100\n${config}`);
    await gw.launch();
    return gw;
  }

  async launch() {
    this.child = spawn(join(binDir, 'clawd'), [
      'serve', '--data-dir', this.data, '--config', this.config, '--listen', '127.0.0.1:0',
    ], {
      env: { ...process.env, CLAW_LOG_TARGET: 'stderr', RUST_LOG: 'info', CREDENTIALS_DIRECTORY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.log = '';
    this.child.stderr.on('data', (d) => { this.log += d; });
    const lines = createInterface({ input: this.child.stdout });
    const first = await new Promise((ok, fail) => {
      lines.once('line', ok);
      this.child.once('exit', (code) => fail(new Error(`clawd exited (${code}):\n${this.log}`)));
    });
    this.port = Number(first.trim().split(':').pop());
    if (!this.port) throw new Error(`clawd did not report its address: ${first}`);
    this.base = `https://localhost:${this.port}`;
    this.ca = readFileSync(join(this.data, 'certs/server.crt'));
    this.agent = new Agent({ ca: this.ca, keepAlive: true });
    this.secret = readFileSync(join(this.data, 'secrets/hmac-secret'), 'utf8').trim();
  }

  setupToken() {
    return readFileSync(join(this.data, 'setup-token'), 'utf8').trim();
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((ok) => this.child.once('exit', ok));
    this.child.kill('SIGTERM');
    await exited;
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }

  // Plain HTTPS; resolves { status, headers, body (parsed JSON or text) }.
  fetch(method, path, { body, headers = {} } = {}) {
    const payload = body === undefined ? null
      : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise((ok, fail) => {
      const req = httpsRequest(`${this.base}${path}`, {
        method, agent: this.agent,
        headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}), ...headers },
      }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed = text;
          try { parsed = JSON.parse(text); } catch { /* not JSON */ }
          ok({ status: res.statusCode, headers: res.headers, body: parsed });
        });
      });
      req.on('error', fail);
      if (payload) req.write(payload);
      req.end();
    });
  }

  // A signed runner request (PROTOCOL.md, "Request signing"); a Buffer
  // body goes as it is, with its own content type.
  signed(method, path, runId, token, body, contentType) {
    const payload = body === undefined ? '' : Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const timestamp = Math.floor(Date.now() / 1000);
    const nonce = randomBytes(16).toString('hex');
    const bodyHash = createHash('sha256').update(payload).digest('hex');
    const message = [method.toUpperCase(), path.split('?')[0], bodyHash, timestamp, nonce, runId, token].join('\n');
    const signature = createHmac('sha256', this.secret).update(message).digest('hex');
    return this.fetch(method, path, {
      body: payload.length ? payload : undefined,
      headers: {
        'x-signature': signature, 'x-timestamp': String(timestamp), 'x-nonce': nonce,
        'x-run-id': runId, 'x-capability-token': token,
        ...(contentType ? { 'content-type': contentType } : {}),
      },
    });
  }

  async login(username, password) {
    const reply = await this.fetch('POST', '/api/auth/login', { body: { username, password } });
    if (reply.status !== 200) throw new Error(`login ${reply.status}: ${JSON.stringify(reply.body)}`);
    const cookie = String(reply.headers['set-cookie']).split(';')[0];
    return { cookie, token: cookie.split('=')[1] };
  }

  async createRun(bearer, command) {
    const reply = await this.fetch('POST', '/api/runs', {
      body: command ? { command } : {}, headers: { authorization: `Bearer ${bearer}` },
    });
    if (reply.status !== 201) throw new Error(`create run ${reply.status}: ${JSON.stringify(reply.body)}`);
    return { id: reply.body.id, token: reply.body.capabilityToken };
  }

  // A run that drives an agent: `{ agent, prompt, model?, permissionMode? }`.
  async createAgentRun(bearer, body) {
    const reply = await this.fetch('POST', '/api/runs', { body, headers: { authorization: `Bearer ${bearer}` } });
    if (reply.status !== 201) throw new Error(`create run ${reply.status}: ${JSON.stringify(reply.body)}`);
    return { id: reply.body.id, token: reply.body.capabilityToken, runnerCommand: reply.body.runnerCommand };
  }

  // An artifact, as the runner uploads one (multipart, signed).
  async uploadArtifact(run, filename, content) {
    const boundary = `claw-${randomBytes(8).toString('hex')}`;
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n`
        + 'Content-Type: text/plain\r\n\r\n'),
      Buffer.from(content),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const reply = await this.signed('POST', '/api/ingest/artifact', run.id, run.token, body, `multipart/form-data; boundary=${boundary}`);
    if (reply.status !== 200) throw new Error(`upload ${reply.status}: ${JSON.stringify(reply.body)}`);
    return reply.body.artifactId;
  }

  async postEvents(run, events) {
    const reply = await this.signed('POST', '/api/ingest/events', run.id, run.token, { events });
    if (reply.status !== 200) throw new Error(`ingest ${reply.status}: ${JSON.stringify(reply.body)}`);
    return reply.body;
  }
}

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), for signing in as a user with an
// authenticator.
export function totp(secretBase32, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secretBase32.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(ch);
    if (v < 0) continue;
    bits += v.toString(2).padStart(5, '0');
  }
  const key = Buffer.alloc(Math.floor(bits.length / 8));
  for (let i = 0; i < key.length; i += 1) key[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, '0');
}

// The base64 SHA-256 of a certificate's public key (its SPKI), as
// Chromium's --ignore-certificate-errors-spki-list takes it.
export function spkiHash(pem) {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

// `trust`: the PEM of a certificate to trust as a real one. Contexts made
// with ignoreHTTPSErrors load pages from a self-signed gateway, but
// Chromium still refuses a service worker whose script came with a
// certificate error; trusting the gateway's own key (and only it) lets the
// service worker register as it would behind a real certificate.
// Chromium honours the list only with a --user-data-dir of its own, which
// Playwright always passes.
export async function launchBrowser({ trust } = {}) {
  return chromium.launch({
    executablePath: chromiumPath,
    // This machine's network is closed: nothing may try to reach Google.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
      ...(trust ? [`--ignore-certificate-errors-spki-list=${spkiHash(trust)}`] : [])],
  });
}

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

// Screenshots of a page at desktop and phone sizes, kept as test output.
export async function shoot(page, name) {
  mkdirSync(shotDir, { recursive: true });
  const size = page.viewportSize();
  // A full-page shot of a scrolled page would show the sticky bar mid-page.
  const top = () => page.evaluate(() => window.scrollTo(0, 0));
  await page.setViewportSize(DESKTOP);
  await top();
  await page.waitForTimeout(100);
  await page.screenshot({ path: join(shotDir, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await top();
  await page.waitForTimeout(100);
  await page.screenshot({ path: join(shotDir, `${name}-phone.png`), fullPage: true });
  if (size) await page.setViewportSize(size);
}

// Every line the log view holds, read by scrolling it from top to bottom
// (only the lines in view are in the DOM). Returns [{ seq, kind, text }].
export async function readLog(page) {
  return page.evaluate(async () => {
    const scroller = document.querySelector('.log');
    const wrap = document.querySelector('.log-wrap');
    const total = Number(wrap.dataset.lines);
    const lines = new Array(total);
    const frame = () => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));
    for (let top = 0; ; top += scroller.clientHeight) {
      scroller.scrollTop = top;
      await frame();
      for (const el of scroller.querySelectorAll('.log-line')) {
        lines[Number(el.dataset.index)] = {
          seq: Number(el.dataset.seq),
          kind: [...el.classList].find((c) => c.startsWith('k-')).slice(2),
          text: el.textContent.replace(/\u200b/g, ''),
        };
      }
      if (top + scroller.clientHeight >= scroller.scrollHeight) break;
    }
    return lines;
  });
}
