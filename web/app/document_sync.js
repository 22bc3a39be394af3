// One open document, kept in step with the server (PROTOCOL sections 4-7).
//
// Three layers of state: `confirmed` is the server's state at `version`; `inflight` is the one
// patch sent and not yet answered; `pending` holds edits made since. What the user sees,
// `local`, is confirmed + inflight + pending. Only one patch is in flight at a time, so every
// edit is sent against a version the page knows, with an idempotency key that makes a resend
// after a dropped connection harmless.
//
// A delta cannot be told from our own write until the reply names our version, so deltas that
// arrive while a patch is unanswered wait in `held`. Once the reply comes, each held delta is
// either ours (it becomes confirmed and the in-flight patch is done) or another's: then our
// in-flight and pending splices are carried past its splices with web/splice.js, exactly as
// the server carries a stale patch, so both sides end with the same text.
//
// Replaces are not merged: a refused patch (`conflict`, `locked`, ...) and a pending replace
// that a delta overtook both become conflict records holding the user's value, which the
// conflict view shows beside the other person's until the user decides. Nothing is dropped.

import { Emitter } from "./emitter.js";
import { applyOps, overlaps, valueAt, PatchError } from "./json_patch.js";
import { transform } from "../splice.js";

const MAX_OPS = 1000;
let conflictIds = 0;

const newKey = () => (crypto.randomUUID ? crypto.randomUUID()
  : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);
const codeLength = (text) => Array.from(text).length;

// Our ops carried past `theirs` (ops committed before ours). Splices on one path are
// transformed as a sequence; any other overlap with what they wrote is a conflict: the ops
// on that path come back in `lost` so the caller can keep the user's value.
function carryPast(ours, theirs) {
  const theirSplices = new Map();
  const theirWrites = [];
  for (const op of theirs) {
    if (op.op === "splice") {
      if (!theirSplices.has(op.path)) theirSplices.set(op.path, []);
      theirSplices.get(op.path).push(op);
    } else {
      theirWrites.push(op.path);
      if (op.from !== undefined) theirWrites.push(op.from);
    }
  }
  const hit = (op) => theirWrites.some((p) => overlaps(p, op.path)) ||
    (op.op !== "splice" && [...theirSplices.keys()].some((p) => overlaps(p, op.path)));
  const lost = ours.filter(hit);
  const lostPaths = new Set(lost.map((op) => op.path));
  const kept = ours.filter((op) => !lostPaths.has(op.path));
  const asOps = (path, splices) => splices.map((s) => ({ op: "splice", path, at: s.at,
                                                          remove: s.remove, insert: s.insert }));
  const carried = new Map();
  const theirsCarried = new Map();
  for (const [path, splices] of theirSplices) {
    const mine = kept.filter((op) => op.op === "splice" && op.path === path);
    if (mine.length) {
      const [after, theirsAfter] = transform(mine, splices);
      carried.set(path, asOps(path, after));
      theirsCarried.set(path, asOps(path, theirsAfter));
    }
  }
  const theirsAfter = [];
  for (const op of theirs) {
    if (op.op === "splice" && theirsCarried.has(op.path)) {
      theirsAfter.push(...theirsCarried.get(op.path));
      theirsCarried.delete(op.path);
    } else if (!(op.op === "splice" && carried.has(op.path))) {
      theirsAfter.push(op);
    }
  }
  const result = [];
  const emitted = new Set();
  for (const op of kept) {
    if (op.op === "splice" && carried.has(op.path)) {
      if (!emitted.has(op.path)) result.push(...carried.get(op.path));
      emitted.add(op.path);
    } else {
      result.push(op);
    }
  }
  return { ops: result, lost, theirs: theirsAfter };
}

export class DocumentSync extends Emitter {
  constructor(wire, meta) {
    super();
    this.wire = wire;
    this.id = meta.id;
    this.meta = meta;          // {id, kind, title, ...} without state
    this.version = 0;
    this.confirmed = null;
    this.local = null;
    this.inflight = null;      // {ops: as shown locally, sent: {base, ops, key}, ack}
    this.pending = [];
    this.held = [];
    this.conflicts = [];       // {id, path, yours, reason, message, lock}
    this.locks = new Map();    // path -> lock
    this.presence = new Map(); // session -> entry
    this.writers = new Map();  // path -> {name, version}: who last changed it
    this.notices = [];
    this.loaded = false;
    this.focus = null;
    this.unlisten = [];
    this.flushTimer = null;
  }

  get mySession() {
    return this.wire.welcome?.session;
  }

  get unsaved() {
    return (this.inflight ? this.inflight.ops.length : 0) + this.pending.length;
  }

  open() {
    const on = (name, fn) => this.unlisten.push(this.wire.on(name, (m) => {
      if (m.doc === this.id && m.stage === undefined) fn(m);
    }));
    on("delta", (m) => this.#onDelta(m));
    on("reset", (m) => this.#onReset(m));
    on("presence", (m) => this.#onPresence(m));
    on("locked", (m) => this.#onLocked(m));
    on("unlocked", (m) => this.#onUnlocked(m));
    this.unlisten.push(this.wire.on("ready", () => this.#subscribe()));
    this.unlisten.push(this.wire.on("status", (status) => {
      if (status !== "live") this.#connectionLost();
      this.emit("change", { cause: "status" });
    }));
    if (this.wire.live) this.#subscribe();
  }

  close() {
    for (const stop of this.unlisten) stop();
    this.unlisten = [];
    clearTimeout(this.flushTimer);
    if (this.wire.live) this.wire.tell({ type: "unsubscribe", doc: this.id });
  }

  // -- subscribing and resuming ---------------------------------------------------------------

  async #subscribe() {
    const resume = this.loaded;
    const message = { type: "subscribe", doc: this.id };
    if (resume) message.since = this.version;
    let reply;
    try {
      reply = await this.wire.request(message);
    } catch (error) {
      // A dropped connection is not a failure: the next welcome subscribes again.
      if (error.code !== "disconnected") this.emit("failed", error);
      return;
    }
    if (!resume) {
      this.confirmed = reply.state;
      this.local = reply.state;
      this.version = reply.version;
      this.loaded = true;
    }
    this.presence = new Map(reply.presence.map((e) => [e.session, e]));
    this.locks = new Map(reply.locks.map((l) => [l.path, l]));
    if (this.focus) this.setFocus(this.focus);
    this.emit("change", { cause: resume ? "resumed" : "loaded" });
    // Deltas after `since` follow this reply. What we had in flight or pending goes first,
    // synchronously, before the first of them is read: an edit made offline is then sent
    // against the version it was made on, and the server (not this page) judges what overlaps.
    if (this.inflight && this.inflight.ack === null) this.#send();
    else this.#flush();
  }

  #connectionLost() {
    // Held deltas come again after `since`; presence and locks are re-read on resubscribe.
    this.held = [];
  }

  // -- local edits ----------------------------------------------------------------------------

  // Apply ops at once to what the user sees and queue them for the server. Returns false (and
  // changes nothing) when they do not apply, e.g. typing into a section someone removed.
  edit(ops) {
    let next;
    try {
      next = applyOps(this.local, ops);
    } catch (error) {
      if (error instanceof PatchError) return false;
      throw error;
    }
    this.local = next;
    for (const op of ops) this.#queue(op);
    this.emit("change", { cause: "local" });
    this.#flushSoon();
    return true;
  }

  // Consecutive keystrokes in one text become one splice while they wait to be sent.
  #queue(op) {
    const last = this.pending.at(-1);
    if (last && op.op === "splice" && last.op === "splice" && last.path === op.path) {
      const end = last.at + codeLength(last.insert);
      if (op.remove === 0 && op.at === end) {
        last.insert += op.insert;
        return;
      }
      if (op.insert === "" && op.at + op.remove === end && op.remove <= codeLength(last.insert)) {
        last.insert = Array.from(last.insert).slice(0, -op.remove).join("");
        if (last.insert === "" && last.remove === 0) this.pending.pop();
        return;
      }
    }
    this.pending.push({ ...op });
  }

  #flushSoon() {
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => this.#flush(), 0);
  }

  #flush() {
    if (this.inflight || !this.pending.length || !this.wire.live || !this.loaded) return;
    const ops = this.pending.splice(0, MAX_OPS);
    this.inflight = { ops, sent: { base: this.version, ops: ops.map((op) => ({ ...op })),
                                   key: newKey() }, ack: null };
    this.#send();
  }

  async #send() {
    const inflight = this.inflight;
    const { base, ops, key } = inflight.sent;
    this.emit("change", { cause: "saving" });
    let reply;
    try {
      reply = await this.wire.request({ type: "patch", doc: this.id, base, ops, key });
    } catch (error) {
      if (this.inflight !== inflight) return;
      if (error.code === "disconnected") return; // resent after the next welcome
      if (error.code === "timeout") {
        setTimeout(() => this.inflight === inflight && this.wire.live && this.#send(), 1000);
        return;
      }
      this.#refused(error);
      return;
    }
    if (this.inflight !== inflight) return;
    inflight.ack = reply.version;
    if (reply.version <= this.version) {
      // Already confirmed by a delta that came before the reply (a resend's duplicate).
      this.inflight = null;
    }
    this.#releaseHeld();
  }

  #refused(error) {
    const ops = [...this.inflight.ops];
    this.inflight = null;
    const paths = [...new Set(ops.map((op) => op.path))];
    // Pending edits made on top of the refused ones, at the same place, go with them.
    const dependent = (op) => paths.some((p) => overlaps(p, op.path));
    const before = this.local;
    this.pending = this.pending.filter((op) => !dependent(op));
    for (const path of paths) {
      this.#keepConflict(path, valueAt(before, path), error.code, error.message, error.reply?.lock);
    }
    this.#releaseHeld();
    this.#recompute();
  }

  #keepConflict(path, yours, reason, message, lock) {
    this.conflicts = this.conflicts.filter((c) => c.path !== path);
    this.conflicts.push({ id: ++conflictIds, path, yours, reason, message, lock });
    this.emit("conflict", this.conflicts.at(-1));
  }

  // -- what the server sends ------------------------------------------------------------------

  #onDelta(delta) {
    if (this.inflight && this.inflight.ack === null) {
      this.held.push(delta);
      return;
    }
    const started = performance.now();
    this.#apply(delta);
    this.#recompute();
    // Listeners (the views) have re-rendered by now: this is what a remote edit costs.
    this.emit("applied", performance.now() - started);
    this.#flushSoon();
  }

  #releaseHeld() {
    const held = this.held;
    this.held = [];
    for (const delta of held) this.#apply(delta);
    this.#recompute();
    this.#flushSoon();
  }

  #apply(delta) {
    if (!this.loaded || delta.version <= this.version) return; // seen already
    if (delta.version !== this.version + 1) {
      // Never expected (the server sends every version in order); catch up from the log.
      this.#subscribe();
      return;
    }
    this.confirmed = applyOps(this.confirmed, delta.ops);
    this.version = delta.version;
    for (const op of delta.ops) this.writers.set(op.path, { name: delta.actor.name,
                                                             version: delta.version });
    if (this.inflight && this.inflight.ack === delta.version) {
      this.inflight = null;
      return;
    }
    const before = this.local;
    let theirs = delta.ops;
    if (this.inflight) {
      const carried = carryPast(this.inflight.ops, theirs);
      this.inflight.ops = carried.ops;
      // Their ops as they apply after our in-flight ones: what pending edits must pass.
      theirs = carried.theirs;
    }
    const carried = carryPast(this.pending, theirs);
    this.pending = carried.ops;
    for (const path of new Set(carried.lost.map((op) => op.path))) {
      this.#keepConflict(path, valueAt(before, path), "conflict",
                         `${delta.actor.name} changed this while your edit waited to be sent`);
    }
    this.lastRemote = delta;
  }

  #recompute() {
    const mine = [...(this.inflight ? this.inflight.ops : []), ...this.pending];
    try {
      this.local = applyOps(this.confirmed, mine);
    } catch (error) {
      if (!(error instanceof PatchError)) throw error;
      // Keep every op that still applies; the others become conflicts holding the user's value.
      const before = this.local;
      let state = this.confirmed;
      const failed = new Set();
      for (const op of mine) {
        try {
          state = applyOps(state, [op]);
        } catch {
          failed.add(op.path);
        }
      }
      this.pending = this.pending.filter((op) => !failed.has(op.path));
      for (const path of failed) {
        this.#keepConflict(path, valueAt(before, path), "conflict", "the text changed under your edit");
      }
      this.local = state;
    }
    this.emit("change", { cause: "remote" });
  }

  #onReset(message) {
    this.confirmed = message.state;
    this.version = message.version;
    this.held = [];
    if (this.inflight && this.inflight.ack !== null && this.inflight.ack <= message.version) {
      this.inflight = null;
    }
    this.#recompute();
  }

  // -- presence -------------------------------------------------------------------------------

  #onPresence(message) {
    for (const entry of [...message.joins, ...message.updates]) {
      this.presence.set(entry.session, entry);
    }
    for (const entry of message.leaves) this.presence.delete(entry.session);
    this.emit("change", { cause: "presence" });
  }

  setFocus(path) {
    this.focus = path;
    const state = path ? { status: "editing", focus: path } : { status: "viewing" };
    this.wire.tell({ type: "presence", doc: this.id, state });
  }

  // Other people focused on `path` (their presence focus overlaps it).
  focusedBy(path) {
    return [...this.presence.values()].filter((e) => e.session !== this.mySession &&
      e.state?.focus && overlaps(e.state.focus, path));
  }

  // -- locks ----------------------------------------------------------------------------------

  #onLocked(message) {
    this.locks.set(message.path, message);
    this.emit("change", { cause: "locks" });
  }

  #onUnlocked(message) {
    const lock = this.locks.get(message.path);
    if (lock && lock.holder.session === message.holder.session) this.locks.delete(message.path);
    if (message.reason !== "released" || message.holder.session !== this.mySession) {
      this.#notice(message);
    }
    this.emit("change", { cause: "locks" });
  }

  #notice(message) {
    this.notices.push({ id: ++conflictIds, path: message.path, reason: message.reason,
                        holder: message.holder.user.name,
                        mine: message.holder.session === this.mySession });
    this.notices = this.notices.slice(-5);
  }

  lockOn(path) {
    return [...this.locks.values()].find((l) => overlaps(l.path, path)) ?? null;
  }

  lockedByOther(path) {
    const lock = this.lockOn(path);
    return lock && lock.holder.session !== this.mySession ? lock : null;
  }

  async lock(path, { force = false } = {}) {
    const message = { type: "lock", doc: this.id, path };
    if (force) message.force = true;
    const reply = await this.wire.request(message);
    this.locks.set(reply.lock.path, reply.lock);
    this.emit("change", { cause: "locks" });
    return reply.lock;
  }

  async unlock(path) {
    await this.wire.request({ type: "unlock", doc: this.id, path });
    this.locks.delete(path);
    this.emit("change", { cause: "locks" });
  }

  // -- conflicts ------------------------------------------------------------------------------

  // A conflict the page saw itself (someone changed a field the user was still typing in).
  conflictLocal(path, yours, message = "someone else changed this while you were typing") {
    this.#keepConflict(path, yours, "conflict", message);
    this.emit("change", { cause: "conflicts" });
  }

  theirs(conflict) {
    return valueAt(this.local, conflict.path);
  }

  writerOf(path) {
    let found = null;
    for (const [written, who] of this.writers) {
      if (overlaps(written, path) && (!found || who.version > found.version)) found = who;
    }
    return found;
  }

  resolve(conflictId, choice, merged) {
    const conflict = this.conflicts.find((c) => c.id === conflictId);
    if (!conflict) return;
    this.conflicts = this.conflicts.filter((c) => c !== conflict);
    if (choice !== "theirs") {
      const value = choice === "mine" ? conflict.yours : merged;
      const exists = valueAt(this.local, conflict.path) !== undefined;
      if (value === undefined) {
        if (exists) this.edit([{ op: "remove", path: conflict.path }]);
      } else if (!this.edit([{ op: exists ? "replace" : "add", path: conflict.path, value }])) {
        this.conflicts.push(conflict); // its place is gone: keep it on screen
      }
    }
    this.emit("change", { cause: "conflicts" });
  }

  dismissNotice(id) {
    this.notices = this.notices.filter((n) => n.id !== id);
    this.emit("change", { cause: "notices" });
  }
}
