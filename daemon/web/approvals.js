// Approvals: what an agent asks a person for (a tool its permission mode
// does not cover, answers to its questions, a plan), held by claw-runner
// until someone decides here. The pending ones across runs are kept from
// the page's WebSocket, which brings every approval as it is made, decided,
// delivered, expired or cancelled; every (re)connect fetches the pending
// list again, so a cut connection misses nothing. A card shows one
// approval and decides it. Agent text is text: a plan's markdown is shown
// as it was written, never as HTML.

import { get, postOnce, randomKey, can } from './api.js';
import { h, replace, fmtTime } from './dom.js';
import { live } from './socket.js';
import { renderDiff } from './diff.js';

const str = (v) => (typeof v === 'string' ? v : '');
const EDITS = new Set(['Edit', 'MultiEdit', 'Write', 'NotebookEdit']);
// How long a decided card stays where it was decided before it goes.
export const LINGER_MS = 4000;

class ApprovalStore {
  constructor() {
    this.pending = new Map(); // id -> approval, oldest first once sorted
    this.known = new Map();   // id -> the last word on every approval seen
    this.listeners = new Set();
    this.stop = null;
    this.loaded = false;
  }

  start() {
    if (this.stop) return;
    const unlisten = live.listen((m) => { if (m.type === 'approval' && m.approval) this.put(m.approval); });
    const unwatch = live.onState((state) => { if (state === 'open') this.resync(); });
    this.stop = () => { unlisten(); unwatch(); };
  }

  end() {
    if (this.stop) this.stop();
    this.stop = null;
    this.pending.clear();
    this.known.clear();
    this.loaded = false;
    this.notify(null);
  }

  // One approval's news. A decision is final, so a pending copy of an
  // approval known to be decided (an older message, or a list fetched
  // before the decision) changes nothing.
  put(approval) {
    if (!approval || !approval.id) return;
    const before = this.known.get(approval.id);
    if (before && before.status !== 'pending' && approval.status === 'pending') return;
    this.known.set(approval.id, approval);
    if (approval.status === 'pending') this.pending.set(approval.id, approval);
    else this.pending.delete(approval.id);
    this.notify(approval);
  }

  async resync() {
    let list;
    const asked = new Map(this.pending);
    try {
      list = await get('/api/approvals?status=pending');
    } catch {
      return; // the next connect tries again
    }
    const listed = new Set(list.map((a) => a.id));
    for (const a of list) this.put(a);
    // Pending here but no more there, and not heard of since: decided or
    // ended while the connection was down. Lists drop their cards.
    for (const [id, a] of asked) {
      if (!listed.has(id) && this.pending.get(id) === a) {
        this.pending.delete(id);
        this.known.delete(id);
      }
    }
    this.loaded = true;
    this.notify(null);
  }

  // Asks the gateway again about one approval.
  async refresh(id) {
    try { this.put(await get(`/api/approvals/${id}`)); } catch { /* it stays as it was */ }
  }

  // Pending approvals, oldest first; of one run when `runId` is given.
  list(runId) {
    return [...this.pending.values()]
      .filter((a) => !runId || a.runId === runId)
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  get count() { return this.pending.size; }

  // fn(approval) for each change, fn(null) after a resync.
  listen(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  notify(approval) {
    for (const fn of this.listeners) {
      try { fn(approval); } catch (err) { console.error(err); }
    }
  }
}

export const approvals = new ApprovalStore();

// "in 4m 05s", or "now" once past.
function fmtLeft(iso) {
  const left = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  if (!Number.isFinite(left)) return '';
  if (left <= 0) return 'expires now';
  const m = Math.floor(left / 60);
  const s = left % 60;
  if (m >= 60) return `expires in ${Math.floor(m / 60)}h ${m % 60}m`;
  return `expires in ${m ? `${m}m ${String(s).padStart(2, '0')}s` : `${s}s`}`;
}

// One clock for every card's expiry on the page.
let clock = null;
function tick() {
  const shown = document.querySelectorAll('.appr-expires[data-expires]');
  for (const el of shown) el.textContent = fmtLeft(el.dataset.expires);
  if (!shown.length) { clearInterval(clock); clock = null; }
}
function startClock() {
  if (!clock) clock = setInterval(tick, 1000);
}

// A rule of a suggestion as Claude Code writes it: `Bash(touch:*)`.
function ruleText(rule) {
  if (!rule || typeof rule !== 'object') return '';
  const tool = str(rule.toolName);
  return rule.ruleContent ? `${tool}(${str(rule.ruleContent)})` : tool;
}

// What "Allow for this session" allows, in words: the agent's suggested
// rules, or else (claw-runner's own rule) the same request again.
export function sessionWords(approval) {
  const parts = [];
  for (const s of Array.isArray(approval.suggestions) ? approval.suggestions : []) {
    if (!s || typeof s !== 'object') continue;
    if (Array.isArray(s.rules) && (s.type === 'addRules' || s.type === 'replaceRules' || !s.type)) {
      const rules = s.rules.map(ruleText).filter(Boolean);
      if (rules.length) parts.push(`${s.behavior === 'deny' ? 'deny' : 'allow'} ${rules.join(', ')}`);
    } else if (s.type === 'setMode' && s.mode) {
      parts.push(`switch to ${str(s.mode)} mode`);
    } else if (s.type === 'addDirectories' && Array.isArray(s.directories)) {
      parts.push(`allow access to ${s.directories.map(str).join(', ')}`);
    }
  }
  if (!parts.length) return `Allow this same ${approval.tool} request without asking for the rest of this run`;
  const text = parts.join('; ');
  return `${text[0].toUpperCase()}${text.slice(1)} for the rest of this run`;
}

// What the agent asks, in a few words, for a card's title and the
// conversation's note: [lead, detail] where detail is code.
export function asking(a) {
  const input = a.input && typeof a.input === 'object' ? a.input : {};
  const tool = str(a.tool);
  if (a.kind === 'question') {
    const n = Array.isArray(input.questions) ? input.questions.length : 0;
    return [n === 1 ? 'Asked a question' : `Asked ${n || 'some'} questions`, ''];
  }
  if (a.kind === 'plan') return ['Presented a plan', ''];
  if (tool === 'Bash') return ['Asked to run', str(input.command) || str(a.summary)];
  if (EDITS.has(tool)) return [tool === 'Write' ? 'Asked to write' : 'Asked to edit', str(input.file_path) || str(input.notebook_path) || str(a.summary)];
  return [`Asked to use ${tool}`, str(a.summary)];
}

// How an approval ended, in words; `who` says who decided.
export function outcomeWords(a, status = a.status) {
  const by = a.decidedBy ? ` by ${a.decidedBy}` : '';
  const message = a.message ? `: ${a.message}` : '';
  switch (status) {
    case 'pending': return 'waiting for a decision';
    case 'allowed':
      if (a.kind === 'question') return `answered${by}`;
      if (a.kind === 'plan') return `plan approved${by}`;
      return `allowed${a.scope === 'session' ? ' for this session' : ''}${by}`;
    case 'denied':
      if (a.kind === 'question') return `not answered${by}${message}`;
      if (a.kind === 'plan') return `sent back to planning${by}${message}`;
      return `denied${by}${message}`;
    case 'expired': return 'expired: the agent was told no decision arrived';
    case 'cancelled': return 'cancelled: the agent no longer waits for it';
    default: return status || '';
  }
}

function fieldset(legend, ...children) {
  return h('fieldset', { class: 'appr-q' }, h('legend', {}, legend), ...children);
}

// One approval: what is asked, why, until when, and (for operators, while
// it is pending) the decision.
export class ApprovalCard {
  constructor(approval, { showRun = false, foldable = false } = {}) {
    this.approval = approval;
    this.attempt = null; // { text, key }: a retry of the same decision keeps its key
    this.busy = false;
    const a = approval;
    const input = a.input && typeof a.input === 'object' ? a.input : {};
    const [lead, detail] = asking(a);
    this.expires = h('span', { class: 'appr-expires', title: `Until ${fmtTime(a.expiresAt)}`, dataset: { expires: a.expiresAt } }, fmtLeft(a.expiresAt));
    this.state = h('span', { class: 'appr-state' });
    const head = h('div', { class: 'appr-head' },
      h('span', { class: 'appr-kind' }, a.kind === 'tool' ? a.tool : a.kind === 'question' ? 'Question' : 'Plan'),
      h('span', { class: 'appr-lead' }, lead.replace(/^Asked/, 'Asks').replace(/^Presented/, 'Presents')),
      showRun ? h('a', { class: 'appr-run', href: `#/runs/${a.runId}` }, `run ${a.runId.slice(0, 8)}`) : null,
      this.expires, this.state,
      // Pinned over the conversation, a tall card can be folded to its head.
      foldable ? h('button', {
        type: 'button', class: 'secondary small appr-fold', 'aria-expanded': 'true', onclick: () => this.fold(),
      }, 'Hide') : null);
    this.foldButton = head.querySelector('.appr-fold');
    const body = h('div', { class: 'appr-body' });
    if (a.kind === 'tool') {
      if (a.tool === 'Bash') body.append(h('pre', { class: 'appr-cmd' }, `$ ${str(input.command) || str(a.summary)}`));
      else if (detail) body.append(h('code', { class: 'appr-what' }, detail));
      if (a.diff) body.append(renderDiff(a.diff));
      else if (a.tool !== 'Bash') {
        body.append(h('details', { class: 'appr-input' }, h('summary', {}, 'Input'),
          h('pre', {}, JSON.stringify(input, null, 2))));
      }
    } else if (a.kind === 'plan') {
      // Markdown as the agent wrote it: text, line breaks kept.
      body.append(h('pre', { class: 'appr-plan-text' }, str(input.plan) || '(the agent gave no plan text)'));
    }
    this.error = h('p', { class: 'error appr-error', role: 'alert', hidden: true });
    this.outcome = h('p', { class: 'appr-outcome', hidden: true });
    this.decide = can('operator') ? this.controls(a, input) : h('p', { class: 'muted appr-viewer' }, 'An operator or administrator decides.');
    const questions = a.kind === 'question' && !can('operator') ? this.questionsShown(input) : null;
    this.element = h('article', {
      class: `appr appr-${a.kind}`, dataset: { approvalId: a.id, runId: a.runId, status: a.status }, 'aria-label': `${lead} ${detail}`.trim(),
    }, head, body, questions,
    a.reason ? h('p', { class: 'appr-reason' }, h('span', { class: 'muted' }, 'Reason: '), a.reason) : null,
    this.decide, this.error, this.outcome);
    this.update(approval);
    startClock();
  }

  // The decision's controls for each kind.
  controls(a, input) {
    const button = (label, cls, onclick, extra = {}) => h('button', { type: 'button', class: cls, onclick, ...extra }, label);
    if (a.kind === 'question') {
      this.answers = [];
      const qs = Array.isArray(input.questions) ? input.questions : [];
      const sets = qs.map((q, i) => this.question(q, i));
      return h('form', { class: 'appr-decide', onsubmit: (e) => { e.preventDefault(); this.submitAnswers(); } },
        sets,
        h('div', { class: 'appr-buttons' },
          button('Submit answers', 'appr-allow', null, { type: 'submit' }),
          button('Don\'t answer', 'secondary danger appr-deny', () => this.send({ decision: 'deny' }))));
    }
    this.message = h('input', {
      type: 'text', class: 'appr-message', name: 'message', autocomplete: 'off', maxlength: '2000',
      placeholder: a.kind === 'plan' ? 'What should change? (optional)' : 'Why not? (optional, sent with Deny)',
      'aria-label': a.kind === 'plan' ? 'What should change' : 'Message with Deny',
    });
    const deny = () => {
      const body = { decision: 'deny' };
      if (this.message.value.trim()) body.message = this.message.value.trim();
      this.send(body);
    };
    if (a.kind === 'plan') {
      return h('div', { class: 'appr-decide' }, this.message,
        h('div', { class: 'appr-buttons' },
          button('Approve plan', 'appr-allow', () => this.send({ decision: 'allow' })),
          button('Keep planning', 'secondary appr-deny', deny)));
    }
    const words = sessionWords(a);
    return h('div', { class: 'appr-decide' }, this.message,
      h('div', { class: 'appr-buttons' },
        button('Allow once', 'appr-allow', () => this.send({ decision: 'allow', scope: 'once' })),
        button('Deny', 'danger appr-deny', deny),
        h('button', {
          type: 'button', class: 'secondary appr-session', title: words,
          onclick: () => this.send({ decision: 'allow', scope: 'session' }),
        }, h('span', {}, 'Allow for this session'), h('small', { class: 'appr-session-words' }, words))));
  }

  // One of AskUserQuestion's questions: its options, and an answer of
  // one's own.
  question(q, i) {
    const multi = q.multiSelect === true;
    const name = `q-${this.approval.id}-${i}`;
    const type = multi ? 'checkbox' : 'radio';
    const options = (Array.isArray(q.options) ? q.options : []).map((o) => h('label', { class: 'appr-opt' },
      h('input', { type, name, value: str(o.label) }),
      h('span', {}, h('strong', {}, str(o.label)), o.description ? h('small', {}, str(o.description)) : null)));
    const otherPick = h('input', { type, name, value: '', class: 'appr-other-pick', 'aria-label': 'Other' });
    const other = h('input', {
      type: 'text', class: 'appr-other', autocomplete: 'off', placeholder: 'Other: your own answer', 'aria-label': `Other answer to: ${str(q.question)}`,
    });
    other.addEventListener('input', () => { otherPick.checked = other.value.trim() !== ''; });
    const set = fieldset([q.header ? h('span', { class: 'appr-q-head' }, str(q.header)) : null, h('span', { class: 'appr-q-text' }, str(q.question))],
      options, h('label', { class: 'appr-opt appr-opt-other' }, otherPick, other));
    this.answers.push(() => {
      const picked = [...set.querySelectorAll(`input[name="${name}"]:checked`)]
        .map((el) => (el === otherPick ? other.value.trim() : el.value)).filter(Boolean);
      return [str(q.question), picked.join(', ')];
    });
    return set;
  }

  // A viewer sees the questions and their options, without controls.
  questionsShown(input) {
    const qs = Array.isArray(input.questions) ? input.questions : [];
    return h('div', { class: 'appr-questions' }, qs.map((q) => h('div', { class: 'appr-q' },
      h('p', {}, q.header ? h('span', { class: 'appr-q-head' }, str(q.header)) : null, h('span', { class: 'appr-q-text' }, str(q.question))),
      h('ul', {}, (Array.isArray(q.options) ? q.options : []).map((o) => h('li', {}, h('strong', {}, str(o.label)),
        o.description ? ` — ${str(o.description)}` : ''))))));
  }

  submitAnswers() {
    const answers = {};
    for (const read of this.answers) {
      const [question, answer] = read();
      if (!answer) {
        this.fail('Answer each question (or choose "Don\'t answer").');
        return;
      }
      answers[question] = answer;
    }
    this.send({ decision: 'allow', answers });
  }

  fold(folded = !this.element.classList.contains('folded')) {
    this.element.classList.toggle('folded', folded);
    this.foldButton.textContent = folded ? 'Show' : 'Hide';
    this.foldButton.setAttribute('aria-expanded', String(!folded));
  }

  fail(message) {
    replace(this.error, message);
    this.error.hidden = false;
  }

  async send(body) {
    if (this.busy || this.approval.status !== 'pending') return;
    const text = JSON.stringify(body);
    if (!this.attempt || this.attempt.text !== text) this.attempt = { text, key: randomKey() };
    this.error.hidden = true;
    this.setBusy(true);
    try {
      const decided = await postOnce(`/api/approvals/${this.approval.id}/decision`, body, this.attempt.key);
      this.attempt = null;
      approvals.put(decided);
      this.update(decided);
    } catch (err) {
      if (err.status === 409) {
        // Someone else was first, or the request ended: say so, and show
        // what happened.
        this.fail(`Too late: ${err.message}`);
        this.conflict = true;
        await approvals.refresh(this.approval.id);
      } else {
        this.fail(err.status === 0 ? 'Not sent: the gateway cannot be reached. Try again.' : `Not sent: ${err.message}`);
      }
    } finally {
      this.setBusy(false);
    }
  }

  setBusy(busy) {
    this.busy = busy;
    for (const el of this.decide.querySelectorAll('button, input')) el.disabled = busy;
    this.element.classList.toggle('busy', busy);
  }

  // The approval's latest word.
  update(approval) {
    this.approval = approval;
    const a = approval;
    const pending = a.status === 'pending';
    this.element.dataset.status = a.status;
    this.element.classList.toggle('decided', !pending);
    this.decide.hidden = !pending;
    if (!pending) {
      delete this.expires.dataset.expires;
      if (this.foldButton) { this.fold(false); this.foldButton.hidden = true; }
    }
    this.expires.hidden = !pending;
    this.state.textContent = pending ? '' : a.status;
    this.state.className = `appr-state badge st-${a.status}`;
    this.state.hidden = pending;
    this.outcome.hidden = pending;
    if (!pending) {
      // The card says how long an allow holds: once, or for the session.
      const words = a.status === 'allowed' && a.kind === 'tool' && a.scope !== 'session'
        ? outcomeWords(a).replace(/^allowed/, 'allowed once') : outcomeWords(a);
      const when = a.decidedAt ? ` at ${fmtTime(a.decidedAt)}` : '';
      const delivery = a.status === 'allowed' || a.status === 'denied'
        ? (a.delivered ? ' · the agent has it' : ' · on its way to the agent') : '';
      replace(this.outcome, `${words[0].toUpperCase()}${words.slice(1)}${a.decidedBy ? when : ''}${delivery}`);
      if (a.answers && typeof a.answers === 'object') {
        this.outcome.append(h('span', { class: 'appr-answers' }, Object.entries(a.answers).map(([q, v]) =>
          h('span', { class: 'appr-answer' }, h('span', { class: 'muted' }, `${q} `), h('strong', {}, String(v))))));
      }
    }
  }
}

// Pending approvals as cards, oldest first, following the store: of one
// run (the run page) or of every run (the inbox). A card decided here or
// elsewhere shows how for a moment, then goes; one that expired or was
// cancelled goes at once.
export class ApprovalList {
  constructor({ runId = null, showRun = false, foldable = false, empty = null } = {}) {
    this.runId = runId;
    this.showRun = showRun;
    this.foldable = foldable;
    this.cards = new Map(); // id -> { card, timer }
    this.list = h('div', { class: 'appr-list' });
    this.empty = empty;
    this.element = h('div', { class: 'approvals', 'aria-live': 'polite' }, empty, this.list);
    this.onCount = () => {};
    this.unlisten = approvals.listen((a) => this.changed(a));
    this.sync();
  }

  mine(a) {
    return !this.runId || a.runId === this.runId;
  }

  sync() {
    for (const a of approvals.list(this.runId)) this.show(a);
    for (const [id, entry] of this.cards) if (!approvals.pending.has(id) && !entry.timer) this.drop(id);
    this.counted();
  }

  changed(a) {
    if (a === null) { this.sync(); return; }
    if (!this.mine(a)) return;
    if (a.status === 'pending') this.show(a);
    else {
      const entry = this.cards.get(a.id);
      if (!entry) return;
      entry.card.update(a);
      if (a.status === 'allowed' || a.status === 'denied') {
        // Stays a moment, to show who decided and how (longer after a conflict).
        clearTimeout(entry.timer);
        entry.timer = setTimeout(() => this.drop(a.id), entry.card.conflict ? 3 * LINGER_MS : LINGER_MS);
      } else {
        this.drop(a.id);
      }
    }
    this.counted();
  }

  show(a) {
    const known = this.cards.get(a.id);
    if (known) { known.card.update(a); return; }
    const card = new ApprovalCard(a, { showRun: this.showRun, foldable: this.foldable });
    this.cards.set(a.id, { card, timer: null });
    // In order of creation: before the first card made after it.
    const after = [...this.list.children].find((el) => {
      const entry = this.cards.get(el.dataset.approvalId);
      return entry && entry.card.approval.createdAt > a.createdAt;
    });
    this.list.insertBefore(card.element, after || null);
  }

  drop(id) {
    const entry = this.cards.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.card.element.remove();
    this.cards.delete(id);
    this.counted();
  }

  counted() {
    const n = this.cards.size;
    this.element.classList.toggle('has-cards', n > 0);
    if (this.empty) this.empty.hidden = n > 0 || !approvals.loaded;
    this.onCount(n);
  }

  destroy() {
    this.unlisten();
    for (const { timer } of this.cards.values()) clearTimeout(timer);
    this.cards.clear();
  }
}
