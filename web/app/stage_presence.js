// Who is on each stage (document kind) right now, for the header's badges: one `subscribe`
// with `stage` per kind (PROTOCOL section 6), renewed after every reconnect.

import { Emitter } from "./emitter.js";

export const STAGES = [
  ["memo", "Memo"], ["normalization", "Normalization"], ["valuation", "Valuation"],
  ["monitoring", "Monitoring"],
];

export class StagePresence extends Emitter {
  constructor(wire) {
    super();
    this.wire = wire;
    this.byStage = new Map(STAGES.map(([kind]) => [kind, new Map()]));
    wire.on("ready", () => this.#subscribe());
    wire.on("presence", (message) => {
      if (!message.stage || !this.byStage.has(message.stage)) return;
      const entries = this.byStage.get(message.stage);
      for (const entry of [...message.joins, ...message.updates]) entries.set(entry.session, entry);
      for (const entry of message.leaves) entries.delete(entry.session);
      this.emit("change");
    });
  }

  async #subscribe() {
    await Promise.all(STAGES.map(async ([kind]) => {
      try {
        const reply = await this.wire.request({ type: "subscribe", stage: kind });
        this.byStage.set(kind, new Map(reply.presence.map((e) => [e.session, e])));
      } catch {
        // The badges are a courtesy: a refused or lost subscription leaves them empty.
      }
    }));
    this.emit("change");
  }

  // Every presence entry on a stage (one per session and document), for the dashboard.
  entries(kind) {
    return [...(this.byStage.get(kind)?.values() ?? [])];
  }

  // The distinct people on a stage (one person may have several tabs and documents open).
  people(kind) {
    const seen = new Map();
    for (const entry of this.byStage.get(kind)?.values() ?? []) seen.set(entry.user.id, entry.user);
    return [...seen.values()];
  }
}
