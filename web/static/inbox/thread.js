// The open conversation: header with actions, the messages and notes (a long
// thread loads its newest page first), the visitor's typing, and the reply box
// (compose.js).
import { h, clear, channelBadge, icon } from "./dom.js";
import { t } from "./i18n.js";
import { api } from "./api.js";
import { state } from "./state.js";
import { renderItem, dayDivider } from "./messages.js";
import { slaBadge, priorityBadge } from "./sla.js";
import { agentPresence } from "./presence.js";
import { mountComposer, setComposerConversation, renderComposer, focusComposer, toggleNote as toggleComposerNote } from "./compose.js";

const TYPING_SHOW_MS = 5000;
const PAGE = 100; // messages per page of a long thread

let els = null;
let cb = null;
const th = {
  conv: null,
  items: new Map(), // "m:1" / "n:1" -> {kind, data}
  htmlOpen: new Set(),
  quotedOpen: new Set(),
  loadToken: 0,
  olderCursor: null, // older messages exist: next_cursor of GET messages?order=desc
  oldestId: null, // the oldest message loaded
  loadingOlder: false,
  typingTimer: null,
};

export function mountThread(root, callbacks) {
  cb = callbacks;
  const header = h("div", { class: "thread-head" });
  const scroller = h("div", { class: "messages", id: "messages", "aria-live": "polite" });
  const typing = h("div", { class: "typing", hidden: true });
  const empty = h("div", { class: "thread-empty" });
  const body = h("div", { class: "thread-body", hidden: true }, header, scroller, typing);
  const form = mountComposer(body, {
    onTyping: (id) => cb.onTyping(id),
    onMessage: (m) => addMessage(m),
    onNote: (n) => addNote(n),
  });
  body.append(form);
  clear(root, empty, body);
  els = { root, header, scroller, typing, empty, body };
  renderStatic();
}

export function renderStatic() {
  if (!els) return;
  clear(els.empty, h("div", { class: "thread-empty-title" }, t("thread.none")),
    h("div", { class: "muted" }, t("thread.none_hint")));
  renderComposer();
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
    th.quotedOpen.clear();
    th.olderCursor = null;
    th.oldestId = null;
    hideTyping();
  }
  setComposerConversation(conv);
  els.empty.hidden = true;
  els.body.hidden = false;
  renderStatic();
  const [page, notes] = await Promise.all([api.messagesBack(conv.id, null, PAGE), api.notes(conv.id).catch(() => [])]);
  if (token !== th.loadToken) return;
  addPage(page);
  for (const n of notes) th.items.set(`n:${n.id}`, { kind: "note", data: n });
  renderItems(true);
}

function addPage(page) {
  for (const m of page.items) th.items.set(`m:${m.id}`, { kind: "message", data: m });
  if (page.items.length) th.oldestId = Math.min(th.oldestId ?? Infinity, ...page.items.map((m) => m.id));
  th.olderCursor = page.next_cursor;
}

async function loadEarlier() {
  if (!th.conv || !th.olderCursor || th.loadingOlder) return;
  const token = th.loadToken;
  th.loadingOlder = true;
  renderItems();
  try {
    const page = await api.messagesBack(th.conv.id, th.olderCursor, PAGE);
    if (token !== th.loadToken) return;
    addPage(page);
  } catch (err) {
    cb.onError(err);
  } finally {
    th.loadingOlder = false;
  }
  if (token !== th.loadToken) return;
  // Keep the message the agent was reading where it was: the new ones go above it.
  const sc = els.scroller;
  const fromBottom = sc.scrollHeight - sc.scrollTop;
  renderItems();
  sc.scrollTop = sc.scrollHeight - fromBottom;
}

// A message older than the loaded page (an old reply's status changing) stays unloaded.
function beforeLoaded(m) {
  return th.olderCursor !== null && th.oldestId !== null && m.id < th.oldestId;
}

export function closeThread() {
  th.loadToken++;
  th.conv = null;
  th.items.clear();
  setComposerConversation(null);
  els.body.hidden = true;
  els.empty.hidden = false;
}

export function setConversation(conv) {
  if (!th.conv || th.conv.id !== conv.id) return;
  th.conv = conv;
  renderHeader();
  setComposerConversation(conv);
}

export function addMessage(m) {
  if (!th.conv || m.conversation_id !== th.conv.id) return;
  // The reply's own HTTP answer can arrive after the live events that moved it on
  // (queued → failed): a message already shown is only ever changed by updateMessage.
  if (th.items.has(`m:${m.id}`) || beforeLoaded(m)) return;
  th.items.set(`m:${m.id}`, { kind: "message", data: m });
  if (m.direction === "in") hideTyping();
  renderItems();
}

export function updateMessage(m) {
  if (!th.conv || m.conversation_id !== th.conv.id) return;
  const key = `m:${m.id}`;
  const prev = th.items.get(key);
  if (!prev && beforeLoaded(m)) return;
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
  focusComposer();
}

export function toggleNote(force) {
  toggleComposerNote(force);
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
  let items = [...th.items.values()].sort((a, b) =>
    Date.parse(a.data.created_at) - Date.parse(b.data.created_at) || a.data.id - b.data.id);
  if (th.olderCursor) {
    // Notes older than the loaded messages come back with their page, in their place.
    const first = items.find((i) => i.kind === "message");
    if (first) items = items.slice(items.indexOf(first));
  }
  const toggle = (set) => (id) => {
    if (set.has(id)) set.delete(id);
    else set.add(id);
    renderItems();
  };
  const ctx = {
    me: state.me,
    onRetry: retry,
    htmlOpen: th.htmlOpen,
    onToggleHtml: toggle(th.htmlOpen),
    quotedOpen: th.quotedOpen,
    onToggleQuoted: toggle(th.quotedOpen),
  };
  const nodes = [];
  if (th.olderCursor) {
    nodes.push(h("button", {
      type: "button", class: "btn btn-sm load-earlier", id: "load-earlier", disabled: th.loadingOlder, onclick: loadEarlier,
    }, th.loadingOlder ? t("thread.loading_earlier") : t("thread.load_earlier")));
  }
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
