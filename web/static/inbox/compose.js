// The reply box: text and files (paperclip, drag and drop, paste) as removable
// chips, the private-note mode, and sending. Each conversation keeps its own
// draft, so switching conversations never carries text or files to another client.
import { h, clear, icon } from "./dom.js";
import { t } from "./i18n.js";
import { api } from "./api.js";
import { channelName } from "./state.js";
import { formatSize, previewable } from "./messages.js";

const TYPING_SEND_MS = 3000;
// Until GET /reply-limits answers; the server checks again either way.
const FALLBACK_LIMITS = { max_file_bytes: 20 * 1024 * 1024, max_files: 10, max_text_chars: 100_000 };

let els = null;
let cb = null;
const cs = {
  conv: null,
  noteMode: false,
  sending: false,
  drafts: new Map(), // conversation id -> {text, files: [{key, file, url}]}
  limits: null,
  lastTypingSent: 0,
  nextKey: 1,
  progress: null, // 0..1 while files upload
};

// Builds the form; `dropZone` (the thread) also accepts dropped files.
export function mountComposer(dropZone, callbacks) {
  cb = callbacks;
  const input = h("textarea", { id: "reply", class: "reply-input", rows: 2 });
  const files = h("input", { type: "file", id: "reply-files", multiple: true, hidden: true, tabindex: "-1" });
  const clipBtn = h("button", { type: "button", class: "btn btn-icon btn-clip", id: "attach" }, icon("clip"));
  const noteBtn = h("button", { type: "button", class: "btn btn-toggle", id: "note-toggle", "aria-pressed": "false" });
  const sendBtn = h("button", { type: "submit", class: "btn btn-primary", id: "send" });
  const via = h("span", { class: "reply-via" });
  const error = h("div", { class: "reply-error", role: "alert", hidden: true });
  const chips = h("ul", { class: "file-chips", id: "reply-chips", hidden: true });
  const held = h("div", { class: "file-chips-held", hidden: true });
  const form = h("form", { class: "composer" },
    error, input, chips, held, h("div", { class: "composer-bar" }, clipBtn, noteBtn, via, sendBtn), files);
  els = { input, files, clipBtn, noteBtn, sendBtn, via, error, chips, held, form, dropZone };

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener("input", () => {
    if (cs.conv) draft(cs.conv.id).text = input.value;
    if (cs.noteMode || !cs.conv || !input.value) return;
    const now = Date.now();
    if (now - cs.lastTypingSent > TYPING_SEND_MS) {
      cs.lastTypingSent = now;
      cb.onTyping(cs.conv.id);
    }
  });
  input.addEventListener("paste", (e) => {
    const pasted = [...(e.clipboardData?.files || [])];
    if (!pasted.length) return;
    // A copied image comes with no text; copied text with an image keeps its text.
    if (!e.clipboardData.types.includes("text/plain")) e.preventDefault();
    addFiles(pasted.map(namePasted));
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  clipBtn.addEventListener("click", () => {
    if (clipBtn.getAttribute("aria-disabled") !== "true") files.click();
  });
  files.addEventListener("change", () => {
    addFiles([...files.files]);
    files.value = ""; // the same file can be picked again after removing it
  });
  noteBtn.addEventListener("click", () => toggleNote());
  installDrop(dropZone);
  renderComposer();
  return form;
}

function installDrop(zone) {
  let depth = 0; // dragenter/dragleave fire for every child crossed
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  zone.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth++;
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dropping");
  });
  zone.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    zone.classList.remove("dropping");
    addFiles([...e.dataTransfer.files]);
  });
  // A file dropped just outside the thread would make the browser open it in place of
  // the inbox, losing every draft: outside the thread a drop does nothing.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (e) => {
      if (hasFiles(e) && !zone.contains(e.target)) e.preventDefault();
    });
  }
}

// Every screenshot pastes as "image.png": give it a name an agent can tell apart.
function namePasted(file) {
  if (!/^image\.\w+$/.test(file.name || "image.png")) return file;
  const ext = (file.type.split("/")[1] || "png").replace(/[^a-z0-9]/gi, "");
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  return new File([file], `pasted-${stamp}.${ext}`, { type: file.type });
}

function draft(id) {
  let d = cs.drafts.get(id);
  if (!d) cs.drafts.set(id, (d = { text: "", files: [] }));
  return d;
}

// Every channel delivers files (docs/inbox.md, Files); a note is text only (POST /notes).
function clipBlockedReason() {
  return cs.noteMode ? t("attach.note_no_files") : "";
}

async function limits() {
  if (!cs.limits) cs.limits = await api.replyLimits().catch(() => null);
  return cs.limits || FALLBACK_LIMITS;
}

export async function addFiles(list) {
  if (!list.length || !cs.conv) return;
  const conv = cs.conv;
  if (cs.noteMode) return showError(clipBlockedReason());
  const lim = await limits();
  const d = draft(conv.id);
  const problems = [];
  for (const file of list) {
    if (file.size > lim.max_file_bytes) {
      problems.push(t("attach.too_large", { name: file.name, size: formatSize(file.size), limit: formatSize(lim.max_file_bytes) }));
    } else if (d.files.length >= lim.max_files) {
      problems.push(t("attach.too_many", { n: lim.max_files }));
      break;
    } else {
      const url = previewable(file.type) ? URL.createObjectURL(file) : null;
      d.files.push({ key: cs.nextKey++, file, url });
    }
  }
  if (cs.conv?.id === conv.id) {
    if (problems.length) showError(problems.join(" "));
    else els.error.hidden = true;
    renderChips();
  }
}

function removeFile(key) {
  if (!cs.conv || cs.sending) return;
  const d = draft(cs.conv.id);
  const gone = d.files.find((f) => f.key === key);
  if (gone?.url) URL.revokeObjectURL(gone.url);
  d.files = d.files.filter((f) => f.key !== key);
  renderChips();
  els.input.focus();
}

function showError(text) {
  els.error.textContent = text;
  els.error.hidden = false;
}

// Switches the box to another conversation's draft (or none).
export function setComposerConversation(conv) {
  const switching = cs.conv?.id !== conv?.id;
  cs.conv = conv;
  if (switching) {
    els.error.hidden = true;
    cs.lastTypingSent = 0;
    els.input.value = conv ? draft(conv.id).text : "";
  }
  if (conv) limits();
  renderComposer();
}

export function renderComposer() {
  if (!els) return;
  els.noteBtn.textContent = t("reply.note");
  els.noteBtn.setAttribute("aria-pressed", String(cs.noteMode));
  renderSendLabel();
  els.input.placeholder = cs.noteMode ? t("reply.note_placeholder") : t("reply.placeholder");
  els.form.classList.toggle("note-mode", cs.noteMode);
  els.via.textContent = cs.conv && !cs.noteMode ? t("reply.via", { channel: channelName(cs.conv) }) : "";
  const blocked = clipBlockedReason();
  els.clipBtn.setAttribute("aria-disabled", String(!!blocked));
  els.clipBtn.title = blocked || t("attach.add");
  els.clipBtn.setAttribute("aria-label", blocked || t("attach.add"));
  els.dropZone.dataset.dropLabel = t("attach.drop");
  renderChips();
}

function renderSendLabel() {
  els.sendBtn.textContent = cs.sending && cs.progress !== null ? t("attach.uploading", { pct: Math.round(cs.progress * 100) })
    : cs.noteMode ? t("reply.add_note") : t("reply.send");
}

function draftFiles() {
  return cs.conv ? draft(cs.conv.id).files : [];
}

function renderChips() {
  const files = draftFiles();
  els.chips.hidden = !files.length;
  els.chips.classList.toggle("held", cs.noteMode);
  clear(els.chips, files.map(({ key, file, url }) => h("li", { class: "file-chip", dataset: { key: String(key) } },
    url ? h("img", { class: "file-chip-thumb", src: url, alt: "" }) : h("span", { class: "file-chip-ext", "aria-hidden": "true" }, extension(file.name)),
    h("span", { class: "file-chip-name", title: file.name }, file.name),
    h("span", { class: "file-chip-size" }, formatSize(file.size)),
    h("button", {
      type: "button", class: "file-chip-remove", disabled: cs.sending,
      "aria-label": t("attach.remove", { name: file.name }), title: t("attach.remove", { name: file.name }),
      onclick: () => removeFile(key),
    }, "×"))));
  els.held.hidden = !(files.length && cs.noteMode);
  els.held.textContent = t("attach.held_for_reply");
}

function extension(name) {
  const m = /\.([a-z0-9]{1,4})$/i.exec(name || "");
  return m ? m[1].toUpperCase() : "FILE";
}

export function focusComposer() {
  if (cs.conv) els.input.focus();
}

export function toggleNote(force) {
  cs.noteMode = typeof force === "boolean" ? force : !cs.noteMode;
  renderComposer();
  els.input.focus();
}

async function send() {
  if (!cs.conv || cs.sending) return;
  const convId = cs.conv.id;
  const d = draft(convId);
  const text = els.input.value.trim();
  const files = cs.noteMode ? [] : d.files.slice();
  if (!text && !files.length) return;
  cs.sending = true;
  els.sendBtn.disabled = true;
  els.error.hidden = true;
  els.input.value = "";
  d.text = "";
  cs.lastTypingSent = 0;
  cs.progress = files.length ? 0 : null;
  renderComposer();
  try {
    if (cs.noteMode) cb.onNote(await api.note(convId, text));
    else {
      cb.onMessage(await api.reply(convId, text, files.map((f) => f.file), (p) => {
        cs.progress = p;
        renderSendLabel();
      }));
      for (const f of files) if (f.url) URL.revokeObjectURL(f.url);
      d.files = d.files.filter((f) => !files.includes(f));
    }
  } catch (err) {
    // Give the text back (the files never left the draft) so nothing is lost.
    if (!d.text) d.text = text;
    if (cs.conv?.id === convId) {
      if (!els.input.value) els.input.value = text;
      showError(t("error.generic", { error: err.message }));
    }
  } finally {
    cs.sending = false;
    cs.progress = null;
    els.sendBtn.disabled = false;
    renderComposer();
  }
}
