// One thread item — a message or a private note — as DOM. All user text goes
// in through text nodes (an e-mail's quoted text too); e-mail HTML (already
// sanitized by the server) is only ever shown inside a sandboxed iframe with
// scripts and remote loads off.
import { h, channelBadge } from "./dom.js";
import { t, formatDateTime, formatClock, getLang } from "./i18n.js";
import { blobUrl } from "./api.js";

const HTML_CSP =
  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">";

export function renderItem(item, ctx) {
  return item.kind === "note" ? renderNote(item.data) : renderMessage(item.data, ctx);
}

export function dayDivider(iso) {
  const d = new Date(iso);
  return h("div", { class: "day" }, h("span", {},
    d.toLocaleDateString(getLang(), { weekday: "short", day: "numeric", month: "long" })));
}

function renderMessage(m, { me, onRetry, htmlOpen, onToggleHtml, quotedOpen, onToggleQuoted }) {
  const out = m.direction === "out";
  const author = m.author?.name || (out ? t("msg.you") : t("thread.visitor"));
  const meta = h("div", { class: "msg-meta" },
    h("span", { class: "msg-author" }, author),
    channelBadge(m.channel),
    h("time", { datetime: m.created_at, title: new Date(m.created_at).toLocaleString(getLang()) }, formatClock(m.created_at)));
  if (out) meta.append(statusNode(m, onRetry));
  const body = h("div", { class: "bubble" });
  // E-mail: `text` has the quotes and signature folded away, `original_text` is the whole mail.
  const quoted = !!m.original_text && quotedOpen.has(m.id);
  if (quoted) body.append(h("div", { class: "msg-text msg-original" }, m.original_text));
  else if (m.text) body.append(h("div", { class: "msg-text" }, m.text));
  if (m.original_text) {
    body.append(h("button", {
      type: "button", class: "link-btn quoted-toggle", "aria-expanded": String(quoted), onclick: () => onToggleQuoted(m.id),
    }, quoted ? t("msg.hide_quoted") : t("msg.show_quoted")));
  }
  if (m.html) {
    const open = htmlOpen.has(m.id);
    body.append(h("button", {
      type: "button", class: "link-btn", onclick: () => onToggleHtml(m.id),
    }, open ? t("msg.hide_html") : t("msg.show_html")));
    if (open) {
      const frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "");
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.className = "msg-html";
      frame.title = "e-mail";
      frame.srcdoc = HTML_CSP + m.html;
      body.append(frame);
    }
  }
  if (m.attachments?.length) body.append(attachments(m.attachments));
  if (!m.text && !m.html && !m.attachments?.length) body.append(h("div", { class: "msg-text muted" }, "—"));
  return h("div", {
    class: `msg ${out ? "out" : "in"}${m.status === "failed" ? " failed" : ""}`,
    dataset: { id: String(m.id), status: m.status, mine: String(out && m.author?.id === me?.id) },
  }, meta, body);
}

function statusNode(m, onRetry) {
  const wrap = h("span", { class: `msg-status st-${m.status}` }, t(`msg.${m.status}`));
  if (m.status === "failed") {
    if (m.error) wrap.title = m.error;
    return h("span", { class: "msg-status-wrap" }, wrap,
      h("button", { type: "button", class: "btn btn-xs btn-danger retry", onclick: () => onRetry(m.id) }, t("msg.retry")),
      m.error ? h("span", { class: "msg-error" }, m.error) : null);
  }
  return wrap;
}

function attachments(list) {
  return h("ul", { class: "attachments" }, list.map((a) => {
    const link = h("a", { class: "attachment", target: "_blank", rel: "noopener noreferrer" });
    link.href = blobUrl(a);
    if (previewable(a.content_type)) {
      const img = h("img", { class: "thumb", alt: a.filename || "", loading: "lazy" });
      img.src = link.href;
      link.append(img);
    }
    link.append(h("span", { class: "att-name" }, a.filename || a.sha256), h("span", { class: "att-size" }, formatSize(a.size)));
    return h("li", {}, link);
  }));
}

// Pictures every browser draws; a TIFF or HEIC photo is a link like any file.
const PREVIEWABLE = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"]);

export function previewable(contentType) {
  return PREVIEWABLE.has(String(contentType || "").toLowerCase());
}

export function formatSize(bytes) {
  if (typeof bytes !== "number") return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function renderNote(n) {
  return h("div", { class: "note", dataset: { noteId: String(n.id) } },
    h("div", { class: "msg-meta" },
      h("span", { class: "note-label" }, t("msg.note")),
      h("span", { class: "msg-author" }, n.author?.name || ""),
      h("time", { datetime: n.created_at, title: formatDateTime(n.created_at) }, formatClock(n.created_at))),
    h("div", { class: "msg-text" }, n.text));
}
