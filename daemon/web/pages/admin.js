// Users (admin), the audit log (admin) and the status view.

import { get, post, patch, del, session } from '../api.js';
import { h, replace, fmtTime, field, confirmDialog, showError, toast } from '../dom.js';
import { live } from '../socket.js';

const ROLES = ['viewer', 'operator', 'admin'];

function roleSelect(value, onchange) {
  const select = h('select', { 'aria-label': 'Role', onchange }, ROLES.map((r) => h('option', { value: r }, r)));
  select.value = value;
  return select;
}

// A one-field dialog; resolves to the value or null.
function askDialog(question, input, label) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-label': question },
      h('form', { method: 'dialog' },
        h('p', {}, question), field(label, input),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close('cancel') }, 'Cancel'),
          h('button', { type: 'submit', value: 'ok' }, 'Save'))));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'ok' ? input.value : null); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export async function usersPage(main) {
  const body = h('tbody');
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const username = h('input', { name: 'username', required: true, pattern: '[A-Za-z0-9_\\-]{3,50}', autocomplete: 'off' });
  const password = h('input', { name: 'password', type: 'password', required: true, minlength: '12', autocomplete: 'new-password' });
  const role = roleSelect('viewer');
  role.name = 'role';
  const form = h('form', { class: 'card inline-form', onsubmit: create },
    h('h2', {}, 'Add a user'), field('Name', username), field('Password', password, 'At least 12 characters'),
    field('Role', role), error, h('button', { type: 'submit' }, 'Add user'));
  replace(main, h('section', {}, h('div', { class: 'page-head' }, h('h1', {}, 'Users')),
    h('table', { class: 'users' },
      h('thead', {}, h('tr', {}, ['Name', 'Role', 'Two-factor', 'Created', ''].map((t) => h('th', { scope: 'col' }, t)))),
      body),
    form));

  async function load() {
    try {
      const users = await get('/api/auth/users');
      replace(body, users.map((u) => {
        const self = u.id === session.user.id;
        return h('tr', { dataset: { user: u.username } },
          h('td', { 'data-label': 'Name' }, u.username, self ? h('small', { class: 'muted' }, ' (you)') : null),
          h('td', { 'data-label': 'Role' }, roleSelect(u.role, async (e) => {
            try { await patch(`/api/auth/users/${u.id}`, { role: e.target.value }); toast(`${u.username} is now ${e.target.value}`); } catch (err) { showError(err); load(); }
          })),
          h('td', { 'data-label': 'Two-factor' }, u.totpEnabled ? 'on' : 'off'),
          h('td', { 'data-label': 'Created' }, fmtTime(u.createdAt)),
          h('td', { class: 'actions' },
            h('button', {
              type: 'button', class: 'secondary small',
              onclick: async () => {
                const input = h('input', { type: 'password', minlength: '12', required: true, autocomplete: 'new-password' });
                const value = await askDialog(`New password for ${u.username}`, input, 'Password');
                if (value === null) return;
                try { await patch(`/api/auth/users/${u.id}`, { password: value }); toast('Password reset'); } catch (err) { showError(err); }
              },
            }, 'Reset password'),
            // One's own TOTP is removed on the account page, with the password.
            u.totpEnabled && !self ? h('button', {
              type: 'button', class: 'secondary small',
              onclick: async () => {
                if (!await confirmDialog(`Turn off two-factor sign-in for ${u.username}?`, 'Reset TOTP')) return;
                try { await patch(`/api/auth/users/${u.id}`, { resetTotp: true }); toast('TOTP reset'); load(); } catch (err) { showError(err); }
              },
            }, 'Reset TOTP') : null,
            self ? null : h('button', {
              type: 'button', class: 'danger small',
              onclick: async () => {
                if (!await confirmDialog(`Delete the user ${u.username}? Their sessions end at once.`, 'Delete')) return;
                try { await del(`/api/auth/users/${u.id}`); toast('User deleted'); load(); } catch (err) { showError(err); }
              },
            }, 'Delete')));
      }));
    } catch (err) { showError(err); }
  }

  async function create(event) {
    event.preventDefault();
    error.hidden = true;
    try {
      await post('/api/auth/users', { username: username.value, password: password.value, role: role.value });
      toast(`${username.value} added`);
      form.reset();
      load();
    } catch (err) { showError(err, error); }
  }

  await load();
}

export async function auditPage(main) {
  const user = h('input', { name: 'user', placeholder: 'user', autocomplete: 'off', 'aria-label': 'User' });
  const action = h('input', { name: 'action', placeholder: 'action, e.g. run or auth.login', autocomplete: 'off', 'aria-label': 'Action' });
  const since = h('input', { name: 'since', type: 'datetime-local', 'aria-label': 'Since' });
  const body = h('tbody');
  const verdict = h('span', { class: 'muted', id: 'audit-verdict' });
  replace(main, h('section', {},
    h('div', { class: 'page-head' }, h('h1', {}, 'Audit log'),
      h('div', { class: 'tools' }, verdict, h('button', { type: 'button', class: 'secondary', onclick: verify }, 'Verify chain'))),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(); } },
      user, action, since, h('button', { type: 'submit' }, 'Filter')),
    h('table', { class: 'audit' },
      h('thead', {}, h('tr', {}, ['Time', 'User', 'Action', 'Target', 'Details', 'Address'].map((t) => h('th', { scope: 'col' }, t)))),
      body)));

  async function load() {
    const q = new URLSearchParams({ limit: '200' });
    if (user.value.trim()) q.set('user', user.value.trim());
    if (action.value.trim()) q.set('action', action.value.trim());
    if (since.value) q.set('since', new Date(since.value).toISOString());
    try {
      const entries = await get(`/api/audit?${q}`);
      replace(body, entries.map((e) => h('tr', { dataset: { action: e.action } },
        h('td', { 'data-label': 'Time' }, fmtTime(e.timestamp)),
        h('td', { 'data-label': 'User' }, e.username || '—'),
        h('td', { 'data-label': 'Action' }, h('code', {}, e.action)),
        h('td', { 'data-label': 'Target' }, e.target ? h('code', {}, e.target) : '—'),
        h('td', { 'data-label': 'Details' }, e.details || ''),
        h('td', { 'data-label': 'Address' }, e.ip || ''))));
      if (!entries.length) replace(body, h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No entries match.')));
    } catch (err) { showError(err); }
  }

  async function verify() {
    try {
      const reply = await get('/api/audit/verify');
      verdict.textContent = reply.ok
        ? `chain intact (${reply.checked} entries)`
        : `chain broken at entry ${reply.brokenAt}: ${reply.reason || ''}`;
    } catch (err) { showError(err); }
  }

  await load();
}

export async function statusPage(main) {
  const facts = h('dl', { class: 'facts' });
  const notifyFacts = h('dl', { class: 'facts' });
  const dead = h('p', { class: 'warn', id: 'notify-dead', hidden: true });
  replace(main, h('section', { class: 'card' }, h('h1', {}, 'Status'), facts),
    h('section', { class: 'card status-notify', 'aria-labelledby': 'status-notify-title' },
      h('h2', { id: 'status-notify-title' }, 'Notifications'), notifyFacts, dead,
      h('p', { class: 'muted' }, 'Your channels are on the ', h('a', { href: '#/account' }, 'Account'), ' page.')));
  async function loadNotify() {
    try {
      const n = await get('/api/notify/status');
      replace(notifyFacts,
        h('dt', {}, 'Channels'), h('dd', { id: 'notify-channels' }, String(n.channels)),
        h('dt', {}, 'Waiting to be sent'), h('dd', { id: 'notify-pending' }, String(n.pending)),
        h('dt', {}, 'Delivered'), h('dd', { id: 'notify-delivered' }, String(n.delivered)),
        h('dt', {}, 'Not deliverable'), h('dd', { id: 'notify-dead-count' }, String(n.dead)));
      dead.hidden = n.dead === 0;
      if (n.dead) {
        const one = n.dead === 1;
        replace(dead, `${n.dead} ${one ? 'notification' : 'notifications'} could not be delivered — an administrator can see ${one ? 'it' : 'them'} with `,
          h('code', {}, 'clawctl notify list --dead'), '.');
      }
    } catch (err) { showError(err); }
  }
  async function load() {
    loadNotify();
    try {
      const [health, status] = await Promise.all([get('/api/health'), get('/api/status')]);
      session.status = status;
      replace(facts,
        h('dt', {}, 'Gateway'), h('dd', { id: 'health' }, `${health.status}, version ${status.version}`),
        h('dt', {}, 'Connected runners'), h('dd', { id: 'runners' }, String(status.runnersConnected)),
        h('dt', {}, 'Browsers'), h('dd', { id: 'browsers' }, String(status.browsers)),
        h('dt', {}, 'Watched runs'), h('dd', {}, String(status.subscriptions)),
        h('dt', {}, 'Live connection'), h('dd', {}, live.state),
        h('dt', {}, 'Runs'), h('dd', {}, Object.entries(status.runs).map(([s, n]) => `${s} ${n}`).join(' · ')),
        h('dt', {}, 'Server time'), h('dd', {}, fmtTime(health.timestamp)));
    } catch (err) { showError(err); }
  }
  await load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
