// The one in-memory model of the inbox window. Modules read it and call the
// mutators; main.js re-renders what changed.
export const state = {
  me: null,
  channels: [],
  agents: [],
  conversations: new Map(), // id -> Conversation, only those matching the filters
  nextCursor: null,
  filters: { assignee: "all", channel: "", status: "open", q: "" },
  selectedId: null,
  view: "list", // phone width: which of list / thread / card is on screen
};

// The Queue tab: waiting since (ms) per conversation, from GET /queue.
export const queueSince = new Map();
const PRIORITY_RANK = { urgent: 2, high: 1 };

export function sortedConversations() {
  if (state.filters.assignee === "queue") {
    // The hand-out order (docs/routing.md): urgent and VIP first, then the longest waiting.
    const since = (c) => queueSince.get(c.id) ?? (Date.parse(c.created_at) || 0);
    return [...state.conversations.values()].sort((a, b) =>
      (PRIORITY_RANK[b.priority] || 0) - (PRIORITY_RANK[a.priority] || 0) || since(a) - since(b) || a.id - b.id);
  }
  return [...state.conversations.values()].sort((a, b) => {
    const ta = Date.parse(a.last_activity_at || a.created_at) || 0;
    const tb = Date.parse(b.last_activity_at || b.created_at) || 0;
    return tb - ta || b.id - a.id;
  });
}

export function assigneeParam() {
  return { mine: "me", unassigned: "none", queue: "none", all: "" }[state.filters.assignee] ?? "";
}

// Whether a conversation pushed over the websocket belongs in the current list.
// A text search is evaluated by the server only, so while one is active live
// updates refresh rows already shown but add none.
export function matchesFilters(conv) {
  const f = state.filters;
  if (f.assignee === "queue") {
    if (conv.status !== "open" || conv.assignee) return false;
  } else if (f.status && conv.status !== f.status) return false;
  if (f.channel && String(conv.channel?.id) !== f.channel && conv.channel?.kind !== f.channel) return false;
  if (f.assignee === "mine" && conv.assignee?.id !== state.me?.id) return false;
  if (f.assignee === "unassigned" && conv.assignee) return false;
  if (f.q) return state.conversations.has(conv.id);
  return true;
}

// Returns true when the list changed.
export function upsertConversation(conv) {
  if (!conv || typeof conv.id !== "number") return false;
  if (matchesFilters(conv)) {
    const prev = state.conversations.get(conv.id);
    // Events can arrive out of order with a REST page; never go back in time.
    if (prev && Date.parse(prev.last_activity_at) > Date.parse(conv.last_activity_at)) {
      state.conversations.set(conv.id, { ...conv, last_activity_at: prev.last_activity_at, last_message: prev.last_message });
    } else {
      state.conversations.set(conv.id, conv);
    }
    return true;
  }
  return state.conversations.delete(conv.id);
}

export function channelName(conv) {
  return conv.channel?.name || conv.channel?.kind || "";
}
