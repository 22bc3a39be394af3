// The workbench speaks the same public protocol as any client: HTTP for lists and creation,
// one WebSocket for subscriptions, versioned patches and live deltas.
const $ = (id) => document.getElementById(id);
let ws = null;
let nextId = 1;
const pending = new Map();
let current = null; // {id, version, state}
let mySession = null;
const present = new Map(); // session -> presence entry of the open document
const locks = new Map(); // path -> lock of the open document

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.error?.message || response.statusText);
  return body;
}

function request(message) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ ...message, id }));
  });
}

function connect() {
  if (ws) ws.close();
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`, "coedit.v1.json");
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "welcome") {
      mySession = message.session;
      $("who").textContent = `${message.user.name} (${message.user.roles.join(", ")}, ${message.user.tenant})`;
      setInterval(() => ws.readyState === 1 && ws.send('{"type":"heartbeat"}'), message.heartbeat_ms);
    } else if (message.type === "ok" || message.type === "error") {
      const waiter = pending.get(message.re);
      pending.delete(message.re);
      if (!waiter) return;
      message.type === "ok" ? waiter.resolve(message) : waiter.reject(new Error(`${message.code}: ${message.message}`));
    } else if (message.type === "delta" && current && message.doc === current.id) {
      current.version = message.version;
      const item = document.createElement("li");
      item.textContent = `v${message.version} by ${message.actor.name}: ${JSON.stringify(message.ops)}`;
      $("deltas").prepend(item);
      refreshState();
    } else if (message.type === "presence" && current && message.doc === current.id) {
      for (const entry of [...message.joins, ...message.updates]) present.set(entry.session, entry);
      for (const entry of message.leaves) present.delete(entry.session);
      renderPeople();
    } else if (message.type === "locked" && current && message.doc === current.id) {
      locks.set(message.path, message);
      renderPeople();
    } else if (message.type === "unlocked" && current && message.doc === current.id) {
      locks.delete(message.path);
      renderPeople();
    } else if (message.type === "reset" && current && message.doc === current.id) {
      current.version = message.version;
      current.state = message.state;
      render();
    }
  };
  ws.onclose = (event) => status(`connection closed (${event.code})`, event.code !== 1000);
}

async function refreshState() {
  const doc = await api(`/api/documents/${current.id}`);
  current.state = doc.state;
  current.version = doc.version;
  render();
}

function renderPeople() {
  $("presence").replaceChildren(...[...present.values()].map((entry) => {
    const badge = document.createElement("span");
    const status = entry.state.status || "viewing";
    badge.className = `badge ${status}`;
    badge.title = entry.state.focus ? `at ${entry.state.focus}` : status;
    badge.textContent = entry.session === mySession ? `${entry.user.name} (you)` : entry.user.name;
    return badge;
  }));
  $("locks").replaceChildren(...[...locks.values()].map((lock) => {
    const line = document.createElement("div");
    line.className = "lock";
    line.textContent = `🔒 ${lock.path || "(whole document)"} held by ${lock.holder.user.name}`;
    return line;
  }));
}

function render() {
  $("doc-version").textContent = current.version;
  $("doc-state").textContent = JSON.stringify(current.state, null, 2);
}

async function loadList() {
  const page = await api("/api/documents?limit=100");
  $("list").replaceChildren(...page.items.map((doc) => {
    const item = document.createElement("li");
    item.textContent = `${doc.title} (${doc.kind}, v${doc.version})`;
    item.onclick = () => open(doc.id, doc.title);
    return item;
  }));
}

async function open(id, title) {
  if (current) await request({ type: "unsubscribe", doc: current.id }).catch(() => {});
  const reply = await request({ type: "subscribe", doc: id });
  current = { id, version: reply.version, state: reply.state };
  present.clear();
  locks.clear();
  for (const entry of reply.presence) present.set(entry.session, entry);
  for (const lock of reply.locks) locks.set(lock.path, lock);
  renderPeople();
  $("doc-title").textContent = title;
  $("deltas").replaceChildren();
  render();
}

$("login").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await api("/api/dev/login", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(Object.fromEntries(form)) });
    connect();
    await loadList();
    status("signed in");
  } catch (error) { status(error.message, true); }
};

$("create").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await api("/api/documents", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(Object.fromEntries(form)) });
    await loadList();
  } catch (error) { status(error.message, true); }
};

$("patch").onsubmit = async (event) => {
  event.preventDefault();
  if (!current) return status("open a document first", true);
  try {
    const ops = JSON.parse(new FormData(event.target).get("ops"));
    const reply = await request({ type: "patch", doc: current.id, base: current.version, ops });
    status(`applied as v${reply.version}${reply.rebased ? " (rebased)" : ""}`);
  } catch (error) { status(error.message, true); }
};

connect();
loadList().catch((error) => status(error.message, true));
