// Dispatcher board: reads the engineer board, the orders at risk and the
// review queue, and reads them again whenever GET /v1/stream reports a change.
// Plain browser JavaScript with no build step. Every value from the server is
// written with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "csdp-board-token";
// Changes that arrive within this many milliseconds cause one reload.
const RELOAD_DELAY_MS = 250;
// Held events are decisions, not log events, so the stream does not report
// them; the review queue is also read on this interval.
const REVIEW_POLL_MS = 15000;
const MAX_CHANGES_SHOWN = 50;

let token = null;
let reloadTimer = null;
let source = null;
let reviewTimer = null;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

function setConnection(state) {
  const badge = document.getElementById("connection");
  badge.dataset.state = state;
  badge.textContent = state;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
    const error = new Error(`${path}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function formatTime(value) {
  return value ? new Date(value).toLocaleString() : "";
}

function fillRows(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

async function loadEngineers() {
  const entries = await api("/v1/engineers/board");
  fillRows(
    "engineers",
    entries.map((entry) => {
      const row = element("tr");
      row.dataset.engineerId = entry.engineer_id;
      row.append(
        element("td", entry.name ? `${entry.name} (${entry.engineer_id})` : entry.engineer_id),
        element("td", entry.status, `status status-${entry.status}`),
        element("td", entry.current_order ? `${entry.current_order.work_order_id} (${entry.current_order.status})` : ""),
        element("td", entry.next_orders.map((order) => order.work_order_id).join(", ")),
        element("td", formatTime(entry.last_update)),
      );
      return row;
    }),
  );
}

async function loadAtRisk() {
  const page = await api("/v1/sla/at-risk?limit=100");
  fillRows(
    "at-risk",
    page.items.map((item) => {
      const row = element("tr");
      row.dataset.workOrderId = item.work_order_id;
      row.append(
        element("td", item.work_order_id),
        element("td", `${item.clock} (cycle ${item.cycle})`),
        element("td", item.state, `state-${item.state}`),
        element("td", formatTime(item.due_at)),
        element("td", item.engineer_id || "unassigned"),
        element("td", item.priority),
      );
      return row;
    }),
  );
}

function randomUuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // crypto.randomUUID exists only in secure contexts; build a version 4 UUID by hand elsewhere.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function resolveReview(item, resolution, note, status) {
  if (!note.trim()) {
    status.textContent = "Write a note first: a resolution without a reason cannot be audited.";
    return;
  }
  status.textContent = "sending…";
  try {
    const order = await api(`/v1/work-orders/${encodeURIComponent(item.work_order_id)}`);
    const batch = {
      events: [
        {
          client_event_id: randomUuid(),
          work_order_id: item.work_order_id,
          type: "review_resolved",
          base_version: order.version,
          device_id: "dispatcher-board",
          occurred_at: new Date().toISOString(),
          payload: {
            client_event_id: item.proposal.client_event_id,
            subject: item.proposal.subject,
            resolution,
            note,
          },
        },
      ],
    };
    const result = await api("/v1/events", { method: "POST", body: JSON.stringify(batch) });
    const decision = result.decisions[0];
    status.textContent = `${decision.status}: ${decision.message}`;
    scheduleReload();
  } catch (error) {
    status.textContent = error.message;
  }
}

async function loadReviews() {
  const page = await api("/v1/reviews?limit=100");
  const list = document.getElementById("reviews");
  list.replaceChildren(
    ...page.items.map((item) => {
      const entry = element("li");
      entry.dataset.clientEventId = item.proposal.client_event_id;
      const summary = element(
        "div",
        `${item.work_order_id}: ${item.proposal.type} by ${item.proposal.subject} (${item.reason_code}) ` +
          `— order now ${item.work_order_status}, assignee ${item.assignee || "none"}`,
      );
      const reason = element("div", item.message);
      const note = element("input");
      note.type = "text";
      note.placeholder = "Note for the audit (required)";
      note.className = "review-note";
      const status = element("span", "", "review-status");
      const accept = element("button", "Accept", "review-accept");
      const dismiss = element("button", "Dismiss", "review-dismiss");
      accept.addEventListener("click", () => resolveReview(item, "accepted", note.value, status));
      dismiss.addEventListener("click", () => resolveReview(item, "dismissed", note.value, status));
      entry.append(summary, reason, note, " ", accept, " ", dismiss, " ", status);
      return entry;
    }),
  );
  if (!page.items.length) list.replaceChildren(element("li", "No events wait for review."));
}

// Stops the stream and the polling, because the token may not read the board at all.
function denyAccess(error) {
  if (source !== null) source.close();
  if (reviewTimer !== null) clearInterval(reviewTimer);
  setConnection("no access");
  showError(
    "The board needs the token of a dispatcher, manager or admin, and the server rejected this one. " +
      `Reload the page with another token. (${error.message})`,
  );
  sessionStorage.removeItem(TOKEN_KEY);
}

// Returns false when the token may not read the board (401 or 403).
async function reloadAll() {
  try {
    await Promise.all([loadEngineers(), loadAtRisk(), loadReviews()]);
    showError("");
    return true;
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      denyAccess(error);
      return false;
    }
    showError(error.message);
    return true;
  }
}

function scheduleReload() {
  if (reloadTimer !== null) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    reloadAll();
  }, RELOAD_DELAY_MS);
}

function showChange(change) {
  const list = document.getElementById("changes");
  const text = `#${change.position} ${change.work_order_id} ${change.type} by ${change.event.actor}`;
  const item = element("li", text);
  item.dataset.position = change.position;
  list.prepend(item);
  while (list.children.length > MAX_CHANGES_SHOWN) list.lastElementChild.remove();
}

function connect() {
  // EventSource cannot send headers, so the token goes in the query string.
  source = new EventSource(`/v1/stream?access_token=${encodeURIComponent(token)}`);
  source.addEventListener("open", () => {
    setConnection("live");
    // Changes may have happened while the stream was down.
    scheduleReload();
  });
  source.addEventListener("change", (message) => {
    showChange(JSON.parse(message.data));
    scheduleReload();
  });
  source.addEventListener("disconnect", (message) => {
    // The server ends the stream; EventSource reconnects with Last-Event-ID.
    const notice = JSON.parse(message.data);
    setConnection(`reconnecting (${notice.reason})`);
    if (notice.reason === "token_expired") {
      source.close();
      sessionStorage.removeItem(TOKEN_KEY);
      showError("The token has expired; open the board with a new one.");
      setConnection("offline");
    }
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      setConnection("offline");
      showError("The live stream was rejected; check the token and reload the page.");
    } else {
      setConnection("reconnecting");
    }
  });
}

async function start() {
  document.getElementById("sign-in").hidden = true;
  document.getElementById("board").hidden = false;
  // The stream is open to every role, so it opens only after the board's data
  // requests succeed; otherwise an engineer's token would show "live".
  if (!(await reloadAll())) return;
  connect();
  reviewTimer = setInterval(loadReviews, REVIEW_POLL_MS);
}

function init() {
  // A token in the fragment (#access_token=...) is never sent to the server in the URL.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("access_token")) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get("access_token"));
    history.replaceState(null, "", location.pathname);
  }
  token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    start();
    return;
  }
  const form = document.getElementById("sign-in");
  form.hidden = false;
  form.addEventListener("submit", (submitEvent) => {
    submitEvent.preventDefault();
    token = document.getElementById("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
}

document.addEventListener("DOMContentLoaded", init);
