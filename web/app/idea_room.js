// One idea as the idea page sees it (PROTOCOL sections 10, 11, 13): the idea with its
// documents, reviews and workflow instances (one `GET /api/ideas/{id}`), who is on each of its
// documents (`subscribe {idea}`), and the idea's own event stream (`subscribe {stream:
// {ideas:[id]}}`), which says when another user moved a step, started a workflow, created a
// stage document or moved a review. The stream's events are a cue to read the idea again, not
// a second copy of its state: one read after a burst of events gives the server's truth. After
// a reconnect both subscriptions are made again and the idea is read again (what was missed
// while the connection was down is in that read).
//
// The acting methods (step verbs, instance status, starting a workflow, creating a stage
// document) call the HTTP API and keep the answer at once; the stream's echo changes nothing.

import { Emitter } from "./emitter.js";

const REFRESH_DELAY_MS = 120;
const FOLLOWED = ["workflow.*", "review.*", "document.created", "idea.*"];

export class IdeaRoom extends Emitter {
  constructor({ api, wire, ideaId }) {
    super();
    this.api = api;
    this.wire = wire;
    this.ideaId = ideaId;
    this.idea = null;          // the idea with documents, reviews, workflows
    this.presence = new Map(); // session -> presence entry on one of the idea's documents
    this.stream = null;
    this.refreshTimer = null;
    this.closed = false;
    this.unlisten = [];
    this.lastEvent = null;     // the newest stream event, for tests and the curious
    this.reads = 0;            // reads asked for
    this.shown = 0;            // the newest read whose answer is shown
  }

  open() {
    this.unlisten.push(
      this.wire.on("ready", () => this.#subscribe()),
      this.wire.on("presence", (message) => this.#presence(message)),
      this.wire.on("event", (message) => {
        if (message.stream !== this.stream) return;
        this.lastEvent = message.event;
        this.emit("event", message.event);
        this.#refreshSoon();
      }));
    if (this.wire.live) this.#subscribe();
    return this.load();
  }

  close() {
    this.closed = true;
    clearTimeout(this.refreshTimer);
    for (const stop of this.unlisten) stop();
    this.unlisten = [];
    this.wire.tell({ type: "unsubscribe", idea: this.ideaId });
    if (this.stream) this.wire.tell({ type: "unsubscribe", stream: this.stream });
  }

  // Reads may overlap (an own move's read, a stream cue's read): the answer of an older read
  // arriving after a newer one's must not put the page back in time.
  async load() {
    const asked = ++this.reads;
    const idea = await this.api.get(`/api/ideas/${encodeURIComponent(this.ideaId)}`);
    if (this.closed || asked < this.shown) return;
    this.shown = asked;
    this.idea = idea;
    this.emit("change", { cause: "loaded" });
  }

  async #subscribe() {
    try {
      const reply = await this.wire.request({ type: "subscribe", idea: this.ideaId });
      this.presence = new Map(reply.presence.map((e) => [e.session, e]));
      this.emit("change", { cause: "presence" });
      const stream = await this.wire.request({ type: "subscribe", stream: {
        ideas: [this.ideaId], types: FOLLOWED } });
      this.stream = stream.stream;
      // Anything between the page's read and this subscription: read once more.
      this.#refreshSoon();
    } catch (error) {
      this.emit("trouble", error);
    }
  }

  #presence(message) {
    if (message.idea !== this.ideaId) return;
    for (const entry of [...message.joins, ...message.updates]) this.presence.set(entry.session, entry);
    for (const entry of message.leaves) this.presence.delete(entry.session);
    this.emit("change", { cause: "presence" });
  }

  #refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.load().catch((error) => this.emit("trouble", error));
    }, REFRESH_DELAY_MS);
  }

  // -- reading -------------------------------------------------------------------------------

  documentsOf(kind) {
    return (this.idea?.documents ?? []).filter((d) => d.kind === kind);
  }

  // The distinct people on the idea's documents of one stage.
  peopleOn(kind) {
    const seen = new Map();
    for (const entry of this.presence.values()) {
      if (entry.kind === kind) seen.set(entry.user.id, entry.user);
    }
    return [...seen.values()];
  }

  // The instance the panel shows: the newest one still running, else the newest of all.
  currentWorkflow() {
    const all = this.idea?.workflows ?? [];
    return all.find((w) => w.status === "active" || w.status === "paused") ?? all[0] ?? null;
  }

  // -- acting --------------------------------------------------------------------------------

  #keepInstance(instance) {
    if (!this.idea) return;
    this.shown = this.reads + 1; // reads asked before this answer are older than it
    const others = this.idea.workflows.filter((w) => w.id !== instance.id);
    this.idea = { ...this.idea, workflows: [instance, ...others] };
    this.emit("change", { cause: "workflow" });
  }

  async moveStep(step, verb, payload = {}) {
    const answer = await this.api.post(`/api/workflows/steps/${encodeURIComponent(step.id)}/${verb}`,
                                       payload);
    // The answer is the step alone; what followed from it (dependents, the instance) is read.
    await this.load();
    return answer;
  }

  async setStatus(instance, status) {
    const answer = await this.api.call(`/api/workflows/instances/${encodeURIComponent(instance.id)}`,
                                       { method: "PATCH", body: { status } });
    this.#keepInstance(answer);
    return answer;
  }

  async startWorkflow(templateId) {
    const instance = await this.api.post(
      `/api/workflows/templates/${encodeURIComponent(templateId)}/instantiate`, { idea: this.ideaId });
    this.#keepInstance(instance);
    return instance;
  }

  async createDocument(kind, title, state) {
    const doc = await this.api.post("/api/documents", { kind, title, state, idea: this.ideaId });
    await this.load();
    return doc;
  }

  // The reviews of all the idea's documents, shaped as the reviews panel reads a document's
  // trail (views/reviews_panel.js): the list, moves, and a change signal.
  reviewTrail() {
    const room = this;
    const trail = new Emitter();
    trail.reviewList = () => [...(room.idea?.reviews ?? [])].sort((a, b) =>
      Number(["approved", "withdrawn"].includes(a.status)) - Number(["approved", "withdrawn"].includes(b.status))
      || (a.created_at < b.created_at ? 1 : -1));
    trail.openThreadCount = null; // comment threads belong to a document, not to the idea
    trail.moveReview = async (reviewId, to, note) => {
      const body = note ? { to, note } : { to };
      await room.api.post(`/api/reviews/${encodeURIComponent(reviewId)}/transition`, body);
      await room.load();
    };
    trail.detach = room.on("change", ({ cause }) => {
      if (cause !== "presence") trail.emit("change", { cause: "review" });
    });
    return trail;
  }
}
