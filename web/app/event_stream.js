// Following the tenant's audit events over the wire client (PROTOCOL section 8), every one
// exactly once across any number of dropped connections.
//
// The stream promises: after the subscribe reply, every matching event after `since`, in
// `seq` order, none skipped, none twice. So the model keeps one number, the `seq` of the last
// event it passed on. After every welcome (first connection or a resume) it subscribes again
// with `since` = that number: the server replays what was missed while the page was away, and
// nothing before it. An event at or below the number (a replay overlapping what had already
// arrived) is dropped, so even a server that sent one twice could not make a view count it
// twice.
//
// "Caught up" (the replay done, what follows is live) is not a message of the protocol. The
// model asks a `heartbeat` right after the subscribe: a connection answers its requests in
// order, and the subscribe's replay is queued before its handling ends, so the heartbeat's
// reply arrives behind the last replayed event. An event newer than the reply's `seq` (the
// stream's position when it was registered) says the same, whichever comes first.

import { Emitter } from "./emitter.js";

export class EventStream extends Emitter {
  // `startAt` answers the `since` of the very first subscription (a promise of a seq).
  constructor(wire, { filter = {}, startAt = async () => null } = {}) {
    super();
    this.wire = wire;
    this.filter = filter;
    this.startAt = startAt;
    this.start = null;      // the promise of the first `since`, asked once
    this.lastSeq = null;    // the seq of the last event passed on
    this.streamId = null;   // the current subscription's id (a new one per connection)
    this.position = null;   // the stream's position when it was registered
    this.caughtUp = false;
    this.held = null;       // events that came before the reply named their stream
    this.generation = 0;    // which subscription attempt is current
    this.stats = { subscriptions: 0, duplicates: 0, received: 0 };
    this.unlisten = [];
  }

  open() {
    this.unlisten.push(
      this.wire.on("ready", () => this.#subscribe()),
      this.wire.on("status", (status) => { if (status !== "live") this.#lost(); }),
      this.wire.on("event", (message) => this.#receive(message)));
    if (this.wire.live) this.#subscribe();
  }

  // Try again after a failure that was not the connection's (the look back's HTTP reads).
  retry() {
    if (this.wire.live && this.streamId === null) this.#subscribe();
  }

  close() {
    for (const stop of this.unlisten) stop();
    this.unlisten = [];
    this.generation += 1;
    if (this.streamId && this.wire.live) this.wire.tell({ type: "unsubscribe", stream: this.streamId });
    this.streamId = null;
  }

  #lost() {
    this.generation += 1;
    this.streamId = null;
    this.held = null;
    if (this.caughtUp) {
      this.caughtUp = false;
      this.emit("state");
    }
  }

  async #subscribe() {
    const generation = ++this.generation;
    this.streamId = null;
    this.held = [];
    this.caughtUp = false;
    this.emit("state");
    let since = this.lastSeq;
    try {
      if (since === null) {
        this.start ??= this.startAt();
        since = await this.start;
        if (generation !== this.generation) return;
        this.lastSeq ??= since;
      }
      const reply = await this.wire.request({ type: "subscribe", stream: this.filter,
                                              ...(since === null ? {} : { since }) });
      if (generation !== this.generation) return;
      this.streamId = reply.stream;
      this.position = reply.seq;
      this.lastSeq ??= reply.seq;
      this.stats.subscriptions += 1;
      const held = this.held;
      this.held = null;
      for (const message of held) if (message.stream === reply.stream) this.#accept(message.event);
      this.emit("subscribed", { since, position: reply.seq, resumed: this.stats.subscriptions > 1 });
      await this.wire.request({ type: "heartbeat" });
      if (generation === this.generation) this.#settle();
    } catch (error) {
      if (generation !== this.generation) return;
      if (error.code === "disconnected") return; // the next welcome subscribes again
      this.start = since === null ? null : this.start; // a failed look back is asked again
      this.emit("failure", error);
    }
  }

  #receive(message) {
    if (this.streamId === null) {
      this.held?.push(message);
      return;
    }
    if (message.stream === this.streamId) this.#accept(message.event);
  }

  #accept(event) {
    this.stats.received += 1;
    if (this.lastSeq !== null && event.seq <= this.lastSeq) {
      this.stats.duplicates += 1;
      return;
    }
    this.lastSeq = event.seq;
    this.emit("event", event);
    if (!this.caughtUp && this.position !== null && event.seq > this.position) this.#settle();
  }

  #settle() {
    if (this.caughtUp) return;
    this.caughtUp = true;
    this.emit("state");
  }
}
