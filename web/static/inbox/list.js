// The conversation list: filters, search, rows with unread counts.
import { h, clear, channelBadge, initials, debounce } from "./dom.js";
import { t, formatTime } from "./i18n.js";
import { state, sortedConversations, queueSince } from "./state.js";
import { slaBadge, priorityBadge, waitingText } from "./sla.js";

let els = null;
let handlers = null;

export function mountList(root, { onSelect, onFiltersChange, onMore }) {
  handlers = { onSelect, onFiltersChange, onMore };
  const search = h("input", {
    type: "search", class: "search", id: "search", autocomplete: "off",
    placeholder: t("filter.search"), "aria-label": t("filter.search"),
  });
  search.value = state.filters.q;
  search.addEventListener("input", debounce(() => {
    state.filters.q = search.value.trim();
    onFiltersChange();
  }, 250));
  const tabs = h("div", { class: "seg", role: "tablist" });
  const channel = h("select", { class: "select", id: "filter-channel", "aria-label": t("filter.channel") });
  channel.addEventListener("change", () => { state.filters.channel = channel.value; onFiltersChange(); });
  const status = h("select", { class: "select", id: "filter-status", "aria-label": t("filter.status") });
  status.addEventListener("change", () => { state.filters.status = status.value; onFiltersChange(); });
  const items = h("div", { class: "conv-items", id: "conv-items", role: "listbox" });
  clear(root,
    h("div", { class: "list-head" }, search, tabs, h("div", { class: "filter-row" }, channel, status)),
    items);
  els = { root, search, tabs, channel, status, items };
  renderFilters();
}

export function renderFilters() {
  if (!els) return;
  els.search.placeholder = t("filter.search");
  clear(els.tabs, ...["mine", "unassigned", "all", "queue"].map((key) => h("button", {
    type: "button", role: "tab", class: "seg-btn", dataset: { filter: key },
    "aria-selected": String(state.filters.assignee === key),
    onclick: () => { state.filters.assignee = key; renderFilters(); handlers.onFiltersChange(); },
  }, t(`filter.${key}`))));
  clear(els.channel,
    h("option", { value: "" }, t("filter.any_channel")),
    state.channels.map((c) => h("option", { value: String(c.id) }, c.name || c.kind)));
  els.channel.value = state.filters.channel;
  clear(els.status,
    ["open", "pending", "snoozed", "resolved"].map((s) => h("option", { value: s }, t(`status.${s}`))),
    h("option", { value: "" }, t("filter.any_status")));
  els.status.value = state.filters.status;
  els.status.disabled = state.filters.assignee === "queue"; // the queue is open conversations only
}

export function renderList({ loading = false } = {}) {
  if (!els) return;
  const convs = sortedConversations();
  const unread = convs.reduce((n, c) => n + (c.unread_count || 0), 0);
  document.title = unread ? `(${unread}) ${t("app.title")}` : t("app.title");
  const rows = convs.map(row);
  if (!convs.length) {
    rows.push(h("div", { class: "empty" }, loading ? t("list.loading") : t("list.empty")));
  } else if (state.nextCursor) {
    rows.push(h("button", { type: "button", class: "btn btn-ghost more", onclick: handlers.onMore }, t("list.more")));
  }
  clear(els.items, rows);
  const sel = els.items.querySelector(".conv.selected");
  if (sel) sel.scrollIntoView({ block: "nearest" });
}

function row(conv) {
  const selected = conv.id === state.selectedId;
  const last = conv.last_message;
  const preview = last ? `${last.direction === "out" ? `${t("msg.you")}: ` : ""}${last.text || ""}` : "";
  const name = conv.client?.name || `#${conv.client_id}`;
  return h("button", {
    type: "button",
    class: `conv${selected ? " selected" : ""}${conv.unread_count ? " unread" : ""}`,
    role: "option", "aria-selected": String(selected),
    dataset: { id: String(conv.id) },
    onclick: () => handlers.onSelect(conv.id),
  },
  h("span", { class: `avatar ch-${conv.channel?.kind || "other"}-soft` }, initials(name)),
  h("span", { class: "conv-body" },
    h("span", { class: "conv-top" },
      h("span", { class: "conv-name" }, name),
      priorityBadge(conv),
      state.filters.assignee === "queue"
        ? queueWait(queueSince.get(conv.id) ?? Date.parse(conv.created_at))
        : h("time", { class: "conv-time", datetime: conv.last_activity_at }, formatTime(conv.last_activity_at))),
    h("span", { class: "conv-mid" },
      h("span", { class: "conv-preview" }, preview || conv.subject || "—"),
      conv.unread_count ? h("span", { class: "unread-count", title: String(conv.unread_count) }, String(conv.unread_count)) : null),
    h("span", { class: "conv-meta" },
      channelBadge(conv.channel?.kind, conv.channel?.name),
      conv.status !== "open" ? h("span", { class: `pill st-${conv.status}` }, t(`status.${conv.status}`)) : null,
      conv.assignee ? h("span", { class: "conv-assignee" }, conv.assignee.name) : null,
      slaBadge(conv))));
}

function queueWait(since) {
  return h("span", { class: "queue-wait", dataset: Number.isFinite(since) ? { since: String(since) } : {} }, waitingText(since));
}
