// The dashboard page (`#/dashboard`, filters in the address: `?idea=&kind=&type=`): the
// headline figures, events per minute, who is where, locks, the review queue, workflow steps
// and the latest events, all following the tenant's event stream live.
//
// The page owns its store (dashboard_store.js) and renders from it. Events can arrive by the
// thousand while the stream catches up, so a change only marks what it touches; the marked
// panels are drawn at the next animation frame, and at most every RENDER_GAP_MS.

import { h, icon } from "../dom.js";
import { DashboardStore, family, MINUTE_MS } from "../dashboard_store.js";
import { eventChart } from "./event_chart.js";
import { eventFeed } from "./event_feed.js";
import { stageBoard } from "./stage_board.js";
import { lockBoard } from "./lock_board.js";
import { reviewQueue } from "./review_queue.js";
import { stepBoard } from "./step_board.js";
import { familyLabel, typeLabel } from "./event_labels.js";
import { isOverdue } from "../review_trail.js";

const RENDER_GAP_MS = 250;
const CATCH_UP_GAP_MS = 1000;
const STATE_WORDS = {
  finding: "Looking for the last hour's events", "catching-up": "Loading the last hour's events",
  live: "Following events live", paused: "Connection lost: events will resume where they stopped",
};
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

// Which panels each kind of change touches.
const TOUCHES = {
  events: ["tiles", "chart", "feed", "options", "status"],
  presence: ["tiles", "stages"],
  locks: ["tiles", "locks"],
  reviews: ["tiles", "queue"],
  workflows: ["tiles", "steps"],
  ideas: ["options"],
  names: ["feed", "stages", "locks", "queue", "steps", "options"],
  filters: ["tiles", "chart", "feed", "stages", "locks", "queue", "steps", "options"],
  stream: ["status"],
  clock: ["tiles", "chart", "feed", "queue", "locks", "status"],
};

export function filtersFromHash(hash) {
  const query = new URLSearchParams(hash.split("?")[1] ?? "");
  return { idea: query.get("idea") ?? "", kind: query.get("kind") ?? "", type: query.get("type") ?? "" };
}

function hashOf(filters) {
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  const text = query.toString();
  return `#/dashboard${text ? `?${text}` : ""}`;
}

function tile(id, label) {
  const value = h("span", { class: "tile-value" }, "–");
  const note = h("span", { class: "tile-note" });
  const element = h("div", { class: "tile", id }, h("span", { class: "tile-label" }, label), value, note);
  return { element, set(v, text, alert = false) {
    value.textContent = v;
    element.dataset.value = v;
    note.replaceChildren(...(alert ? [icon("alert"), " "] : []), text);
    element.classList.toggle("alert", alert);
  } };
}

export function renderDashboard(root, { api, wire, stages }) {
  const store = new DashboardStore({ api, wire, stages, filters: filtersFromHash(location.hash) });
  const metrics = window.coeditMetrics.dashboard = { historyEvents: 0 };
  window.coedit.dashboard = store;
  const names = store.directory;

  // -- filters --------------------------------------------------------------------------------
  const ideaSelect = h("select", { id: "filter-idea", name: "idea" });
  const kindSelect = h("select", { id: "filter-kind", name: "kind" });
  const typeSelect = h("select", { id: "filter-type", name: "type" });
  const setFilter = (name) => (event) => apply({ [name]: event.target.value });
  ideaSelect.addEventListener("change", setFilter("idea"));
  kindSelect.addEventListener("change", setFilter("kind"));
  typeSelect.addEventListener("change", setFilter("type"));
  const clear = h("button", { type: "button", class: "quiet", id: "filter-clear",
                              onclick: () => apply({ idea: "", kind: "", type: "" }) }, "Clear filters");
  const filterNote = h("p", { class: "filter-note", id: "filter-note", role: "status" });
  function apply(changes) {
    store.setFilters(changes);
    history.replaceState(null, "", hashOf(store.filters));
  }

  // -- panels ---------------------------------------------------------------------------------
  // The status line changes with every event; screen readers hear only its state changing.
  const status = h("p", { class: "stream-status", id: "stream-status" });
  const announce = h("span", { class: "visually-hidden", role: "status", id: "stream-announce" });
  const tiles = {
    events: tile("tile-events", "Events · last hour"),
    people: tile("tile-people", "People online"),
    locks: tile("tile-locks", "Locks held"),
    reviews: tile("tile-reviews", "Open reviews"),
    steps: tile("tile-steps", "Steps waiting"),
  };
  const chart = eventChart({ onPickType: (type) => apply({ type }) });
  const feed = eventFeed(names);
  const board = stageBoard(names);
  const locks = lockBoard(names);
  const queue = reviewQueue(names);
  const steps = stepBoard(names);

  const page = h("section", { class: "dashboard", "aria-labelledby": "dashboard-title" },
    h("div", { class: "page-head dash-head" },
      h("div", {}, h("h1", { id: "dashboard-title" }, "Dashboard"), status, announce),
      h("form", { class: "dash-filters", id: "dash-filters", "aria-label": "Filters",
                  onsubmit: (e) => e.preventDefault() },
        h("label", {}, "Idea", ideaSelect), h("label", {}, "Stage", kindSelect),
        h("label", {}, "Event type", typeSelect), clear)),
    filterNote,
    h("div", { class: "tiles", id: "tiles" }, Object.values(tiles).map((t) => t.element)),
    chart.element,
    h("div", { class: "dash-grid" }, board.element, locks.element),
    h("div", { class: "dash-grid" }, queue.element, steps.element),
    feed.element);
  root.replaceChildren(page);

  // -- drawing --------------------------------------------------------------------------------
  const dirty = new Set(Object.values(TOUCHES).flat());
  let frame = null;
  let frameDue = 0;
  let lastDraw = 0;
  let optionsKey = "";

  function options() {
    const { idea, kind, type } = store.filters;
    const ideas = new Map(store.ideaList.map((i) => [i.id, names.ideaTitle(i.id)]));
    for (const record of store.records) if (record.idea && !ideas.has(record.idea)) ideas.set(record.idea, names.ideaTitle(record.idea));
    if (idea && !ideas.has(idea)) ideas.set(idea, names.ideaTitle(idea));
    const kinds = store.kindsSeen();
    if (kind && !kinds.includes(kind)) kinds.push(kind);
    const types = store.typesSeen();
    if (type && !type.endsWith(".*") && !types.includes(type)) types.push(type);
    const key = JSON.stringify([[...ideas], kinds, types, idea, kind, type]);
    if (key === optionsKey) return;
    optionsKey = key;
    const option = (value, label, selected) => h("option", { value, selected: value === selected }, label);
    ideaSelect.replaceChildren(option("", "All ideas", idea),
      ...[...ideas].sort((a, b) => a[1].localeCompare(b[1])).map(([id, title]) => option(id, title, idea)));
    kindSelect.replaceChildren(option("", "All stages", kind),
      ...kinds.map((k) => option(k, k[0].toUpperCase() + k.slice(1), kind)));
    const families = new Map();
    for (const t of types) {
      if (!families.has(family(t))) families.set(family(t), []);
      families.get(family(t)).push(t);
    }
    typeSelect.replaceChildren(option("", "All events", type), ...[...families].map(([f, list]) =>
      h("optgroup", { label: familyLabel(f) },
        list.length > 1 ? option(`${f}.*`, `All ${familyLabel(f).toLowerCase()}`, type) : null,
        list.map((t) => option(t, typeLabel(t), type)))));
    ideaSelect.value = idea;
    kindSelect.value = kind;
    typeSelect.value = type;
    const active = [idea && `idea ${names.ideaTitle(idea)}`, kind && `stage ${kind}`,
                    type && `type ${type.endsWith(".*") ? familyLabel(family(type)) : typeLabel(type)}`].filter(Boolean);
    filterNote.textContent = active.length ? `Showing only ${active.join(", ")}.` : "";
    clear.disabled = !active.length;
  }

  function drawStatus() {
    const stream = store.stream;
    const after = stream.lastSeq ? ` after event #${stream.lastSeq}` : "";
    let state, text;
    if (!wire.live) {
      state = "paused";
      text = `${wire.status === "offline" ? "Offline" : "Reconnecting"}: the stream will resume${after}, nothing is missed`;
    } else if (stream.streamId === null && !stream.stats.subscriptions) {
      state = "finding";
      text = "Finding the last hour's events…";
    } else if (!stream.caughtUp) {
      state = "catching-up";
      text = `Catching up: ${store.history.loaded.toLocaleString()} events loaded`;
    } else {
      state = "live";
      text = `Following live since ${CLOCK.format(new Date(store.windowStart()))}${stream.lastSeq ? ` · last event #${stream.lastSeq}` : ""}`;
    }
    if (status.dataset.state !== state) announce.textContent = STATE_WORDS[state];
    status.dataset.state = state;
    status.dataset.lastSeq = String(stream.lastSeq ?? "");
    status.replaceChildren(h("span", { class: `stream-dot ${state}`, "aria-hidden": "true" }), text);
    const problems = [...store.problems.values()];
    if (problems.length) status.append(h("span", { class: "stream-problem" }, ` · ${problems[0]}`));
  }

  function drawTiles(events) {
    const now = Date.now();
    const recent = events.filter((r) => r.ts >= now - 5 * MINUTE_MS).length;
    tiles.events.set(events.length.toLocaleString(), `${recent} in the last 5 minutes`);
    const presence = store.presence();
    const people = new Set(), docs = new Set();
    for (const stage of presence) for (const e of stage.entries) { people.add(e.user.id); docs.add(e.doc); }
    tiles.people.set(String(people.size), `on ${docs.size} document${docs.size === 1 ? "" : "s"}`);
    const held = store.lockList();
    tiles.locks.set(String(held.length), held.length ? `by ${new Set(held.map((l) => l.holder.user.id)).size} people` : "nothing locked");
    const reviews = store.reviewQueue();
    const late = reviews.filter((r) => isOverdue(r, now)).length;
    tiles.reviews.set(String(reviews.length), late ? `${late} overdue` : "none overdue", late > 0);
    const all = store.steps().map(({ step }) => step.state);
    const waiting = all.filter((s) => ["ready", "in_progress", "blocked", "failed"].includes(s)).length;
    const stuck = all.filter((s) => s === "blocked" || s === "failed").length;
    tiles.steps.set(String(waiting), stuck ? `${stuck} blocked or failed` : "none blocked", stuck > 0);
  }

  function draw() {
    frame = null;
    lastDraw = performance.now();
    const parts = new Set(dirty);
    dirty.clear();
    const events = parts.has("tiles") || parts.has("feed") ? store.filtered() : null;
    if (parts.has("options")) options();
    if (parts.has("status")) drawStatus();
    if (parts.has("tiles")) drawTiles(events);
    if (parts.has("chart")) chart.update(store.chart(), store.filters);
    if (parts.has("feed")) feed.update(events);
    if (parts.has("stages")) board.update(store.presence());
    if (parts.has("locks")) locks.update(store.lockList(), { takenAt: (l) => store.lockTakenAt(l), truncated: store.locks.more });
    if (parts.has("queue")) queue.update(store.reviewQueue(), { loaded: store.reviews.loaded });
    if (parts.has("steps")) steps.update(store.steps(), { instances: store.workflows.items.length, loaded: store.workflows.loaded });
    const drawn = performance.now();
    metrics.lastDrawMs = drawn - lastDraw;
    metrics.firstRenderMs ??= drawn - store.openedAt;
    if (store.stream.caughtUp && metrics.historyRenderMs === undefined) {
      metrics.historyRenderMs = drawn - store.openedAt;
      metrics.historyEvents = store.history.loaded;
      metrics.windowProbes = store.history.probes;
      metrics.windowFindMs = store.history.findMs;
      page.dataset.ready = "true";
    }
  }

  // While the stream replays the hour, drawing less often lets the events in faster; once
  // it is live, a draw already waiting for the slower pace is brought forward.
  function schedule() {
    const due = lastDraw + (store.stream.caughtUp ? RENDER_GAP_MS : CATCH_UP_GAP_MS);
    if (frame !== null && frameDue <= due) return;
    clearTimeout(frame);
    frameDue = due;
    frame = setTimeout(() => requestAnimationFrame(draw), Math.max(0, due - performance.now()));
  }

  const stop = store.on("change", ({ part }) => {
    for (const touched of TOUCHES[part] ?? []) dirty.add(touched);
    schedule();
  });
  const stopStatus = wire.on("status", () => { dirty.add("status"); schedule(); });
  store.open();
  draw();

  return () => {
    stop();
    stopStatus();
    clearTimeout(frame);
    store.close();
    if (window.coedit.dashboard === store) delete window.coedit.dashboard;
  };
}
