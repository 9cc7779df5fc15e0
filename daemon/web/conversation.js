// An agent run as a conversation, built from its sequenced events as they
// arrive: each event appends a few nodes or fills in its tool call's card,
// so the thousandth event costs what the first did. Agent text is text; the
// only HTML is the gateway's rendering of a message (html.js).

import { h, replace, fmtTime, fmtBytes } from './dom.js';
import { safeFragment } from './html.js';
import { renderDiff, diffCounts } from './diff.js';
import { asking, outcomeWords } from './approvals.js';

// Lines of a tool's output shown before "Show all".
const SHOWN_LINES = 6;
const EDITS = new Set(['Edit', 'MultiEdit', 'Write', 'NotebookEdit']);
// Tools whose output is the file or the matches: hidden until asked for.
const LOOKUPS = new Set(['Read', 'Grep', 'Glob', 'LS']);
const STRUCTURED = new Set(['session', 'message', 'thinking', 'tool_call', 'tool_result', 'file_change', 'prompt', 'turn_end', 'agent_raw',
  'approval_request', 'approval_resolved']);
const ENDED = new Set(['allowed', 'denied', 'expired', 'cancelled']);

function parse(data) {
  try {
    const value = JSON.parse(data);
    return value && typeof value === 'object' ? value : null;
  } catch {
    return null;
  }
}

const str = (v) => (typeof v === 'string' ? v : '');
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function fmtCost(usd) {
  if (usd === null) return '—';
  return `$${usd < 1 ? usd.toFixed(4) : usd.toFixed(2)}`;
}

export function fmtMs(ms) {
  if (ms === null) return '—';
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${s % 60}s`;
}

const fmtCount = (n) => (num(n) ?? 0).toLocaleString('en-US');

// Output of a tool: its first lines, the rest behind "Show all" (built
// only when asked for: a long output costs nothing until then).
function output(text, shown, error) {
  const lines = text.replace(/\n$/, '').split('\n');
  const pre = h('pre', { class: `tool-out${error ? ' err' : ''}` });
  if (lines.length <= shown + 2) {
    replace(pre, text.replace(/\n$/, ''));
    return pre;
  }
  const more = lines.length - shown;
  let open = false;
  const toggle = h('button', { type: 'button', class: 'link more' });
  const render = () => {
    replace(pre, open ? lines.join('\n') : lines.slice(0, shown).join('\n'));
    pre.hidden = !open && shown === 0;
    toggle.textContent = open ? 'Show less'
      : shown ? `Show all ${lines.length} lines (${more} more)` : `Show output (${lines.length} lines)`;
    toggle.setAttribute('aria-expanded', String(open));
  };
  toggle.addEventListener('click', () => { open = !open; render(); });
  render();
  return h('div', { class: 'tool-out-wrap' }, pre, toggle);
}

// A tool call and, once they come, its result and its file change.
class ToolCard {
  constructor(call, conversation) {
    this.call = call;
    this.conversation = conversation;
    const tool = str(call.tool) || 'tool';
    this.tool = tool;
    const input = call.input && typeof call.input === 'object' ? call.input : {};
    const summary = str(call.summary);
    let about = summary;
    let detail = null;
    if (tool === 'Bash') {
      // The command itself goes below, whole; its description above.
      about = str(input.description);
      detail = h('pre', { class: 'tool-cmd' }, `$ ${str(input.command) || summary}`);
    } else if (tool === 'Grep' && str(input.path)) {
      about = `${summary} in ${str(input.path)}`;
    }
    this.state = h('span', { class: 'tool-state' }, 'running…');
    this.body = h('div', { class: 'tool-body' }, detail);
    const kind = tool === 'Bash' ? 'bash' : EDITS.has(tool) ? 'edit' : LOOKUPS.has(tool) ? 'lookup' : 'other';
    this.element = h('div', { class: `item tool tool-${kind} pending`, dataset: { callId: str(call.callId), tool } },
      h('div', { class: 'tool-head' },
        h('span', { class: 'tool-name' }, tool),
        h('code', { class: 'tool-about' }, about),
        this.state),
      this.body);
    this.kind = kind;
  }

  result(r) {
    const error = r.isError === true;
    this.element.classList.remove('pending');
    this.element.classList.toggle('is-error', error);
    this.state.textContent = error ? 'error' : 'done';
    this.state.className = `tool-state ${error ? 'bad' : 'ok'}`;
    const text = str(r.output);
    // An edit's result only says that it worked; its diff says what it did.
    if (this.kind === 'edit' && !error) {
      if (r.truncated) this.body.append(this.conversation.artifactNote(r));
      return;
    }
    if (text) this.body.append(output(text, this.kind === 'lookup' && !error ? 0 : SHOWN_LINES, error));
    else this.body.append(h('p', { class: 'tool-empty muted' }, '(no output)'));
    if (r.truncated) this.body.append(this.conversation.artifactNote(r));
  }

  change(c) {
    this.body.append(renderDiff(str(c.diff)));
  }
}

export class Conversation {
  constructor() {
    this.list = h('div', { class: 'conv', role: 'log', 'aria-label': 'Conversation', 'aria-live': 'off' });
    this.queued = h('div', { class: 'queued' });
    this.empty = h('p', { class: 'muted conv-empty' }, 'Nothing yet: the conversation appears here once the runner starts the agent.');
    this.element = h('div', { class: 'conversation' }, this.empty, this.list, this.queued);
    this.cards = new Map(); // callId -> ToolCard
    this.seenPrompts = new Set();
    this.waiting = new Map(); // promptId -> queued bubble
    this.artifactLinks = new Map(); // artifact name -> [element]
    this.artifacts = new Map(); // artifact name -> id
    this.asks = new Map(); // requestId -> { request, resolved, approval, outcome, element }
    this.turns = 0;
    this.turnOpen = false;
    this.onTurn = () => {};
    this.onChange = () => {};
    this.target = this.list;
  }

  // Many stored events at once: built off the page, attached once.
  addMany(events) {
    const fragment = document.createDocumentFragment();
    this.target = fragment;
    try {
      for (const event of events) this.add(event);
    } finally {
      this.target = this.list;
    }
    this.list.append(fragment);
  }

  put(el) {
    this.empty.hidden = true;
    this.target.append(el);
    return el;
  }

  note(kind, ...content) {
    return this.put(h('div', { class: `item note note-${kind}` }, ...content));
  }

  add(event) {
    const kind = event.eventType || event.type;
    const d = STRUCTURED.has(kind) ? parse(event.data) : null;
    if (STRUCTURED.has(kind) && !d) {
      this.note('error', `An unreadable ${kind} event (sequence ${event.sequence})`);
      return;
    }
    switch (kind) {
      case 'session': this.session(d); break;
      case 'prompt': this.prompt(d, event); break;
      case 'message': this.message(d); break;
      case 'thinking':
        this.put(h('details', { class: 'item thinking' }, h('summary', {}, 'Thinking'), h('div', { class: 'thinking-text' }, str(d.text))));
        break;
      case 'tool_call': {
        const card = new ToolCard(d, this);
        if (str(d.callId)) this.cards.set(d.callId, card);
        this.put(card.element);
        break;
      }
      case 'tool_result': {
        let card = this.cards.get(str(d.callId));
        if (!card) {
          // A result whose call was never seen still shows.
          card = new ToolCard({ callId: d.callId, tool: 'Result', summary: str(d.callId), input: {} }, this);
          this.put(card.element);
        }
        card.result(d);
        break;
      }
      case 'file_change': this.fileChange(d, event); break;
      case 'turn_end': this.turnEnd(d); break;
      case 'agent_raw':
        this.put(h('details', { class: 'item note note-raw' },
          h('summary', {}, `Agent output claw could not read (${str(d.reason) || 'unknown'})${d.truncated ? ', cut' : ''}`),
          h('pre', {}, str(d.line))));
        break;
      case 'approval_request': this.approvalRequest(d); break;
      case 'approval_resolved': this.approvalResolved(d); break;
      case 'info':
      case 'error':
        this.note(kind, String(event.data).replace(/\n$/, ''));
        break;
      case 'marker': this.marker(event.data); break;
      default: // stdout, stderr, assist: the Log tab has them.
    }
  }

  session(d) {
    const facts = [str(d.model), d.permissionMode ? `${d.permissionMode} mode` : '', str(d.cwd),
      Array.isArray(d.tools) && d.tools.length ? `${d.tools.length} tools` : ''].filter(Boolean);
    // The first session of a runner started again is the old one resumed;
    // a later one in the same runner, the session's settings changed.
    let what = 'Session started';
    if (this.sessionId !== undefined) what = this.restarted ? 'Session resumed' : 'Session changed';
    this.restarted = false;
    this.sessionId = str(d.sessionId);
    this.note('session', h('strong', {}, what), facts.length ? ` · ${facts.join(' · ')}` : '')
      .title = d.sessionId ? `Session ${d.sessionId}` : '';
  }

  prompt(d, event) {
    const id = str(d.promptId);
    if (id) {
      this.seenPrompts.add(id);
      const bubble = this.waiting.get(id);
      if (bubble) { bubble.remove(); this.waiting.delete(id); }
    }
    this.put(h('div', { class: 'item prompt', dataset: { promptId: id } },
      h('div', { class: 'prompt-by' }, d.by ? str(d.by) : 'prompt', h('small', {}, fmtTime(event.timestamp))),
      h('div', { class: 'prompt-text' }, str(d.text))));
    this.setTurn(true);
  }

  message(d) {
    const body = h('div', { class: 'item msg' });
    if (typeof d.html === 'string') body.append(safeFragment(d.html));
    else body.append(h('div', { class: 'msg-text' }, str(d.text)));
    this.put(body);
  }

  fileChange(d, event) {
    const card = this.cards.get(str(d.callId));
    if (card) card.change(d);
    else {
      this.put(h('div', { class: 'item tool tool-edit' },
        h('div', { class: 'tool-head' }, h('span', { class: 'tool-name' }, d.kind || 'change'), h('code', { class: 'tool-about' }, str(d.path))),
        h('div', { class: 'tool-body' }, renderDiff(str(d.diff)))));
    }
    this.onChange(d, event);
  }

  turnEnd(d) {
    this.turns += 1;
    const ok = d.ok === true;
    const cost = num(d.costUsd);
    const parts = [
      `${ok ? 'Turn' : 'Turn ended'} ${this.turns}${ok ? '' : `: ${str(d.outcome) || 'failed'}`}`,
      fmtMs(num(d.durationMs)),
      fmtCost(cost),
      `${fmtCount(d.inputTokens)} in / ${fmtCount(d.outputTokens)} out`,
    ];
    this.put(h('div', { class: `item turn${ok ? '' : ' failed'}` },
      h('div', { class: 'turn-this' }, parts.join(' · ')),
      h('div', { class: 'turn-total' },
        `Session: ${fmtCost(num(d.totalCostUsd))} · ${fmtCount(d.totalInputTokens)} in / ${fmtCount(d.totalOutputTokens)} out`),
      d.error && !ok ? h('div', { class: 'turn-error' }, str(d.error)) : null));
    this.setTurn(false);
  }

  // The agent asked a person: a note that says what, and later how it
  // ended and who decided. The card to decide it is the run page's.
  ask(requestId) {
    let entry = this.asks.get(requestId);
    if (!entry) {
      entry = { request: null, resolved: null, approval: null, element: null, outcome: null, card: null };
      this.asks.set(requestId, entry);
    }
    return entry;
  }

  approvalRequest(d) {
    const entry = this.ask(str(d.requestId));
    if (entry.element) return;
    entry.request = d;
    const [lead, detail] = asking(d);
    entry.outcome = h('span', { class: 'appr-note-outcome' });
    entry.element = this.note('approval', h('span', { class: 'appr-note-ask' }, lead, detail ? [' ', h('code', {}, detail)] : null),
      ' — ', entry.outcome);
    entry.element.dataset.requestId = str(d.requestId);
    entry.card = this.cards.get(str(d.callId)) || null;
    this.renderAsk(entry);
  }

  approvalResolved(d) {
    const entry = this.ask(str(d.requestId));
    entry.resolved = d;
    this.renderAsk(entry);
  }

  // An approval from the API: who decided, and how.
  setApproval(a) {
    if (!a || !a.requestId) return;
    const entry = this.ask(a.requestId);
    entry.approval = a;
    this.renderAsk(entry);
  }

  renderAsk(entry) {
    if (!entry.element) return;
    const a = { ...(entry.request || {}), ...(entry.approval || {}) };
    // What the runner did is what happened.
    const resolved = entry.resolved && ENDED.has(entry.resolved.status) ? entry.resolved : null;
    const status = resolved ? resolved.status : (entry.approval && entry.approval.status) || 'pending';
    if (resolved && resolved.message && !a.message) a.message = resolved.message;
    entry.element.dataset.status = status;
    entry.outcome.className = `appr-note-outcome o-${status}`;
    entry.outcome.textContent = outcomeWords(a, status);
    // Its tool call waits too, until it is decided.
    const card = entry.card;
    if (card && card.element.classList.contains('pending')) {
      card.state.textContent = status === 'pending' ? 'waiting for a decision' : 'running…';
      card.state.classList.toggle('asking', status === 'pending');
    }
  }

  marker(data) {
    const m = parse(data) || {};
    if (m.event === 'started') {
      // A second start: the session was resumed (on its host).
      this.restarted = this.sessionId !== undefined;
      this.note('marker', this.restarted ? 'The runner started the agent again' : 'The runner started the agent');
    }
    else if (m.event === 'finished') {
      this.note('marker', m.signal ? `The agent was ended by ${m.signal}` : `The agent exited with code ${m.exitCode}`);
      this.setTurn(false);
    }
  }

  setTurn(open) {
    if (this.turnOpen === open) return;
    this.turnOpen = open;
    this.onTurn(open);
  }

  // A truncated result's note, linked to its artifact once it is stored.
  artifactNote(r) {
    const name = str(r.artifact);
    const size = num(r.fullBytes);
    const text = `Output cut${size !== null ? ` (whole: ${fmtBytes(size)})` : ''}. `;
    if (!name) return h('p', { class: 'tool-cut' }, text);
    const slot = h('span', { class: 'artifact-slot' });
    const links = this.artifactLinks.get(name) || [];
    links.push(slot);
    this.artifactLinks.set(name, links);
    this.fillSlot(slot, name);
    return h('p', { class: 'tool-cut' }, text, slot);
  }

  fillSlot(slot, name) {
    const id = this.artifacts.get(name);
    replace(slot, id
      ? h('a', { href: `/api/artifacts/${id}`, download: name, class: 'artifact-link' }, `Whole output: ${name}`)
      : h('span', { class: 'muted' }, `Whole output: ${name} (not uploaded yet)`));
  }

  // The run's artifacts (GET /api/runs/{id}/artifacts), for the links.
  setArtifacts(list) {
    this.artifacts = new Map(list.map((a) => [a.filename, a.id]));
    for (const [name, slots] of this.artifactLinks) for (const slot of slots) this.fillSlot(slot, name);
  }

  // A prompt queued at the gateway that the agent has not been given yet.
  queue(promptId, text, by) {
    if (!promptId || this.seenPrompts.has(promptId) || this.waiting.has(promptId)) return;
    const bubble = h('div', { class: 'item prompt waiting', dataset: { promptId } },
      h('div', { class: 'prompt-by' }, by || 'prompt', h('small', {}, 'queued')),
      h('div', { class: 'prompt-text' }, text));
    this.waiting.set(promptId, bubble);
    this.empty.hidden = true;
    this.queued.append(bubble);
  }

  // A queued prompt the runner could not give the agent.
  failed(promptId, error) {
    const bubble = this.waiting.get(promptId);
    if (!bubble) return;
    bubble.classList.add('failed');
    replace(bubble.querySelector('small'), `not delivered: ${error || 'failed'}`);
  }

  // The run ended: what still waits will not be delivered.
  endWaiting(reason) {
    for (const id of this.waiting.keys()) this.failed(id, reason);
  }
}

// Every file the run changed, each with its diffs, newest last.
export class Changes {
  constructor() {
    this.files = new Map(); // path -> { element, body, counts, n }
    this.count = 0;
    this.list = h('div', { class: 'changes' });
    this.empty = h('p', { class: 'muted' }, 'No file changed yet.');
    this.element = h('div', {}, this.empty, this.list);
  }

  add(change, event) {
    const path = str(change.path) || '(unnamed)';
    let file = this.files.get(path);
    if (!file) {
      const counts = h('span', { class: 'counts' });
      const n = h('span', { class: 'muted' });
      const body = h('div', { class: 'change-body' });
      const element = h('details', { class: 'file', open: true, dataset: { path } },
        h('summary', {}, h('code', { class: 'file-path' }, path), n, counts), body);
      file = { element, body, counts, n, added: 0, removed: 0, changes: 0 };
      this.files.set(path, file);
      this.list.append(element);
    }
    const diff = str(change.diff);
    const { added, removed } = diffCounts(diff);
    file.added += added;
    file.removed += removed;
    file.changes += 1;
    replace(file.counts, h('span', { class: 'd-add' }, `+${file.added}`), ' ', h('span', { class: 'd-del' }, `−${file.removed}`));
    file.n.textContent = file.changes > 1 ? `${file.changes} changes` : '';
    file.body.append(h('div', { class: 'change' },
      h('div', { class: 'change-head muted' }, `${str(change.kind) || 'change'} · ${fmtTime(event.timestamp)}`),
      renderDiff(diff)));
    this.count += 1;
    this.empty.hidden = true;
  }
}
