// The gateway's sanitised HTML of an agent's message (daemon/src/markdown.rs)
// as nodes: the only HTML the UI ever inserts. It is parsed in an inert
// document (no script runs, nothing loads) and copied through an allowlist
// that mirrors the gateway's, so that not even a gateway bug can bring in a
// script, a style, an image or a handler. Links open in a new tab without a
// referrer; controls in its text show as escapes, as everywhere else.

import { visible } from './dom.js';

const HTML_NS = 'http://www.w3.org/1999/xhtml';
const TAGS = new Set([
  'a', 'blockquote', 'br', 'code', 'del', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr',
  'li', 'ol', 'p', 'pre', 'strong', 'table', 'tbody', 'td', 'th', 'thead', 'tr', 'ul', 'input',
]);
// Elements whose content is not text to show either.
const DROPPED = new Set(['script', 'style', 'template', 'iframe', 'object', 'embed', 'noscript', 'textarea', 'select']);
const LINK = /^(https?:|mailto:)/i;

function copyAttributes(from, to) {
  const tag = to.localName;
  const title = from.getAttribute('title');
  if (title !== null) to.title = title;
  if (tag === 'a') {
    const href = (from.getAttribute('href') || '').trim();
    if (LINK.test(href)) {
      to.setAttribute('href', href);
      to.target = '_blank';
      to.rel = 'noopener noreferrer nofollow';
    }
  } else if (tag === 'code') {
    const language = (from.getAttribute('class') || '').split(/\s+/).find((c) => /^language-[\w+#.-]+$/.test(c));
    if (language) to.className = language;
  } else if (tag === 'input') {
    // Task list boxes only, which nobody can tick here.
    to.type = 'checkbox';
    to.checked = from.hasAttribute('checked');
    to.disabled = true;
  } else if (tag === 'td' || tag === 'th') {
    const align = from.getAttribute('align');
    if (align && /^(left|center|right)$/.test(align)) to.setAttribute('align', align);
  }
}

function copyChildren(from, to) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      to.append(...visible(node.data));
    } else if (node.nodeType === Node.ELEMENT_NODE) {
      const tag = node.localName;
      if (node.namespaceURI !== HTML_NS || DROPPED.has(tag)) continue;
      if (tag === 'input' && (node.getAttribute('type') || '').toLowerCase() !== 'checkbox') continue;
      if (!TAGS.has(tag)) {
        // Unknown markup keeps its text, not its element.
        copyChildren(node, to);
        continue;
      }
      const el = document.createElement(tag);
      copyAttributes(node, el);
      copyChildren(node, el);
      to.append(el);
    }
  }
}

// `html` as a fragment of allowlisted elements and text.
export function safeFragment(html) {
  const doc = new DOMParser().parseFromString(`<!doctype html><body>${html}`, 'text/html');
  const out = document.createDocumentFragment();
  copyChildren(doc.body, out);
  return out;
}
