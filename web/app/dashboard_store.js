// Everything the dashboard shows, in one store the views read (state flows one way: the
// stream, the HTTP reads and the presence model write here; views render from here).
//
// - Events of the last hour: the tenant's event stream (event_stream.js), started at the
//   first event of the hour (event_window.js) and resumed with `since` after every
//   reconnect. Each event is kept as a small record; counts per minute and per type are
//   computed from the records under the current filters, so a filter change is one pass
//   over at most an hour of records, not a new subscription.
// - Who is where: the stage presence model the header uses (one subscription per stage).
// - Locks, the review queue and workflow steps: read over HTTP (the tenant's live locks,
//   open reviews, active and paused workflow instances) and read again when an event of
//   their family arrives, after a reconnect, and every little while for what changes with
//   time alone (a lock's lease, a review falling due).
//
// Filters (idea, kind, type) narrow every panel that can tell: events by all three; people,
// locks and reviews by idea and kind (stage); workflow steps by idea.

import { Emitter } from "./emitter.js";
import { EventStream } from "./event_stream.js";
import { seqBefore } from "./event_window.js";
import { Directory } from "./directory.js";
import { STAGES } from "./stage_presence.js";

export const WINDOW_MINUTES = 60;
export const MINUTE_MS = 60_000;
const MAX_RECORDS = 200_000;       // an hour beyond this is cut from its oldest end
const REFRESH_GAP_MS = 400;         // at most one reload of a panel per gap while events pour in
const LOCK_POLL_MS = 10_000;        // leases renew and expire without events
const SLOW_POLL_MS = 60_000;        // reviews fall due, steps move in other tenants' absence
const OPEN_REVIEW_STATES = ["assigned", "in_progress", "changes_requested"];
const LIVE_INSTANCE_STATES = ["active", "paused"];

// The small part of an event the dashboard keeps: enough to count, filter and describe it.
function recordOf(event) {
  const data = event.data ?? {};
  const detail = {};
  for (const name of ["path", "from", "to", "key", "title", "reason", "operation"]) {
    if (typeof data[name] === "string") detail[name] = data[name];
  }
  if (typeof data.reviewer?.name === "string") detail.reviewer = data.reviewer.name;
  if (Array.isArray(data.ops)) {
    detail.ops = data.ops.length;
    if (typeof data.ops[0]?.path === "string") detail.path = data.ops[0].path;
  }
  return {
    seq: event.seq, ts: Date.parse(event.ts), type: event.type, kind: event.kind ?? null,
    idea: event.idea ?? null, doc: event.doc ?? null, version: event.version ?? null,
    actor: event.actor, source: event.source, detail,
  };
}

export function typeMatches(type, wanted) {
  if (!wanted) return true;
  return wanted.endsWith(".*") ? type.startsWith(wanted.slice(0, -1)) : type === wanted;
}

export const family = (type) => type.split(".")[0];

export class DashboardStore extends Emitter {
  constructor({ api, wire, stages, filters = {} }) {
    super();
    this.api = api;
    this.wire = wire;
    this.stages = stages;
    this.directory = new Directory(api);
    this.filters = { idea: filters.idea ?? "", kind: filters.kind ?? "", type: filters.type ?? "" };
    this.records = [];              // seq order
    this.locks = { items: [], more: false, loaded: false };
    this.reviews = { items: [], loaded: false };
    this.workflows = { items: [], loaded: false };
    this.ideaList = [];
    this.problems = new Map();      // part -> message of its last failed read
    this.history = { started: false, since: null, loaded: 0, probes: 0, findMs: null };
    this.stream = new EventStream(wire, { startAt: () => this.#lookBack() });
    this.refreshing = new Map();    // part -> timer
    this.unlisten = [];
    this.timers = [];
    this.openedAt = performance.now();
  }

  open() {
    const stream = this.stream;
    this.unlisten.push(
      stream.on("event", (event) => this.#ingest(event)),
      stream.on("state", () => this.#changed("stream")),
      stream.on("subscribed", ({ resumed }) => {
        this.#changed("stream");
        if (resumed) this.#reloadAll();
      }),
      stream.on("failure", (error) => {
        this.problems.set("stream", `The event stream was refused: ${error.message}`);
        this.#changed("stream");
        this.timers.push(setTimeout(() => stream.retry(), 3000));
      }),
      this.stages.on("change", () => this.#changed("presence")),
      this.directory.on("change", () => this.#changed("names")));
    stream.open();
    this.#reloadAll();
    this.#read("ideas", async () => {
      const page = await this.api.get("/api/ideas?limit=100");
      this.ideaList = page.items;
      this.directory.learnIdeas(page.items);
    });
    this.timers.push(
      setInterval(() => this.#refresh("locks"), LOCK_POLL_MS),
      setInterval(() => { this.#refresh("reviews"); this.#refresh("workflows"); }, SLOW_POLL_MS),
      // The window slides: old minutes leave the chart even when nothing happens.
      setInterval(() => { this.#trim(); this.#changed("clock"); }, 15_000));
  }

  close() {
    for (const stop of this.unlisten) stop();
    for (const timer of this.timers) { clearInterval(timer); clearTimeout(timer); }
    for (const timer of this.refreshing.values()) clearTimeout(timer);
    this.unlisten = [];
    this.stream.close();
  }

  setFilters(changes) {
    this.filters = { ...this.filters, ...changes };
    this.#changed("filters");
  }

  // -- the event stream ----------------------------------------------------------------------

  async #lookBack() {
    const started = performance.now();
    this.history.started = true;
    const cutoff = (Math.floor(Date.now() / MINUTE_MS) - (WINDOW_MINUTES - 1)) * MINUTE_MS;
    const { since, probes } = await seqBefore(this.api, cutoff);
    this.history.since = since;
    this.history.probes = probes;
    this.history.findMs = performance.now() - started;
    return since;
  }

  #ingest(event) {
    const record = recordOf(event);
    this.records.push(record);
    if (!this.stream.caughtUp) this.history.loaded += 1;
    this.directory.learnFromEvent(event);
    const kind = family(event.type);
    if (kind === "lock") this.#refresh("locks");
    else if (kind === "review") this.#refresh("reviews");
    else if (kind === "workflow") this.#refresh("workflows");
    else if (event.type === "idea.created") this.ideaList = [...this.ideaList, { id: event.idea, ...event.data }];
    if (this.records.length > MAX_RECORDS) this.records.splice(0, this.records.length - MAX_RECORDS);
    this.#changed("events", record);
  }

  #trim() {
    const keepFrom = this.windowStart() - MINUTE_MS;
    let cut = 0;
    while (cut < this.records.length && this.records[cut].ts < keepFrom) cut += 1;
    if (cut) this.records.splice(0, cut);
  }

  // -- HTTP reads ------------------------------------------------------------------------------

  #reloadAll() {
    for (const part of ["locks", "reviews", "workflows"]) this.#refresh(part, 0);
  }

  // Read `part` again soon; a burst of events of its family costs one read per gap.
  #refresh(part, delay = REFRESH_GAP_MS) {
    if (this.refreshing.has(part)) return;
    this.refreshing.set(part, setTimeout(() => {
      this.refreshing.delete(part);
      this.#read(part, READS[part].bind(this));
    }, delay));
  }

  async #read(part, reader) {
    try {
      await reader();
      this.problems.delete(part);
    } catch (error) {
      this.problems.set(part, `Could not read ${part}: ${error.message}`);
    }
    this.#changed(part);
  }

  #changed(part, record) {
    this.emit("change", { part, record });
  }

  // -- reading (views call these) --------------------------------------------------------------

  windowStart(now = Date.now()) {
    return (Math.floor(now / MINUTE_MS) - (WINDOW_MINUTES - 1)) * MINUTE_MS;
  }

  matches(record) {
    const { idea, kind, type } = this.filters;
    return (!idea || record.idea === idea) && (!kind || record.kind === kind) &&
      typeMatches(record.type, type);
  }

  // The window's events under the filters, oldest first.
  filtered(now = Date.now()) {
    const start = this.windowStart(now);
    return this.records.filter((r) => r.ts >= start && this.matches(r));
  }

  // Counts per minute and type: {start, minutes, types: [{type, total, counts}], perMinute}.
  chart(now = Date.now()) {
    const start = this.windowStart(now);
    const byType = new Map();
    const perMinute = new Array(WINDOW_MINUTES).fill(0);
    for (const record of this.filtered(now)) {
      const minute = Math.min(WINDOW_MINUTES - 1, Math.floor((record.ts - start) / MINUTE_MS));
      let counts = byType.get(record.type);
      if (!counts) byType.set(record.type, counts = new Array(WINDOW_MINUTES).fill(0));
      counts[minute] += 1;
      perMinute[minute] += 1;
    }
    const types = [...byType].map(([type, counts]) => ({
      type, counts, total: counts.reduce((a, b) => a + b, 0) }))
      .sort((a, b) => b.total - a.total || a.type.localeCompare(b.type));
    return { start, minutes: WINDOW_MINUTES, types, perMinute };
  }

  // Every event type and family seen in the window, for the type filter.
  typesSeen() {
    return [...new Set(this.records.map((r) => r.type))].sort();
  }

  kindsSeen() {
    const kinds = new Set(STAGES.map(([kind]) => kind));
    for (const record of this.records) if (record.kind) kinds.add(record.kind);
    return [...kinds];
  }

  #placeMatches(doc, kind) {
    const { idea, kind: wantedKind } = this.filters;
    if (wantedKind && kind !== wantedKind) return false;
    if (idea && this.directory.doc(doc).idea !== idea) return false;
    return true;
  }

  // Who is on which stage: per stage, one entry per person and document.
  presence() {
    return STAGES.map(([kind, label]) => {
      const seen = new Map();
      for (const entry of this.stages.entries(kind)) {
        if (!this.#placeMatches(entry.doc, kind)) continue;
        const key = `${entry.user.id} ${entry.doc}`;
        const known = seen.get(key);
        // Several tabs of one person on one document: show the busiest state.
        if (!known || (entry.state?.status === "editing" && known.state?.status !== "editing")) {
          seen.set(key, entry);
        }
      }
      const shown = !this.filters.kind || this.filters.kind === kind;
      return { kind, label, shown, entries: [...seen.values()].sort((a, b) =>
        a.user.name.localeCompare(b.user.name)) };
    });
  }

  lockList() {
    return this.locks.items.filter((lock) => {
      const doc = this.directory.doc(lock.doc);
      return Date.parse(lock.expires_at) > Date.now() && this.#placeMatches(lock.doc, doc.kind);
    });
  }

  // The seq of the last lock.acquired event of a lock, when the window holds it.
  lockTakenAt(lock) {
    for (let i = this.records.length - 1; i >= 0; i -= 1) {
      const r = this.records[i];
      if (r.type === "lock.acquired" && r.doc === lock.doc && r.detail.path === lock.path) return r.ts;
    }
    return null;
  }

  reviewQueue() {
    const { idea, kind } = this.filters;
    return this.reviews.items.filter((r) => (!idea || r.idea === idea) && (!kind || r.stage === kind));
  }

  // Steps of the live workflow instances (under the idea filter), each with its instance.
  steps() {
    const { idea } = this.filters;
    const steps = [];
    for (const instance of this.workflows.items) {
      if (idea && instance.idea !== idea) continue;
      for (const step of instance.steps) steps.push({ step, instance });
    }
    return steps;
  }
}

// How each panel is read. Pages are bounded; the panels say when more exist than they show.
const READS = {
  async locks() {
    const page = await this.api.get("/api/locks?limit=500");
    this.locks = { items: page.locks, more: page.more, loaded: true };
  },
  async reviews() {
    const pages = await Promise.all(OPEN_REVIEW_STATES.map(
      (status) => this.api.get(`/api/reviews?status=${status}&limit=200`)));
    this.reviews = { items: pages.flatMap((p) => p.items), more: pages.some((p) => p.next),
                     loaded: true };
    for (const review of this.reviews.items) {
      this.directory.learnDocument({ id: review.doc, kind: review.stage, idea: review.idea ?? undefined });
    }
  },
  async workflows() {
    const pages = await Promise.all(LIVE_INSTANCE_STATES.map(
      (status) => this.api.get(`/api/workflows/instances?status=${status}&limit=100`)));
    this.workflows = { items: pages.flatMap((p) => p.items), more: pages.some((p) => p.next),
                       loaded: true };
  },
};
