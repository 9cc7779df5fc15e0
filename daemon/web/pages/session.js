// New session: an agent started on a coding host, in one of its
// workspaces (or a folder inside one), with its first prompt. The gateway
// asks the host and answers once the host has started it (a few seconds);
// then the run's page takes over. What the gateway refuses is shown under
// the form as it says it.

import { get, postOnce, randomKey } from '../api.js';
import { h, replace, field, showError } from '../dom.js';

export const MODES = [
  ['default', 'Ask first', 'Asks you before it edits a file or runs a command.'],
  ['acceptEdits', 'Edit freely', 'Edits files without asking; asks before commands.'],
  ['plan', 'Plan only', 'Reads and proposes a plan; changes nothing.'],
];

const LAST = 'claw.session-last';

function remembered() {
  try { return JSON.parse(localStorage.getItem(LAST)) || {}; } catch { return {}; }
}

// The workspace and a folder inside it, as one path: the folder's own
// slashes at either end do not count. `..` goes as typed: the gateway (and
// the host after it) refuses a path that leaves the workspace.
export function joinWorkspace(base, sub) {
  const rest = sub.trim().replace(/^\/+|\/+$/g, '');
  if (!rest) return base;
  return `${base.replace(/\/+$/, '')}/${rest}`;
}

function hostLabel(host) {
  if (host.state !== 'online') return `${host.name} — offline`;
  const info = host.info;
  if (!info) return `${host.name} — connecting`;
  const running = info.sessions.length;
  return running >= info.sessionLimit
    ? `${host.name} — full (${running} of ${info.sessionLimit} running)`
    : `${host.name} — ${running} of ${info.sessionLimit} running`;
}

export async function newSessionPage(main) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const title = h('h1', {}, 'New session');
  replace(main, h('section', { class: 'card narrow session-new' }, title, h('p', { class: 'muted' }, 'Loading hosts…')));

  let hosts;
  try {
    hosts = (await get('/api/hosts')).filter((x) => x.state === 'online' || x.state === 'offline');
  } catch (err) {
    replace(main, h('section', { class: 'card narrow session-new' }, title, h('p', { class: 'error' }, err.message)));
    return undefined;
  }
  const usable = (x) => x.state === 'online' && x.info && x.info.workspaces.length && x.info.agents.length;
  if (!hosts.some(usable)) {
    replace(main, h('section', { class: 'card narrow session-new' }, title,
      h('p', { class: 'session-none' }, hosts.length
        ? 'No host is online with a workspace and an agent: start claw-runner serve on one, with workspaces in its runner.toml.'
        : 'No coding host yet: an administrator adds one on the Hosts page, then it runs claw-runner serve.'),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/hosts' }, 'Hosts'),
        h('a', { class: 'button secondary', href: '#/runs/new' }, 'New run by hand'))));
    return undefined;
  }

  const last = remembered();
  const hostSelect = h('select', { name: 'host', id: 'session-host', required: true },
    hosts.map((x) => h('option', { value: x.id, disabled: !usable(x) }, hostLabel(x))));
  const workspace = h('select', { name: 'workspace', id: 'session-workspace', required: true });
  const subfolder = h('input', {
    name: 'subfolder', id: 'session-subfolder', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
    placeholder: 'e.g. services/api',
  });
  const where = h('small', { class: 'session-where' });
  const agent = h('select', { name: 'agent', id: 'session-agent', required: true });
  const modes = h('fieldset', { class: 'session-modes' },
    h('legend', {}, 'Permission mode'),
    MODES.map(([value, label, about]) => h('label', { class: 'mode-opt' },
      h('input', { type: 'radio', name: 'permissionMode', value, checked: value === (last.mode || 'default') }),
      h('span', {}, h('span', { class: 'mode-title' }, h('strong', {}, label), h('code', { class: 'mode-name' }, value)),
        h('small', {}, about)))));
  const prompt = h('textarea', {
    name: 'prompt', id: 'session-prompt', rows: '4', required: true, spellcheck: 'true',
    placeholder: 'Fix the failing tests in src/parser.rs',
  });
  const model = h('input', {
    name: 'model', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', placeholder: 'the agent\'s default',
  });
  const error = h('p', { class: 'error session-error', hidden: true, role: 'alert' });
  const progress = h('p', { class: 'session-progress', role: 'status', hidden: true });
  const submitButton = h('button', { type: 'submit', class: 'wide', id: 'session-start' }, 'Start session');
  const fields = h('fieldset', { class: 'session-fields' },
    field('Host', hostSelect),
    field('Workspace', workspace),
    field('Subfolder (optional)', subfolder, where),
    field('Agent', agent),
    modes,
    field('First prompt', prompt, 'What the agent does first; more can follow from the run\'s page.'),
    h('details', { class: 'session-more' }, h('summary', {}, 'Model'),
      field('Model (optional)', model, 'Empty: the agent\'s default.')));
  const form = h('form', { class: 'card narrow session-new', onsubmit: submit },
    title,
    h('p', { class: 'muted session-intro' }, 'An agent on a coding host, in one of its workspaces.'),
    fields, h('div', { class: 'session-submit' }, error, progress, submitButton));
  replace(main, form);

  const byId = (id) => hosts.find((x) => x.id === id);
  const wanted = hosts.find((x) => usable(x) && x.name === params.get('host'))
    || hosts.find((x) => usable(x) && x.id === last.host)
    || hosts.find(usable);
  hostSelect.value = wanted.id;
  fillHost(last.host === wanted.id ? last : {});
  hostSelect.addEventListener('change', () => fillHost({}));
  workspace.addEventListener('change', showWhere);
  subfolder.addEventListener('input', showWhere);
  for (const el of [hostSelect, workspace, subfolder, agent, prompt, model]) {
    el.addEventListener('input', () => { error.hidden = true; });
  }
  if (params.get('host')) prompt.focus();

  // The selected host's workspaces and agents.
  function fillHost(pick) {
    const host = byId(hostSelect.value);
    const { workspaces, agents } = host.info;
    replace(workspace, workspaces.map((w) => h('option', { value: w }, w)));
    if (workspaces.includes(pick.workspace)) workspace.value = pick.workspace;
    replace(agent, agents.map((a) => h('option', { value: a.name }, a.version ? `${a.name} · ${a.version}` : a.name)));
    showWhere();
  }

  function showWhere() {
    replace(where, 'Starts in ', h('code', {}, joinWorkspace(workspace.value, subfolder.value)));
  }

  let key = null; // { body, key }: a retry of the same request keeps its key
  async function submit(event) {
    event.preventDefault();
    error.hidden = true;
    const host = byId(hostSelect.value);
    const body = {
      hostId: host.id,
      workspace: joinWorkspace(workspace.value, subfolder.value),
      agent: agent.value,
      prompt: prompt.value,
      permissionMode: form.querySelector('input[name=permissionMode]:checked').value,
    };
    if (model.value.trim()) body.model = model.value.trim();
    const text = JSON.stringify(body);
    if (!key || key.body !== text) key = { body: text, key: randomKey() };
    fields.disabled = true;
    submitButton.disabled = true;
    submitButton.textContent = 'Starting…';
    replace(progress, `Starting on ${host.name}…`, h('small', {}, 'The host starts the agent: this takes a few seconds.'));
    progress.hidden = false;
    progress.parentElement.scrollIntoView({ block: 'nearest' });
    try {
      const run = await postOnce('/api/runs', body, key.key);
      try {
        localStorage.setItem(LAST, JSON.stringify({ host: host.id, workspace: workspace.value, mode: body.permissionMode }));
      } catch { /* private mode: nothing remembered */ }
      location.hash = `#/runs/${run.id}`;
    } catch (err) {
      progress.hidden = true;
      fields.disabled = false;
      submitButton.disabled = false;
      submitButton.textContent = 'Start session';
      showError(err, error);
      error.parentElement.scrollIntoView({ block: 'nearest' });
    }
  }
  return undefined;
}
