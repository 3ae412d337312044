// /ws/agent: live events with resume. Every event carries an id; we remember
// the last one and reconnect with ?last_event_id= so the server replays what
// we missed while offline — no gap, and ids we already saw are dropped.
const PING_MS = 25000;
const MAX_BACKOFF_MS = 15000;

export class AgentSocket {
  constructor({ onEvent, onState, onUnauthorized }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onUnauthorized = onUnauthorized;
    this.lastEventId = null;
    this.lateSeen = new Set();
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.timer = null;
    this.pinger = null;
    this.retryAt = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const resume = this.lastEventId !== null ? `?last_event_id=${this.lastEventId}` : "";
    const ws = new WebSocket(`${proto}//${location.host}/ws/agent${resume}`);
    this.ws = ws;
    this.onState({ state: "connecting", attempt: this.attempt });
    ws.onopen = () => {
      this.attempt = 0;
      this.retryAt = null;
      this.onState({ state: "open" });
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: "ping" }), PING_MS);
    };
    ws.onmessage = (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (ev.type === "hello") {
        if (this.lastEventId === null) this.lastEventId = ev.last_event_id ?? 0;
        this.onEvent(ev);
        return;
      }
      if (typeof ev.id === "number" && ev.late) {
        // Committed after the feed moved past its id (see docs/events.md): new to us, but it must
        // not move lastEventId back.
        if (this.lateSeen.has(ev.id)) return;
        this.lateSeen.add(ev.id);
      } else if (typeof ev.id === "number") {
        if (this.lastEventId !== null && ev.id <= this.lastEventId) return;
        this.lastEventId = ev.id;
      }
      this.onEvent(ev);
    };
    ws.onclose = (e) => {
      clearInterval(this.pinger);
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      if (e.code === 4401) {
        this.stopped = true;
        this.onUnauthorized();
        return;
      }
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
      this.attempt += 1;
      this.retryAt = Date.now() + delay;
      this.onState({ state: "offline", retryAt: this.retryAt });
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  // "Reconnect now" from the banner, and when the browser says it is online again.
  reconnectNow() {
    if (this.stopped || this.isOpen) return;
    clearTimeout(this.timer);
    if (this.ws) return;
    this.connect();
  }
}
