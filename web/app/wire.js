// The one owner of the WebSocket (PROTOCOL sections 3, 5, 6). It opens the connection, reads
// the welcome, matches replies to requests by id, keeps the connection alive with heartbeats,
// and when the connection drops (network gone, node going away, slow consumer) reconnects by
// itself with exponential backoff. Subscriptions are not its business: after every welcome it
// announces "ready" and each model re-subscribes with `since` and resends what it had in
// flight. Views never see the socket; they read `status` and listen to "status".
//
// The browser's offline switch does not close an open WebSocket (Chromium keeps it and
// silently stops delivering), so the client closes it itself on the window's `offline`
// event and waits for `online` before trying again.

import { Emitter } from "./emitter.js";

const SUBPROTOCOL = "coedit.v1.json";
const FIRST_RETRY_MS = 250;
const LAST_RETRY_MS = 8000;
const REQUEST_TIMEOUT_MS = 15000;

export class WireError extends Error {
  constructor(reply) {
    super(reply.message || reply.code);
    this.code = reply.code;
    this.reply = reply;
  }
}

export class WireClient extends Emitter {
  constructor(urlOf) {
    super();
    this.urlOf = urlOf;       // () => the WebSocket URL (it may carry a token)
    this.socket = null;
    this.status = "connecting"; // connecting | live | reconnecting | offline | closed
    this.welcome = null;
    this.attempt = 0;
    this.nextId = 1;
    this.waiting = new Map(); // request id -> {resolve, reject, timer}
    this.lastSent = 0;
    this.beat = null;
    this.retry = null;
    this.stopped = false;
    this.connections = 0;     // how many welcomes so far: views tell a first load from a resume
    window.addEventListener("offline", () => this.#goOffline());
    window.addEventListener("online", () => this.#comeOnline());
  }

  get live() {
    return this.status === "live";
  }

  start() {
    this.stopped = false;
    if (navigator.onLine === false) this.#setStatus("offline");
    else this.#open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    this.#drop(1000, "signed out");
    this.#setStatus("closed");
  }

  // One request, one reply (PROTOCOL section 3). Rejects with WireError for an `error` reply
  // and with code "disconnected" when the connection goes before the reply comes.
  request(message) {
    if (!this.live) return Promise.reject(new WireError({ code: "disconnected",
                                                          message: "not connected" }));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new WireError({ code: "timeout", message: `no reply to ${message.type}` }));
      }, REQUEST_TIMEOUT_MS);
      this.waiting.set(id, { resolve, reject, timer });
      this.#send({ ...message, id });
    });
  }

  // A message that wants no reply (presence updates get one, but nobody waits on it).
  tell(message) {
    if (this.live) this.request(message).catch(() => {});
  }

  #send(message) {
    this.lastSent = performance.now();
    this.socket.send(JSON.stringify(message));
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
  }

  #open() {
    clearTimeout(this.retry);
    const socket = new WebSocket(this.urlOf(), SUBPROTOCOL);
    this.socket = socket;
    socket.onmessage = (event) => this.#receive(JSON.parse(event.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.#closed(event.code);
    };
  }

  #receive(message) {
    switch (message.type) {
      case "welcome":
        this.welcome = message;
        this.attempt = 0;
        this.connections += 1;
        this.#startHeartbeat(message.heartbeat_ms);
        this.#setStatus("live");
        this.emit("ready", { resumed: this.connections > 1 });
        return;
      case "ok":
      case "error": {
        const waiter = this.waiting.get(message.re);
        if (!waiter) {
          if (message.type === "error") this.emit("error", message);
          return;
        }
        this.waiting.delete(message.re);
        clearTimeout(waiter.timer);
        if (message.type === "ok") waiter.resolve(message);
        else waiter.reject(new WireError(message));
        return;
      }
      default:
        this.emit(message.type, message);
    }
  }

  #startHeartbeat(intervalMs) {
    clearInterval(this.beat);
    // Any frame counts as a heartbeat; an idle page sends one at half the interval.
    this.beat = setInterval(() => {
      if (this.live && performance.now() - this.lastSent > intervalMs / 2) {
        this.#send({ type: "heartbeat" });
      }
    }, Math.max(250, intervalMs / 4));
  }

  #failWaiting() {
    for (const [id, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.reject(new WireError({ code: "disconnected", message: "connection lost" }));
      this.waiting.delete(id);
    }
  }

  #drop(code, reason) {
    clearInterval(this.beat);
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(code, reason);
    this.#failWaiting();
  }

  #closed(code) {
    this.#drop(1000);
    if (this.stopped) return;
    if (code === 4401) {
      this.#setStatus("closed");
      this.emit("expired", code);
      return;
    }
    if (navigator.onLine === false) {
      this.#setStatus("offline");
      return;
    }
    this.#setStatus("reconnecting");
    const ceiling = Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Full jitter: nodes coming back are not met by every page at the same instant.
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    this.retry = setTimeout(() => this.#open(), delay);
  }

  #goOffline() {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.#drop(4000, "browser offline");
    this.#setStatus("offline");
  }

  #comeOnline() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.#setStatus("reconnecting");
    this.#open();
  }
}
