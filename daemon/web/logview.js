// The live log: a virtual list that renders only the lines in view, so a run
// with 100,000 lines or more scrolls as lightly as one with ten. Lines are
// built from text nodes (HTML in the output stays text); ANSI colours become
// classes; stdout and stderr keep their own colour; invisible and
// bidirectional controls show as escapes (<U+202E>).

import { h } from './dom.js';
import { initialState, parseLine, styleSpan } from './ansi.js';

const LINE_HEIGHT = 20; // px; the same as .log-line in app.css
const OVERSCAN = 20;
const PLAIN = new Set(['stdout', 'stderr', 'marker', 'info', 'error', 'assist']);

function markerText(data) {
  try {
    const m = JSON.parse(data);
    if (m.event === 'started') return `▶ started${m.command ? `: ${m.command}` : ''}`;
    if (m.event === 'finished') {
      if (m.signal) return `■ finished: killed by signal ${m.signal}`;
      return `■ finished: exit code ${m.exitCode}`;
    }
    return `● ${m.event || data}`;
  } catch {
    return `● ${data}`;
  }
}

export class LogView {
  constructor() {
    this.lines = []; // { seq, kind, segments, lower, time }
    this.states = {};
    this.follow = true;
    this.unseen = 0;
    this.query = '';
    this.matches = [];
    this.current = -1;
    this.frame = 0;
    this.expectedTop = 0;

    this.spacer = h('div', { class: 'log-space' });
    this.rows = h('div', { class: 'log-rows' });
    this.scroller = h('div', {
      class: 'log', tabindex: '0', role: 'log', 'aria-live': 'off', 'aria-label': 'Run output',
    }, this.spacer, this.rows);
    this.followButton = h('button', {
      type: 'button', class: 'follow', hidden: true,
      onclick: () => { this.follow = true; this.schedule(); },
    }, '↓ Follow');
    this.counter = h('span', { class: 'match-count', 'aria-live': 'polite' });
    this.search = h('input', {
      type: 'search', placeholder: 'Search the log', 'aria-label': 'Search the log', class: 'log-search',
      oninput: () => { clearTimeout(this.searchTimer); this.searchTimer = setTimeout(() => this.find(this.search.value), 150); },
      onkeydown: (e) => { if (e.key === 'Enter') { e.preventDefault(); this.step(e.shiftKey ? -1 : 1); } },
    });
    const toolbar = h('div', { class: 'log-tools' }, this.search,
      h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Previous match', onclick: () => this.step(-1) }, '↑'),
      h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Next match', onclick: () => this.step(1) }, '↓'),
      this.counter);
    this.element = h('div', { class: 'log-wrap' }, toolbar, this.scroller, this.followButton);
    this.element.dataset.lines = '0';

    this.scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.scroller);
  }

  destroy() {
    this.resize.disconnect();
    cancelAnimationFrame(this.frame);
  }

  get lastSequence() {
    return this.lastSeq || 0;
  }

  // Adds one event (from the store or live); returns false for a sequence
  // already shown, so a resumed subscription cannot duplicate output.
  add(event) {
    if (event.sequence <= (this.lastSeq || 0)) return false;
    this.lastSeq = event.sequence;
    const kind = event.eventType || event.type;
    let text = event.data;
    if (kind === 'marker') text = markerText(text);
    // An agent's event is one line of JSON, shown after its type.
    else if (!PLAIN.has(kind)) text = `${kind} ${text}`;
    if (text.endsWith('\n')) text = text.slice(0, -1);
    const state = this.states[kind] || (this.states[kind] = initialState());
    for (const line of text.split('\n')) {
      const segments = parseLine(line, state);
      const plain = segments.map((s) => s.text).join('');
      this.lines.push({ seq: event.sequence, kind, segments, lower: plain.toLowerCase(), time: event.timestamp });
      if (this.query && plain.toLowerCase().includes(this.query)) this.matches.push(this.lines.length - 1);
    }
    if (!this.follow) this.unseen += 1;
    this.schedule();
    return true;
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  onScroll() {
    const s = this.scroller;
    const atBottom = s.scrollTop + s.clientHeight >= s.scrollHeight - LINE_HEIGHT;
    // Only the reader moves the view up; appends never do.
    if (s.scrollTop < this.expectedTop - 2 && !atBottom) this.follow = false;
    else if (atBottom) { this.follow = true; this.unseen = 0; }
    this.expectedTop = s.scrollTop;
    this.schedule();
  }

  render() {
    const s = this.scroller;
    const total = this.lines.length;
    this.spacer.style.height = `${total * LINE_HEIGHT}px`;
    if (this.follow) {
      s.scrollTop = s.scrollHeight;
      this.unseen = 0;
    }
    this.expectedTop = s.scrollTop;
    const first = Math.max(0, Math.floor(s.scrollTop / LINE_HEIGHT) - OVERSCAN);
    const last = Math.min(total, Math.ceil((s.scrollTop + s.clientHeight) / LINE_HEIGHT) + OVERSCAN);
    this.rows.style.transform = `translateY(${first * LINE_HEIGHT}px)`;
    const currentLine = this.current >= 0 ? this.matches[this.current] : -1;
    const nodes = [];
    for (let i = first; i < last; i += 1) nodes.push(this.renderLine(this.lines[i], i, i === currentLine));
    this.rows.replaceChildren(...nodes);
    this.element.dataset.lines = String(total);
    this.element.dataset.following = String(this.follow);
    this.followButton.hidden = this.follow;
    this.updateCounter();
    this.followButton.textContent = this.unseen ? `↓ Follow (${this.unseen} new)` : '↓ Follow';
  }

  renderLine(line, index, current) {
    const el = document.createElement('div');
    el.className = `log-line k-${line.kind}${current ? ' current' : ''}`;
    el.dataset.seq = line.seq;
    el.dataset.index = index;
    if (line.time) el.title = line.time;
    for (const seg of line.segments) {
      const span = document.createElement('span');
      styleSpan(span, seg.style);
      if (seg.control) {
        span.className = 'ctl';
        span.title = seg.control;
      }
      if (this.query) this.highlight(span, seg.text);
      else span.textContent = seg.text;
      el.append(span);
    }
    if (!line.segments.length) el.append('\u200b');
    return el;
  }

  highlight(span, text) {
    const lower = text.toLowerCase();
    let from = 0;
    let at;
    while ((at = lower.indexOf(this.query, from)) >= 0) {
      if (at > from) span.append(text.slice(from, at));
      span.append(h('mark', {}, text.slice(at, at + this.query.length)));
      from = at + this.query.length;
    }
    if (from < text.length) span.append(text.slice(from));
  }

  find(query) {
    this.query = query.trim().toLowerCase();
    this.matches = [];
    this.current = -1;
    if (this.query) {
      for (let i = 0; i < this.lines.length; i += 1) {
        if (this.lines[i].lower.includes(this.query)) this.matches.push(i);
      }
      if (this.matches.length) this.step(1);
    }
    this.updateCounter();
    this.schedule();
  }

  step(direction) {
    if (!this.matches.length) return;
    this.current = (this.current + direction + this.matches.length) % this.matches.length;
    const line = this.matches[this.current];
    this.follow = false;
    const s = this.scroller;
    s.scrollTop = Math.max(0, line * LINE_HEIGHT - s.clientHeight / 2);
    this.expectedTop = s.scrollTop;
    this.updateCounter();
    this.schedule();
  }

  updateCounter() {
    if (!this.query) this.counter.textContent = '';
    else if (!this.matches.length) this.counter.textContent = 'no match';
    else this.counter.textContent = `${this.current + 1}/${this.matches.length}`;
  }
}
