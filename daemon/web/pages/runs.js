// The run list (live status, filter by state) and the create-run page.

import { get, post, can } from '../api.js';
import { h, replace, fmtTime, fmtDuration, statusBadge, field, showError, toast } from '../dom.js';
import { live } from '../socket.js';

// `waiting`: running, with its agent waiting for a person's decision.
const STATES = ['pending', 'running', 'waiting', 'done', 'failed', 'stopped'];

// What a run drives, for the list: its command, or its agent and model,
// and the host it runs on.
function what(run, hostNames) {
  if (run.agent) {
    return [h('span', { class: 'agent-name' }, run.agent === 'claude' ? 'Claude' : run.agent, run.model ? ` · ${run.model}` : ''),
      run.hostId ? h('span', { class: 'run-host muted' }, ` on ${hostNames.get(run.hostId) || 'a removed host'}`) : null];
  }
  return run.command || h('span', { class: 'muted' }, '(agent default)');
}

export async function runsPage(main) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const filter = h('select', { name: 'status', 'aria-label': 'Filter by state', onchange: load },
    h('option', { value: '' }, 'All states'),
    STATES.map((s) => h('option', { value: s }, s)));
  filter.value = sessionStorage.getItem('claw.runs-filter') || params.get('status') || '';
  const body = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No runs yet.');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => load(true) }, 'Older runs');
  replace(main, h('section', {},
    h('div', { class: 'page-head runs-head' }, h('h1', {}, 'Runs'),
      h('div', { class: 'tools' }, filter,
        can('operator') ? h('a', { class: 'button secondary', href: '#/runs/new' }, 'New run') : null),
      can('operator') ? h('a', { class: 'button new-session', href: '#/sessions/new' }, 'New session') : null),
    h('table', { class: 'runs' },
      h('thead', {}, h('tr', {}, ['State', 'Command', 'Started', 'Duration', 'Exit', 'Run'].map((t) => h('th', { scope: 'col' }, t)))),
      body),
    empty, more));

  const rows = new Map(); // run id -> { run, tr }
  let oldest = null;
  // Host names for the runs on hosts; read once, again for a host not known.
  const hostNames = new Map();
  async function loadHosts(runs) {
    try {
      for (const host of await get('/api/hosts')) hostNames.set(host.id, host.name);
    } catch { /* the list shows "a removed host" */ }
    for (const run of runs) if (run.hostId && !hostNames.has(run.hostId)) hostNames.set(run.hostId, null);
  }

  function cells(run) {
    return [
      h('td', { class: 'c-status', 'data-label': 'State' }, statusBadge(run.status)),
      h('td', { class: 'c-command', 'data-label': 'Command' },
        h('a', { href: `#/runs/${run.id}` }, what(run, hostNames))),
      h('td', { 'data-label': 'Started' }, fmtTime(run.startedAt || run.createdAt)),
      h('td', { class: 'c-duration', 'data-label': 'Duration' }, fmtDuration(run.startedAt, run.finishedAt)),
      h('td', { 'data-label': 'Exit' }, run.exitCode ?? '—'),
      h('td', { class: 'c-id', 'data-label': 'Run' }, h('a', { href: `#/runs/${run.id}` }, run.id.slice(0, 8))),
    ];
  }

  function put(run, atTop) {
    const known = rows.get(run.id);
    if (known) {
      known.run = run;
      replace(known.tr, cells(run));
      return;
    }
    const tr = h('tr', { dataset: { run: run.id, status: run.status } }, cells(run));
    tr.addEventListener('click', (e) => { if (!e.target.closest('a')) location.hash = `#/runs/${run.id}`; });
    rows.set(run.id, { run, tr });
    if (atTop) body.prepend(tr); else body.append(tr);
  }

  async function load(older) {
    sessionStorage.setItem('claw.runs-filter', filter.value);
    const q = new URLSearchParams({ limit: '50' });
    if (filter.value) q.set('status', filter.value);
    if (older === true && oldest) { q.set('before', oldest.createdAt); q.set('beforeId', oldest.id); }
    else { rows.clear(); body.replaceChildren(); }
    try {
      const runs = await get(`/api/runs?${q}`);
      if (runs.some((run) => run.hostId && !hostNames.has(run.hostId))) await loadHosts(runs);
      for (const run of runs) put(run, false);
      if (runs.length) oldest = runs[runs.length - 1];
      more.hidden = runs.length < 50;
      empty.hidden = rows.size > 0;
    } catch (err) { showError(err); }
  }

  // Status changes arrive for every run over the page's WebSocket.
  let refetch = null;
  const stopListening = live.listen(async (m) => {
    if (m.type !== 'run_status') return;
    const known = rows.get(m.runId);
    if (known && (!filter.value || filter.value === m.status)) {
      try {
        const run = await get(`/api/runs/${m.runId}`);
        if (run.hostId && !hostNames.has(run.hostId)) await loadHosts([run]);
        put(run, false);
      } catch { /* deleted meanwhile */ }
      known.tr.dataset.status = m.status;
    } else if (known) {
      known.tr.remove();
      rows.delete(m.runId);
    } else if (!filter.value || filter.value === m.status) {
      clearTimeout(refetch);
      refetch = setTimeout(() => load(), 300);
    }
  });
  // Running durations tick.
  const ticker = setInterval(() => {
    for (const { run, tr } of rows.values()) {
      if (run.status === 'running' || run.status === 'waiting') {
        const cell = tr.querySelector('.c-duration');
        if (cell) cell.textContent = fmtDuration(run.startedAt, null);
      }
    }
  }, 1000);
  await load();
  return () => { stopListening(); clearInterval(ticker); clearTimeout(refetch); };
}

function shellQuote(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

// The gateway's line for the runner, with this gateway's address: the
// runner could also have it from its configuration (CLAW_GATEWAY_URL).
function runnerLine(run, command) {
  const gateway = `--gateway ${shellQuote(location.origin)}`;
  const start = 'claw-runner start ';
  if (run.runnerCommand && run.runnerCommand.startsWith(start)) {
    return `${start}${gateway} ${run.runnerCommand.slice(start.length)}`;
  }
  let line = `${start}${gateway} --run-id ${run.id} --token ${run.capabilityToken}`;
  if (command) line += ` -- ${command}`;
  return line;
}

const MODES = [
  ['default', 'default: ask before edits and commands'],
  ['acceptEdits', 'acceptEdits: edit freely, ask before commands'],
  ['plan', 'plan: plan only, change nothing'],
];

export async function newRunPage(main) {
  const kinds = [['claude', 'Claude agent'], ['command', 'Command']];
  const choice = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'What the run drives' },
    kinds.map(([value, label], i) => h('label', {},
      h('input', { type: 'radio', name: 'kind', value, checked: i === 0, onchange: pick }), h('span', {}, label))));
  const prompt = h('textarea', { name: 'prompt', rows: '5', placeholder: 'Fix the failing tests in src/parser.rs', spellcheck: 'true' });
  const model = h('input', { name: 'model', placeholder: 'the agent\'s default', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  const mode = h('select', { name: 'permissionMode' }, MODES.map(([value, label]) => h('option', { value }, label)));
  const command = h('input', { name: 'command', placeholder: 'claude -p "fix the failing tests"', autocomplete: 'off', spellcheck: 'false' });
  const agentFields = h('div', { class: 'agent-fields' },
    field('Prompt', prompt, 'The first instruction; more can follow from the run\'s page.'),
    field('Model (optional)', model),
    field('Permission mode', mode, 'What the agent may do without asking; it cannot ask here, so the rest is refused.'));
  const commandFields = h('div', { class: 'command-fields', hidden: true },
    field('Agent command (optional)', command, 'What the runner starts; empty means its configured agent.'));
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const form = h('form', { class: 'card narrow', onsubmit: submit },
    h('h1', {}, 'New run'), choice, agentFields, commandFields,
    error, h('button', { type: 'submit' }, 'Create run'));
  replace(main, form);
  prompt.focus();

  function kind() {
    return form.querySelector('input[name=kind]:checked').value;
  }

  function pick() {
    const agent = kind() !== 'command';
    agentFields.hidden = !agent;
    commandFields.hidden = agent;
    (agent ? prompt : command).focus();
  }

  async function submit(event) {
    event.preventDefault();
    error.hidden = true;
    let body = {};
    if (kind() === 'command') {
      if (command.value.trim()) body = { command: command.value.trim() };
    } else {
      body = { agent: kind(), permissionMode: mode.value };
      if (prompt.value.trim()) body.prompt = prompt.value;
      if (model.value.trim()) body.model = model.value.trim();
    }
    try {
      const run = await post('/api/runs', body);
      showCreated(run, body.command);
    } catch (err) { showError(err, error); }
  }

  function showCreated(run, agent) {
    const line = runnerLine(run, agent);
    const pre = h('pre', { class: 'paste', id: 'runner-line' }, line);
    replace(main, h('section', { class: 'card' },
      h('h1', {}, 'Run created'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Run id'), h('dd', {}, h('code', { id: 'run-id' }, run.id)),
        h('dt', {}, 'Token'), h('dd', {}, h('code', { id: 'run-token', class: 'wrap' }, run.capabilityToken))),
      h('p', { class: 'warn' }, 'The token is shown only now. On the coding host (with the HMAC secret configured), run:'),
      pre,
      h('div', { class: 'actions' },
        h('button', {
          type: 'button', class: 'secondary', id: 'copy-line',
          onclick: async () => {
            try { await navigator.clipboard.writeText(line); toast('Copied'); } catch { toast('Select the line and copy it', 'error'); }
          },
        }, 'Copy'),
        h('a', { class: 'button', href: `#/runs/${run.id}` }, 'Watch the run'))));
  }
}
