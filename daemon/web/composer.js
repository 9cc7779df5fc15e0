// The composer of an agent run: the next prompt (Enter sends, Shift+Enter
// starts a new line) and Interrupt while a turn runs. A prompt carries an
// Idempotency-Key made once per message: retried on a bad connection, it
// reaches the agent once. A finished session started on a coding host is
// continued from here while its host is online: the prompt resumes it.

import { post, postOnce, randomKey } from './api.js';
import { h, replace, toast } from './dom.js';

function explain(err) {
  if (err.status === 409) return `Not sent: ${err.message}`;
  if (err.status === 413) return `Too long: ${err.message}`;
  if (err.status === 0) return 'Not sent: the gateway cannot be reached. Press Enter to try again.';
  return `Not sent: ${err.message}`;
}

// Why a finished session on a host cannot go on, by its host's state.
function cannotResume(resume) {
  if (resume.state === 'offline') return `${resume.name} is offline: start claw-runner there to continue this session.`;
  if (resume.state === 'revoked') return `${resume.name} was revoked: this session cannot continue.`;
  if (resume.state === 'gone') return 'Its host was removed: this session cannot continue.';
  return `${resume.name} is ${resume.state}: this session cannot continue now.`;
}

export function composer(runId, { onSent }) {
  let message = null; // { text, key }: a retry of the same text keeps its key
  let sending = false;
  let finished = false;
  let turn = false;
  let running = false;
  // A finished session on a host: { name, state } of the host.
  let resume = null;

  const box = h('textarea', {
    name: 'prompt', rows: '1', placeholder: 'Message the agent', 'aria-label': 'Prompt',
    enterkeyhint: 'send', autocomplete: 'off',
  });
  const send = h('button', { type: 'submit', class: 'send-prompt' }, 'Send');
  const interrupt = h('button', { type: 'button', class: 'danger secondary small', id: 'interrupt', onclick: stopTurn }, 'Interrupt');
  // While a turn runs, a line above the box says so and offers Interrupt.
  const working = h('div', { class: 'composer-status', hidden: true },
    h('span', { class: 'working' }, 'The agent is working…'), interrupt);
  const error = h('p', { class: 'error composer-error', role: 'alert', hidden: true });
  const note = h('p', { class: 'muted composer-note', hidden: true });
  const form = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); submit(); } },
    error, note, working, h('div', { class: 'composer-row' }, box, send));

  // The box grows with its text, up to a third of the screen.
  const fit = () => {
    box.style.height = 'auto';
    box.style.height = `${Math.min(box.scrollHeight + 2, Math.round(window.innerHeight / 3))}px`;
  };
  box.addEventListener('input', () => { fit(); error.hidden = true; });
  box.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    submit();
  });

  // Prompts go in: the run takes them, or its host resumes it for them.
  const open = () => !finished || (resume && resume.state === 'online');

  async function submit() {
    const text = box.value;
    if (!text.trim() || sending || !open()) return;
    const resuming = finished;
    if (!message || message.text !== text) message = { text, key: randomKey() };
    sending = true;
    render();
    try {
      const reply = await postOnce(`/api/runs/${runId}/prompts`, { text }, message.key);
      message = null;
      box.value = '';
      fit();
      error.hidden = true;
      onSent(reply && reply.promptId, text, resuming);
    } catch (err) {
      replace(error, explain(err));
      error.hidden = false;
    } finally {
      sending = false;
      render();
    }
  }

  async function stopTurn() {
    interrupt.disabled = true;
    interrupt.textContent = 'Interrupting…';
    try {
      await post(`/api/runs/${runId}/interrupt`, undefined, { headers: { 'Idempotency-Key': randomKey() } });
      toast('Interrupt sent');
    } catch (err) {
      replace(error, `Not interrupted: ${err.message}`);
      error.hidden = false;
      interrupt.disabled = false;
      interrupt.textContent = 'Interrupt';
    }
  }

  function render() {
    const usable = open();
    const resumable = finished && usable;
    box.disabled = !usable;
    box.placeholder = resumable ? 'Continue the session' : 'Message the agent';
    send.disabled = !usable || sending;
    send.textContent = sending ? 'Sending…' : resumable ? 'Continue' : 'Send';
    const canInterrupt = turn && running && !finished;
    // A new turn can be interrupted again.
    if (working.hidden === canInterrupt) {
      interrupt.disabled = false;
      interrupt.textContent = 'Interrupt';
    }
    working.hidden = !canInterrupt;
    note.hidden = !finished;
    if (!finished) replace(note);
    else if (resumable) replace(note, 'Continue this session on ', h('strong', {}, resume.name));
    else if (resume) replace(note, cannotResume(resume));
    else replace(note, 'The run has finished: its agent takes no more prompts.');
    note.className = resumable ? 'composer-note composer-resume' : 'muted composer-note';
    form.classList.toggle('finished', finished && !resumable);
    form.classList.toggle('resumable', resumable);
  }
  render();

  return {
    element: form,
    focus: () => box.focus(),
    // The run's state: prompts wait for a pending run, not for an ended one.
    // `waiting` is running: its agent waits for a person's decision.
    setStatus(status) {
      finished = !['pending', 'running', 'waiting'].includes(status);
      running = status === 'running' || status === 'waiting';
      render();
    },
    setTurn(isOpen) {
      turn = isOpen;
      render();
    },
    // A session on a host that can go on once finished: its host's name
    // and state ('online', 'offline', 'revoked', or 'gone' when removed);
    // null for any other run.
    setResume(host) {
      resume = host;
      render();
    },
  };
}
