// SLA clocks and priority markers on list rows and the thread header.
// A clock is drawn once from the conversation JSON and then repainted in place
// (refreshClocks, every 30 s) from its data-due / data-start, without a refetch.
import { h } from "./dom.js";
import { t } from "./i18n.js";

const WARN_FRACTION = 0.2; // amber when less than a fifth of the time from its start to its due time is left

// The clock to show: the running one (not stopped) that falls due first; a
// breached clock keeps running until the reply, so it shows as overdue. With
// none running, a paused one (pending, snoozed) shows as paused: it resumes,
// due later, when the conversation opens again.
export function slaClock(conv) {
  const sla = conv?.sla;
  if (!sla || conv.status === "resolved") return null;
  const byDue = (a, b) => Date.parse(a.due_at) - Date.parse(b.due_at);
  const clocks = sla.clocks || [];
  const running = clocks.filter((k) => !k.stopped_at && k.due_at).sort(byDue);
  const paused = clocks.filter((k) => k.paused_at).sort(byDue);
  if (!running.length && paused.length) return { metric: paused[0].metric, paused: true };
  // Every clock pauses while the conversation waits (pending, snoozed). The routing pass that
  // records it runs just after the status change, so a snapshot taken in between (another
  // event's, a page fetched then) still lists the clock as running: trust the status.
  if (running.length && (conv.status === "pending" || conv.status === "snoozed")) {
    return { metric: running[0].metric, paused: true };
  }
  const k = running[0] || (sla.due_at ? { metric: "", due_at: sla.due_at } : null);
  if (!k) return null;
  // The clock's own start (the customer's message it runs from). Wall-clock: nights, weekends and
  // pauses between start and due make the span longer than the target, so amber is an estimate.
  return { metric: k.metric || "", due: Date.parse(k.due_at), start: Date.parse(k.started_at) || null };
}

function duration(ms, round) {
  const mins = Math.max(1, round(ms / 60000));
  if (mins < 60) return t("sla.min", { n: mins });
  const hours = Math.floor(mins / 60);
  if (hours < 24) return mins % 60 ? t("sla.h_min", { h: hours, m: mins % 60 }) : t("sla.h", { n: hours });
  return t("sla.d", { n: Math.floor(hours / 24) });
}

function paint(el, now = Date.now()) {
  if (el.dataset.paused) {
    el.className = "sla-clock sla-paused";
    el.dataset.level = "paused";
    el.textContent = t("sla.paused");
    return;
  }
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
  if (!k || !(k.paused || Number.isFinite(k.due))) return null;
  const name = k.metric ? t(`sla.${k.metric}`) : t("sla.title");
  const el = h("span", {
    class: "sla-clock",
    dataset: k.paused ? { paused: "1", metric: k.metric } : { due: String(k.due), start: k.start ? String(k.start) : "", metric: k.metric },
    title: k.paused ? `${name}: ${t("sla.paused_title")}` : name,
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
