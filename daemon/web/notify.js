// Web Push on this device: the service worker (/sw.js), the browser's
// permission and push subscription, and the gateway's record of it.

import { get, post } from './api.js';

// The kinds of notification, as the gateway names them, in words.
export const KINDS = [
  ['approval', 'Approvals'],
  ['question', 'Questions'],
  ['plan', 'Plans'],
  ['finished', 'Finished'],
  ['failed', 'Failed'],
  ['stopped', 'Stopped'],
  ['runner_lost', 'Runner lost'],
];

const ios = () => /iPhone|iPad|iPod/.test(navigator.userAgent)
  || (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1);

// Why this browser cannot get push notifications here, in words; null when
// it can (the permission aside).
export function unsupported() {
  if (!window.isSecureContext) {
    return 'Notifications need HTTPS: open claw at its https:// address (with a certificate this device trusts).';
  }
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) {
    if (ios()) {
      return 'On iPhone and iPad, notifications need claw on the Home Screen: Share → Add to Home Screen, then open it from there and enable them.';
    }
    return 'This browser cannot receive push notifications.';
  }
  return null;
}

export function permission() {
  return 'Notification' in window ? Notification.permission : 'unsupported';
}

// "Chrome on Android", for the device list.
export function deviceName(ua = navigator.userAgent) {
  const browser = [
    [/SamsungBrowser\//, 'Samsung Internet'],
    [/EdgA?\//, 'Edge'],
    [/OPR\//, 'Opera'],
    [/Firefox\/|FxiOS\//, 'Firefox'],
    [/Chrome\/|CriOS\//, 'Chrome'],
    [/Safari\//, 'Safari'],
  ].find(([re]) => re.test(ua));
  const system = [
    [/Android/, 'Android'],
    [/iPhone/, 'iPhone'],
    [/iPad/, 'iPad'],
    [/CrOS/, 'ChromeOS'],
    [/Windows/, 'Windows'],
    [/Mac OS X|Macintosh/, 'macOS'],
    [/Linux/, 'Linux'],
  ].find(([re]) => re.test(ua));
  return `${browser ? browser[1] : 'Browser'}${system ? ` on ${system[1]}` : ''}`;
}

// The worker, registered (again: the browser checks it for an update).
export async function registerWorker() {
  await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  return navigator.serviceWorker.ready;
}

// This browser's push subscription, if it has one.
export async function currentSubscription() {
  if (unsupported()) return null;
  try {
    const registration = await navigator.serviceWorker.getRegistration('/');
    return registration ? await registration.pushManager.getSubscription() : null;
  } catch {
    return null;
  }
}

function keyBytes(base64url) {
  const b64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

// Asks for the permission, registers the worker, subscribes with the
// gateway's VAPID key and tells the gateway. Resolves to its channel;
// rejects with an Error that says what to do.
export async function enableOnThisDevice() {
  const why = unsupported();
  if (why) throw new Error(why);
  let allowed = Notification.permission;
  if (allowed === 'default') allowed = await Notification.requestPermission();
  if (allowed === 'denied') {
    throw new Error('Notifications are blocked for this site: allow them in the browser\'s site settings, then try again.');
  }
  if (allowed !== 'granted') throw new Error('Notifications were not allowed: press the button again and choose Allow.');
  const registration = await registerWorker();
  const { publicKey } = await get('/api/notify/push/key');
  let subscription = await registration.pushManager.getSubscription();
  // A subscription made with another key (the gateway's was rotated) is
  // replaced.
  if (subscription && subscription.options && subscription.options.applicationServerKey) {
    const had = new Uint8Array(subscription.options.applicationServerKey);
    const want = keyBytes(publicKey);
    if (had.length !== want.length || had.some((b, i) => b !== want[i])) {
      await subscription.unsubscribe();
      subscription = null;
    }
  }
  if (!subscription) {
    try {
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) });
    } catch (err) {
      throw new Error(`This browser could not subscribe to its push service: ${err.message || err}`);
    }
  }
  return post('/api/notify/push', { ...subscription.toJSON(), name: deviceName() });
}
