// SLA clocks and priority markers on list rows and the thread header.
// A clock is drawn once from the conversation JSON and then repainted in place
// (refreshClocks, every 30 s) from its data-due / data-start, without a refetch.
import { h } from "./dom.js";
import { t } from "./i18n.js";

const WARN_FRACTION = 0.2; // amber when less than a fifth of the target is left

// The clock to show: the running one (not stopped) that falls due first; a
// breached clock keeps running until the reply, so it shows as overdue.
export function slaClock(conv) {
  const sla = conv?.sla;
  if (!sla || conv.status === "resolved") return null;
  const running = (sla.clocks || []).filter((k) => !k.stopped_at && k.due_at)
    .sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at));
  const k = running[0] || (sla.due_at ? { metric: "", due_at: sla.due_at } : null);
  if (!k) return null;
  return { metric: k.metric || "", due: Date.parse(k.due_at), start: clockStart(conv, k.metric) };
}

// The clocks carry no start; first response and resolution run from the
// conversation's start, a next-response wait at the latest from the last
// customer message. Wall-clock time, so the amber mark is an estimate.
function clockStart(conv, metric) {
  if (metric === "first_response" || metric === "resolution") return Date.parse(conv.created_at) || null;
  if (metric === "next_response" && conv.last_message?.direction === "in") return Date.parse(conv.last_message.created_at) || null;
  return null;
}

function duration(ms, round) {
  const mins = Math.max(1, round(ms / 60000));
  if (mins < 60) return t("sla.min", { n: mins });
  const hours = Math.floor(mins / 60);
  if (hours < 24) return mins % 60 ? t("sla.h_min", { h: hours, m: mins % 60 }) : t("sla.h", { n: hours });
  return t("sla.d", { n: Math.floor(hours / 24) });
}

function paint(el, now = Date.now()) {
  const due = Number(el.dataset.due);
  const start = el.dataset.start ? Number(el.dataset.start) : NaN;
  const left = due - now;
  let level = "ok";
  if (left <= 0) level = "overdue";
  else if (Number.isFinite(start) && due > start && left / (due - start) < WARN_FRACTION) level = "warn";
  el.className = `sla-clock sla-${level}`;
  el.dataset.level = level;
  el.textContent = left <= 0
    ? t("sla.overdue", { t: duration(-left, Math.floor) })
    : t("sla.due_in", { t: duration(left, Math.ceil) });
}

export function slaBadge(conv) {
  const k = slaClock(conv);
  if (!k || !Number.isFinite(k.due)) return null;
  const el = h("span", {
    class: "sla-clock",
    dataset: { due: String(k.due), start: k.start ? String(k.start) : "", metric: k.metric },
    title: k.metric ? t(`sla.${k.metric}`) : t("sla.title"),
  });
  paint(el);
  return el;
}

export function refreshClocks(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll(".sla-clock")) paint(el, now);
  for (const el of root.querySelectorAll(".queue-wait[data-since]")) el.textContent = waitingText(Number(el.dataset.since));
}

// "waiting 12 min" on a Queue row.
export function waitingText(sinceMs) {
  return Number.isFinite(sinceMs) ? t("queue.waiting", { t: duration(Math.max(0, Date.now() - sinceMs), Math.floor) }) : "";
}

export function priorityBadge(conv) {
  if (conv?.priority === "urgent") return h("span", { class: "prio prio-urgent", title: t("prio.urgent_title") }, t("prio.urgent"));
  if (conv?.priority === "high") return h("span", { class: "prio prio-vip", title: t("prio.vip_title") }, t("prio.vip"));
  return null;
}
