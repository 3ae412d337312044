// Reports for managers and admins: one screen per period with the per-agent
// table (first responses, late ones, SLA breaches), volume by day and channel,
// and the breach list, each with a CSV export (docs/inbox.md, docs/api.md).
// The server enforces the role; agents never get the button.
import { h, clear } from "./dom.js";
import { t, getLang, formatDateTime, onLangChange } from "./i18n.js";
import { request, query } from "./api.js";
import { state } from "./state.js";
import { canReview, setOpen as setHistoryOpen } from "./history.js";

const PERIODS = ["today", "yesterday", "last7", "last_week", "last30", "custom"];
const view = {
  open: false, period: "last7", fromDay: "", toDay: "", token: 0,
  agents: null, volume: null, breaches: null, // { loading, error, items }
  late: null, // one agent's late first responses: { agentId, agent, loading, error, items }
};
let els = null;
let cb = {};

// Called at every sign-in, like the History view (history.js).
export function mountReports(callbacks) {
  cb = callbacks || {};
  const btn = document.getElementById("reports-btn");
  const root = document.getElementById("reports");
  if (!btn || !root) return;
  els = { btn, root };
  btn.hidden = true;
  setReportsOpen(false);
  if (!canReview(state.me)) return;
  btn.hidden = false;
  if (!btn.dataset.wired) {
    btn.dataset.wired = "1";
    btn.addEventListener("click", () => setReportsOpen(!view.open));
    // History and Reports take the same place: opening History closes Reports.
    document.getElementById("history-btn")?.addEventListener("click", () => setReportsOpen(false));
    onLangChange(() => { if (els && view.open) render(); });
  }
}

export function setReportsOpen(open) {
  view.open = open;
  document.body.dataset.reports = open ? "on" : "off";
  if (!els) return;
  els.root.hidden = !open;
  els.btn.setAttribute("aria-pressed", open ? "true" : "false");
  if (open) {
    setHistoryOpen(false);
    load();
  }
}

// ---- the period: local days, sent as instants [from, to) -----------------------------

const DAY = 86400000;
const midnight = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate());
const addDays = (d, n) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
const parseDay = (s) => (/^\d{4}-\d{2}-\d{2}$/.test(s) ? new Date(`${s}T00:00:00`) : null);

export function periodRange(period, fromDay, toDay, now = new Date()) {
  const today = midnight(now);
  switch (period) {
    case "today": return [today, addDays(today, 1)];
    case "yesterday": return [addDays(today, -1), today];
    case "last30": return [addDays(today, -29), addDays(today, 1)];
    case "last_week": {
      const monday = addDays(today, -((today.getDay() + 6) % 7));
      return [addDays(monday, -7), monday];
    }
    case "custom": {
      const a = parseDay(fromDay);
      const b = parseDay(toDay);
      if (!a || !b || b < a) return null;
      return [a, addDays(b, 1)];
    }
    default: return [addDays(today, -6), addDays(today, 1)];
  }
}

function params() {
  const range = periodRange(view.period, view.fromDay, view.toDay);
  if (!range) return null;
  return { from: range[0].toISOString(), to: range[1].toISOString() };
}

function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

const SECTIONS = {
  agents: { path: "/reports/agents", extra: () => ({}) },
  volume: { path: "/reports/volume", extra: () => ({ tz: timeZone() }) },
  breaches: { path: "/reports/sla-breaches", extra: () => ({}) },
};

function url(name, format) {
  const p = params();
  return `/api/v1${SECTIONS[name].path}${query({ ...p, ...SECTIONS[name].extra(), format })}`;
}

async function load() {
  const p = params();
  const token = ++view.token;
  for (const name of Object.keys(SECTIONS)) view[name] = p ? { loading: true, error: "", items: [] } : null;
  view.late = null;
  render();
  if (!p) return;
  await Promise.all(Object.keys(SECTIONS).map(async (name) => {
    let next;
    try {
      const body = await request("GET", `${SECTIONS[name].path}${query({ ...p, ...SECTIONS[name].extra() })}`);
      next = { loading: false, error: "", items: body.items || [] };
    } catch (err) {
      next = { loading: false, error: err.message || String(err), items: [] };
    }
    if (token !== view.token) return;
    view[name] = next;
    renderSection(name);
  }));
}

// ---- rendering -----------------------------------------------------------------------

function numberFormat(digits) {
  return new Intl.NumberFormat(getLang() === "ru" ? "ru-RU" : "en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// Minutes as the table shows them: "5.8 min" under ten minutes, "42 min", "2 h 5 min".
export function minutes(m) {
  if (m === null || m === undefined) return "—";
  if (m < 10) return t("sla.min", { n: numberFormat(1).format(m) });
  const whole = Math.round(m);
  if (whole < 60) return t("sla.min", { n: whole });
  const hours = Math.floor(whole / 60);
  if (hours >= 48) return t("sla.d", { n: numberFormat(1).format(whole / 1440) });
  return whole % 60 ? t("sla.h_min", { h: hours, m: whole % 60 }) : t("sla.h", { n: hours });
}

function rangeLabel() {
  const range = periodRange(view.period, view.fromDay, view.toDay);
  if (!range) return t("rep.custom_hint");
  const fmt = new Intl.DateTimeFormat(getLang() === "ru" ? "ru-RU" : "en-GB", { day: "numeric", month: "short", year: "numeric" });
  const last = new Date(range[1].getTime() - DAY / 2);
  return range[1] - range[0] <= DAY ? fmt.format(range[0]) : `${fmt.format(range[0])} – ${fmt.format(last)}`;
}

function render() {
  if (!els) return;
  const opt = (p) => h("option", { value: p, selected: p === view.period }, t(`rep.period.${p}`));
  const custom = view.period === "custom";
  const form = h("form", { class: "rep-form", id: "rep-form", onsubmit: (e) => {
    e.preventDefault();
    view.fromDay = form.elements.from?.value || "";
    view.toDay = form.elements.to?.value || "";
    load();
  } },
  h("select", { class: "select select-sm", id: "rep-period", name: "period", "aria-label": t("rep.period"), onchange: (e) => {
    view.period = e.target.value;
    if (view.period === "custom" && !view.fromDay) {
      const range = periodRange("last7");
      view.fromDay = isoDay(range[0]);
      view.toDay = isoDay(addDays(range[1], -1));
    }
    load();
  } }, PERIODS.map(opt)),
  custom ? [
    h("label", { class: "hist-date" }, h("span", {}, t("hist.from")),
      h("input", { type: "date", name: "from", id: "rep-from", class: "input input-sm", value: view.fromDay })),
    h("label", { class: "hist-date" }, h("span", {}, t("hist.to")),
      h("input", { type: "date", name: "to", id: "rep-to", class: "input input-sm", value: view.toDay })),
    h("button", { type: "submit", class: "btn btn-primary btn-sm", id: "rep-apply" }, t("rep.apply")),
  ] : null,
  h("button", { type: "button", class: "btn btn-ghost btn-sm", id: "rep-refresh", title: t("rep.refresh"), "aria-label": t("rep.refresh"), onclick: () => load() }, "↻"),
  h("span", { class: "muted small rep-range", id: "rep-range" }, rangeLabel()));
  clear(els.root,
    h("div", { class: "hist-head" },
      h("h2", {}, t("rep.title")),
      h("button", { type: "button", class: "btn btn-ghost btn-sm", id: "rep-close", onclick: () => setReportsOpen(false) }, t("hist.close"))),
    form,
    section("agents", t("rep.agents"), t("rep.agents_hint")),
    section("volume", t("rep.volume"), null),
    section("breaches", t("rep.breaches"), null));
  for (const name of Object.keys(SECTIONS)) renderSection(name);
}

function section(name, title, hint) {
  return h("section", { class: "rep-section", id: `rep-${name}` },
    h("div", { class: "rep-section-head" },
      h("h3", {}, title),
      h("a", { class: "link-btn rep-csv", href: "#", download: "", dataset: { report: name } }, t("rep.csv"))),
    h("div", { class: "rep-body" }),
    hint ? h("p", { class: "muted small rep-hint" }, hint) : null);
}

function renderSection(name) {
  const box = els?.root.querySelector(`#rep-${name}`);
  if (!box) return;
  const s = view[name];
  const link = box.querySelector(".rep-csv");
  const range = periodRange(view.period, view.fromDay, view.toDay);
  if (range) {
    link.href = url(name, "csv");
    link.download = `omnihub-${name}-${isoDay(range[0])}-${isoDay(addDays(range[1], -1))}.csv`;
    link.hidden = false;
  } else {
    link.hidden = true;
  }
  const body = box.querySelector(".rep-body");
  if (!s) return clear(body, h("div", { class: "empty muted" }, t("rep.custom_hint")));
  if (s.loading) return clear(body, h("div", { class: "empty muted rep-loading" }, t("list.loading")));
  if (s.error) return clear(body, h("div", { class: "empty error" }, t("error.generic", { error: s.error })));
  if (name === "agents") return clear(body, agentsTable(s.items), lateList());
  if (name === "volume") return clear(body, volumeTable(s.items));
  return clear(body, breachesTable(s.items));
}

function table(id, headers, rows) {
  return h("div", { class: "rep-scroll" },
    h("table", { class: "rep-table", id },
      h("thead", {}, h("tr", {}, headers.map(([label, cls, title]) => h("th", { class: cls || "", title: title || null }, label)))),
      h("tbody", {}, rows)));
}

function agentsTable(items) {
  const active = items.filter((r) => r.replies || r.sla_breaches);
  if (!active.length) return h("div", { class: "empty muted" }, t("rep.agents_none"));
  const num = "num";
  // Late and breaches first: the question a manager comes with, visible without scrolling on a phone.
  return table("rep-agents-table", [
    [t("rep.col.agent")], [t("rep.col.late"), num, t("rep.col.late_title")], [t("rep.col.breaches"), num],
    [t("rep.col.first_responses"), num], [t("rep.col.median"), num, t("rep.col.wall_clock")],
    [t("rep.col.p90"), num, t("rep.col.wall_clock")], [t("rep.col.conversations"), num], [t("rep.col.replies"), num],
  ], items.map((r) => h("tr", { dataset: { agent: String(r.agent_id) } },
    h("td", { class: "rep-agent" }, r.agent),
    h("td", { class: `${num}${r.late_first_responses ? " rep-bad" : ""}`, dataset: { col: "late" } },
      r.late_first_responses ? h("button", {
        type: "button", class: "link-btn rep-late-btn", title: t("rep.late_show", { agent: r.agent }),
        "aria-expanded": view.late?.agentId === r.agent_id ? "true" : "false", onclick: () => showLate(r),
      }, r.late_first_responses) : r.late_first_responses),
    h("td", { class: `${num}${r.sla_breaches ? " rep-bad" : ""}`, dataset: { col: "breaches" } }, r.sla_breaches),
    h("td", { class: num, dataset: { col: "first_responses" } }, r.first_responses),
    h("td", { class: num, dataset: { col: "median" } }, minutes(r.median_first_response_min)),
    h("td", { class: num, dataset: { col: "p90" } }, minutes(r.p90_first_response_min)),
    h("td", { class: num, dataset: { col: "conversations" } }, r.conversations),
    h("td", { class: num, dataset: { col: "replies" } }, r.replies))));
}

function volumeTable(items) {
  if (!items.length) return h("div", { class: "empty muted" }, t("rep.volume_none"));
  const max = Math.max(1, ...items.map((r) => r.inbound + r.outbound));
  const total = items.reduce((a, r) => ({ inbound: a.inbound + r.inbound, outbound: a.outbound + r.outbound }), { inbound: 0, outbound: 0 });
  let lastDay = null;
  const rows = items.map((r) => {
    const first = r.day !== lastDay;
    lastDay = r.day;
    const bar = (n, cls) => h("span", { class: `rep-bar ${cls}`, style: `width: ${(100 * n) / max}%` });
    return h("tr", { class: first ? "rep-day-start" : "", dataset: { day: r.day, channel: r.channel } },
      h("td", { class: "rep-day" }, first ? dayLabel(r.day) : ""),
      h("td", {}, r.channel),
      h("td", { class: "num", dataset: { col: "inbound" } }, r.inbound),
      h("td", { class: "num", dataset: { col: "outbound" } }, r.outbound),
      h("td", { class: "num", dataset: { col: "conversations" } }, r.conversations),
      h("td", { class: "rep-bars", "aria-hidden": "true" }, bar(r.inbound, "in"), bar(r.outbound, "out")));
  });
  return [
    table("rep-volume-table", [
      [t("rep.col.day")], [t("rep.col.channel")], [t("rep.col.inbound"), "num"], [t("rep.col.outbound"), "num"],
      [t("rep.col.conversations"), "num"], ["", "rep-bars"],
    ], rows),
    h("p", { class: "muted small rep-total", id: "rep-volume-total" },
      t("rep.volume_total", { inbound: total.inbound, outbound: total.outbound }), " ",
      h("span", { class: "rep-key in" }), ` ${t("rep.col.inbound")} `, h("span", { class: "rep-key out" }), ` ${t("rep.col.outbound")}`),
  ];
}

function dayLabel(day) {
  const d = parseDay(day);
  if (!d) return day;
  return new Intl.DateTimeFormat(getLang() === "ru" ? "ru-RU" : "en-GB", { weekday: "short", day: "numeric", month: "short" }).format(d);
}

// "Which ones?": one agent's late first responses under the table, each opening its conversation.
async function showLate(row) {
  if (view.late?.agentId === row.agent_id) {
    view.late = null;
    return renderSection("agents");
  }
  const token = view.token;
  view.late = { agentId: row.agent_id, agent: row.agent, loading: true, error: "", items: [] };
  renderSection("agents");
  let next;
  try {
    const body = await request("GET", `/reports/first-responses${query({ ...params(), agent: row.agent_id, late: 1 })}`);
    next = { loading: false, error: "", items: body.items || [] };
  } catch (err) {
    next = { loading: false, error: err.message || String(err), items: [] };
  }
  if (token !== view.token || view.late?.agentId !== row.agent_id) return;
  Object.assign(view.late, next);
  renderSection("agents");
}

function lateList() {
  const l = view.late;
  if (!l) return null;
  const csv = `/api/v1/reports/first-responses${query({ ...params(), agent: l.agentId, late: 1, format: "csv" })}`;
  let body;
  if (l.loading) body = h("div", { class: "empty muted" }, t("list.loading"));
  else if (l.error) body = h("div", { class: "empty error" }, t("error.generic", { error: l.error }));
  else {
    body = table("rep-late-table", [
      [t("rep.col.client")], [t("rep.col.customer_at")], [t("rep.col.replied_at")], [t("rep.col.waited"), "num"],
      [t("rep.col.due_at")],
    ], l.items.map((r) => h("tr", { dataset: { conversation: String(r.conversation_id) } },
      h("td", {}, openLink(r.conversation_id, r.client)),
      h("td", {}, formatDateTime(r.customer_at)),
      h("td", {}, formatDateTime(r.replied_at)),
      h("td", { class: "num" }, minutes(r.minutes)),
      h("td", {}, formatDateTime(r.due_at)))));
  }
  return h("div", { class: "rep-late", id: "rep-late" },
    h("div", { class: "rep-section-head" },
      h("h4", {}, t("rep.late_title", { agent: l.agent })),
      h("a", { class: "link-btn rep-late-csv", href: csv, download: `omnihub-late-${l.agentId}.csv` }, t("rep.csv"))),
    body);
}

function openLink(conversationId, label) {
  return h("a", {
    class: "rep-open", href: `#conversation-${conversationId}`,
    onclick: (e) => {
      e.preventDefault();
      setReportsOpen(false);
      cb.onOpenConversation?.(conversationId);
    },
  }, label || `#${conversationId}`);
}

function breachesTable(items) {
  if (!items.length) return h("div", { class: "empty muted" }, t("rep.breaches_none"));
  return table("rep-breaches-table", [
    [t("rep.col.breached_at")], [t("rep.col.client")], [t("rep.col.metric")], [t("rep.col.assignee")],
    [t("rep.col.due_at")], [t("rep.col.policy")],
  ], items.map((b) => h("tr", { dataset: { conversation: String(b.conversation_id) } },
    h("td", {}, formatDateTime(b.breached_at)),
    h("td", {}, openLink(b.conversation_id, b.client)),
    h("td", {}, t(`sla.${b.metric}`)),
    h("td", {}, b.assignee || h("span", { class: "muted" }, t("rep.unassigned"))),
    h("td", {}, formatDateTime(b.due_at)),
    h("td", { class: "muted" }, b.policy || ""))));
}
