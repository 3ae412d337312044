// Boot and wiring: login, the three panes, live events, shortcuts.
import { h, clear, $ } from "./dom.js";
import { t, applyStatic, setLang, getLang, onLangChange, LANGS } from "./i18n.js";
import { api, setUnauthorizedHandler } from "./api.js";
import { AgentSocket } from "./ws.js";
import { state, upsertConversation, sortedConversations, assigneeParam, queueSince } from "./state.js";
import { mountList, renderList, renderFilters } from "./list.js";
import * as thread from "./thread.js";
import * as card from "./card.js";
import { installShortcuts } from "./keys.js";
import { refreshClocks } from "./sla.js";
import { loadPresence, setAgentPresence, myPresence, setMyPresence } from "./presence.js";
import { mountReports } from "./reports.js";

let socket = null;
let listToken = 0;

function setScreen(name) {
  document.body.dataset.screen = name;
}

function setView(view) {
  state.view = view;
  document.body.dataset.view = view;
}

// ---- login ---------------------------------------------------------------

function showLogin(message = "") {
  if (socket) socket.stop();
  socket = null;
  showConnection({ state: "connecting", attempt: 0 });
  setScreen("login");
  const err = $("#login-error");
  err.textContent = message;
  err.hidden = !message;
  $("#login-email").focus();
}

async function onLogin(e) {
  e.preventDefault();
  const btn = $("#login-submit");
  btn.disabled = true;
  try {
    const res = await api.login($("#login-email").value.trim(), $("#login-password").value);
    $("#login-password").value = "";
    await startApp(res.agent || (await api.me()));
  } catch (err) {
    showLogin(`${t("login.failed")}: ${err.message}`);
  } finally {
    btn.disabled = false;
  }
}

// ---- the app ---------------------------------------------------------------

async function startApp(me) {
  state.me = me;
  setScreen("app");
  setView("list");
  $("#me-name").textContent = me.name || me.email;
  mountList($("#list"), { onSelect: select, onFiltersChange: reloadList, onMore: loadMore });
  thread.mountThread($("#thread"), {
    onBack: () => setView("list"),
    onCard: () => setView(state.view === "card" ? "thread" : "card"),
    onAction: act,
    onTyping: (id) => socket && socket.send({ type: "typing", conversation_id: id }),
    onError: showError,
  });
  card.mountCard($("#card"), {
    onBack: () => setView("thread"),
    onOpenConversation: (c) => { upsertConversation(c); select(c.id); },
  });
  mountReports({ onOpenConversation: select }); // managers and admins: the Reports view
  let presence;
  [state.channels, state.agents, presence] = await Promise.all([
    api.channels().catch(() => []),
    api.agents().catch(() => []),
    api.presence().catch(() => []),
  ]);
  loadPresence(presence);
  renderFilters();
  renderPresenceToggle();
  clearInterval(startApp.clockTimer);
  startApp.clockTimer = setInterval(() => refreshClocks(), 30000);
  socket = new AgentSocket({ onEvent, onState: onSocketState, onUnauthorized: () => showLogin() });
  socket.start();
  await reloadList();
}

async function reloadList() {
  const token = ++listToken;
  state.conversations.clear();
  state.nextCursor = null;
  renderList({ loading: true });
  await fetchPage(token, null);
}

async function loadMore() {
  if (state.nextCursor) await fetchPage(listToken, state.nextCursor);
}

async function fetchPage(token, cursor) {
  const f = state.filters;
  if (f.assignee === "queue") {
    await fetchQueue(token);
    return;
  }
  try {
    const page = await api.conversations({
      status: f.status, channel: f.channel, assignee: assigneeParam(), q: f.q, cursor,
    });
    if (token !== listToken) return;
    for (const c of page.items) state.conversations.set(c.id, c);
    state.nextCursor = page.next_cursor;
  } catch (err) {
    if (token !== listToken) return;
    showError(err);
  }
  renderList();
}

// The Queue tab lists GET /queue whole; channel and text filters apply here.
async function fetchQueue(token) {
  const f = state.filters;
  try {
    const items = await api.queue();
    if (token !== listToken) return;
    const q = f.q.toLowerCase();
    queueSince.clear();
    for (const { conversation: c, waiting_since: since } of items) {
      if (f.channel && String(c.channel?.id) !== f.channel) continue;
      if (q && !`${c.client?.name || ""} ${c.subject || ""} ${c.last_message?.text || ""}`.toLowerCase().includes(q)) continue;
      queueSince.set(c.id, Date.parse(since));
      state.conversations.set(c.id, c);
    }
    state.nextCursor = null;
  } catch (err) {
    if (token !== listToken) return;
    showError(err);
  }
  renderList();
}

async function select(id) {
  const conv = state.conversations.get(id) || (await api.conversation(id).catch(() => null));
  if (!conv) return;
  state.selectedId = id;
  renderList();
  setView("thread");
  card.showClient(conv.client_id);
  try {
    await thread.openThread(conv);
  } catch (err) {
    showError(err);
  }
  if (conv.unread_count) markRead(id);
}

async function markRead(id) {
  try {
    const conv = await api.markRead(id);
    if (conv && conv.id) applyConversation(conv);
  } catch {
    // Not fatal: the counter just stays until the next read.
  }
}

function move(step) {
  const list = sortedConversations();
  if (!list.length) return;
  const i = list.findIndex((c) => c.id === state.selectedId);
  const next = i === -1 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, i + step));
  if (list[next].id !== state.selectedId) select(list[next].id);
}

async function act(kind, arg) {
  const conv = thread.currentConversation();
  if (!conv) return;
  try {
    const updated = kind === "assign"
      ? await api.assign(conv.id, arg)
      : await api.setStatus(conv.id, arg.status, arg.snoozed_until);
    applyConversation(updated);
  } catch (err) {
    showError(err);
  }
}

function applyConversation(conv) {
  const changed = upsertConversation(conv);
  thread.setConversation(conv);
  if (changed) renderList();
}

// ---- live events -------------------------------------------------------------

// Dispatch by what an event carries, not only by its type name, so event
// kinds added on the server (conversation.status, conversation.assigned, ...)
// still update the window.
function onEvent(ev) {
  const d = ev.data || {};
  if (ev.type === "visitor.typing") {
    thread.showTyping(ev.conversation_id);
    return;
  }
  if (ev.type === "agent.presence") {
    if (setAgentPresence(ev.agent_id, ev.status)) thread.refreshHeader();
    return;
  }
  if (ev.type === "sla.breached") showBreach(d);
  if (d.conversation) onConversationEvent(d.conversation);
  if (d.message) {
    if (ev.type === "message.created") {
      thread.addMessage(d.message);
      if (d.message.direction === "in" && d.message.conversation_id === state.selectedId && document.visibilityState === "visible") {
        markRead(state.selectedId);
      }
    } else {
      thread.updateMessage(d.message);
    }
  }
  if (d.note) thread.addNote(d.note);
  const clientId = ev.client_id ?? d.conversation?.client_id ?? d.note?.client_id;
  if (clientId != null) card.refreshSoon(clientId, ev);
}

function onConversationEvent(conv) {
  const before = state.conversations.has(conv.id);
  const changed = upsertConversation(conv);
  thread.setConversation(conv);
  if (changed || before) renderListSoon();
}

// A resume can replay hundreds of events at once: draw the list once per burst.
// (A timer, not requestAnimationFrame, so a background tab's title still counts.)
let listTimer = null;
function renderListSoon() {
  if (listTimer !== null) return;
  listTimer = setTimeout(() => {
    listTimer = null;
    renderList();
  }, 30);
}

// ---- presence and SLA alerts ------------------------------------------------------

// Every new socket starts online on the server: say "away" again after a reconnect.
function onSocketState(s) {
  showConnection(s);
  if (s.state === "open" && myPresence() === "away") socket?.send({ type: "presence", status: "away" });
}

function renderPresenceToggle() {
  const btn = $("#presence-toggle");
  if (!btn) return;
  const away = myPresence() === "away";
  btn.dataset.status = myPresence();
  btn.setAttribute("aria-pressed", String(away));
  btn.title = t("presence.toggle_title");
  btn.textContent = t(away ? "presence.away" : "presence.online");
}

function togglePresence() {
  setMyPresence(myPresence() === "away" ? "online" : "away");
  socket?.send({ type: "presence", status: myPresence() });
  renderPresenceToggle();
}

function showBreach(d) {
  const conv = d.conversation;
  if (!conv) return;
  showBreach.last = d;
  const box = $("#sla-alert");
  const metric = t(`sla.${d.metric}`);
  clear(box,
    h("span", { class: "sla-alert-text" },
      t("sla.breached", { metric, name: conv.client?.name || `#${conv.client_id}` })),
    h("button", { type: "button", class: "link-btn", onclick: () => { box.hidden = true; select(conv.id); } }, t("sla.open")),
    h("button", { type: "button", class: "link-btn sla-alert-close", "aria-label": t("help.close"), onclick: () => { box.hidden = true; } }, "×"));
  box.dataset.conversation = String(conv.id);
  box.hidden = false;
  clearTimeout(showBreach.timer);
  showBreach.timer = setTimeout(() => { box.hidden = true; }, 60000);
}

let bannerTimer = null;

function showConnection({ state: s, retryAt, attempt }) {
  const banner = $("#banner");
  clearInterval(bannerTimer);
  const offline = s === "offline" || (s === "connecting" && attempt > 0);
  banner.hidden = !offline;
  document.body.classList.toggle("offline", offline);
  $("#conn-dot").dataset.state = offline ? "offline" : s;
  if (!offline) return;
  const tick = () => {
    const secs = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
    $("#banner-text").textContent = secs > 0 ? t("banner.offline_in", { s: secs }) : t("banner.offline");
  };
  tick();
  if (s === "offline") bannerTimer = setInterval(tick, 500);
}

function showError(err) {
  const toast = $("#toast");
  toast.textContent = t("error.generic", { error: err.message || String(err) });
  toast.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { toast.hidden = true; }, 6000);
}

// ---- boot ----------------------------------------------------------------------

function mountChrome() {
  $("#me-name").before(h("button", {
    type: "button", class: "btn btn-ghost btn-sm presence-toggle", id: "presence-toggle", onclick: togglePresence,
  }));
  document.body.append(h("div", { class: "sla-alert", id: "sla-alert", role: "alert", hidden: true }));
  const langSel = $("#lang");
  clear(langSel, LANGS.map((l) => h("option", { value: l }, l.toUpperCase())));
  langSel.value = getLang();
  langSel.addEventListener("change", () => setLang(langSel.value));
  $("#login-lang").replaceChildren(...LANGS.map((l) => h("button", {
    type: "button", class: "link-btn", onclick: () => setLang(l),
  }, l === "ru" ? "Русский" : "English")));
  onLangChange(() => {
    langSel.value = getLang();
    if (document.body.dataset.screen !== "app") return;
    renderFilters();
    renderPresenceToggle();
    if (!$("#sla-alert").hidden && showBreach.last) showBreach(showBreach.last);
    renderList();
    thread.renderStatic();
    card.render();
  });
  $("#login-form").addEventListener("submit", onLogin);
  $("#logout").addEventListener("click", async () => {
    await api.logout().catch(() => {});
    location.reload();
  });
  $("#banner-retry").addEventListener("click", () => socket && socket.reconnectNow());
  window.addEventListener("online", () => socket && socket.reconnectNow());
  // Messages that arrived while the tab was hidden count as unread until it is seen.
  document.addEventListener("visibilitychange", () => {
    const conv = state.conversations.get(state.selectedId);
    if (document.visibilityState === "visible" && conv?.unread_count) markRead(conv.id);
  });
  installShortcuts({
    next: () => move(1),
    prev: () => move(-1),
    reply: () => thread.focusReply(),
    resolve: () => act("status", { status: "resolved" }),
    note: () => thread.toggleNote(),
    search: () => { setView("list"); $("#search")?.focus(); },
  });
  setUnauthorizedHandler(() => showLogin());
}

async function boot() {
  applyStatic();
  mountChrome();
  try {
    await startApp(await api.me());
  } catch {
    showLogin();
  }
}

boot();
