// claw web UI: a hash router over a handful of pages. No framework and no
// build step: the files are served as they are from the clawd binary.

import { api, get, post, session, can, onUnauthorized } from './api.js';
import { h, replace, toast } from './dom.js';
import { live } from './socket.js';
import { setupPage, loginPage, accountPage } from './pages/auth.js';
import { runsPage, newRunPage } from './pages/runs.js';
import { runPage } from './pages/run.js';
import { usersPage, auditPage, statusPage } from './pages/admin.js';
import { approvalsPage } from './pages/approvals.js';
import { hostsPage } from './pages/hosts.js';
import { newSessionPage } from './pages/session.js';
import { approvals } from './approvals.js';
import { registerWorker, unsupported, permission } from './notify.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let cleanup = null;
let generation = 0;

// Goes to a page; the hashchange event renders it, unless it is already
// the current one.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const routes = [
  [/^#\/runs\/new$/, newRunPage, 'operator'],
  // A session on a coding host; `?host=NAME` picks the host.
  [/^#\/sessions\/new(?:\?.*)?$/, newSessionPage, 'operator'],
  [/^#\/runs\/([\w-]+)$/, runPage, 'viewer'],
  // A notification's link: the run, with that approval's card in view.
  [/^#\/runs\/([\w-]+)\/approval\/([\w-]+)$/, runPage, 'viewer'],
  [/^#\/runs$/, runsPage, 'viewer'],
  [/^#\/hosts$/, hostsPage, 'viewer'],
  [/^#\/users$/, usersPage, 'admin'],
  [/^#\/audit$/, auditPage, 'admin'],
  [/^#\/approvals$/, approvalsPage, 'viewer'],
  [/^#\/status$/, statusPage, 'viewer'],
  [/^#\/account$/, accountPage, 'viewer'],
];

// "Needs you": how many approvals wait for a person, on every page; a
// link to the inbox, hidden when nothing waits.
const needsCount = h('span', { class: 'needs-count' });
const needsYou = h('a', { class: 'needs-you', href: '#/approvals', hidden: true }, 'Needs you', needsCount);
function renderNeeds() {
  const n = approvals.count;
  needsCount.textContent = String(n);
  needsYou.hidden = n === 0;
  needsYou.setAttribute('aria-label', `Needs you: ${n} ${n === 1 ? 'approval waits' : 'approvals wait'} for a decision`);
  document.title = n ? `(${n}) claw` : 'claw';
}
approvals.listen(renderNeeds);

function renderNav() {
  const links = [['#/runs', 'Runs'], ['#/hosts', 'Hosts'], ['#/status', 'Status']];
  if (can('admin')) links.push(['#/users', 'Users'], ['#/audit', 'Audit']);
  links.push(['#/account', 'Account']);
  let here = location.hash.split('/').slice(0, 2).join('/');
  if (here === '#/sessions') here = '#/runs';
  if (here === '#/approvals') needsYou.setAttribute('aria-current', 'page');
  else needsYou.removeAttribute('aria-current');
  replace(nav,
    h('a', { class: 'brand', href: '#/runs' }, 'claw'),
    h('span', { class: 'live-dot', title: 'Live connection', 'aria-hidden': 'true' }),
    needsYou,
    h('nav', { 'aria-label': 'Main' }, links.map(([href, label]) =>
      h('a', { href, 'aria-current': href === here ? 'page' : null }, label))),
    h('span', { class: 'who' }, session.user.username, ' ',
      h('span', { class: `role role-${session.user.role}` }, session.user.role)),
    h('button', { type: 'button', class: 'secondary small', onclick: logout }, 'Sign out'));
  nav.hidden = false;
}

async function logout() {
  try { await post('/api/auth/logout'); } catch { /* the session is gone either way */ }
  signedOut();
}

function signedOut() {
  session.user = null;
  approvals.end();
  live.stop();
  nav.hidden = true;
  go('#/login');
}

onUnauthorized(() => {
  if (session.user) {
    toast('Your session ended: sign in again', 'error');
    signedOut();
  }
});

// Called by the auth pages once a session exists.
export async function signedIn(user) {
  session.user = user;
  try {
    session.status = await get('/api/status');
  } catch {
    session.status = null;
  }
  approvals.start();
  live.start();
  // On a device with notifications on, the worker is registered again:
  // the browser checks it for an update.
  if (!unsupported() && permission() === 'granted') registerWorker().catch(() => {});
  // Back to where the visitor was going: the page they opened, or the one
  // they were on when asked to sign in.
  const target = sessionStorage.getItem('claw.after-login') || location.hash;
  sessionStorage.removeItem('claw.after-login');
  go(target && !target.startsWith('#/login') && !target.startsWith('#/setup') ? target : '#/runs');
}

function teardown(fn) {
  try { if (typeof fn === 'function') fn(); } catch { /* a page's own teardown */ }
}

// Pages put their skeleton into <main> at once and fill it in as data
// arrives; a page left before it finished loading is torn down on arrival.
async function route() {
  const mine = ++generation;
  teardown(cleanup);
  cleanup = null;
  const settle = (fn) => { if (mine === generation) cleanup = fn; else teardown(fn); };
  window.scrollTo(0, 0);
  const hash = location.hash || '#/runs';
  if (!session.user) {
    nav.hidden = true;
    const page = hash === '#/setup' ? setupPage : loginPage;
    settle(await page(main, { signedIn }));
    return;
  }
  renderNav();
  for (const [pattern, page, role] of routes) {
    const m = hash.match(pattern);
    if (!m) continue;
    if (!can(role)) {
      replace(main, h('section', { class: 'card' }, h('h1', {}, 'Not allowed'),
        h('p', {}, `This page needs the ${role} role.`)));
      return;
    }
    main.dataset.page = page.name;
    settle(await page(main, { params: m.slice(1), signedIn }));
    return;
  }
  go('#/runs');
}

// A notification clicked: the service worker says where to go. Only this
// app's own routes are followed.
function fromWorker(event) {
  const m = event.data;
  if (!m || m.type !== 'claw.open' || typeof m.url !== 'string') return;
  let url;
  try { url = new URL(m.url); } catch { return; }
  if (url.origin !== location.origin || !url.hash.startsWith('#/')) return;
  go(url.hash);
}

async function boot() {
  window.addEventListener('hashchange', route);
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', fromWorker);
    navigator.serviceWorker.startMessages();
  }
  try {
    const status = await api('GET', '/api/auth/status');
    if (status.setupRequired) {
      go('#/setup');
      return;
    }
  } catch (err) {
    replace(main, h('p', { class: 'error' }, err.message));
    return;
  }
  try {
    const me = await get('/api/auth/me');
    await signedIn(me.user);
  } catch {
    if (location.hash && location.hash !== '#/login') sessionStorage.setItem('claw.after-login', location.hash);
    go('#/login');
  }
}

boot();
