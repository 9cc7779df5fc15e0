// First-run setup, sign-in (with a TOTP step when the account has one) and
// the account page with TOTP enrolment.

import { api, post, del, session } from '../api.js';
import { h, replace, field, showError, toast } from '../dom.js';
import { notificationsCard } from './notify.js';

function qrImage(svg, label) {
  // The SVG comes from the gateway; as an <img> it cannot run anything.
  return h('img', { class: 'qr', alt: label, src: `data:image/svg+xml;base64,${btoa(svg)}` });
}

function codeInput(name = 'code') {
  return h('input', {
    name, inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}',
    maxlength: '6', required: true, placeholder: '123456',
  });
}

async function login(username, password, totpCode) {
  const body = { username, password };
  if (totpCode) body.totpCode = totpCode;
  return api('POST', '/api/auth/login', body);
}

export async function setupPage(main, { signedIn }) {
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const token = h('input', { name: 'setupToken', required: true, autocomplete: 'off', spellcheck: 'false' });
  const username = h('input', { name: 'username', required: true, autocomplete: 'username', pattern: '[A-Za-z0-9_\\-]{3,50}' });
  const password = h('input', { name: 'password', type: 'password', required: true, minlength: '12', autocomplete: 'new-password' });
  const again = h('input', { name: 'password2', type: 'password', required: true, minlength: '12', autocomplete: 'new-password' });
  const totp = h('input', { name: 'enableTotp', type: 'checkbox' });
  const form = h('form', { class: 'card narrow', onsubmit: submit },
    h('h1', {}, 'Set up claw'),
    h('p', {}, 'Create the first administrator. The setup token is in the journal ',
      h('code', {}, 'journalctl -u clawd'), ' and in ', h('code', {}, 'setup-token'), ' in the data directory.'),
    field('Setup token', token),
    field('Administrator name', username, '3–50 letters, digits, _ or -'),
    field('Password', password, 'At least 12 characters'),
    field('Password again', again),
    h('label', { class: 'check' }, totp, ' Protect this account with an authenticator app (TOTP)'),
    error,
    h('button', { type: 'submit' }, 'Create administrator'));
  replace(main, form);

  async function submit(event) {
    event.preventDefault();
    error.hidden = true;
    if (password.value !== again.value) {
      showError(new Error('the two passwords differ'), error);
      return;
    }
    try {
      const reply = await post('/api/auth/setup', {
        setupToken: token.value.trim(), username: username.value, password: password.value, enableTotp: totp.checked,
      });
      if (reply.totpUri) {
        showTotpStep(reply);
        return;
      }
      const session = await login(username.value, password.value);
      await signedIn(session.user);
    } catch (err) {
      showError(err, error);
    }
  }

  function showTotpStep(reply) {
    const code = codeInput();
    const stepError = h('p', { class: 'error', hidden: true, role: 'alert' });
    replace(main, h('form', {
      class: 'card narrow',
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const s = await login(username.value, password.value, code.value.trim());
          await signedIn(s.user);
        } catch (err) { showError(err, stepError); }
      },
    },
    h('h1', {}, 'Scan this code'),
    h('p', {}, 'Add the account to your authenticator app, then enter the code it shows to sign in.'),
    reply.qrSvg ? qrImage(reply.qrSvg, 'TOTP QR code') : null,
    h('details', {}, h('summary', {}, 'Cannot scan?'), h('code', { class: 'wrap' }, reply.totpUri)),
    field('Code', code), stepError,
    h('button', { type: 'submit' }, 'Sign in')));
    code.focus();
  }
}

export async function loginPage(main, { signedIn }) {
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const username = h('input', { name: 'username', required: true, autocomplete: 'username', autocapitalize: 'none' });
  const password = h('input', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const code = codeInput('totpCode');
  code.required = false;
  const codeField = field('Authenticator code', code);
  codeField.hidden = true;
  const form = h('form', { class: 'card narrow', onsubmit: submit },
    h('h1', {}, 'Sign in to claw'),
    field('Name', username), field('Password', password), codeField, error,
    h('button', { type: 'submit' }, 'Sign in'));
  replace(main, form);
  username.focus();

  async function submit(event) {
    event.preventDefault();
    error.hidden = true;
    try {
      const reply = await login(username.value, password.value, codeField.hidden ? null : code.value.trim());
      await signedIn(reply.user);
    } catch (err) {
      if (err.body && err.body.totpRequired && codeField.hidden) {
        codeField.hidden = false;
        code.required = true;
        code.focus();
        return;
      }
      showError(err, error);
    }
  }
}

export async function accountPage(main) {
  const section = h('section', { class: 'card narrow' }, h('h1', {}, 'Account'));
  replace(main, section, notificationsCard());
  const me = (await api('GET', '/api/auth/me')).user;
  session.user = { ...session.user, ...me };
  const totpBox = h('div', { class: 'totp' });
  section.append(
    h('dl', { class: 'facts' },
      h('dt', {}, 'Name'), h('dd', {}, me.username),
      h('dt', {}, 'Role'), h('dd', {}, me.role),
      h('dt', {}, 'Two-factor'), h('dd', { id: 'totp-state' }, me.totpEnabled ? 'on' : 'off')),
    h('h2', {}, 'Authenticator (TOTP)'), totpBox);
  showTotp(me.totpEnabled);

  function showTotp(enabled) {
    if (enabled) {
      const password = h('input', { type: 'password', name: 'password', required: true, autocomplete: 'current-password' });
      const error = h('p', { class: 'error', hidden: true, role: 'alert' });
      replace(totpBox, h('form', {
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            await del('/api/auth/totp', { password: password.value });
            toast('Two-factor sign-in removed');
            section.querySelector('#totp-state').textContent = 'off';
            showTotp(false);
          } catch (err) { showError(err, error); }
        },
      }, h('p', {}, 'Sign-in asks for a code from your authenticator app.'),
      field('Password (to remove it)', password), error,
      h('button', { type: 'submit', class: 'danger' }, 'Remove two-factor sign-in')));
      return;
    }
    replace(totpBox, h('p', {}, 'Sign-in needs only the password.'),
      h('button', { type: 'button', onclick: enroll }, 'Set up an authenticator'));
  }

  async function enroll() {
    let reply;
    try { reply = await post('/api/auth/totp/enroll'); } catch (err) { showError(err); return; }
    const code = codeInput();
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    replace(totpBox, h('form', {
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await post('/api/auth/totp/confirm', { code: code.value.trim() });
          toast('Two-factor sign-in is on');
          section.querySelector('#totp-state').textContent = 'on';
          showTotp(true);
        } catch (err) { showError(err, error); }
      },
    },
    h('p', {}, 'Scan the code with your authenticator app, then enter the code it shows to confirm.'),
    reply.qrSvg ? qrImage(reply.qrSvg, 'TOTP QR code') : null,
    h('details', {}, h('summary', {}, 'Cannot scan? Enter this key'), h('code', { class: 'wrap', id: 'totp-secret' }, reply.secret)),
    field('Code', code), error,
    h('button', { type: 'submit' }, 'Confirm')));
    code.focus();
  }
}
