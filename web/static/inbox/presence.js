// Presence: the agent's own online / away switch, and the other agents' status
// from GET /presence and live `agent.presence` events.
const others = new Map(); // agent id -> online | away | offline
let mine = "online";

export function loadPresence(list) {
  others.clear();
  for (const p of list || []) if (p?.agent) others.set(p.agent.id, p.status);
}

export function setAgentPresence(agentId, status) {
  if (typeof agentId !== "number" || !["online", "away", "offline"].includes(status)) return false;
  others.set(agentId, status);
  return true;
}

export function agentPresence(agentId) {
  return others.get(agentId) || "offline";
}

export function myPresence() {
  return mine;
}

export function setMyPresence(status) {
  mine = status === "away" ? "away" : "online";
}
