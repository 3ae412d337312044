// The client card: who the person is on every channel, their other
// conversations and the timeline of everything that happened with them.
import { h, clear, channelBadge, initials, icon } from "./dom.js";
import { t, formatDateTime, formatTime } from "./i18n.js";
import { api } from "./api.js";
import { state } from "./state.js";

// Delivery bookkeeping: visible in the thread, noise on the timeline.
// A conversation.updated without an actor is bookkeeping too (read counters).
const QUIET = new Set(["message.status", "message.updated", "visitor.typing"]);
const quiet = (ev) => QUIET.has(ev.type) || (ev.type === "conversation.updated" && !ev.actor);

let els = null;
let cb = null;
const card = { clientId: null, data: null, token: 0, refreshTimer: null };

export function mountCard(root, callbacks) {
  cb = callbacks;
  els = { root };
  render();
}

export function cardClientId() {
  return card.clientId;
}

export async function showClient(clientId) {
  if (clientId !== card.clientId) card.data = null;
  card.clientId = clientId;
  const token = ++card.token;
  render();
  if (clientId === null) return;
  try {
    const data = await api.client(clientId);
    if (token !== card.token) return;
    card.data = data;
  } catch (err) {
    if (token !== card.token) return;
    card.data = { error: err.message };
  }
  render();
}

// Events about this client arrive in bursts (a message creates several); one
// refetch after the burst is enough.
export function refreshSoon(clientId) {
  if (clientId !== card.clientId) return;
  clearTimeout(card.refreshTimer);
  card.refreshTimer = setTimeout(() => showClient(card.clientId), 300);
}

export function render() {
  if (!els) return;
  const head = h("div", { class: "card-head" },
    h("button", { type: "button", class: "btn btn-icon only-narrow", id: "card-back", "aria-label": t("thread.back"), onclick: cb.onBack }, icon("back")),
    h("h2", {}, t("card.title")));
  const d = card.data;
  if (card.clientId === null || !d) {
    clear(els.root, head, card.clientId === null ? null : h("div", { class: "empty" }, "…"));
    return;
  }
  if (d.error) {
    clear(els.root, head, h("div", { class: "empty error" }, d.error));
    return;
  }
  const name = d.name || `#${d.id}`;
  clear(els.root, head,
    h("div", { class: "card-id" },
      h("span", { class: "avatar avatar-lg" }, initials(name)),
      h("div", {},
        h("div", { class: "card-name", id: "card-name" }, name),
        d.created_at ? h("div", { class: "muted small" }, t("card.since", { date: formatDateTime(d.created_at) })) : null)),
    h("dl", { class: "card-fields" },
      d.email ? [h("dt", {}, t("card.email")), h("dd", {}, d.email)] : null,
      d.phone ? [h("dt", {}, t("card.phone")), h("dd", {}, d.phone)] : null),
    section(t("card.identities"), (d.identities || []).map((i) =>
      h("li", { class: "identity" },
        // docs/api.md says a kind string; the server sends {id, kind, name}. Take either.
        typeof i.channel === "object" && i.channel ? channelBadge(i.channel.kind, i.channel.name) : channelBadge(i.channel),
        h("span", { class: "identity-name" }, i.display_name || i.username || i.external_id),
        i.username && i.display_name ? h("span", { class: "muted small" }, `@${i.username}`) : null))),
    section(t("card.conversations"), (d.conversations || []).map((c) =>
      h("li", {},
        h("button", {
          type: "button", class: `card-conv${c.id === state.selectedId ? " current" : ""}`,
          onclick: () => cb.onOpenConversation(c),
        },
        h("span", { class: "card-conv-top" },
          channelBadge(c.channel?.kind, c.channel?.name),
          h("span", { class: `pill st-${c.status}` }, t(`status.${c.status}`)),
          h("time", { class: "muted small" }, formatTime(c.last_activity_at))),
        h("span", { class: "card-conv-text" }, c.last_message?.text || c.subject || `#${c.id}`))))),
    section(t("card.timeline"), [...(d.timeline || [])].filter((ev) => !quiet(ev)).reverse().map(timelineItem), "timeline"));
}

function section(title, items, cls = "") {
  return h("section", { class: `card-section ${cls}` },
    h("h3", {}, title),
    items.length ? h("ul", {}, items) : h("div", { class: "muted small" }, t("card.none")));
}

function timelineItem(ev) {
  const data = ev.data || {};
  let title;
  let detail = null;
  let cls = "";
  if (ev.type === "message.created" && data.message) {
    const m = data.message;
    const who = m.author?.name || ev.actor?.name || "";
    title = t(m.direction === "out" ? "ev.message_out" : "ev.message_in", { name: who });
    detail = m.text;
    cls = m.direction === "out" ? "ev-out" : "ev-in";
  } else if (ev.type === "note.created" && data.note) {
    title = t("ev.note", { name: data.note.author?.name || ev.actor?.name || "" });
    detail = data.note.text;
    cls = "ev-note";
  } else if (ev.type === "conversation.created") {
    title = t("ev.conversation");
  } else if (ev.type === "conversation.status") {
    title = t("ev.status", { status: t(`status.${data.to || data.conversation?.status}`) });
    if (ev.actor?.name) detail = ev.actor.name;
  } else if (ev.type === "conversation.assigned" || (ev.type === "conversation.updated" && ev.actor)) {
    title = t("ev.assigned", { name: ev.actor?.name || "" });
    const a = data.conversation?.assignee;
    detail = a ? t("thread.assigned_to", { name: a.name }) : t("thread.unassigned");
  } else if (ev.type === "client.updated" || ev.type === "client.merged") {
    title = t("ev.client");
  } else {
    title = t("ev.other", { type: ev.type });
  }
  return h("li", { class: `tl ${cls}` },
    h("div", { class: "tl-head" }, h("span", { class: "tl-title" }, title),
      h("time", { class: "muted small", title: formatDateTime(ev.created_at) }, formatTime(ev.created_at))),
    detail ? h("div", { class: "tl-detail" }, detail) : null);
}
