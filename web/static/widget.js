/* omnihub site chat widget. One self-contained script, no dependencies:
 *   <script src="https://HOST/widget.js" data-channel="ID" async></script>
 * Renders inside a shadow root so the host page's CSS cannot reach it (and
 * ours cannot leak out). Protocol: docs/api.md, "/ws/widget". All text from
 * the network is inserted with textContent. */
(() => {
  "use strict";
  const script = document.currentScript || document.querySelector('script[src*="widget.js"][data-channel]');
  if (!script || window.__omnihubWidget) return;
  window.__omnihubWidget = true;

  const channel = script.dataset.channel;
  const serverOrigin = new URL(script.src, location.href).origin;
  const wsUrl = `${serverOrigin.replace(/^http/, "ws")}/ws/widget`;
  const KEY = `omnihub:${serverOrigin}:${channel}:`;
  const TYPING_SEND_MS = 3000;
  const TYPING_SHOW_MS = 4000;

  const lang = (document.documentElement.lang || navigator.language || "en").toLowerCase().startsWith("ru") ? "ru" : "en";
  const STRINGS = {
    en: {
      open: "Open chat", close: "Close chat", title: "Chat with us", subtitle: "We usually reply in a few minutes",
      online: "Online", connecting: "Connecting…", offline: "Offline — your messages will be sent when you're back online",
      unavailable: "Chat is unavailable on this page", placeholder: "Write a message…", send: "Send",
      sending: "sending…", waiting: "will be sent when online", sent: "sent", typing: "{name} is typing…",
      agent: "Support", you: "You", empty: "Hi! Ask us anything — we're here to help.",
      prechat: "Introduce yourself (optional)", name: "Your name", email: "E-mail", save: "Save", skip: "Skip",
      thanks: "Thanks, {name}! We'll know it's you.", limited: "Too many messages — please wait a moment",
    },
    ru: {
      open: "Открыть чат", close: "Закрыть чат", title: "Напишите нам", subtitle: "Обычно отвечаем за несколько минут",
      online: "В сети", connecting: "Подключение…", offline: "Нет связи — сообщения уйдут, когда связь вернётся",
      unavailable: "Чат недоступен на этой странице", placeholder: "Напишите сообщение…", send: "Отправить",
      sending: "отправляется…", waiting: "отправится при подключении", sent: "отправлено", typing: "{name} печатает…",
      agent: "Поддержка", you: "Вы", empty: "Здравствуйте! Задайте вопрос — мы поможем.",
      prechat: "Представьтесь (необязательно)", name: "Ваше имя", email: "E-mail", save: "Сохранить", skip: "Пропустить",
      thanks: "Спасибо, {name}! Теперь мы знаем, что это вы.", limited: "Слишком много сообщений — подождите немного",
    },
  };
  const t = (k, vars = {}) => STRINGS[lang][k].replace(/\{(\w+)\}/g, (_, n) => String(vars[n] ?? ""));

  // ---- storage: the visitor token, the offline queue, the pending identify ----
  const store = {
    get(k, fallback = null) {
      try {
        const v = localStorage.getItem(KEY + k);
        return v === null ? fallback : JSON.parse(v);
      } catch {
        return fallback;
      }
    },
    set(k, v) {
      try { localStorage.setItem(KEY + k, JSON.stringify(v)); } catch { /* storage full or blocked */ }
    },
    del(k) {
      try { localStorage.removeItem(KEY + k); } catch { /* blocked */ }
    },
  };

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // randomUUID needs a secure context; a plain-http page still has getRandomValues.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // ---- DOM ----
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  const CSS = `
    :host { all: initial; position: fixed; z-index: 2147483000; right: 0; bottom: 0;
      font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1b1b1f; }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    button, input, textarea { font: inherit; color: inherit; }
    .bubble { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%; border: 0;
      background: var(--accent); color: #fff; cursor: pointer; box-shadow: 0 6px 20px rgba(0,0,0,.2);
      display: flex; align-items: center; justify-content: center; transition: transform .15s; }
    .bubble:hover { transform: scale(1.05); }
    .bubble svg { width: 26px; height: 26px; fill: currentColor; }
    .badge { position: absolute; top: -2px; right: -2px; min-width: 20px; height: 20px; padding: 0 5px; border-radius: 10px;
      background: #e5484d; color: #fff; font-size: 11px; font-weight: 700; display: flex; align-items: center; justify-content: center;
      border: 2px solid #fff; }
    .panel { position: fixed; right: 20px; bottom: 88px; width: 370px; height: min(580px, calc(100vh - 110px));
      background: #fff; border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.22); display: flex; flex-direction: column;
      overflow: hidden; }
    .head { flex: none; background: var(--accent); color: #fff; padding: 14px 16px; display: flex; align-items: flex-start; gap: 10px; }
    .head-text { flex: 1; min-width: 0; }
    .title { font-weight: 700; font-size: 16px; }
    .sub { font-size: 12px; opacity: .85; }
    .state { font-size: 12px; margin-top: 4px; display: flex; align-items: center; gap: 6px; }
    .dot { width: 7px; height: 7px; border-radius: 50%; background: #9ae6b4; flex: none; }
    .state[data-state="connecting"] .dot { background: #fde68a; }
    .state[data-state="offline"] .dot, .state[data-state="unavailable"] .dot { background: #fca5a5; }
    .x { border: 0; background: rgba(255,255,255,.15); color: #fff; width: 30px; height: 30px; border-radius: 8px; cursor: pointer;
      font-size: 18px; line-height: 1; flex: none; }
    .x:hover { background: rgba(255,255,255,.28); }
    .log { flex: 1; overflow-y: auto; padding: 14px; display: flex; flex-direction: column; gap: 8px; background: #f7f7f9; }
    .hello { align-self: center; text-align: center; color: #6b6b76; font-size: 13px; padding: 8px 12px; }
    .row { display: flex; flex-direction: column; max-width: 82%; gap: 2px; }
    .row.mine { align-self: flex-end; align-items: flex-end; }
    .row.theirs { align-self: flex-start; }
    .who { font-size: 11px; color: #6b6b76; font-weight: 600; padding: 0 4px; }
    .msg { padding: 8px 12px; border-radius: 14px; white-space: pre-wrap; overflow-wrap: anywhere; }
    .mine .msg { background: var(--accent); color: #fff; border-bottom-right-radius: 4px; }
    .theirs .msg { background: #fff; border: 1px solid #e6e6ea; border-bottom-left-radius: 4px; }
    .row.pending .msg { opacity: .65; }
    .meta { font-size: 11px; color: #9a9aa5; padding: 0 4px; }
    .files { display: flex; flex-direction: column; gap: 4px; align-items: flex-start; }
    .file { display: inline-flex; gap: 8px; align-items: baseline; padding: 7px 11px; border-radius: 12px; background: #fff;
      border: 1px solid #e6e6ea; color: var(--accent); text-decoration: none; max-width: 100%; overflow-wrap: anywhere; }
    .file:hover .file-name { text-decoration: underline; }
    .file-size { color: #9a9aa5; font-size: 11px; flex: none; }
    .file:has(.pic) { padding: 0; border: 0; background: none; }
    .pic { display: block; max-width: 220px; max-height: 180px; border-radius: 12px; border: 1px solid #e6e6ea; }
    .typing { flex: none; padding: 4px 16px; font-size: 12px; color: #6b6b76; font-style: italic; background: #f7f7f9; }
    .note { flex: none; padding: 6px 14px; font-size: 12px; background: #fff4d6; color: #7a5a00; }
    .prechat { background: #fff; border: 1px solid #e6e6ea; border-radius: 12px; padding: 12px; display: flex; flex-direction: column; gap: 8px; }
    .prechat-title { font-weight: 600; font-size: 13px; }
    .prechat input { border: 1px solid #d4d4da; border-radius: 8px; padding: 8px 10px; width: 100%; background: #fff; }
    .prechat-actions { display: flex; gap: 8px; justify-content: flex-end; }
    .btn { border: 1px solid #d4d4da; background: #fff; border-radius: 8px; padding: 6px 12px; cursor: pointer; font-weight: 500; }
    .btn.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
    .compose { flex: none; display: flex; gap: 8px; align-items: flex-end; padding: 10px; border-top: 1px solid #e6e6ea; background: #fff; }
    .compose textarea { flex: 1; border: 1px solid #d4d4da; border-radius: 10px; padding: 9px 11px; resize: none; height: 40px;
      max-height: 120px; background: #fff; }
    input:focus, textarea:focus { outline: none; border-color: var(--accent); box-shadow: 0 0 0 3px var(--accent-soft); }
    .send { flex: none; width: 40px; height: 40px; border-radius: 10px; border: 0; background: var(--accent); color: #fff; cursor: pointer;
      display: flex; align-items: center; justify-content: center; }
    .send svg { width: 18px; height: 18px; fill: currentColor; }
    .send:disabled { opacity: .5; cursor: default; }
    .brand { flex: none; text-align: center; font-size: 10px; color: #9a9aa5; padding: 0 0 6px; background: #fff; }
    @media (max-width: 480px) {
      .panel { inset: 0; width: 100%; height: 100%; border-radius: 0; right: 0; bottom: 0; }
      :host([data-open]) .bubble { display: none; }
    }
  `;

  function svg(path) {
    const ns = "http://www.w3.org/2000/svg";
    const s = document.createElementNS(ns, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    s.append(p);
    return s;
  }
  const ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z";
  const ICON_SEND = "M3 20.5 21 12 3 3.5 3 10l12 2-12 2z";
  const ICON_DOWN = "M5.6 8.6 12 15l6.4-6.4L20 10l-8 8-8-8z";

  const host = document.createElement("div");
  host.id = "omnihub-widget";
  const root = host.attachShadow({ mode: "open" });
  const accent = /^#[0-9a-f]{3,8}$/i.test(script.dataset.color || "") ? script.dataset.color : "#4f46e5";
  const css = `:host { --accent: ${accent}; --accent-soft: ${accent}22; }\n${CSS}`;
  // A constructed stylesheet is not inline style as far as the host page's
  // Content-Security-Policy is concerned, so a strict site needs no exception.
  let style = null;
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    root.adoptedStyleSheets = [sheet];
  } catch {
    style = el("style");
    style.textContent = css;
  }

  const bubble = el("button", "bubble");
  bubble.type = "button";
  bubble.setAttribute("aria-label", t("open"));
  const bubbleIcon = svg(ICON_CHAT);
  bubble.append(bubbleIcon);
  const badge = el("span", "badge");
  badge.hidden = true;
  bubble.append(badge);

  const panel = el("div", "panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", script.dataset.title || t("title"));
  panel.hidden = true;
  const head = el("div", "head");
  const headText = el("div", "head-text");
  const stateLine = el("div", "state");
  const stateText = el("span", "state-text", t("connecting"));
  stateLine.append(el("span", "dot"), stateText);
  headText.append(el("div", "title", script.dataset.title || t("title")), el("div", "sub", t("subtitle")), stateLine);
  const closeBtn = el("button", "x", "×");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", t("close"));
  head.append(headText, closeBtn);
  const log = el("div", "log");
  log.setAttribute("aria-live", "polite");
  const typingLine = el("div", "typing");
  typingLine.hidden = true;
  const noteLine = el("div", "note");
  noteLine.hidden = true;
  const form = el("form", "compose");
  const input = el("textarea");
  input.rows = 1;
  input.maxLength = 10000;
  input.placeholder = t("placeholder");
  input.setAttribute("aria-label", t("placeholder"));
  const sendBtn = el("button", "send");
  sendBtn.type = "submit";
  sendBtn.setAttribute("aria-label", t("send"));
  sendBtn.append(svg(ICON_SEND));
  form.append(input, sendBtn);
  panel.append(head, log, typingLine, noteLine, form, el("div", "brand", "omnihub"));
  if (style) root.append(style);
  root.append(panel, bubble);

  // ---- state ----
  const st = {
    token: store.get("token"),
    messages: new Map(), // server id -> WidgetMessage
    queue: store.get("queue", []), // [{client_msg_id, text, created_at}] not yet acked
    ws: null,
    connState: "idle",
    attempt: 0,
    retryTimer: null,
    dead: false,
    unread: 0,
    lastTypingSent: 0,
    typingTimer: null,
    noteTimer: null,
    sessionSeen: false,
    retries: new Map(), // client_msg_id -> refusals so far
  };

  const showPrechat = () => script.dataset.prechat !== "off" && !store.get("identified") && !store.get("prechat_done");

  function render() {
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    const rows = [];
    const msgs = [...st.messages.values()].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at) || a.id - b.id);
    if (!msgs.length && !st.queue.length) rows.push(el("div", "hello", t("empty")));
    if (showPrechat()) rows.push(prechatForm());
    let prevWho = null;
    for (const m of msgs) {
      const who = m.direction === "in" ? null : m.author_name || t("agent");
      // Name the agent once per run of their messages, as chat apps do.
      const r = row(m.direction === "in", m.text, who === prevWho ? null : who, time(m.created_at), false, m.id);
      if (m.attachments?.length) {
        r.insertBefore(files(m.attachments), r.querySelector(".meta"));
        if (!m.text) r.querySelector(".msg").remove(); // files alone: no empty bubble
      }
      rows.push(r);
      prevWho = who;
    }
    const online = st.connState === "open";
    for (const q of st.queue) rows.push(row(true, q.text, null, online ? t("sending") : t("waiting"), true, null));
    log.replaceChildren(...rows);
    if (nearBottom || rows.length <= 2) log.scrollTop = log.scrollHeight;
  }

  function row(mine, text, who, meta, pending, id) {
    const r = el("div", `row ${mine ? "mine" : "theirs"}${pending ? " pending" : ""}`);
    if (id !== null) r.dataset.id = String(id);
    if (who) r.append(el("div", "who", who));
    r.append(el("div", "msg", text), el("div", "meta", meta));
    return r;
  }

  // Files an agent sent: pictures in place, anything else as a download link. Only our own
  // signed /widget/files/ URLs are followed.
  const PICTURES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
  function files(list) {
    const box = el("div", "files");
    for (const f of list) {
      if (!String(f.url || "").startsWith("/widget/files/")) continue;
      const a = el("a", "file");
      a.href = serverOrigin + f.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      if (PICTURES.includes(f.content_type)) {
        const img = el("img", "pic");
        img.alt = f.filename || "";
        img.src = a.href;
        a.append(img);
      } else {
        a.append(el("span", "file-name", f.filename || "file"), el("span", "file-size", size(f.size)));
      }
      box.append(a);
    }
    return box;
  }

  function size(bytes) {
    if (typeof bytes !== "number") return "";
    return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${Math.round(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
  }

  function time(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  }

  let prechatNode = null;
  function prechatForm() {
    if (prechatNode) return prechatNode;
    const f = el("form", "prechat");
    const name = el("input");
    name.name = "name";
    name.placeholder = t("name");
    name.autocomplete = "name";
    const email = el("input");
    email.name = "email";
    email.type = "email";
    email.placeholder = t("email");
    email.autocomplete = "email";
    const skip = el("button", "btn", t("skip"));
    skip.type = "button";
    const save = el("button", "btn primary", t("save"));
    save.type = "submit";
    const actions = el("div", "prechat-actions");
    actions.append(skip, save);
    f.append(el("div", "prechat-title", t("prechat")), name, email, actions);
    skip.addEventListener("click", () => {
      store.set("prechat_done", true);
      render();
      input.focus();
    });
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      const who = { name: name.value.trim(), email: email.value.trim() };
      if (!who.name && !who.email) return;
      if (who.email && !email.checkValidity()) return;
      store.set("identify", who);
      store.set("prechat_done", true);
      flashNote(t("thanks", { name: who.name || who.email }));
      sendIdentify();
      render();
      input.focus();
    });
    prechatNode = f;
    return f;
  }

  function flashNote(text, ms = 5000) {
    noteLine.textContent = text;
    noteLine.hidden = false;
    clearTimeout(st.noteTimer);
    st.noteTimer = setTimeout(() => { noteLine.hidden = true; }, ms);
  }

  function setConn(state) {
    st.connState = state;
    stateLine.dataset.state = state;
    stateText.textContent = state === "open" ? t("online") : state === "unavailable" ? t("unavailable") : state === "offline" ? t("offline") : t("connecting");
    render();
  }

  // ---- websocket ----
  function connect() {
    if (st.dead || st.ws) return;
    clearTimeout(st.retryTimer);
    const params = new URLSearchParams({ channel });
    if (st.token) params.set("token", st.token);
    const ws = new WebSocket(`${wsUrl}?${params}`);
    st.ws = ws;
    if (st.connState !== "offline") setConn("connecting");
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      onServer(m);
    };
    ws.onclose = (e) => {
      if (st.ws !== ws) return;
      st.ws = null;
      st.sessionSeen = false;
      if (e.code === 4403 || e.code === 4404) {
        st.dead = true;
        setConn("unavailable");
        return;
      }
      if (e.code === 4401) {
        // The token is no longer valid (rotated secret, deleted visitor): start afresh.
        st.token = null;
        store.del("token");
        st.attempt = 0;
      }
      if (e.code === 4429) flashNote(t("limited"));
      const base = e.code === 4429 ? 10000 : 1000;
      const delay = e.code === 4401 ? 0 : Math.min(30000, base * 2 ** st.attempt) * (0.75 + Math.random() * 0.5);
      st.attempt += 1;
      setConn("offline");
      st.retryTimer = setTimeout(connect, delay);
    };
  }

  function wsSend(obj) {
    if (st.ws && st.ws.readyState === WebSocket.OPEN && st.sessionSeen) {
      st.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  function onServer(m) {
    switch (m.type) {
      case "session":
        st.sessionSeen = true;
        st.attempt = 0;
        if (m.token) {
          st.token = m.token;
          store.set("token", m.token);
        }
        st.messages.clear();
        for (const msg of m.messages || []) st.messages.set(msg.id, msg);
        setConn("open");
        sendIdentify();
        for (const q of st.queue) wsSend({ type: "message", client_msg_id: q.client_msg_id, text: q.text });
        break;
      case "ack":
        st.queue = st.queue.filter((q) => q.client_msg_id !== m.client_msg_id);
        store.set("queue", st.queue);
        if (m.message) st.messages.set(m.message.id, m.message);
        render();
        break;
      case "message":
        if (m.message) {
          const isNew = !st.messages.has(m.message.id);
          st.messages.set(m.message.id, m.message);
          if (m.message.direction === "out") {
            typingLine.hidden = true;
            if (isNew && panel.hidden) bumpUnread();
          }
          render();
        }
        break;
      case "typing":
        typingLine.textContent = t("typing", { name: m.agent || t("agent") });
        typingLine.hidden = false;
        clearTimeout(st.typingTimer);
        st.typingTimer = setTimeout(() => { typingLine.hidden = true; }, TYPING_SHOW_MS);
        break;
      case "identified":
        store.set("identified", true);
        store.del("identify");
        break;
      case "error":
        flashNote(String(m.reason || "error"));
        if (m.client_msg_id) retryLater(m.client_msg_id);
        break;
      default:
        break;
    }
  }

  // A refused message (rate limit, too long) is tried again a few times, then
  // dropped with the server's reason left on screen.
  function retryLater(id) {
    const n = (st.retries.get(id) || 0) + 1;
    st.retries.set(id, n);
    if (n > 3) {
      st.queue = st.queue.filter((q) => q.client_msg_id !== id);
      store.set("queue", st.queue);
      render();
      return;
    }
    setTimeout(() => {
      const q = st.queue.find((x) => x.client_msg_id === id);
      if (q) wsSend({ type: "message", client_msg_id: q.client_msg_id, text: q.text });
    }, 2000 * n);
  }

  function sendIdentify() {
    const who = store.get("identify");
    if (who) wsSend({ type: "identify", name: who.name, email: who.email });
  }

  function bumpUnread() {
    st.unread += 1;
    badge.textContent = String(st.unread);
    badge.hidden = false;
  }

  // ---- actions ----
  function send() {
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    autosize();
    st.lastTypingSent = 0; // a message ends the burst: the next keystroke is news again
    // Queued first, so a reload or a dropped socket before the ack cannot lose
    // it; the client_msg_id makes a resend after an unseen ack store nothing new.
    const item = { client_msg_id: uuid(), text, created_at: new Date().toISOString() };
    st.queue.push(item);
    store.set("queue", st.queue);
    if (showPrechat()) store.set("prechat_done", true);
    render();
    log.scrollTop = log.scrollHeight;
    if (!wsSend({ type: "message", client_msg_id: item.client_msg_id, text })) connect();
  }

  function autosize() {
    input.style.height = "40px";
    input.style.height = `${Math.min(120, input.scrollHeight + 2)}px`;
  }

  function setOpen(open) {
    panel.hidden = !open;
    if (open) host.setAttribute("data-open", "");
    else host.removeAttribute("data-open");
    bubble.setAttribute("aria-label", open ? t("close") : t("open"));
    bubbleIcon.firstChild.setAttribute("d", open ? ICON_DOWN : ICON_CHAT);
    try { sessionStorage.setItem(`${KEY}open`, open ? "1" : ""); } catch { /* blocked */ }
    if (open) {
      st.unread = 0;
      badge.hidden = true;
      connect();
      render();
      log.scrollTop = log.scrollHeight;
      if (window.matchMedia("(min-width: 481px)").matches) input.focus();
    }
  }

  bubble.addEventListener("click", () => setOpen(panel.hidden));
  closeBtn.addEventListener("click", () => setOpen(false));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === "Escape") {
      setOpen(false);
    }
  });
  input.addEventListener("input", () => {
    autosize();
    const now = Date.now();
    if (input.value && now - st.lastTypingSent > TYPING_SEND_MS && wsSend({ type: "typing" })) st.lastTypingSent = now;
  });
  window.addEventListener("online", () => {
    if (!st.ws && !st.dead && (st.token || st.queue.length)) {
      st.attempt = 0;
      connect();
    }
  });

  function mount() {
    document.body.append(host);
    render();
    // A returning visitor (or one with unsent messages) connects at once, so
    // replies arrive with the panel closed; a new one only when they open it.
    let wasOpen = false;
    try { wasOpen = sessionStorage.getItem(`${KEY}open`) === "1"; } catch { /* blocked */ }
    if (wasOpen) setOpen(true);
    else if (st.token || st.queue.length) connect();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
