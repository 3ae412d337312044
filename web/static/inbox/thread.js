// The open conversation: header with actions, the messages and notes, the
// visitor's typing, and the reply box.
import { h, clear, channelBadge, icon } from "./dom.js";
import { t } from "./i18n.js";
import { api } from "./api.js";
import { state, channelName } from "./state.js";
import { renderItem, dayDivider } from "./messages.js";
import { slaBadge, priorityBadge } from "./sla.js";
import { agentPresence } from "./presence.js";

const TYPING_SHOW_MS = 5000;
const TYPING_SEND_MS = 3000;

let els = null;
let cb = null;
const th = {
  conv: null,
  items: new Map(), // "m:1" / "n:1" -> {kind, data}
  htmlOpen: new Set(),
  loadToken: 0,
  noteMode: false,
  sending: false,
  typingTimer: null,
  lastTypingSent: 0,
};

export function mountThread(root, callbacks) {
  cb = callbacks;
  const header = h("div", { class: "thread-head" });
  const scroller = h("div", { class: "messages", id: "messages", "aria-live": "polite" });
  const typing = h("div", { class: "typing", hidden: true });
  const input = h("textarea", { id: "reply", class: "reply-input", rows: 2 });
  const noteBtn = h("button", { type: "button", class: "btn btn-toggle", id: "note-toggle", "aria-pressed": "false" });
  const sendBtn = h("button", { type: "submit", class: "btn btn-primary", id: "send" });
  const via = h("span", { class: "reply-via" });
  const error = h("div", { class: "reply-error", role: "alert", hidden: true });
  const form = h("form", { class: "composer" },
    error, input, h("div", { class: "composer-bar" }, noteBtn, via, sendBtn));
  const empty = h("div", { class: "thread-empty" });
  const body = h("div", { class: "thread-body", hidden: true }, header, scroller, typing, form);
  clear(root, empty, body);
  els = { root, header, scroller, typing, input, noteBtn, sendBtn, via, error, form, empty, body };

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener("input", () => {
    if (th.noteMode || !th.conv || !input.value) return;
    const now = Date.now();
    if (now - th.lastTypingSent > TYPING_SEND_MS) {
      th.lastTypingSent = now;
      cb.onTyping(th.conv.id);
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  noteBtn.addEventListener("click", () => toggleNote());
  renderStatic();
}

export function renderStatic() {
  if (!els) return;
  clear(els.empty, h("div", { class: "thread-empty-title" }, t("thread.none")),
    h("div", { class: "muted" }, t("thread.none_hint")));
  els.noteBtn.textContent = t("reply.note");
  els.noteBtn.setAttribute("aria-pressed", String(th.noteMode));
  els.sendBtn.textContent = th.noteMode ? t("reply.add_note") : t("reply.send");
  els.input.placeholder = th.noteMode ? t("reply.note_placeholder") : t("reply.placeholder");
  els.form.classList.toggle("note-mode", th.noteMode);
  els.via.textContent = th.conv && !th.noteMode ? t("reply.via", { channel: channelName(th.conv) }) : "";
  if (th.conv) {
    renderHeader();
    renderItems(false);
  }
}

export function currentConversation() {
  return th.conv;
}

export async function openThread(conv) {
  const token = ++th.loadToken;
  const switching = th.conv?.id !== conv.id;
  th.conv = conv;
  if (switching) {
    th.items.clear();
    th.htmlOpen.clear();
    hideTyping();
    els.error.hidden = true;
  }
  els.empty.hidden = true;
  els.body.hidden = false;
  renderStatic();
  const [messages, notes] = await Promise.all([api.messages(conv.id), api.notes(conv.id).catch(() => [])]);
  if (token !== th.loadToken) return;
  for (const m of messages) th.items.set(`m:${m.id}`, { kind: "message", data: m });
  for (const n of notes) th.items.set(`n:${n.id}`, { kind: "note", data: n });
  renderItems(true);
}

export function closeThread() {
  th.loadToken++;
  th.conv = null;
  th.items.clear();
  els.body.hidden = true;
  els.empty.hidden = false;
}

export function setConversation(conv) {
  if (!th.conv || th.conv.id !== conv.id) return;
  th.conv = conv;
  renderHeader();
  els.via.textContent = th.noteMode ? "" : t("reply.via", { channel: channelName(conv) });
}

export function addMessage(m) {
  if (!th.conv || m.conversation_id !== th.conv.id) return;
  // The reply's own HTTP answer can arrive after the live events that moved it on
  // (queued → failed): a message already shown is only ever changed by updateMessage.
  if (th.items.has(`m:${m.id}`)) return;
  th.items.set(`m:${m.id}`, { kind: "message", data: m });
  if (m.direction === "in") hideTyping();
  renderItems();
}

export function updateMessage(m) {
  if (!th.conv || m.conversation_id !== th.conv.id) return;
  const key = `m:${m.id}`;
  const prev = th.items.get(key);
  th.items.set(key, { kind: "message", data: prev ? { ...prev.data, ...m } : m });
  renderItems();
}

export function addNote(n) {
  if (!th.conv || n.conversation_id !== th.conv.id) return;
  th.items.set(`n:${n.id}`, { kind: "note", data: n });
  renderItems();
}

export function showTyping(conversationId, name) {
  if (!th.conv || th.conv.id !== conversationId) return;
  els.typing.textContent = t("thread.typing", { name: name || th.conv.client?.name || t("thread.visitor") });
  els.typing.hidden = false;
  clearTimeout(th.typingTimer);
  th.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
}

function hideTyping() {
  clearTimeout(th.typingTimer);
  if (els) els.typing.hidden = true;
}

export function focusReply() {
  if (!th.conv) return;
  els.input.focus();
}

export function toggleNote(force) {
  th.noteMode = typeof force === "boolean" ? force : !th.noteMode;
  renderStatic();
  els.input.focus();
}

async function send() {
  const text = els.input.value.trim();
  if (!text || !th.conv || th.sending) return;
  th.sending = true;
  els.sendBtn.disabled = true;
  els.error.hidden = true;
  const convId = th.conv.id;
  els.input.value = "";
  th.lastTypingSent = 0;
  try {
    if (th.noteMode) addNote(await api.note(convId, text));
    else addMessage(await api.reply(convId, text));
  } catch (err) {
    // Give the text back so nothing typed is lost.
    if (th.conv?.id === convId && !els.input.value) els.input.value = text;
    els.error.textContent = t("error.generic", { error: err.message });
    els.error.hidden = false;
  } finally {
    th.sending = false;
    els.sendBtn.disabled = false;
  }
}

async function retry(id) {
  try {
    const m = await api.retry(id);
    // Live events may have moved it on (queued → sent) before this answer arrived: keep theirs.
    if (th.items.get(`m:${id}`)?.data.status === "failed") updateMessage(m);
  } catch (err) {
    cb.onError(err);
  }
}

function renderItems(forceBottom = false) {
  const sc = els.scroller;
  const nearBottom = forceBottom || sc.scrollHeight - sc.scrollTop - sc.clientHeight < 80;
  const items = [...th.items.values()].sort((a, b) =>
    Date.parse(a.data.created_at) - Date.parse(b.data.created_at) || a.data.id - b.data.id);
  const ctx = {
    me: state.me,
    onRetry: retry,
    htmlOpen: th.htmlOpen,
    onToggleHtml: (id) => {
      if (th.htmlOpen.has(id)) th.htmlOpen.delete(id);
      else th.htmlOpen.add(id);
      renderItems();
    },
  };
  const nodes = [];
  let lastDay = null;
  for (const item of items) {
    const day = new Date(item.data.created_at).toDateString();
    if (day !== lastDay) nodes.push(dayDivider(item.data.created_at));
    lastDay = day;
    nodes.push(renderItem(item, ctx));
  }
  if (!nodes.length) nodes.push(h("div", { class: "empty" }, t("thread.empty")));
  clear(sc, nodes);
  if (nearBottom) sc.scrollTop = sc.scrollHeight;
}

function snoozeUntil(choice) {
  const d = new Date();
  if (choice === "1h") d.setHours(d.getHours() + 1);
  else if (choice === "4h") d.setHours(d.getHours() + 4);
  else if (choice === "week") d.setDate(d.getDate() + 7);
  else {
    d.setDate(d.getDate() + 1);
    d.setHours(9, 0, 0, 0);
  }
  return d.toISOString();
}

function renderHeader() {
  const c = th.conv;
  const mine = c.assignee && c.assignee.id === state.me?.id;
  const snooze = h("select", { class: "select select-btn", id: "snooze", "aria-label": t("thread.snooze") },
    h("option", { value: "" }, t("thread.snooze")),
    ["1h", "4h", "tomorrow", "week"].map((k) => h("option", { value: k }, t(`thread.snooze_${k}`))));
  snooze.addEventListener("change", () => {
    if (snooze.value) cb.onAction("status", { status: "snoozed", snoozed_until: snoozeUntil(snooze.value) });
  });
  const resolved = c.status === "resolved";
  clear(els.header,
    h("button", { type: "button", class: "btn btn-icon only-phone", id: "back", "aria-label": t("thread.back"), onclick: cb.onBack }, icon("back")),
    h("div", { class: "thread-title" },
      h("button", { type: "button", class: "client-link", onclick: cb.onCard, title: t("thread.card") },
        c.client?.name || `#${c.client_id}`),
      h("div", { class: "thread-sub" },
        channelBadge(c.channel?.kind, c.channel?.name),
        h("span", { class: `pill st-${c.status}`, id: "conv-status" }, t(`status.${c.status}`)),
        priorityBadge(c),
        slaBadge(c),
        h("span", { class: "muted", id: "conv-assignee" },
          c.assignee ? t("thread.assigned_to", { name: c.assignee.name }) : t("thread.unassigned")),
        c.subject ? h("span", { class: "muted subject" }, c.subject) : null)),
    h("button", { type: "button", class: "btn btn-icon card-toggle", id: "card-toggle", "aria-label": t("thread.card"), title: t("thread.card"), onclick: cb.onCard }, icon("person")),
    h("div", { class: "thread-actions" },
      mine
        ? h("button", { type: "button", class: "btn", id: "unassign", onclick: () => cb.onAction("assign", null) }, t("thread.unassign"))
        : h("button", { type: "button", class: "btn", id: "assign-me", onclick: () => cb.onAction("assign", state.me.id) }, t("thread.assign_me")),
      assignSelect(c),
      c.status !== "pending" && !resolved
        ? h("button", { type: "button", class: "btn", id: "pending", onclick: () => cb.onAction("status", { status: "pending" }) }, t("thread.pending"))
        : null,
      resolved ? null : snooze,
      resolved
        ? h("button", { type: "button", class: "btn", id: "reopen", onclick: () => cb.onAction("status", { status: "open" }) }, t("thread.reopen"))
        : h("button", { type: "button", class: "btn btn-primary", id: "resolve", onclick: () => cb.onAction("status", { status: "resolved" }) }, `✓ ${t("thread.resolve")}`)));
}

// Assign to a colleague; each shows their presence (GET /presence, then live agent.presence).
function assignSelect(c) {
  const others = state.agents.filter((a) => a.id !== state.me?.id);
  if (!others.length) return null;
  const sel = h("select", { class: "select select-btn", id: "assign-to", "aria-label": t("thread.assign_to") },
    h("option", { value: "" }, t("thread.assign_to")),
    others.map((a) => {
      const status = agentPresence(a.id);
      return h("option", {
        value: String(a.id), dataset: { presence: status }, selected: c.assignee?.id === a.id,
      }, `${status === "online" ? "●" : status === "away" ? "◐" : "○"} ${a.name} — ${t(`presence.${status}`)}`);
    }));
  sel.addEventListener("change", () => {
    if (sel.value) cb.onAction("assign", Number(sel.value));
  });
  return sel;
}

// Repaint the header (presence of colleagues changed).
export function refreshHeader() {
  if (th.conv) renderHeader();
}
