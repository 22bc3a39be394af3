// The review trail of the page (PROTOCOL sections 11, 12 and 14), as two models the views
// read: `DocumentTrail` holds one document's reviews and comment threads, `Notifications`
// the signed-in user's notifications. Both load over HTTP, then follow the pushes the wire
// client hands on (`review` and `comment` to the document's subscribers, `notification` to
// every session of the addressee), and load again after a reconnect, because pushes missed
// while the connection was down are not sent again. Views never call the API themselves.

import { Emitter } from "./emitter.js";

const FINAL = new Set(["approved", "withdrawn"]);
const NOTIFICATION_PAGE = 30;
const UNREAD_CAP = 100;

export const isFinal = (review) => FINAL.has(review.status);

// Overdue: the due time has passed and the review is still open (the server's definition).
export function isOverdue(review, now = Date.now()) {
  return Boolean(review.due) && !isFinal(review) && Date.parse(review.due) < now;
}

const byCreation = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0);

export class DocumentTrail extends Emitter {
  constructor({ api, wire, docId }) {
    super();
    this.api = api;
    this.wire = wire;
    this.docId = docId;
    this.reviews = new Map();  // id -> review
    this.comments = new Map(); // id -> comment
    this.loaded = false;
    this.unlisten = [];
  }

  open() {
    const mine = (fn) => (message) => { if (message.doc === this.docId) fn(message); };
    this.unlisten.push(
      this.wire.on("review", mine((m) => this.#keepReview(m.review))),
      this.wire.on("comment", mine((m) => this.#keepComment(m.comment))),
      this.wire.on("ready", ({ resumed }) => { if (resumed) this.load(); }));
    return this.load();
  }

  close() {
    for (const stop of this.unlisten) stop();
    this.unlisten = [];
  }

  async load() {
    const doc = encodeURIComponent(this.docId);
    const [reviews, comments] = await Promise.all([
      this.api.get(`/api/reviews?doc=${doc}&limit=100`),
      this.api.get(`/api/documents/${doc}/comments`),
    ]);
    this.reviews = new Map(reviews.items.map((r) => [r.id, r]));
    this.comments = new Map(comments.items.map((c) => [c.id, c]));
    this.loaded = true;
    this.emit("change", { cause: "loaded" });
  }

  // -- reading -------------------------------------------------------------------------------

  // Newest first, open reviews before decided ones.
  reviewList() {
    return [...this.reviews.values()].sort((a, b) =>
      Number(isFinal(a)) - Number(isFinal(b)) || (a.created_at < b.created_at ? 1 : -1));
  }

  // The threads anchored at `path` (exactly), each {id, path, resolved, comments: [...]}.
  threadsAt(path) {
    return this.threads().filter((t) => t.path === path);
  }

  threads() {
    const threads = new Map();
    for (const comment of [...this.comments.values()].sort(byCreation)) {
      if (!threads.has(comment.thread)) {
        threads.set(comment.thread, { id: comment.thread, path: comment.path, comments: [] });
      }
      threads.get(comment.thread).comments.push(comment);
    }
    for (const thread of threads.values()) {
      const first = thread.comments.find((c) => c.id === thread.id) ?? thread.comments[0];
      thread.first = first;
      thread.path = first.path;
      thread.resolved = first.resolved;
    }
    return [...threads.values()];
  }

  openThreadCount() {
    return this.threads().filter((t) => !t.resolved).length;
  }

  // -- acting (each answer is kept at once; the push that follows changes nothing more) --------

  async requestReview(reviewer, due) {
    const review = await this.api.post(`/api/documents/${encodeURIComponent(this.docId)}/reviews`,
                                       { reviewer, due });
    this.#keepReview(review);
    return review;
  }

  async moveReview(reviewId, to, note) {
    const body = note ? { to, note } : { to };
    this.#keepReview(await this.api.post(`/api/reviews/${encodeURIComponent(reviewId)}/transition`, body));
  }

  async addComment(body, { path, parent } = {}) {
    const sent = { body };
    if (parent) sent.parent = parent;
    else if (path) sent.path = path;
    this.#keepComment(await this.api.post(`/api/documents/${encodeURIComponent(this.docId)}/comments`, sent));
  }

  async editComment(commentId, body) {
    this.#keepComment(await this.api.call(`/api/comments/${encodeURIComponent(commentId)}`,
                                          { method: "PATCH", body: { body } }));
  }

  // Resolving and reopening act on the whole thread; the answer is its first comment, and
  // every other comment of the thread follows as a push, so the others are marked here too.
  async setResolved(threadId, resolved) {
    const first = await this.api.post(
      `/api/comments/${encodeURIComponent(threadId)}/${resolved ? "resolve" : "reopen"}`);
    for (const comment of this.comments.values()) {
      if (comment.thread === threadId && comment.id !== first.id) {
        this.comments.set(comment.id, { ...comment, resolved: first.resolved });
      }
    }
    this.#keepComment(first);
  }

  #keepReview(review) {
    const known = this.reviews.get(review.id);
    if (known && known.updated_at > review.updated_at) return; // an older push arriving late
    this.reviews.set(review.id, review);
    this.emit("change", { cause: "review", review });
  }

  #keepComment(comment) {
    this.comments.set(comment.id, comment);
    this.emit("change", { cause: "comment", comment });
  }
}

export class Notifications extends Emitter {
  constructor({ api, wire }) {
    super();
    this.api = api;
    this.wire = wire;
    this.items = [];  // newest first
    this.unread = 0;
    this.more = false; // whether the unread count reached the page's cap
    this.loaded = false;
    wire.on("notification", ({ notification }) => this.#arrived(notification));
    wire.on("ready", () => this.load().catch(() => {}));
  }

  async load() {
    const [recent, unread] = await Promise.all([
      this.api.get(`/api/notifications?limit=${NOTIFICATION_PAGE}`),
      this.api.get(`/api/notifications?unread=true&limit=${UNREAD_CAP}`),
    ]);
    this.items = recent.items;
    this.unread = unread.items.length;
    this.more = Boolean(unread.next);
    this.loaded = true;
    this.emit("change", { cause: "loaded" });
  }

  async markRead(id) {
    const known = this.items.find((n) => n.id === id);
    if (known?.read) return;
    const read = await this.api.post(`/api/notifications/${encodeURIComponent(id)}/read`);
    this.items = this.items.map((n) => (n.id === id ? { ...n, ...read, read: true } : n));
    this.unread = Math.max(0, this.unread - 1);
    this.emit("change", { cause: "read" });
  }

  async markAllRead() {
    await this.api.post("/api/notifications/read-all");
    this.items = this.items.map((n) => ({ ...n, read: true }));
    this.unread = 0;
    this.more = false;
    this.emit("change", { cause: "read" });
  }

  #arrived(notification) {
    if (this.items.some((n) => n.id === notification.id)) return;
    this.items = [notification, ...this.items].slice(0, NOTIFICATION_PAGE);
    if (!notification.read) this.unread += 1;
    this.emit("change", { cause: "arrived", notification });
  }
}
