// REST client for /api/v1 (docs/api.md). Authenticated by the session cookie;
// the browser adds Origin to state-changing requests, which the server checks.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function request(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, init);
  } catch (err) {
    throw new ApiError(0, err.message || "network error");
  }
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  return answer(resp.status, resp.statusText, data, path);
}

function answer(status, statusText, data, path) {
  if (status >= 200 && status < 300) return data;
  if (status === 401 && path !== "/auth/login") onUnauthorized();
  throw new ApiError(status, (data && data.error) || `${status} ${statusText}`);
}

// A multipart POST that reports its progress (fetch reports none): onProgress(0..1).
export function upload(path, form, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1${path}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onerror = () => reject(new ApiError(0, "network error"));
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      try {
        resolve(answer(xhr.status, xhr.statusText, data, path));
      } catch (err) {
        reject(err);
      }
    };
    xhr.send(form); // the browser sets multipart/form-data with its boundary
  });
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Follows next_cursor until the list ends (or `max` items), for threads that
// must be shown whole.
async function all(path, params = {}, max = 5000) {
  const items = [];
  let cursor = null;
  do {
    const page = await request("GET", `${path}${query({ ...params, limit: 500, cursor })}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

export const api = {
  login: (email, password) => request("POST", "/auth/login", { email, password }),
  logout: () => request("POST", "/auth/logout"),
  me: () => request("GET", "/me"),
  agents: () => all("/agents"),
  channels: () => all("/channels"),
  conversations: (params) => request("GET", `/conversations${query(params)}`),
  conversation: (id) => request("GET", `/conversations/${id}`),
  messages: (id) => all(`/conversations/${id}/messages`),
  notes: (id) => all(`/conversations/${id}/notes`),
  // Newest first; next_cursor pages back to older messages.
  messagesBack: (id, cursor, limit = 100) =>
    request("GET", `/conversations/${id}/messages${query({ order: "desc", limit, cursor })}`),
  reply: (id, text, files = [], onProgress = undefined) => {
    if (!files.length) return request("POST", `/conversations/${id}/messages`, { text });
    const form = new FormData();
    form.append("text", text);
    for (const f of files) form.append("file", f, f.name);
    return upload(`/conversations/${id}/messages`, form, onProgress);
  },
  replyLimits: () => request("GET", "/reply-limits"),
  note: (id, text) => request("POST", `/conversations/${id}/notes`, { text }),
  retry: (messageId) => request("POST", `/messages/${messageId}/retry`),
  assign: (id, agentId) => request("POST", `/conversations/${id}/assign`, { agent_id: agentId }),
  setStatus: (id, status, snoozedUntil) =>
    request("POST", `/conversations/${id}/status`, snoozedUntil ? { status, snoozed_until: snoozedUntil } : { status }),
  markRead: (id) => request("POST", `/conversations/${id}/read`),
  client: (id) => request("GET", `/clients/${id}`),
  presence: () => all("/presence"),
  queue: () => all("/queue"),
};

// Built from the hash, never from a server-supplied URL, so a link can only
// point at our own blob store.
export function blobUrl(attachment) {
  return `/api/v1/blobs/${encodeURIComponent(String(attachment.sha256 || ""))}`;
}
