// History review for managers and admins: full-text search over messages and
// notes, with filters, highlighted snippets, paging and exports (docs/history.md).
// Also the small REST helpers the client card uses for its edits.
import { h, clear, channelBadge } from "./dom.js";
import { t, formatDateTime, onLangChange } from "./i18n.js";
import { request as call, query } from "./api.js";
import { state } from "./state.js";

const id = (v) => encodeURIComponent(String(v));

export const historyApi = {
  updateClient: (clientId, body) => call("PATCH", `/clients/${id(clientId)}`, body),
  clientSuggestions: (clientId) => call("GET", `/clients/${id(clientId)}/merge-suggestions`),
  confirmSuggestion: (sid, survivorId) =>
    call("POST", `/merge-suggestions/${id(sid)}/confirm`, survivorId ? { survivor_id: survivorId } : {}),
  dismissSuggestion: (sid) => call("POST", `/merge-suggestions/${id(sid)}/dismiss`),
  undoMerge: (mergeId) => call("POST", `/merges/${id(mergeId)}/undo`),
  clientNote: (clientId, text) => call("POST", `/clients/${id(clientId)}/notes`, { text }),
  search: (params) => call("GET", `/search${query(params)}`),
};

// ---- the History view ----------------------------------------------------------

const view = { open: false, filters: null, items: [], next: null, loading: false, error: "", searched: false, token: 0 };
let els = null;
let cb = null;

export function canReview(me) {
  return me?.role === "manager" || me?.role === "admin";
}

// Called at every sign-in. The header button is in the markup for everyone,
// hidden; only managers and admins get it shown (the server checks the role too).
export function mountHistory(callbacks) {
  cb = callbacks || {};
  const btn = document.getElementById("history-btn");
  const root = document.getElementById("history");
  if (!btn || !root) return;
  els = { btn, root };
  btn.hidden = true;
  setOpen(false);
  if (!canReview(state.me)) return;
  btn.hidden = false;
  if (!btn.dataset.wired) {
    btn.dataset.wired = "1";
    btn.addEventListener("click", () => setOpen(!view.open));
    onLangChange(() => { if (els) renderHistory(); });
  }
  renderHistory();
}

export function setOpen(open) {
  view.open = open;
  document.body.dataset.history = open ? "on" : "off";
  if (!els) return;
  els.root.hidden = !open;
  els.btn.setAttribute("aria-pressed", open ? "true" : "false");
  if (open) {
    renderHistory();
    els.root.querySelector("#hist-q")?.focus();
  }
}

// <input type=date> gives a local day; the API wants instants.
function dayStart(day) {
  return day ? new Date(`${day}T00:00:00`).toISOString() : "";
}
function dayEnd(day) {
  return day ? new Date(`${day}T23:59:59.999`).toISOString() : "";
}

function readFilters(form) {
  const v = (name) => form.elements[name].value.trim();
  return {
    q: v("q"), channel: v("channel"), agent: v("agent"), tag: v("tag"),
    from: dayStart(v("from")), to: dayEnd(v("to")), status: v("status"),
    fromDay: v("from"), toDay: v("to"),
  };
}

function apiParams(f) {
  const { fromDay: _a, toDay: _b, ...rest } = f;
  return rest;
}

async function runSearch(cursor = null) {
  if (!view.filters?.q) return;
  const token = ++view.token;
  view.loading = true;
  view.error = "";
  if (!cursor) {
    view.items = [];
    view.next = null;
  }
  renderResults();
  try {
    const page = await historyApi.search({ ...apiParams(view.filters), cursor, limit: 50 });
    if (token !== view.token) return;
    view.items.push(...(page.items || []));
    view.next = page.next_cursor || null;
  } catch (err) {
    if (token !== view.token) return;
    view.error = err.message;
  }
  view.loading = false;
  view.searched = true;
  renderResults();
}

export function renderHistory() {
  if (!els) return;
  const f = view.filters || {};
  const opt = (value, label, selected) => h("option", { value, selected: value === selected }, label);
  const form = h("form", { class: "hist-form", id: "hist-form", onsubmit: (e) => {
    e.preventDefault();
    view.filters = readFilters(form);
    runSearch();
  } },
  h("input", { type: "search", name: "q", id: "hist-q", class: "hist-q", required: true, value: f.q || "",
    placeholder: t("hist.q"), "aria-label": t("hist.q") }),
  h("select", { name: "channel", class: "select select-sm", id: "hist-channel", "aria-label": t("filter.channel") },
    opt("", t("filter.any_channel"), f.channel || ""),
    (state.channels || []).map((c) => opt(String(c.id), c.name || c.kind, f.channel))),
  h("select", { name: "agent", class: "select select-sm", id: "hist-agent", "aria-label": t("hist.agent") },
    opt("", t("hist.any_agent"), f.agent || ""),
    opt("me", t("hist.me"), f.agent),
    (state.agents || []).map((a) => opt(String(a.id), a.name || a.email, f.agent))),
  h("input", { type: "text", name: "tag", id: "hist-tag", class: "input input-sm", value: f.tag || "",
    placeholder: t("hist.tag"), "aria-label": t("hist.tag") }),
  h("label", { class: "hist-date" }, h("span", {}, t("hist.from")),
    h("input", { type: "date", name: "from", id: "hist-from", class: "input input-sm", value: f.fromDay || "" })),
  h("label", { class: "hist-date" }, h("span", {}, t("hist.to")),
    h("input", { type: "date", name: "to", id: "hist-to", class: "input input-sm", value: f.toDay || "" })),
  h("select", { name: "status", class: "select select-sm", id: "hist-status", "aria-label": t("filter.status") },
    opt("", t("filter.any_status"), f.status || ""),
    ["open", "pending", "resolved", "snoozed"].map((s) => opt(s, t(`status.${s}`), f.status))),
  h("button", { type: "submit", class: "btn btn-primary btn-sm", id: "hist-submit" }, t("hist.search")));
  clear(els.root,
    h("div", { class: "hist-head" },
      h("h2", {}, t("hist.title")),
      h("button", { type: "button", class: "btn btn-ghost btn-sm", id: "hist-close", onclick: () => setOpen(false) }, t("hist.close"))),
    form,
    h("div", { class: "hist-results", id: "hist-results" }));
  renderResults();
}

function exportLinks(base, params, cls) {
  return ["csv", "json", "txt"].map((fmt) => h("a", {
    class: `link-btn ${cls}`, href: `/api/v1${base}${query({ ...params, format: fmt })}`, download: "",
    dataset: { format: fmt },
  }, fmt.toUpperCase()));
}

function renderResults() {
  const box = els?.root.querySelector("#hist-results");
  if (!box) return;
  if (!view.filters?.q) {
    clear(box, h("div", { class: "empty muted" }, t("hist.hint")));
    return;
  }
  const params = apiParams(view.filters);
  clear(box,
    h("div", { class: "hist-bar" },
      h("span", { class: "muted small", id: "hist-count" },
        view.loading && !view.items.length ? t("list.loading") : t(view.next ? "hist.count_more" : "hist.count", { n: view.items.length })),
      h("span", { class: "hist-export", id: "hist-export" }, t("hist.export"), " ", exportLinks("/search/export", params, "hist-export-link"))),
    view.error ? h("div", { class: "empty error" }, view.error) : null,
    view.searched && !view.loading && !view.items.length && !view.error ? h("div", { class: "empty muted" }, t("hist.none")) : null,
    view.items.length ? h("ul", { class: "hist-list", id: "hist-list" }, view.items.map(hitItem)) : null,
    view.next ? h("button", {
      type: "button", class: "btn btn-sm hist-more", id: "hist-more", disabled: view.loading,
      onclick: () => runSearch(view.next),
    }, view.loading ? t("list.loading") : t("list.more")) : null);
}

function hitItem(hit) {
  const kind = hit.kind === "note" ? t("hist.kind_note") : t(hit.direction === "out" ? "hist.kind_out" : "hist.kind_in");
  return h("li", { class: `hist-hit hit-${hit.kind === "note" ? "note" : "msg"}`, dataset: { kind: hit.kind || "", id: String(hit.id) } },
    h("div", { class: "hist-hit-top" },
      hit.channel ? channelBadge(hit.channel.kind, hit.channel.name) : null,
      h("span", { class: "hist-client" }, hit.client?.name || `#${hit.client?.id ?? ""}`),
      h("span", { class: "muted small" }, kind, hit.author?.name ? ` · ${hit.author.name}` : ""),
      hit.conversation_status ? h("span", { class: `pill st-${hit.conversation_status}` }, t(`status.${hit.conversation_status}`)) : null,
      h("time", { class: "muted small" }, formatDateTime(hit.created_at))),
    h("div", { class: "hist-snippet" }, headline(hit.headline)),
    h("div", { class: "hist-hit-actions" },
      hit.conversation_id != null ? [
        h("button", { type: "button", class: "link-btn hist-open", onclick: () => {
          setOpen(false);
          cb.onOpenConversation?.(hit.conversation_id);
        } }, t("hist.open")),
        h("span", { class: "muted small" }, t("hist.transcript")),
        exportLinks(`/conversations/${id(hit.conversation_id)}/transcript`, {}, "hist-transcript-link"),
      ] : null,
      hit.client?.id != null ? [
        h("span", { class: "muted small" }, t("hist.client_transcript")),
        exportLinks(`/clients/${id(hit.client.id)}/transcript`, {}, "hist-client-link"),
      ] : null));
}

// The headline is HTML: the text escaped by the server, matches wrapped in
// <mark> (or <b>). It is never parsed: split on those tags, unescape the
// entities the server produces, and put every piece in as text.
const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };
const unescape = (s) => s.replace(/&(amp|lt|gt|quot|#x27|#39);/g, (m) => ENTITIES[m]);

export function headline(html) {
  const out = [];
  let marked = false;
  for (const part of String(html || "").split(/(<\/?(?:mark|b)>)/)) {
    if (/^<(mark|b)>$/.test(part)) marked = true;
    else if (/^<\/(mark|b)>$/.test(part)) marked = false;
    else if (part) {
      const text = unescape(part);
      out.push(marked ? h("mark", { class: "hit" }, text) : document.createTextNode(text));
    }
  }
  return out;
}
