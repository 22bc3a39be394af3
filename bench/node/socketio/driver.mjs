// The writing side of the benchmark's scenarios against the Socket.IO peer, through
// socket.io-client (WebSocket transport only, one client per writer).
//
// JSON lines on stdin/stdout (see bench/nodejs.py): the spec, then "go", "window" and "exit".
// An acknowledgement here is the server's ack of an `op` event, which it sends only after the
// op's transaction committed in PostgreSQL.

import process from "node:process";
import { createInterface } from "node:readline";

import { io } from "socket.io-client";

const ACK_TIMEOUT_MS = 10_000;
const now = () => Number(process.hrtime.bigint()) / 1e9;
const out = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const log = (...args) => console.error(...args);

// Every socket the driver opens, so that exit closes them all.
const sockets = [];
let closing = false;

function connect(url) {
  // Only the origin matters: the load generator's URL may carry Engine.IO's path and query,
  // which socket.io-client would take for a namespace.
  const { protocol, host } = new URL(url);
  const origin = `${protocol.replace(/^ws/, "http")}//${host}`;
  // forceNew: one Engine.IO connection per client, as separate users would have.
  const socket = io(origin, { transports: ["websocket"], forceNew: true, reconnection: false });
  sockets.push(socket);
  socket.on("disconnect", (reason) => {
    if (!closing) log(`socket ${socket.id ?? "?"} disconnected: ${reason}`);
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`${origin}: ${err.message}`)));
  });
}

// The set-up socket (it creates the documents) leaves on purpose.
function quietly(socket) {
  sockets.splice(sockets.indexOf(socket), 1);
  socket.off("disconnect");
  socket.disconnect();
}

async function join(socket, doc) {
  const answer = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("join", doc);
  if (answer?.error) throw new Error(`join ${doc}: ${answer.error}`);
  return answer.version;
}

// Acknowledged ops: when, and how long each took.
class Acks {
  constructor() {
    this.times = [];
    this.latencies = [];
    this.errors = [];
    this.firstError = "";
  }

  send(socket, doc, op, onDone) {
    const sent = now();
    socket.timeout(ACK_TIMEOUT_MS).emit("op", { doc, op }, (err, answer) => {
      const at = now();
      if (err || answer?.error) {
        this.errors.push(at);
        if (!this.firstError) {
          this.firstError = String(err?.message ?? answer.error);
          log("op failed:", this.firstError);
        }
      } else {
        this.times.push(at);
        this.latencies.push(at - sent);
      }
      onDone?.(!(err || answer?.error));
    });
  }

  within(start, end) {
    let acked = 0;
    const inWindow = [];
    this.times.forEach((t, i) => {
      if (t >= start && t < end) {
        acked += 1;
        inWindow.push(this.latencies[i]);
      }
    });
    const errors = this.errors.filter((t) => t >= start && t < end).length;
    return { acked, errors, latencies: inWindow };
  }
}

function percentile(sorted, q) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

// -- fanout: one writer, paced by its own subscribers ("pacers") on every node -------------

async function fanout(spec, acks) {
  const doc = spec.doc;
  const ahead = spec.ahead ?? 8;
  const size = spec.size ?? 200;
  const setup = await connect(spec.url);
  await join(setup, doc); // creates the document
  const writer = await connect(spec.url);
  const pacers = await Promise.all(spec.pacer_urls.map((u) => connect(u)));
  await Promise.all(pacers.map((p) => join(p, doc)));
  quietly(setup);

  // What a subscriber receives, measured on the wire (the Engine.IO packet "4" + its data)
  // with an empty value, tells how much padding makes a ~`size`-byte frame.
  const engine = pacers[0].io.engine;
  const frameBytes = new Promise((resolve) => {
    const measure = (packet) => {
      if (packet.type === "message" && String(packet.data).startsWith('2["delta"')) {
        engine.off("packet", measure);
        resolve(1 + Buffer.byteLength(packet.data));
      }
    };
    engine.on("packet", measure);
  });
  let sent = 1;
  let running = false;
  const received = pacers.map(() => 0);
  pacers.forEach((pacer, i) => pacer.on("delta", () => {
    received[i] += 1;
    pump();
  }));
  await new Promise((resolve, reject) => acks.send(writer, doc, { path: "/text", value: "" },
    (ok) => (ok ? resolve() : reject(new Error(acks.firstError)))));
  const empty = await frameBytes;
  const value = "x".repeat(Math.max(1, size - empty));
  log(`fanout: frame with an empty value ${empty} bytes, padding ${value.length}`);
  await waitFor(() => received.every((n) => n >= 1));

  function pump() {
    if (!running) return;
    // At most `ahead` ops beyond what the slowest pacer has seen.
    while (sent - Math.min(...received) < ahead) {
      sent += 1;
      acks.send(writer, doc, { path: "/text", value }, (ok) => {
        // A refused op never reaches the pacers: forget it, or the writer would wait forever.
        if (!ok) {
          sent -= 1;
          pump();
        }
      });
    }
  }
  return {
    go() {
      running = true;
      pump();
    },
  };
}

function waitFor(test, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      if (test()) return resolve();
      if (Date.now() > deadline) return reject(new Error("timed out"));
      setTimeout(poll, 5);
    };
    poll();
  });
}

// -- writes: closed loop, `writers` clients, each with one op in flight --------------------

async function writes(spec, acks) {
  const docs = Array.from({ length: spec.docs }, (_, i) => `${spec.prefix}${i}`);
  const setup = await connect(spec.url);
  for (const doc of docs) await join(setup, doc);
  quietly(setup);
  const writers = await Promise.all(Array.from({ length: spec.writers }, () => connect(spec.url)));
  let running = false;
  const loop = (socket, i) => {
    const doc = docs[i % docs.length];
    let n = 0;
    const next = () => {
      if (!running || !socket.connected) return;
      n += 1;
      acks.send(socket, doc, { path: `/w${i}`, value: n }, next);
    };
    return next;
  };
  const loops = writers.map(loop);
  return {
    go() {
      running = true;
      loops.forEach((start) => start());
    },
  };
}

// -- latency: open loop at `rate` ops a second, spread over the documents -----------------

async function latency(spec, acks) {
  const docs = spec.docs;
  const rate = spec.rate ?? 1000;
  const setup = await connect(spec.url);
  for (const doc of docs) await join(setup, doc);
  quietly(setup);
  // One writer per document, as one user per document would be.
  const writers = await Promise.all(docs.map(() => connect(spec.url)));
  let timer = null;
  return {
    go() {
      // Op k is due at start + k / rate and goes to document k % docs: consecutive ops go to
      // different documents, so the documents are staggered, not written in step.
      const start = now();
      let k = 0;
      const tick = () => {
        const due = Math.floor((now() - start) * rate);
        while (k <= due) {
          const i = k % docs.length;
          const stamp = `t=${process.hrtime.bigint()}`;
          acks.send(writers[i], docs[i], { path: "/text", value: stamp });
          k += 1;
        }
        timer = setTimeout(tick, 1);
      };
      tick();
    },
    stop() {
      clearTimeout(timer);
    },
  };
}

// -- the JSON-lines protocol --------------------------------------------------------------

const SCENARIOS = { fanout, writes, latency };

async function main() {
  const lines = createInterface({ input: process.stdin });
  const acks = new Acks();
  let scenario = null;
  let spec = null;
  let pending = Promise.resolve();
  const finish = (code) => {
    scenario?.stop?.();
    closing = true;
    for (const s of sockets) s.disconnect();
    setTimeout(() => process.exit(code), 50);
  };

  for await (const line of lines) {
    if (!line.trim()) continue;
    const message = JSON.parse(line);
    if (spec === null) {
      spec = message;
      const setUp = SCENARIOS[spec.scenario];
      if (!setUp) throw new Error(`unknown scenario ${spec.scenario}`);
      scenario = await setUp(spec, acks);
      out({ event: "ready" });
    } else if (message.cmd === "go") {
      scenario.go();
    } else if (message.cmd === "window") {
      const { start, end } = message;
      // Several windows may be asked for at once: answer them in order.
      pending = pending.then(() => new Promise((resolve) => {
        setTimeout(() => {
          const { acked, errors, latencies } = acks.within(start, end);
          const result = { event: "result", acked, errors };
          if (spec.scenario === "writes") {
            latencies.sort((a, b) => a - b);
            result.ack_p50_ms = percentile(latencies, 0.5) * 1000;
            result.ack_p99_ms = percentile(latencies, 0.99) * 1000;
          }
          if (acks.firstError) result.first_error = acks.firstError;
          out(result);
          resolve();
        }, Math.max(0, (end - now()) * 1000) + 5);
      }));
    } else if (message.cmd === "exit") {
      break;
    }
  }
  await pending;
  finish(0);
}

main().catch((err) => {
  out({ event: "error", message: String(err?.message ?? err) });
  log(err);
  for (const s of sockets) s.disconnect();
  setTimeout(() => process.exit(1), 50);
});
