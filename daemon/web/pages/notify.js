// The account page's Notifications: this device's Web Push, the channels
// the user has (and the global ones), what each is told about, and a form
// to add an ntfy topic or a webhook. Every change is saved at once.

import { get, post, patch, del, can } from '../api.js';
import { h, replace, field, confirmDialog, showError, toast, copyText } from '../dom.js';
import { KINDS, unsupported, permission, enableOnThisDevice, currentSubscription } from '../notify.js';

const KIND_NAMES = { webpush: 'Push', ntfy: 'ntfy', webhook: 'Webhook' };

// A long address as its start and end; a push service's, as its host.
function shortTarget(channel) {
  if (channel.kind === 'webpush') {
    try { return `via ${new URL(channel.target).host}`; } catch { return 'a push service'; }
  }
  const bare = channel.target.replace(/^https?:\/\//, '');
  return bare.length > 42 ? `${bare.slice(0, 26)}…${bare.slice(-12)}` : bare;
}

export function notificationsCard() {
  const device = h('div', { class: 'notify-device' });
  const list = h('ul', { class: 'channels', 'aria-label': 'Notification channels' });
  const secretBox = h('div', { class: 'notify-secret', hidden: true });
  const card = h('section', { class: 'card narrow notify', id: 'notifications', 'aria-labelledby': 'notify-title' },
    h('h2', { id: 'notify-title' }, 'Notifications'),
    h('p', { class: 'muted' }, 'claw tells you when a run needs you: on this device, on an ntfy topic or at a webhook.'),
    device,
    h('h3', {}, 'Channels'), list, secretBox, addForm());
  let channels = [];
  let endpoint = null; // this browser's push subscription's, if any

  async function load() {
    try {
      const [all, subscription] = await Promise.all([get('/api/notify/channels'), currentSubscription()]);
      channels = all;
      endpoint = subscription ? subscription.endpoint : null;
    } catch (err) {
      showError(err);
      return;
    }
    renderDevice();
    replace(list, channels.length
      ? channels.map(channelItem)
      : h('li', { class: 'muted channels-empty' }, 'None yet: enable this device, or add a topic or webhook below.'));
  }

  function renderDevice(message) {
    const why = unsupported();
    const mine = endpoint && channels.find((c) => c.kind === 'webpush' && c.target === endpoint);
    const error = h('p', { class: 'error', role: 'alert', hidden: !message }, message || '');
    if (why) {
      replace(device, h('p', { class: 'notify-why', id: 'notify-why' }, why));
      return;
    }
    if (mine) {
      replace(device, h('p', { class: 'notify-on', id: 'notify-on' }, `This device gets notifications (${mine.name}).`));
      return;
    }
    const blocked = permission() === 'denied';
    const button = h('button', { type: 'button', class: 'wide', id: 'notify-enable', onclick: enable }, 'Enable notifications on this device');
    replace(device, button,
      blocked ? h('p', { class: 'notify-why', id: 'notify-why' },
        'Notifications are blocked for this site: allow them in the browser\'s site settings, then press the button.') : null,
      error);

    async function enable() {
      button.disabled = true;
      button.textContent = 'Enabling…';
      try {
        const channel = await enableOnThisDevice();
        toast(`Notifications are on for ${channel.name}`);
        await load();
      } catch (err) {
        renderDevice(err.message || String(err));
      }
    }
  }

  function channelItem(c) {
    const here = c.kind === 'webpush' && c.target === endpoint;
    const global = c.owner === null || c.owner === undefined;
    const editable = !global || can('admin');
    const status = h('small', { class: 'channel-saved muted', role: 'status', 'aria-live': 'polite' });
    const saved = (text = 'Saved') => { status.textContent = text; };
    const boxes = KINDS.map(([kind, label]) => h('label', { class: 'pill' },
      h('input', { type: 'checkbox', name: 'kind', value: kind, checked: c.events.includes(kind), disabled: !editable }),
      h('span', {}, label)));
    const kinds = h('fieldset', { class: 'channel-kinds' }, h('legend', {}, 'Notify about'), h('div', { class: 'pills' }, boxes));
    kinds.addEventListener('change', async (event) => {
      const picked = [...kinds.querySelectorAll('input:checked')].map((el) => el.value);
      if (!picked.length) {
        event.target.checked = true;
        saved('Keep at least one: Remove stops the channel.');
        return;
      }
      try {
        const updated = await patch(`/api/notify/channels/${c.id}`, { events: picked });
        c.events = updated.events;
        saved();
      } catch (err) { showError(err); load(); }
    });
    let scope = null;
    if (global) {
      scope = h('p', { class: 'channel-scope muted' }, 'For everyone: every run, whoever started it.');
    } else {
      const radio = (value, label) => h('label', {},
        h('input', { type: 'radio', name: `scope-${c.id}`, value, checked: c.scope === value, disabled: !editable }),
        h('span', {}, label));
      scope = h('fieldset', { class: 'channel-scope' }, h('legend', {}, 'Which runs'),
        h('div', { class: 'segmented' }, radio('own', 'My runs'), radio('all', 'All I can see')));
      scope.addEventListener('change', async (event) => {
        try {
          const updated = await patch(`/api/notify/channels/${c.id}`, { scope: event.target.value });
          c.scope = updated.scope;
          saved();
        } catch (err) { showError(err); load(); }
      });
    }
    return h('li', { class: 'channel', dataset: { channelId: c.id, kind: c.kind } },
      h('div', { class: 'channel-head' },
        h('span', { class: `badge kind-${c.kind}` }, KIND_NAMES[c.kind] || c.kind),
        h('strong', { class: 'channel-name' }, c.name),
        here ? h('span', { class: 'tag this-device' }, 'this device') : null,
        global ? h('span', { class: 'tag' }, 'for everyone') : null),
      h('div', { class: 'channel-target muted', title: c.target }, shortTarget(c)),
      kinds, scope,
      editable ? h('div', { class: 'actions channel-actions' }, status,
        h('button', {
          type: 'button', class: 'secondary danger', 'aria-label': `Remove ${c.name}`,
          onclick: async () => {
            const what = here ? 'this device' : c.name;
            if (!await confirmDialog(`Remove ${what}? It gets no more notifications.`, 'Remove')) return;
            try {
              await del(`/api/notify/channels/${c.id}`);
              if (here) {
                const subscription = await currentSubscription();
                if (subscription) await subscription.unsubscribe().catch(() => {});
              }
              toast(`${c.name} removed`);
              await load();
            } catch (err) { showError(err); }
          },
        }, 'Remove')) : null);
  }

  function showSecret(channel, secret) {
    const code = h('code', { class: 'paste', id: 'webhook-secret' }, secret);
    const copy = h('button', {
      type: 'button', id: 'copy-secret',
      onclick: async () => { copy.textContent = await copyText(secret, code) ? 'Copied' : 'Selected: copy it'; },
    }, 'Copy');
    replace(secretBox,
      h('p', {}, h('strong', {}, `Signing secret of ${channel.name}`), ' — shown only now'),
      h('p', { class: 'muted' }, 'The receiver checks each request\'s webhook-signature with it (Standard Webhooks). claw cannot show it again: copy it now.'),
      code,
      h('div', { class: 'actions' }, copy,
        h('button', { type: 'button', class: 'secondary', onclick: () => { secretBox.hidden = true; replace(secretBox); } }, 'Done')));
    secretBox.hidden = false;
    secretBox.scrollIntoView({ block: 'center' });
  }

  function addForm() {
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    const target = h('input', {
      name: 'target', type: 'url', required: true, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', inputmode: 'url',
    });
    const name = h('input', { name: 'name', maxlength: '100', autocomplete: 'off' });
    const token = h('input', { name: 'token', type: 'password', autocomplete: 'off' });
    const tokenField = field('Access token', token, 'Optional: for a topic that needs one.');
    const targetField = field('Address', target);
    const global = can('admin') ? h('input', { type: 'checkbox', name: 'global' }) : null;
    const kindRadio = (value, label, checked) => h('label', {},
      h('input', { type: 'radio', name: 'channel-kind', value, checked }), h('span', {}, label));
    const kinds = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Kind of channel' },
      kindRadio('ntfy', 'ntfy topic', true), kindRadio('webhook', 'Webhook', false));
    const form = h('form', { class: 'notify-add', onsubmit: submit },
      h('h3', {}, 'Add a channel'), kinds, targetField,
      field('Name', name, 'Optional: the address\'s host when empty.'),
      tokenField,
      global ? h('label', { class: 'check' }, global, 'For everyone (global): every run, whoever started it') : null,
      error,
      h('button', { type: 'submit', class: 'wide' }, 'Add channel'));
    const kind = () => form.querySelector('input[name=channel-kind]:checked').value;
    function kindChanged() {
      const hook = kind() === 'webhook';
      tokenField.hidden = hook;
      target.placeholder = hook ? 'https://example.com/claw-hook' : 'https://ntfy.sh/my-claw-topic';
      targetField.querySelector('small')?.remove();
      targetField.append(h('small', {}, hook
        ? 'Gets each notification as signed JSON.'
        : 'The topic\'s full address, on ntfy.sh or your own server.'));
    }
    kinds.addEventListener('change', kindChanged);
    kindChanged();

    async function submit(event) {
      event.preventDefault();
      error.hidden = true;
      const body = { kind: kind(), target: target.value.trim() };
      let host = '';
      try { host = new URL(body.target).host; } catch { /* the gateway says what is wrong */ }
      body.name = name.value.trim() || host || body.target;
      if (body.kind === 'ntfy' && token.value) body.token = token.value;
      if (global && global.checked) body.global = true;
      try {
        const created = await post('/api/notify/channels', body);
        form.reset();
        kindChanged();
        await load();
        // The secret's box says it was added; a toast would cover its buttons.
        if (created.secret) showSecret(created.channel, created.secret);
        else toast(`${created.channel.name} added`);
      } catch (err) { showError(err, error); }
    }
    return form;
  }

  load();
  return card;
}
