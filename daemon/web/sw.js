// claw's service worker: it shows the gateway's Web Push notifications and,
// when one is clicked, brings the app to the page it points to. It caches
// nothing (the gateway serves the app itself) and fetches nothing. What a
// payload says is only ever a notification's plain-text title and body,
// never markup; the only address followed is one of this app.

const ICON = '/assets/icon.svg';
// The app's own routes a notification may point to.
const ROUTE = /^#\/runs\/[\w-]+(\/approval\/[\w-]+)?$/;

self.addEventListener('install', () => { self.skipWaiting(); });
// Open pages get the new worker at once.
self.addEventListener('activate', (event) => { event.waitUntil(self.clients.claim()); });

const text = (value, max) => (typeof value === 'string' ? value.slice(0, max) : '');

// Where a notification leads: its address when it is this app's; else,
// when the gateway's public_url names it otherwise, the same route here;
// else the app's start.
function destination(url) {
  const origin = self.location.origin;
  try {
    const u = new URL(url, origin);
    if (u.origin === origin && u.pathname === '/') return u.href;
    if (ROUTE.test(u.hash)) return `${origin}/${u.hash}`;
  } catch { /* not an address */ }
  return `${origin}/`;
}

self.addEventListener('push', (event) => {
  let n = {};
  try {
    n = event.data ? event.data.json() : {};
  } catch {
    n = {};
  }
  if (!n || typeof n !== 'object') n = {};
  const title = text(n.title, 200) || 'claw';
  const options = {
    body: text(n.summary, 300) || text(n.runTitle, 300),
    data: { url: destination(n.url) },
    icon: ICON,
    badge: ICON,
  };
  // One notification per event: a retry of the same one replaces it.
  if (text(n.id, 200)) options.tag = text(n.id, 200);
  const at = Date.parse(n.createdAt);
  if (Number.isFinite(at)) options.timestamp = at;
  event.waitUntil(self.registration.showNotification(title, options));
});

// A window of the app is focused and told where to go (it routes by its
// hash, without reloading: its session and live connection stay); with no
// window open, one opens there.
async function openApp(url) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const mine = windows.filter((c) => new URL(c.url).origin === self.location.origin);
  const client = mine.find((c) => c.focused) || mine.find((c) => c.visibilityState === 'visible') || mine[0];
  if (!client) {
    await self.clients.openWindow(url);
    return;
  }
  try {
    await client.focus();
  } catch { /* focus needs the click's user activation */ }
  client.postMessage({ type: 'claw.open', url });
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const done = openApp(destination(data.url)).catch(() => {});
  // A synthetic event (a test's) cannot be waited for; a click's can.
  try { event.waitUntil(done); } catch { /* not a trusted event */ }
});
