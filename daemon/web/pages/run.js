// One run: its live log, the commands sent to its runner, stop, and its
// artifacts. A run that drives an agent is a conversation first, with tabs
// for its changes and its raw log. Everything live arrives over the page's
// WebSocket; a reconnect resumes from the last sequence the log holds, and
// the conversation gets each event once, after the log has taken it.

import { get, post, del, can, session } from '../api.js';
import { h, replace, fmtTime, fmtDuration, fmtBytes, statusBadge, confirmDialog, showError, toast } from '../dom.js';
import { live } from '../socket.js';
import { LogView } from '../logview.js';
import { diffClass } from '../diff.js';
import { Conversation, Changes } from '../conversation.js';
import { composer } from '../composer.js';
import { approvals, ApprovalList, ApprovalCard } from '../approvals.js';

// `waiting` is running, with its agent waiting for a person's decision.
const ACTIVE = ['pending', 'running', 'waiting'];
const RUNNING = ['running', 'waiting'];
const INLINE_LIMIT = 2 * 1024 * 1024;

function isText(artifact) {
  return artifact.contentType.startsWith('text/')
    || /\.(diff|patch|log|txt|md|json|ya?ml|toml)$/i.test(artifact.filename);
}

function renderText(text, filename) {
  const pre = h('pre', { class: 'artifact-text' });
  const diff = /\.(diff|patch)$/i.test(filename);
  for (const line of text.split('\n')) pre.append(h('span', { class: diff ? diffClass(line) : '' }, line), '\n');
  return pre;
}


const TABS = [['conversation', 'Conversation'], ['changes', 'Changes'], ['log', 'Log']];

// The page is near its end: new conversation keeps it there.
const nearBottom = () => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;

export async function runPage(main, { params: [runId, approvalId] }) {
  const liveState = h('span', { class: 'live-state' });
  const title = h('h1', {}, 'Run');
  replace(main, h('section', { class: 'run' }, h('div', { class: 'page-head' }, title, liveState),
    h('p', { class: 'muted loading' }, 'Loading…')));
  const log = new LogView();

  let run;
  try {
    run = await get(`/api/runs/${runId}`);
  } catch (err) {
    replace(main, h('section', { class: 'card' }, h('h1', {}, 'Run not found'), h('p', {}, err.message),
      h('a', { href: '#/runs' }, 'All runs')));
    return () => log.destroy();
  }

  const head = h('div', { class: 'run-head' });
  // The approval a notification's link names, when it is not in the dock.
  const linked = h('div', { class: 'linked-approval', hidden: true });
  let stopLinked = () => {};
  let holdScroll = false;
  const actions = h('div', { class: 'actions' });
  const commandsList = h('ul', { class: 'commands', 'aria-label': 'Commands' });
  const commandBox = h('div');
  const artifactsBody = h('div', { class: 'artifacts' });
  const viewer = h('div', { class: 'viewer' });
  const rest = h('div', { class: 'split' },
    h('section', {}, h('h2', {}, 'Commands'), commandBox, commandsList),
    h('section', {}, h('h2', {}, 'Artifacts'), artifactsBody, viewer));

  // An agent's run: the conversation, its changes and the raw log as tabs.
  const agent = !!run.agent;
  let conversation = null;
  let changes = null;
  let prompts = null;
  let pinned = null;
  let stopApprovals = () => {};
  let showing = 'conversation';
  const tabs = new Map();
  const facts = h('dl', { class: 'facts' });
  if (agent) {
    conversation = new Conversation();
    changes = new Changes();
    prompts = can('operator') ? composer(runId, {
      onSent: (promptId, text, resumed) => {
        // A finished session resumed on its host is pending again: the
        // gateway answered once it was.
        if (resumed && !ACTIVE.includes(run.status)) {
          run.status = 'pending';
          run.exitCode = null;
          run.finishedAt = null;
          run.stopRequestedAt = null;
          renderHead();
        }
        conversation.queue(promptId, text, session.user && session.user.username);
        if (nearBottom()) toBottom();
      },
    }) : null;
    conversation.onTurn = (open) => { if (prompts) prompts.setTurn(open); };
    // What the agent waits for, pinned with the composer at the bottom of
    // the screen, where a thumb reaches it.
    pinned = new ApprovalList({ runId, foldable: true });
    stopApprovals = approvals.listen((a) => { if (a && a.runId === runId) conversation.setApproval(a); });
    conversation.onChange = (change, event) => {
      changes.add(change, event);
      tabs.get('changes').button.textContent = `Changes (${changes.count})`;
    };
    const bar = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Run views' });
    const panels = {
      conversation: [conversation.element, h('div', { class: 'dock' }, pinned.element, prompts ? prompts.element : null)],
      changes: [changes.element],
      log: [log.element, rest],
    };
    for (const [id, label] of TABS) {
      const button = h('button', {
        type: 'button', role: 'tab', class: 'tab', id: `tab-${id}`, 'aria-controls': `panel-${id}`, onclick: () => show(id),
      }, label);
      const panel = h('div', { role: 'tabpanel', class: `panel panel-${id}`, id: `panel-${id}`, 'aria-labelledby': `tab-${id}` }, panels[id]);
      tabs.set(id, { button, panel });
      bar.append(button);
    }
    // Arrow keys move between tabs, as in any tab list.
    bar.addEventListener('keydown', (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const ids = TABS.map(([id]) => id);
      const next = ids[(ids.indexOf(showing) + step + ids.length) % ids.length];
      show(next);
      tabs.get(next).button.focus();
    });
    title.textContent = run.agent === 'claude' ? 'Claude' : run.agent;
    replace(main, h('section', { class: 'run agent-run' },
      h('div', { class: 'page-head' }, title, liveState),
      head, linked, h('details', { class: 'run-details' }, h('summary', {}, 'Details'), facts),
      bar, [...tabs.values()].map((t) => t.panel)));
    show('conversation');
  } else {
    replace(main, h('section', { class: 'run' },
      h('div', { class: 'page-head' }, title, liveState),
      head, linked, actions,
      h('h2', {}, 'Output'), log.element, rest));
  }

  function show(id) {
    showing = id;
    for (const [name, { button, panel }] of tabs) {
      button.setAttribute('aria-selected', String(name === id));
      button.tabIndex = name === id ? 0 : -1;
      panel.hidden = name !== id;
    }
  }

  function toBottom() {
    // Twice: the first frame lays out what was just added.
    requestAnimationFrame(() => {
      window.scrollTo(0, document.documentElement.scrollHeight);
      requestAnimationFrame(() => window.scrollTo(0, document.documentElement.scrollHeight));
    });
  }

  // The coding host a session runs on: { name, state }, state 'gone'
  // once it was removed; read again every 10 s while the page is open.
  let host = null;
  async function loadHost() {
    if (!run.hostId) return;
    let hosts;
    try { hosts = await get('/api/hosts'); } catch { return; }
    const found = hosts.find((x) => x.id === run.hostId);
    const next = found ? { name: found.name, state: found.state } : { name: null, state: 'gone' };
    if (host && host.name === next.name && host.state === next.state) return;
    host = next;
    if (rendered) renderHead();
  }
  let rendered = false;

  function hostFacts() {
    if (!run.hostId) return null;
    const name = host && host.name;
    return [
      h('dt', {}, 'Host'), h('dd', { id: 'run-host' }, name ? h('a', { href: '#/hosts' }, name) : 'a removed host',
        host && host.state !== 'online' ? h('span', { class: 'muted' }, ` (${host.state === 'gone' ? 'removed' : host.state})`) : null),
      h('dt', {}, 'Workspace'), h('dd', {}, h('code', { id: 'run-workspace' }, run.workspace || '—')),
    ];
  }

  function renderHead() {
    rendered = true;
    if (agent) {
      const settings = [run.model || 'default model', `${run.permissionMode || 'default'} mode`];
      if (run.hostId) settings.push(`on ${(host && host.name) || 'a removed host'}`);
      replace(head, h('div', { class: 'run-line' },
        h('span', { id: 'run-status' }, statusBadge(run.status, run.exitCode)),
        h('span', { class: 'agent-settings' }, settings.join(' · ')),
        h('span', { class: 'c-duration muted' }, fmtDuration(run.startedAt, run.finishedAt)),
        actions));
      replace(facts,
        hostFacts(),
        h('dt', {}, 'Agent'), h('dd', {}, run.agent),
        h('dt', {}, 'Model'), h('dd', {}, run.model || '(the agent\'s default)'),
        h('dt', {}, 'Permission mode'), h('dd', {}, run.permissionMode || 'default'),
        run.allowedTools && run.allowedTools.length
          ? [h('dt', {}, 'Allowed tools'), h('dd', {}, run.allowedTools.map((t) => h('code', { class: 'tool-rule' }, t)))] : null,
        h('dt', {}, 'Session'), h('dd', {}, run.agentSessionId ? h('code', {}, run.agentSessionId) : '—'),
        h('dt', {}, 'Run id'), h('dd', {}, h('code', {}, run.id)),
        h('dt', {}, 'Created'), h('dd', {}, `${fmtTime(run.createdAt)}${run.createdBy ? ` by ${run.createdBy}` : ''}`),
        h('dt', {}, 'Started'), h('dd', {}, fmtTime(run.startedAt)),
        h('dt', {}, 'Exit code'), h('dd', { id: 'run-exit' }, run.exitCode ?? '—'));
      if (prompts) {
        prompts.setStatus(run.status);
        prompts.setResume(run.hostId && run.agentSessionId && host ? host : null);
      }
      if (!ACTIVE.includes(run.status)) conversation.endWaiting('the run ended');
    } else {
      replace(head, h('dl', { class: 'facts' },
        h('dt', {}, 'State'), h('dd', { id: 'run-status' }, statusBadge(run.status, run.exitCode)),
        h('dt', {}, 'Command'), h('dd', {}, h('code', {}, run.command || '(agent default)')),
        h('dt', {}, 'Run id'), h('dd', {}, h('code', {}, run.id)),
        h('dt', {}, 'Created'), h('dd', {}, `${fmtTime(run.createdAt)}${run.createdBy ? ` by ${run.createdBy}` : ''}`),
        h('dt', {}, 'Started'), h('dd', {}, fmtTime(run.startedAt)),
        h('dt', {}, 'Duration'), h('dd', { class: 'c-duration' }, fmtDuration(run.startedAt, run.finishedAt)),
        h('dt', {}, 'Exit code'), h('dd', { id: 'run-exit' }, run.exitCode ?? '—')));
    }
    const buttons = [];
    if (can('operator') && ACTIVE.includes(run.status)) {
      buttons.push(h('button', {
        type: 'button', class: 'danger', id: 'stop', disabled: !!run.stopRequestedAt, onclick: stop,
      }, run.stopRequestedAt ? 'Stop requested' : 'Stop run'));
    }
    if (can('operator') && !ACTIVE.includes(run.status)) {
      buttons.push(h('button', { type: 'button', class: 'danger secondary', id: 'delete', onclick: remove }, 'Delete run'));
    }
    replace(actions, buttons);
    renderCommandBox();
  }

  async function stop() {
    if (!await confirmDialog('Stop this run? The agent gets SIGINT, then SIGKILL after the grace period.', 'Stop run')) return;
    try {
      await post(`/api/runs/${runId}/stop`);
      run.stopRequestedAt = new Date().toISOString();
      toast('Stop requested');
      renderHead();
    } catch (err) { showError(err); }
  }

  async function remove() {
    if (!await confirmDialog('Delete this run with its output, commands and artifacts?', 'Delete')) return;
    try {
      await del(`/api/runs/${runId}`);
      toast('Run deleted');
      location.hash = '#/runs';
    } catch (err) { showError(err); }
  }

  // Commands: allowlist suggestions, client-side check, live results.
  const allowed = (session.status && session.status.allowedCommands) || [];
  // The allowlist's grammar, as a hint (the API checks again): an entry
  // matches exactly its own words; `<path>` admits one relative path without
  // `..` or a leading `-`, a last `<path>...` any number of them.
  function isPath(word) {
    return word !== '' && !word.startsWith('-') && !word.startsWith('/')
      && !word.split('/').includes('..') && !/[\u0000-\u001f\u007f-\u009f]/.test(word);
  }
  function isAllowed(text) {
    const words = text.trim().split(/\s+/);
    return allowed.some((entry) => {
      const want = entry.split(/\s+/);
      const rest = want[want.length - 1] === '<path>...';
      if (rest) want.pop();
      if (words.length < want.length || (!rest && words.length !== want.length)) return false;
      return words.every((w, i) => (i >= want.length || want[i] === '<path>' ? isPath(w) : w === want[i]));
    });
  }
  // Suggestions without a trailing `<path>...`: it may stand for nothing.
  const suggestions = [...new Set(allowed.map((entry) => entry.replace(/\s+<path>\.\.\.$/, '')))];
  function renderCommandBox() {
    if (!can('operator') || !RUNNING.includes(run.status)) {
      replace(commandBox, RUNNING.includes(run.status) ? null
        : h('p', { class: 'muted' }, 'Commands can be sent while the run is running.'));
      return;
    }
    if (commandBox.querySelector('form')) return;
    const input = h('input', {
      name: 'command', list: 'allowed-commands', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none',
      placeholder: 'git status', 'aria-label': 'Command',
    });
    const hint = h('small', { class: 'hint' });
    input.addEventListener('input', () => {
      hint.textContent = input.value.trim() && !isAllowed(input.value) ? 'Not on the allowlist' : '';
    });
    const form = h('form', {
      class: 'send',
      onsubmit: async (event) => {
        event.preventDefault();
        const text = input.value.trim();
        if (!text) return;
        try {
          await post(`/api/runs/${runId}/command`, { command: text });
          input.value = '';
          hint.textContent = '';
          await loadCommands();
        } catch (err) {
          showError(err);
        }
      },
    },
    input,
    h('datalist', { id: 'allowed-commands' }, suggestions.map((c) => h('option', { value: c }))),
    h('button', { type: 'submit' }, 'Send'));
    replace(commandBox, form, hint);
  }

  async function loadCommands() {
    try {
      const commands = await get(`/api/runs/${runId}/commands`);
      // Prompts and interrupts are the conversation's, not commands.
      const shell = commands.filter((c) => (c.kind || 'command') === 'command' && c.command !== '__STOP__');
      replace(commandsList, shell.map((c) =>
        h('li', { class: `cmd cmd-${c.status}`, dataset: { id: c.id, status: c.status } },
          h('div', { class: 'cmd-head' }, h('code', {}, c.command), h('span', { class: `badge st-${c.status}` }, c.status),
            h('small', { class: 'muted' }, `${c.createdBy || ''} ${fmtTime(c.createdAt)}`)),
          c.result ? h('pre', { class: 'cmd-result' }, c.result) : null,
          c.error ? h('pre', { class: 'cmd-error' }, c.error) : null)));
      if (conversation) {
        for (const c of commands.filter((x) => x.kind === 'prompt')) {
          if (c.status === 'pending' || c.status === 'delivered') conversation.queue(c.id, c.command, c.createdBy);
          else if (c.status === 'failed') conversation.failed(c.id, c.error);
        }
        if (!ACTIVE.includes(run.status)) conversation.endWaiting('the run ended');
      }
    } catch (err) { showError(err); }
  }

  async function loadArtifacts() {
    try {
      const artifacts = await get(`/api/runs/${runId}/artifacts`);
      if (conversation) conversation.setArtifacts(artifacts);
      if (!artifacts.length) {
        replace(artifactsBody, h('p', { class: 'muted' }, 'None yet.'));
        return;
      }
      replace(artifactsBody, h('ul', { class: 'artifact-list' }, artifacts.map((a) =>
        h('li', { dataset: { id: a.id, name: a.filename } },
          h('span', { class: 'name' }, a.filename), h('small', { class: 'muted' }, fmtBytes(a.size)),
          h('span', { class: 'actions' },
            isText(a) && a.size <= INLINE_LIMIT
              ? h('button', { type: 'button', class: 'secondary small', onclick: () => view(a) }, 'View') : null,
            h('a', { class: 'button small', href: `/api/artifacts/${a.id}`, download: a.filename }, 'Download'),
            can('operator') ? h('button', {
              type: 'button', class: 'secondary small danger', 'aria-label': `Delete ${a.filename}`,
              onclick: async () => {
                if (!await confirmDialog(`Delete ${a.filename}?`, 'Delete')) return;
                try { await del(`/api/artifacts/${a.id}`); await loadArtifacts(); } catch (err) { showError(err); }
              },
            }, 'Delete') : null)))));
    } catch (err) { showError(err); }
  }

  async function view(artifact) {
    try {
      const response = await fetch(`/api/artifacts/${artifact.id}`, { credentials: 'same-origin' });
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      const text = await response.text();
      replace(viewer, h('div', { class: 'viewer-head' }, h('strong', {}, artifact.filename),
        h('button', { type: 'button', class: 'secondary small', onclick: () => replace(viewer) }, 'Close')),
      renderText(text, artifact.filename));
    } catch (err) { showError(err); }
  }

  // Every approval of the run, for the conversation's notes on who decided.
  async function loadApprovals() {
    if (!conversation) return;
    try {
      const all = await get(`/api/approvals?status=all&runId=${encodeURIComponent(runId)}`);
      for (const a of all) {
        const known = approvals.known.get(a.id);
        conversation.setApproval(known && known.status !== 'pending' ? known : a);
      }
    } catch (err) { showError(err); }
  }

  // A notification's link (#/runs/RUN/approval/ID): that approval's card
  // in view, focused and marked. A pending one is the dock's card; one
  // already decided is shown, as decided, above the conversation, which
  // then does not scroll away from it until the reader moves.
  async function bringApproval(id) {
    let a;
    try {
      a = await get(`/api/approvals/${encodeURIComponent(id)}`);
    } catch (err) {
      showError(err.status === 404 ? new Error('That approval is gone: it may have been deleted with its run.') : err);
      return;
    }
    if (a.runId !== runId) {
      location.hash = `#/runs/${a.runId}/approval/${a.id}`;
      return;
    }
    approvals.put(a);
    const known = approvals.known.get(a.id) || a;
    let card = null;
    if (pinned && known.status === 'pending') {
      pinned.show(known);
      const entry = pinned.cards.get(a.id);
      if (entry) {
        card = entry.card;
        card.fold(false);
      }
    }
    if (!card) {
      card = new ApprovalCard(known);
      card.element.append(h('div', { class: 'actions linked-close' },
        h('button', { type: 'button', class: 'secondary small', onclick: () => { linked.hidden = true; replace(linked); } }, 'Close')));
      stopLinked();
      stopLinked = approvals.listen((x) => { if (x && x.id === a.id) card.update(x); });
      replace(linked, card.element);
      linked.hidden = false;
      holdScroll = true;
      const release = () => {
        holdScroll = false;
        for (const type of ['wheel', 'touchstart', 'keydown']) window.removeEventListener(type, release);
      };
      for (const type of ['wheel', 'touchstart', 'keydown']) window.addEventListener(type, release, { passive: true });
    }
    if (agent) show('conversation');
    const el = card.element;
    el.classList.add('appr-target');
    el.tabIndex = -1;
    requestAnimationFrame(() => {
      el.scrollIntoView({ block: 'nearest' });
      el.focus({ preventScroll: true });
    });
  }

  await loadHost();
  renderHead();
  await Promise.all([loadCommands(), loadArtifacts(), loadApprovals()]);
  if (approvalId) await bringApproval(approvalId);

  // Every event goes to the log, which drops a sequence it has; the
  // conversation gets the rest.
  function take(events) {
    const fresh = events.filter((event) => log.add(event));
    if (!conversation || !fresh.length) return;
    const stick = showing === 'conversation' && nearBottom();
    if (fresh.length === 1) conversation.add(fresh[0]);
    else conversation.addMany(fresh);
    if (stick && !holdScroll) toBottom();
  }

  const unsubscribe = live.subscribe(runId, () => log.lastSequence, async (m) => {
    switch (m.type) {
      case 'event':
        take([m]);
        break;
      case 'events':
        take(m.events);
        break;
      case 'run_status':
        run.status = m.status;
        if (m.exitCode !== undefined) run.exitCode = m.exitCode;
        try { run = await get(`/api/runs/${runId}`); } catch { /* keep what we know */ }
        renderHead();
        break;
      case 'command_queued':
      case 'command_completed':
        loadCommands();
        break;
      case 'stop_requested':
        run.stopRequestedAt = run.stopRequestedAt || new Date().toISOString();
        renderHead();
        break;
      case 'artifact_added':
        loadArtifacts();
        break;
      default:
    }
  });
  const stopState = live.onState((state) => {
    liveState.textContent = state === 'open' ? 'live' : state;
    liveState.className = `live-state s-${state}`;
  });
  const ticker = setInterval(() => {
    if (RUNNING.includes(run.status)) {
      const cell = head.querySelector('.c-duration');
      if (cell) cell.textContent = fmtDuration(run.startedAt, null);
    }
  }, 1000);
  const hostTimer = run.hostId ? setInterval(() => { if (!document.hidden) loadHost(); }, 10000) : null;
  const hostAgain = () => { if (!document.hidden) loadHost(); };
  if (run.hostId) document.addEventListener('visibilitychange', hostAgain);
  return () => {
    clearInterval(hostTimer); document.removeEventListener('visibilitychange', hostAgain);
    unsubscribe(); stopState(); clearInterval(ticker); log.destroy(); stopApprovals(); stopLinked();
    if (pinned) pinned.destroy();
  };
}
