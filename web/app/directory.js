// Names for ids: the title, kind and idea of a document, the title and ticker of an idea, as
// far as the page knows them. Events teach most of it for free (every event carries its
// document's kind and idea; `document.created` and `idea.created` carry titles); what is
// still unknown when a view asks is read once over HTTP, a few reads at a time, and the
// directory says "change" when names arrive. A failed read is not retried: the view keeps
// showing the short id, which is better than hammering the server.

import { Emitter } from "./emitter.js";

const PARALLEL_READS = 4;
const MAX_ENTRIES = 5000;

export class Directory extends Emitter {
  constructor(api) {
    super();
    this.api = api;
    this.docs = new Map();   // id -> {id, title?, kind?, idea?}
    this.ideas = new Map();  // id -> {id, title?, ticker?}
    this.asked = new Set();  // "doc:ID" / "idea:ID" read or being read
    this.queue = [];
    this.running = 0;
    this.announce = null;
  }

  // -- learning ------------------------------------------------------------------------------

  learnFromEvent(event) {
    if (event.doc) {
      const fields = { kind: event.kind ?? undefined, idea: event.idea ?? undefined };
      if (event.type === "document.created" && event.data?.title) fields.title = event.data.title;
      this.#keep(this.docs, event.doc, fields);
    }
    if (event.type === "idea.created" && event.idea && event.data?.title) {
      this.#keep(this.ideas, event.idea, { title: event.data.title, ticker: event.data.ticker });
    }
  }

  learnIdeas(ideas) {
    for (const idea of ideas) this.#keep(this.ideas, idea.id, { title: idea.title, ticker: idea.ticker });
  }

  learnDocument(doc) {
    this.#keep(this.docs, doc.id, { title: doc.title, kind: doc.kind, idea: doc.idea ?? undefined });
  }

  #keep(map, id, fields) {
    const known = map.get(id) ?? { id };
    let changed = !map.has(id);
    for (const [name, value] of Object.entries(fields)) {
      if (value !== undefined && known[name] !== value) {
        known[name] = value;
        changed = true;
      }
    }
    if (map.size >= MAX_ENTRIES && !map.has(id)) map.delete(map.keys().next().value);
    map.set(id, known);
    if (changed) this.#changed();
  }

  #changed() {
    if (this.announce) return;
    this.announce = setTimeout(() => { this.announce = null; this.emit("change"); }, 50);
  }

  // -- asking --------------------------------------------------------------------------------

  // What is known of a document; its title is read over HTTP when nobody has said it yet.
  doc(id) {
    const known = this.docs.get(id);
    if (!known?.title) this.#ask("doc", id);
    return known ?? { id };
  }

  idea(id) {
    const known = this.ideas.get(id);
    if (!known?.title) this.#ask("idea", id);
    return known ?? { id };
  }

  docTitle(id) {
    return this.doc(id).title ?? `Document ${id.slice(0, 8)}`;
  }

  ideaTitle(id) {
    const idea = this.idea(id);
    if (!idea.title) return `Idea ${id.slice(0, 8)}`;
    return idea.ticker ? `${idea.title} (${idea.ticker})` : idea.title;
  }

  #ask(what, id) {
    const key = `${what}:${id}`;
    if (this.asked.has(key)) return;
    this.asked.add(key);
    this.queue.push([what, id]);
    this.#pump();
  }

  #pump() {
    while (this.running < PARALLEL_READS && this.queue.length) {
      const [what, id] = this.queue.shift();
      this.running += 1;
      const path = what === "doc" ? `/api/documents/${encodeURIComponent(id)}`
        : `/api/ideas/${encodeURIComponent(id)}`;
      this.api.get(path).then((found) => {
        if (what === "doc") this.learnDocument(found);
        else this.learnIdeas([found]);
      }, () => {}).finally(() => {
        this.running -= 1;
        this.#pump();
      });
    }
  }
}
