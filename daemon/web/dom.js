// Small DOM helpers. Text always goes in as text nodes, never as HTML, so
// nothing a runner or a user sends can become markup; and invisible or
// bidirectional control characters in it are shown as escapes such as
// <U+202E>, so that it cannot reorder or hide what is shown around it.

// The characters the redactor looks through too (proto/src/redact.rs).
const CONTROL_NAMES = {
  0x00ad: 'SOFT HYPHEN',
  0x061c: 'ARABIC LETTER MARK',
  0x180e: 'MONGOLIAN VOWEL SEPARATOR',
  0x200b: 'ZERO WIDTH SPACE',
  0x200c: 'ZERO WIDTH NON-JOINER',
  0x200d: 'ZERO WIDTH JOINER',
  0x200e: 'LEFT-TO-RIGHT MARK',
  0x200f: 'RIGHT-TO-LEFT MARK',
  0x202a: 'LEFT-TO-RIGHT EMBEDDING',
  0x202b: 'RIGHT-TO-LEFT EMBEDDING',
  0x202c: 'POP DIRECTIONAL FORMATTING',
  0x202d: 'LEFT-TO-RIGHT OVERRIDE',
  0x202e: 'RIGHT-TO-LEFT OVERRIDE',
  0x2060: 'WORD JOINER',
  0x2061: 'FUNCTION APPLICATION',
  0x2062: 'INVISIBLE TIMES',
  0x2063: 'INVISIBLE SEPARATOR',
  0x2064: 'INVISIBLE PLUS',
  0x2066: 'LEFT-TO-RIGHT ISOLATE',
  0x2067: 'RIGHT-TO-LEFT ISOLATE',
  0x2068: 'FIRST STRONG ISOLATE',
  0x2069: 'POP DIRECTIONAL ISOLATE',
  0xfeff: 'ZERO WIDTH NO-BREAK SPACE',
};
// With the capturing group, split() puts each control at an odd index.
const CONTROL_SPLIT = /([\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff])/;
const CONTROL_ANY = /[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

// `<U+202E>` for a control character.
export function controlLabel(c) {
  return `<U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}>`;
}

// `U+202E RIGHT-TO-LEFT OVERRIDE`, for a tooltip.
export function controlName(c) {
  return `${controlLabel(c).slice(1, -1)} ${CONTROL_NAMES[c.codePointAt(0)] || ''}`.trim();
}

// `text` as [text, control, text, control, …, text]: controls at odd indices.
export function splitControls(text) {
  return text.split(CONTROL_SPLIT);
}

// `text` as strings and escape spans for append().
export function visible(text) {
  const parts = splitControls(text);
  if (parts.length === 1) return parts;
  return parts.map((part, i) => (i % 2
    ? h('span', { class: 'ctl', title: controlName(part) }, controlLabel(part))
    : part)).filter((part) => part !== '');
}

// Elements that hold only text get the escapes as plain text.
const TEXT_ONLY = new Set(['OPTION', 'TEXTAREA', 'TITLE']);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    if (child instanceof Node) el.append(child);
    else if (TEXT_ONLY.has(el.tagName)) el.append(String(child).replace(CONTROL_ANY, controlLabel));
    else el.append(...visible(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString()
    : `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`;
}

export function fmtDuration(startIso, endIso) {
  if (!startIso) return '—';
  const start = new Date(startIso).getTime();
  const end = endIso ? new Date(endIso).getTime() : Date.now();
  let s = Math.max(0, Math.round((end - start) / 1000));
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  s -= minutes * 60;
  if (hours) return `${hours}h ${minutes}m`;
  if (minutes) return `${minutes}m ${s}s`;
  return `${s}s`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function statusBadge(status, exitCode) {
  const label = exitCode !== undefined && exitCode !== null && status !== 'running' && status !== 'waiting'
    ? `${status} (${exitCode})` : status;
  return h('span', { class: `badge st-${status}`, dataset: { status } }, label);
}

let toastTimer;
export function toast(message, kind = 'info') {
  const el = document.getElementById('toast');
  if (!el) return;
  replace(el, message);
  el.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = 'toast'; }, kind === 'error' ? 6000 : 3000);
}

// A modal question; resolves true only on the confirming button.
export function confirmDialog(question, confirmLabel = 'Confirm', danger = true) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-label': question },
      h('p', {}, question),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', value: 'cancel', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { type: 'button', class: danger ? 'danger' : '', value: 'ok', onclick: () => dialog.close('ok') }, confirmLabel)));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'ok'); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// Shows a caught error in a form's message area (or as a toast).
export function showError(err, target) {
  const message = err && err.message ? err.message : String(err);
  if (target) {
    replace(target, message);
    target.hidden = false;
  } else {
    toast(message, 'error');
  }
}

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', {}, hint) : null);
}

// How long ago a time was, in a few characters: "just now", "40 s ago",
// "5 min ago", "3 h ago", "2 days ago"; a time ahead (a clock off) is "just now".
export function fmtAgo(iso, now = Date.now()) {
  if (!iso) return '—';
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return iso;
  const s = Math.round((now - at) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

// Copies text; without the clipboard API (an http page, an old browser)
// selects `source`'s text for the system's own copy. True when copied.
export async function copyText(text, source) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return false;
  }
}
