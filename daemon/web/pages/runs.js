// The run list (live status, filter by state) and the create-run page.

import { get, post, can } from '../api.js';
import { h, replace, fmtTime, fmtDuration, statusBadge, field, showError, toast } from '../dom.js';
import { live } from '../socket.js';

const STATES = ['pending', 'running', 'done', 'failed', 'stopped'];

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
    h('div', { class: 'page-head' }, h('h1', {}, 'Runs'),
      h('div', { class: 'tools' }, filter,
        can('operator') ? h('a', { class: 'button', href: '#/runs/new' }, 'New run') : null)),
    h('table', { class: 'runs' },
      h('thead', {}, h('tr', {}, ['State', 'Command', 'Started', 'Duration', 'Exit', 'Run'].map((t) => h('th', { scope: 'col' }, t)))),
      body),
    empty, more));

  const rows = new Map(); // run id -> { run, tr }
  let oldest = null;

  function cells(run) {
    return [
      h('td', { class: 'c-status', 'data-label': 'State' }, statusBadge(run.status)),
      h('td', { class: 'c-command', 'data-label': 'Command' },
        h('a', { href: `#/runs/${run.id}` }, run.command || h('span', { class: 'muted' }, '(agent default)'))),
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
    if (older === true && oldest) q.set('before', oldest);
    else { rows.clear(); body.replaceChildren(); }
    try {
      const runs = await get(`/api/runs?${q}`);
      for (const run of runs) put(run, false);
      if (runs.length) oldest = runs[runs.length - 1].createdAt;
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
      try { put(await get(`/api/runs/${m.runId}`), false); } catch { /* deleted meanwhile */ }
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
      if (run.status === 'running') {
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

export async function newRunPage(main) {
  const command = h('input', { name: 'command', placeholder: 'claude -p "fix the failing tests"', autocomplete: 'off', spellcheck: 'false' });
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const form = h('form', { class: 'card narrow', onsubmit: submit },
    h('h1', {}, 'New run'),
    field('Agent command (optional)', command, 'What the runner starts; empty means its configured agent.'),
    error, h('button', { type: 'submit' }, 'Create run'));
  replace(main, form);
  command.focus();

  async function submit(event) {
    event.preventDefault();
    error.hidden = true;
    try {
      const body = command.value.trim() ? { command: command.value.trim() } : {};
      const run = await post('/api/runs', body);
      showCreated(run, body.command);
    } catch (err) { showError(err, error); }
  }

  function showCreated(run, agent) {
    const gateway = location.origin;
    let line = `claw-runner start --gateway ${shellQuote(gateway)} --run-id ${run.id} --token ${run.capabilityToken}`;
    if (agent) line += ` -- ${agent}`;
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
          type: 'button', class: 'secondary',
          onclick: async () => {
            try { await navigator.clipboard.writeText(line); toast('Copied'); } catch { toast('Select the line and copy it', 'error'); }
          },
        }, 'Copy'),
        h('a', { class: 'button', href: `#/runs/${run.id}` }, 'Watch the run'))));
  }
}
