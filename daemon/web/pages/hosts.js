// Hosts: the machines that run `claw-runner serve` and start agent
// sessions for the gateway. Everyone signed in sees them; operators start
// a session on an online one; administrators add one (its enrolment
// command shown once), give a pending one a new token, revoke one and
// remove one. The list is read again every 10 s while the page is open.

import { get, post, del, can } from '../api.js';
import { h, replace, field, fmtTime, fmtAgo, confirmDialog, showError, toast, copyText } from '../dom.js';

const REFRESH_MS = 10000;

// A mark and a word for each state: never colour alone.
const STATES = {
  online: ['●', 'online'],
  offline: ['○', 'offline'],
  pending: ['◌', 'pending'],
  revoked: ['⊘', 'revoked'],
};

function stateBadge(state) {
  const [mark, label] = STATES[state] || ['?', state];
  return h('span', { class: `badge hs-${state}`, dataset: { state } },
    h('span', { class: 'hs-mark', 'aria-hidden': 'true' }, mark), ' ', label);
}

// A time as "5 min ago", the full time on hover and for screen readers.
function ago(iso) {
  return h('time', { datetime: iso, title: fmtTime(iso) }, fmtAgo(iso));
}

function fact(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

// What a host said of itself when it last connected.
function infoFacts(host) {
  const info = host.info;
  if (!info) return [];
  const agents = info.agents.length
    ? h('ul', { class: 'host-agents' }, info.agents.map((a) => h('li', { dataset: { agent: a.name } },
      h('strong', {}, a.name), ' ', h('span', { class: 'agent-version' }, a.version || 'version unknown'))))
    : h('span', { class: 'warn' }, 'none: claude --version did not answer on this host');
  const workspaces = info.workspaces.length
    ? h('ul', { class: 'host-workspaces' }, info.workspaces.map((w) => h('li', {}, h('code', {}, w))))
    : h('span', { class: 'warn' }, 'none: list them in its runner.toml (workspaces = [...])');
  let sessions = null;
  if (host.state === 'online') {
    const running = info.sessions.length;
    sessions = [h('span', { class: 'host-load' }, `${running} running / ${info.sessionLimit}`),
      running ? h('span', { class: 'host-runs' }, ' — ',
        info.sessions.map((id, i) => [i ? ', ' : '', h('a', { href: `#/runs/${id}` }, id.slice(0, 8))])) : null];
  } else if (host.state === 'offline') {
    sessions = h('span', { class: 'host-load' }, `none: offline (at most ${info.sessionLimit})`);
  }
  return [
    fact('claw-runner', h('span', { class: 'host-version' }, info.version)),
    fact('Agents', agents),
    fact('Workspaces', workspaces),
    sessions ? fact('Sessions', sessions) : [],
  ];
}

export async function hostsPage(main) {
  const admin = can('admin');
  const operator = can('operator');
  const list = h('ul', { class: 'hosts', 'aria-label': 'Hosts' });
  const count = h('span', { class: 'muted host-count' });
  const enrolBox = h('div', { class: 'host-enrol', id: 'host-enrol', hidden: true, tabindex: '-1' });
  const nameInput = h('input', {
    name: 'hostName', required: true, maxlength: '64', pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}',
    autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', placeholder: 'build-box-1',
    title: '1 to 64 letters, digits, . _ or -, starting with a letter or digit',
  });
  const formError = h('p', { class: 'error', hidden: true, role: 'alert' });
  const addCard = admin ? h('section', { class: 'card host-add', 'aria-labelledby': 'host-add-title' },
    h('form', { onsubmit: add },
      h('h2', { id: 'host-add-title' }, 'Add a host'),
      field('Name', nameInput, 'Letters, digits, . _ or -: how it shows here and in the logs.'),
      formError,
      h('button', { type: 'submit', class: 'wide' }, 'Add host')),
    enrolBox) : null;
  replace(main, h('section', { class: 'hosts-page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Hosts'), count,
      admin ? h('button', {
        type: 'button', class: 'secondary small', id: 'host-add-jump',
        onclick: () => { nameInput.scrollIntoView({ block: 'center' }); nameInput.focus(); },
      }, 'Add a host') : null),
    h('p', { class: 'muted host-intro' }, 'Machines running ', h('code', {}, 'claw-runner serve'),
      ': they start agent sessions in their workspaces.'),
    list, addCard));

  // One card per host, built again only when the host changed (so focus
  // and a half-read card survive the refresh); its "last seen" always.
  const cards = new Map(); // name → { key, el, seen: [element, iso] }
  let shown = null; // the host whose enrolment command is in the box
  let stopped = false;

  async function load() {
    let hosts;
    try {
      hosts = await get('/api/hosts');
    } catch (err) {
      showError(err);
      return;
    }
    if (stopped) return;
    const online = hosts.filter((x) => x.state === 'online').length;
    count.textContent = hosts.length ? `${online} of ${hosts.length} online` : '';
    const wanted = [];
    for (const host of hosts) {
      const { lastSeenAt, ...rest } = host;
      const key = JSON.stringify(rest) + String(!!lastSeenAt);
      let card = cards.get(host.name);
      if (!card || card.key !== key) {
        card = { key, ...hostCard(host) };
        cards.set(host.name, card);
      } else if (card.seen) {
        card.seen.textContent = fmtAgo(lastSeenAt);
        card.seen.dateTime = lastSeenAt;
        card.seen.title = fmtTime(lastSeenAt);
      }
      wanted.push(card.el);
    }
    for (const name of [...cards.keys()]) {
      if (!hosts.some((x) => x.name === name)) cards.delete(name);
    }
    if (!wanted.length) {
      replace(list, h('li', { class: 'muted hosts-empty' }, admin
        ? 'No hosts yet: add one below, then run its enrolment command on that machine.'
        : 'No hosts yet: an administrator adds them.'));
    } else if (wanted.length !== list.children.length || wanted.some((el, i) => list.children[i] !== el)) {
      list.replaceChildren(...wanted);
    }
    // The enrolment token is spent: the command is of no use any more.
    const pending = shown && hosts.find((x) => x.name === shown);
    if (shown && (!pending || pending.state !== 'pending')) enrolled(shown, pending);
  }

  function hostCard(host) {
    const seen = host.lastSeenAt ? ago(host.lastSeenAt) : null;
    const facts = [];
    if (host.state === 'pending') {
      facts.push(fact('Added', ago(host.createdAt)),
        fact('Waiting', 'for its enrolment command (a token lasts an hour)'));
    } else {
      facts.push(fact('Last seen', seen || 'never'));
      if (host.state === 'revoked') facts.push(fact('Revoked', ago(host.revokedAt)));
      facts.push(...infoFacts(host));
      if (!host.info && host.state !== 'revoked') {
        facts.push(fact('Reported', h('span', { class: 'muted' }, 'nothing yet: start claw-runner serve on it')));
      }
    }
    const el = h('li', { class: 'host', dataset: { host: host.name, state: host.state } },
      h('div', { class: 'host-head' }, h('strong', { class: 'host-name' }, host.name), stateBadge(host.state)),
      h('dl', { class: 'facts host-facts' }, facts),
      startHere(host),
      admin ? actions(host) : null);
    return { el, seen };
  }

  // An online host with somewhere to work and something to run: a session
  // on it, for whoever may start one.
  function startHere(host) {
    const info = host.info;
    if (!operator || host.state !== 'online' || !info || !info.workspaces.length || !info.agents.length) return null;
    return h('div', { class: 'actions host-start' }, h('a', {
      class: 'button', href: `#/sessions/new?host=${encodeURIComponent(host.name)}`,
      'aria-label': `Start a session on ${host.name}`,
    }, 'Start a session here'));
  }

  function actions(host) {
    const buttons = [];
    if (host.state === 'pending') {
      buttons.push(h('button', {
        type: 'button', class: 'secondary', 'aria-label': `New token for ${host.name}`,
        onclick: async () => {
          try { await added(await post('/api/hosts', { name: host.name })); } catch (err) { showError(err); }
        },
      }, 'New token'));
    }
    if (host.state === 'online' || host.state === 'offline') {
      buttons.push(h('button', {
        type: 'button', class: 'danger', 'aria-label': `Revoke ${host.name}`,
        onclick: async () => {
          if (!await confirmDialog(`Revoke ${host.name}? It is cut off at once, and its key never works again.`, 'Revoke')) return;
          try {
            await post(`/api/hosts/${encodeURIComponent(host.name)}/revoke`);
            toast(`${host.name} revoked`);
            await load();
          } catch (err) { showError(err); }
        },
      }, 'Revoke'));
    }
    buttons.push(h('button', {
      type: 'button', class: 'secondary danger', 'aria-label': `Remove ${host.name}`,
      onclick: async () => {
        const what = {
          pending: 'Its enrolment token stops working.',
          revoked: 'It goes from this list.',
        }[host.state] || 'It is cut off at once; to use it again, add and enrol it again.';
        if (!await confirmDialog(`Remove ${host.name}? ${what}`, 'Remove')) return;
        try {
          await del(`/api/hosts/${encodeURIComponent(host.name)}`);
          toast(`${host.name} removed`);
          await load();
        } catch (err) { showError(err); }
      },
    }, 'Remove'));
    return h('div', { class: 'actions host-actions' }, buttons);
  }

  async function add(event) {
    event.preventDefault();
    formError.hidden = true;
    try {
      const reply = await post('/api/hosts', { name: nameInput.value.trim() });
      nameInput.value = '';
      await added(reply);
    } catch (err) { showError(err, formError); }
  }

  // The enrolment command, this once.
  async function added(reply) {
    const { host, enrollCommand, expiresAt } = reply;
    shown = host.name;
    const until = new Date(expiresAt);
    const code = h('code', { class: 'paste', id: 'enroll-command' }, enrollCommand);
    const copy = h('button', {
      type: 'button', id: 'copy-enroll',
      onclick: async () => { copy.textContent = await copyText(enrollCommand, code) ? 'Copied' : 'Selected: copy it'; },
    }, 'Copy');
    replace(enrolBox,
      h('h3', {}, `Enrol ${host.name}`),
      h('p', {}, 'On the host, run:'),
      code,
      h('p', { class: 'host-enrol-until' }, h('strong', {},
        `Valid until ${until.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}, once — shown only now.`)),
      h('div', { class: 'actions' }, copy,
        h('button', { type: 'button', class: 'secondary', onclick: closeEnrol }, 'Done')),
      h('p', { class: 'muted' }, 'Then list its workspaces in its runner.toml and start it: ',
        h('code', {}, 'systemctl enable --now claw-runner')));
    enrolBox.hidden = false;
    enrolBox.scrollIntoView({ block: 'center' });
    enrolBox.focus({ preventScroll: true });
    await load();
  }

  function enrolled(name, host) {
    shown = null;
    replace(enrolBox,
      h('p', { class: host ? 'notify-on' : 'muted' }, host
        ? `${name} is enrolled: its token is spent.`
        : `${name} was removed.`),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: closeEnrol }, 'Done')));
  }

  function closeEnrol() {
    shown = null;
    enrolBox.hidden = true;
    replace(enrolBox);
  }

  await load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  const visible = () => { if (!document.hidden) load(); };
  document.addEventListener('visibilitychange', visible);
  return () => {
    stopped = true;
    clearInterval(timer);
    document.removeEventListener('visibilitychange', visible);
  };
}
