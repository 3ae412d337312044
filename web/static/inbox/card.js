// The client card: who the person is on every channel, their other
// conversations and the timeline of everything that happened with them.
// The server sends the newest of each list and a cursor; "Show more" pages on.
import { h, clear, channelBadge, initials, icon } from "./dom.js";
import { t, formatDateTime, formatTime } from "./i18n.js";
import { api, request, query } from "./api.js";
import { historyApi, mountHistory } from "./history.js";
import { state } from "./state.js";

// Delivery bookkeeping: visible in the thread, noise on the timeline.
// A conversation.updated without an actor is bookkeeping too (read counters).
const QUIET = new Set(["message.status", "message.updated", "visitor.typing"]);
const quiet = (ev) => QUIET.has(ev.type) || (ev.type === "conversation.updated" && !ev.actor);

let els = null;
let cb = null;
const card = { clientId: null, data: null, suggestions: [], token: 0, refreshTimer: null };
// What the agent is typing into the card's inputs survives a live re-render.
const drafts = { tag: "", cfKey: "", cfValue: "", note: "", segment: null };
let rendering = false;
const KIND_NAMES = { telegram: "Telegram", vk: "VK", email: "E-mail", widget: "Web chat" };
// The card's paged lists. Pages come newest first; the card's timeline is oldest first.
const PAGED = ["identities", "conversations", "timeline"];
const oldestFirst = (list) => list === "timeline";

export function mountCard(root, callbacks) {
  cb = callbacks;
  els = { root };
  render();
  // The History view (managers, admins) opens conversations the way the card does.
  mountHistory({
    onOpenConversation: async (id) => {
      try {
        cb.onOpenConversation(await api.conversation(id));
      } catch (err) {
        showError(err);
      }
    },
  });
}

function showError(err) {
  if (cb.onError) return cb.onError(err);
  const toast = document.getElementById("toast");
  if (!toast) return;
  toast.textContent = t("error.generic", { error: err.message || String(err) });
  toast.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { toast.hidden = true; }, 6000);
}

export function cardClientId() {
  return card.clientId;
}

export async function showClient(clientId) {
  if (clientId !== card.clientId) {
    card.data = null;
    card.suggestions = [];
    Object.assign(drafts, { tag: "", cfKey: "", cfValue: "", note: "", segment: null });
  }
  card.clientId = clientId;
  const token = ++card.token;
  render();
  if (clientId === null) return;
  try {
    const [data, sugg] = await Promise.all([
      api.client(clientId),
      historyApi.clientSuggestions(clientId).catch(() => ({ items: [] })),
    ]);
    // A live refresh keeps the pages "Show more" opened, also while this request ran.
    const shown = Object.fromEntries(PAGED.map((list) => [list, card.data?.id === data.id ? card.data[list]?.length || 0 : 0]));
    await Promise.all(PAGED.filter((list) => shown[list] > (data[list] || []).length && data[`${list}_next_cursor`]).map(async (list) => {
      const more = await request("GET", `/clients/${data.id}/${list}${query({ limit: Math.min(shown[list], 500) })}`);
      Object.assign(data, { [list]: oldestFirst(list) ? more.items.reverse() : more.items, [`${list}_next_cursor`]: more.next_cursor });
    }));
    if (token !== card.token) return;
    card.data = data;
    card.suggestions = sugg?.items || [];
  } catch (err) {
    if (token !== card.token) return;
    card.data = { error: err.message };
  }
  render();
}

// Events about this client arrive in bursts (a message creates several); one
// refetch after the burst is enough.
// A merged-away id answers with its survivor's card, so either id is "this card";
// a client.merged names the card that went away in its data.
export function refreshSoon(clientId, ev = null) {
  const ids = [clientId, ev?.data?.merged_client_id, ev?.data?.restored_client_id, ev?.data?.survivor_id];
  const mine = (id) => id != null && (id === card.clientId || id === card.data?.id);
  if (card.clientId === null || !ids.some(mine)) return;
  clearTimeout(card.refreshTimer);
  card.refreshTimer = setTimeout(() => showClient(card.clientId), 300);
}

// Live events re-render the card while an agent may be typing in it: keep the
// focus and the caret in the same field.
export function render() {
  if (!els) return;
  const active = document.activeElement;
  const focusId = active && active.id && els.root.contains(active) ? active.id : null;
  const caret = focusId && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
  rendering = true;
  try {
    draw();
  } finally {
    rendering = false;
  }
  const again = focusId ? document.getElementById(focusId) : null;
  if (again && els.root.contains(again)) {
    again.focus();
    if (caret) {
      try {
        again.setSelectionRange(caret[0], caret[1]);
      } catch {
        // Not a text field.
      }
    }
  }
}

function draw() {
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
      d.phone ? [h("dt", {}, t("card.phone")), h("dd", {}, d.phone)] : null,
      firstTouch(d.first_touch)),
    suggestionsSection(d),
    profileSection(d),
    section(t("card.identities"), (d.identities || []).map((i) =>
      h("li", { class: "identity" },
        // docs/api.md says a kind string; the server sends {id, kind, name}. Take either.
        typeof i.channel === "object" && i.channel ? channelBadge(i.channel.kind, i.channel.name) : channelBadge(i.channel),
        h("span", { class: "identity-name" }, i.display_name || i.username || i.external_id),
        i.username && i.display_name ? h("span", { class: "muted small" }, `@${i.username}`) : null)).concat(moreButton(d, "identities", "card-ident-more")).filter(Boolean)),
    section(t("card.conversations"), [...(d.conversations || []).map((c) =>
      h("li", {},
        h("button", {
          type: "button", class: `card-conv${c.id === state.selectedId ? " current" : ""}`,
          onclick: () => cb.onOpenConversation(c),
        },
        h("span", { class: "card-conv-top" },
          channelBadge(c.channel?.kind, c.channel?.name),
          h("span", { class: `pill st-${c.status}` }, t(`status.${c.status}`)),
          h("time", { class: "muted small" }, formatTime(c.last_activity_at))),
        h("span", { class: "card-conv-text" }, c.last_message?.text || c.subject || `#${c.id}`)))),
    moreButton(d, "conversations", "card-conv-more")].filter(Boolean)),
    notesSection(d),
    (d.merges || []).length ? section(t("card.merges"), d.merges.map(mergeItem), "card-merges") : null,
    section(t("card.timeline"), [...[...(d.timeline || [])].filter((ev) => !quiet(ev)).reverse().map(timelineItem),
      moreButton(d, "timeline", "card-timeline-more")].filter(Boolean), "timeline"));
}

// The card holds the newest of each list; the rest come a page at a time. The
// timeline has no total (counting a busy client's events costs what the cap saves).
function moreButton(d, list, id) {
  if (!d[`${list}_next_cursor`]) return null;
  const shown = d[list].length;
  return h("li", {}, h("button", { type: "button", class: "btn btn-ghost btn-sm", id, onclick: () => more(list) },
    t("card.more", { shown, total: d[`${list}_total`] ?? `${shown}+` })));
}

async function more(list) {
  const { id } = card.data;
  const cursor = card.data[`${list}_next_cursor`];
  try {
    const page = await request("GET", `/clients/${id}/${list}${query({ cursor })}`);
    // A live refresh may have replaced the card meanwhile: the page still fits if it ends where this one did.
    const d = card.data;
    if (d?.id !== id || d[`${list}_next_cursor`] !== cursor) return;
    d[list] = oldestFirst(list) ? [...page.items.reverse(), ...d[list]] : [...d[list], ...page.items];
    d[`${list}_next_cursor`] = page.next_cursor;
    render();
  } catch (err) {
    showError(err);
  }
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
  } else if (ev.type === "client.merged") {
    title = t("ev.merged", { name: ev.actor?.name || "", other: data.merged_name || `#${data.merged_client_id ?? ""}` });
  } else if (ev.type === "client.unmerged") {
    title = t("ev.unmerged", { name: ev.actor?.name || "" });
  } else if (ev.type === "message.failed") {
    title = t("ev.failed");
    detail = data.reason || null;
    cls = "ev-failed";
  } else if (ev.type === "client.updated") {
    title = t("ev.client");
    if (ev.actor?.name) detail = ev.actor.name;
  } else {
    title = t("ev.other", { type: ev.type });
  }
  return h("li", { class: `tl ${cls}` },
    h("div", { class: "tl-head" }, h("span", { class: "tl-title" }, title),
      h("time", { class: "muted small", title: formatDateTime(ev.created_at) }, formatTime(ev.created_at))),
    detail ? h("div", { class: "tl-detail" }, detail) : null);
}

// ---- editable profile: segment, tags, custom fields, notes, merges ------------

// Edits run one after another, in the order they were made (a segment saved on
// blur and a note added by the same click both go through).
let queue = Promise.resolve();
function edit(fn) {
  if (!card.data) return queue;
  queue = queue.then(async () => {
    try {
      const res = await fn();
      if (res && typeof res.id === "number" && Array.isArray(res.identities)) {
        card.data = res;
        card.clientId = res.id;
      }
    } catch (err) {
      showError(err);
    }
    // Suggestions and merges change with a merge: read the whole card again.
    await showClient(card.clientId);
  });
  return queue;
}

// body: an object, or a function of the card as it is when the edit runs
// (so two quick tag edits both land).
function patch(body) {
  return edit(() => historyApi.updateClient(card.data.id, typeof body === "function" ? body(card.data) : body));
}

const tagsOf = (d) => (Array.isArray(d?.tags) ? d.tags : []);

function firstTouch(ft) {
  if (!ft || !ft.channel) return null;
  const ch = KIND_NAMES[ft.channel] || ft.channel;
  let text;
  if (ft.start_payload) text = t("card.ft_start", { channel: ch, payload: ft.start_payload });
  else if (ft.page) text = t("card.ft_page", { page: ft.page });
  else if (ft.ref) text = t("card.ft_ref", { channel: ch, ref: ft.ref });
  else text = t("card.ft_channel", { channel: ch });
  return [h("dt", {}, t("card.first_touch")),
    h("dd", { id: "card-first-touch", title: ft.at ? formatDateTime(ft.at) : null }, text,
      ft.at ? h("span", { class: "muted small" }, ` · ${formatDateTime(ft.at)}`) : null)];
}

function onEnter(fn) {
  return (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      fn();
    }
  };
}

function profileSection(d) {
  const tags = Array.isArray(d.tags) ? d.tags : [];
  const fields = d.custom_fields && typeof d.custom_fields === "object" ? d.custom_fields : {};
  const addTag = () => {
    const tag = drafts.tag.trim();
    drafts.tag = "";
    if (tag && !tags.includes(tag)) patch((cur) => ({ tags: [...tagsOf(cur).filter((x) => x !== tag), tag] }));
    else render();
  };
  const addField = () => {
    const key = drafts.cfKey.trim();
    if (!key) return;
    const value = drafts.cfValue;
    drafts.cfKey = "";
    drafts.cfValue = "";
    patch({ custom_fields: { [key]: value } });
  };
  const segment = h("input", {
    type: "text", class: "input input-sm", id: "card-segment", value: drafts.segment ?? (d.segment || ""),
    placeholder: t("card.segment_placeholder"), "aria-label": t("card.segment"), maxlength: "200",
    oninput: (e) => { drafts.segment = e.target.value; },
  });
  const saveSegment = () => {
    if (rendering || drafts.segment === null) return;
    const v = drafts.segment.trim();
    drafts.segment = null;
    if (v !== (d.segment || "")) patch({ segment: v || null });
  };
  segment.addEventListener("blur", saveSegment);
  segment.addEventListener("keydown", onEnter(saveSegment));
  return h("section", { class: "card-section card-profile" },
    h("h3", {}, t("card.segment")),
    segment,
    h("h3", {}, t("card.tags")),
    h("div", { class: "chips", id: "card-tags" },
      tags.map((tag) => h("span", { class: "chip", dataset: { tag } },
        h("span", { class: "chip-text" }, tag),
        h("button", {
          type: "button", class: "chip-x", title: t("card.tag_remove"), "aria-label": t("card.tag_remove"),
          onclick: () => patch((cur) => ({ tags: tagsOf(cur).filter((x) => x !== tag) })),
        }, "×"))),
      h("input", {
        type: "text", class: "input input-sm chip-input", id: "card-tag-input", value: drafts.tag,
        placeholder: t("card.tag_add"), "aria-label": t("card.tag_add"), maxlength: "100",
        oninput: (e) => { drafts.tag = e.target.value; }, onkeydown: onEnter(addTag),
      })),
    h("h3", {}, t("card.fields")),
    Object.keys(fields).length
      ? h("dl", { class: "card-fields card-custom", id: "card-custom" },
        Object.entries(fields).map(([k, v]) => [
          h("dt", {}, k),
          h("dd", { dataset: { key: k } },
            h("span", { class: "cf-value" }, v === null ? "" : String(v)),
            h("button", {
              type: "button", class: "chip-x", title: t("card.field_remove"), "aria-label": t("card.field_remove"),
              onclick: () => patch({ custom_fields: { [k]: null } }),
            }, "×")),
        ]))
      : null,
    h("div", { class: "cf-add" },
      h("input", {
        type: "text", class: "input input-sm", id: "card-cf-key", value: drafts.cfKey, maxlength: "100",
        placeholder: t("card.field_key"), "aria-label": t("card.field_key"),
        oninput: (e) => { drafts.cfKey = e.target.value; }, onkeydown: onEnter(addField),
      }),
      h("input", {
        type: "text", class: "input input-sm", id: "card-cf-value", value: drafts.cfValue, maxlength: "2000",
        placeholder: t("card.field_value"), "aria-label": t("card.field_value"),
        oninput: (e) => { drafts.cfValue = e.target.value; }, onkeydown: onEnter(addField),
      }),
      h("button", { type: "button", class: "btn btn-sm", id: "card-cf-add", onclick: addField }, t("card.field_add"))));
}

function notesSection(d) {
  const add = () => {
    const text = drafts.note.trim();
    if (!text) return;
    drafts.note = "";
    edit(() => historyApi.clientNote(card.data.id, text));
  };
  const notes = [...(d.notes || [])].reverse();
  return h("section", { class: "card-section card-notes" },
    h("h3", {}, t("card.notes")),
    notes.length
      ? h("ul", { id: "card-notes" }, notes.map((n) => h("li", { class: "card-note" },
        h("div", { class: "tl-head" },
          h("span", { class: "tl-title" }, n.author?.name || ""),
          h("time", { class: "muted small" }, formatTime(n.created_at))),
        h("div", { class: "tl-detail" }, n.text))))
      : h("div", { class: "muted small" }, t("card.none")),
    h("textarea", {
      class: "input card-note-input", id: "card-note-input", rows: "2", placeholder: t("card.note_placeholder"),
      "aria-label": t("card.note_placeholder"),
      oninput: (e) => { drafts.note = e.target.value; },
    }, drafts.note),
    h("button", { type: "button", class: "btn btn-sm", id: "card-note-add", onclick: add }, t("card.note_add")));
}

function suggestionsSection(d) {
  const items = card.suggestions.filter((s) => s.status === "pending" || !s.status);
  if (!items.length) return null;
  return h("section", { class: "card-section card-suggestions", id: "card-suggestions" },
    h("h3", {}, t("card.suggestions")),
    h("ul", {}, items.map((s) => {
      const other = (s.clients || []).find((c) => c.id !== d.id && c.id !== card.clientId) || (s.clients || [])[1] || {};
      return h("li", { class: "suggestion", dataset: { id: String(s.id) } },
        h("div", {}, t("card.suggest_same", { name: other.name || `#${other.id}` })),
        h("div", { class: "muted small" },
          t(`card.reason_${s.reason}`), [other.email, other.phone].filter(Boolean).length ? ` · ${[other.email, other.phone].filter(Boolean).join(", ")}` : ""),
        h("div", { class: "suggestion-actions" },
          h("button", {
            type: "button", class: "btn btn-primary btn-sm suggestion-merge",
            onclick: () => edit(() => historyApi.confirmSuggestion(s.id, d.id)),
          }, t("card.merge")),
          h("button", {
            type: "button", class: "btn btn-ghost btn-sm suggestion-dismiss",
            onclick: () => edit(() => historyApi.dismissSuggestion(s.id)),
          }, t("card.dismiss"))));
    })));
}

function mergeItem(m) {
  const undone = !!m.undone_at;
  return h("li", { class: `card-merge${undone ? " undone" : ""}`, dataset: { id: String(m.id) } },
    h("div", {}, t("card.merged_into", { merged: m.merged?.name || `#${m.merged?.id}`, survivor: m.survivor?.name || `#${m.survivor?.id}` })),
    h("div", { class: "muted small" },
      t("card.merged_by", { name: m.merged_by?.name || "", date: formatDateTime(m.merged_at) }),
      undone ? ` · ${t("card.undone_by", { name: m.undone_by?.name || "", date: formatDateTime(m.undone_at) })}` : ""),
    undone ? null : h("button", {
      type: "button", class: "btn btn-sm merge-undo",
      onclick: () => edit(() => historyApi.undoMerge(m.id)),
    }, t("card.undo")));
}
