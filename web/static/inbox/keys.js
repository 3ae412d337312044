// Keyboard shortcuts and the "?" help overlay.
import { h, clear } from "./dom.js";
import { t } from "./i18n.js";

const SHORTCUTS = [
  ["j", "help.j"], ["k", "help.k"], ["r", "help.r"], ["e", "help.e"], ["n", "help.n"],
  ["/", "help.slash"], ["?", "help.help"], ["Esc", "help.esc"], ["Enter", "help.enter"], ["Shift+Enter", "help.shift_enter"],
];

let dialog = null;

function isTyping(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

export function installShortcuts(actions) {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape") {
      if (dialog && !dialog.hidden) { hideHelp(); e.preventDefault(); return; }
      if (isTyping(e.target)) e.target.blur();
      return;
    }
    if (isTyping(e.target) || document.body.dataset.screen !== "app") return;
    const fn = {
      j: actions.next, k: actions.prev, r: actions.reply, e: actions.resolve,
      n: actions.note, "/": actions.search, "?": toggleHelp,
    }[e.key];
    if (fn) {
      e.preventDefault();
      fn();
    }
  });
}

export function toggleHelp() {
  if (dialog && !dialog.hidden) hideHelp();
  else showHelp();
}

function hideHelp() {
  if (dialog) dialog.hidden = true;
}

function showHelp() {
  if (!dialog) {
    dialog = h("div", { class: "overlay", id: "help", role: "dialog", "aria-modal": "true" });
    dialog.addEventListener("click", (e) => { if (e.target === dialog) hideHelp(); });
    document.body.append(dialog);
  }
  clear(dialog, h("div", { class: "dialog" },
    h("h2", {}, t("help.title")),
    h("table", { class: "keys" }, h("tbody", {}, SHORTCUTS.map(([key, label]) =>
      h("tr", {}, h("td", {}, key.split("+").map((k) => h("kbd", {}, k))), h("td", {}, t(label)))))),
    h("div", { class: "dialog-actions" },
      h("button", { type: "button", class: "btn", onclick: hideHelp }, t("help.close")))));
  dialog.hidden = false;
}
