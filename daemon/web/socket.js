// One WebSocket for the whole page. It reconnects by itself with backoff and,
// on every (re)connect, subscribes each watched run again from the last
// sequence that run's view has seen, so a flaky connection loses nothing and
// repeats nothing.

import { get } from './api.js';

export class LiveSocket {
  constructor() {
    this.subscriptions = new Map(); // runId -> { after: () => number, onMessage }
    this.listeners = new Set();     // every message (run status for lists)
    this.stateListeners = new Set();
    this.ws = null;
    this.backoff = 500;
    this.stopped = true;
    this.state = 'closed';
    this.lastMessage = 0;
    this.connects = 0;
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.reconnectNow();
    });
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
    this.heartbeat = setInterval(() => this.checkAlive(), 15000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.setState('closed');
  }

  connect() {
    clearTimeout(this.timer);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    let opened = false;
    this.setState('connecting');
    ws.onopen = () => {
      opened = true;
      this.connects += 1;
      this.backoff = 500;
      this.lastMessage = Date.now();
      this.setState('open');
      for (const [runId, sub] of this.subscriptions) this.sendSubscribe(runId, sub);
    };
    ws.onmessage = (message) => {
      this.lastMessage = Date.now();
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      this.dispatch(data);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.setState('reconnecting');
      // Refused before opening, or closed because the session ended
      // (4401) or changed (4409): the API call sends the page to the login
      // form when the session is gone.
      if (!opened || event.code === 4401 || event.code === 4409) get('/api/auth/me').catch(() => {});
      this.timer = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  reconnectNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    this.backoff = 500;
    this.connect();
  }

  // A connection that went quiet (a phone that changed networks) is closed
  // and opened again rather than trusted.
  checkAlive() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastMessage > 40000) {
      ws.close();
      return;
    }
    ws.send(JSON.stringify({ type: 'ping' }));
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
    }
  }

  sendSubscribe(runId, sub) {
    // Stored events come in `events` messages of many each: a browser pays
    // per message, and a long log would otherwise take seconds to arrive.
    this.send({ type: 'subscribe', runId, afterSequence: sub.after(), batch: true });
  }

  // Watches one run; returns the function that stops watching.
  subscribe(runId, after, onMessage) {
    const sub = { after, onMessage };
    this.subscriptions.set(runId, sub);
    this.sendSubscribe(runId, sub);
    return () => {
      if (this.subscriptions.get(runId) === sub) {
        this.subscriptions.delete(runId);
        this.send({ type: 'unsubscribe', runId });
      }
    };
  }

  listen(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  setState(state) {
    this.state = state;
    document.documentElement.dataset.live = state;
    for (const fn of this.stateListeners) fn(state);
  }

  dispatch(message) {
    const sub = message.runId && this.subscriptions.get(message.runId);
    if (sub) sub.onMessage(message);
    for (const fn of this.listeners) fn(message);
  }
}

export const live = new LiveSocket();
