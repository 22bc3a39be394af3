// The writing side of coedit's benchmark scenarios against Hocuspocus 4, through its own
// client: one HocuspocusProvider (with its own WebSocket, from `ws`) per connection, each
// editing a Y.Doc. JSON lines on stdin/stdout as described in bench/nodejs.py.
//
// What "acknowledged" means here: Hocuspocus has no durable acknowledgement. After the
// server has applied an update to its in-memory document it sends the writing connection a
// SyncStatus message, which the provider turns into a decrement of `unsyncedChanges`; that
// decrement is what this driver counts as an ack. PostgreSQL sees the document later, when
// the debounced onStoreDocument runs (the server logs each store; see server.mjs).
import { HocuspocusProvider } from "@hocuspocus/provider";
import readline from "node:readline";
import WebSocket from "ws";
import * as Y from "yjs";

const now = () => Number(process.hrtime.bigint()) / 1e9;
const emit = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const log = (...args) => console.error(...args);

// The window being measured, and what happened inside it.
let measured = null;
let acked = 0;
let errors = 0;
let errorsTotal = 0;
let latencies = [];
const inWindow = (t) => measured !== null && t >= measured.start && t < measured.end;

function error(what) {
  errorsTotal += 1;
  if (inWindow(now())) errors += 1;
  if (errorsTotal <= 20) log(`error: ${what}`);
}

let closing = false;
const clients = [];

// lib0's varuint, enough to read a frame's document name and message type.
function readVarUint(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at.pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return value;
    shift += 7;
  }
}

// True for a Sync/Update frame (a change broadcast by the server).
function isUpdateFrame(data) {
  const bytes = new Uint8Array(data);
  const at = { pos: 0 };
  const nameLength = readVarUint(bytes, at);
  at.pos += nameLength; // skip the document name
  return readVarUint(bytes, at) === 0 && readVarUint(bytes, at) === 2;
}

/** One provider on its own socket, synced with the server before it is returned. */
async function connect(url, name) {
  const doc = new Y.Doc();
  const client = { name, doc, map: doc.getMap("bench"), onAck: null, onFrame: null };
  let pending = 1; // startSync() counts the handshake as one unsynced change
  let ready;
  const readyPromise = new Promise((resolve) => { ready = resolve; });
  client.provider = new HocuspocusProvider({
    url,
    name,
    document: doc,
    // No awareness: it would broadcast each provider's presence to every subscriber of
    // the document; the benchmark measures document changes.
    awareness: null,
    WebSocketPolyfill: WebSocket,
    // The default (30 s) assumes awareness renewals every 15 s; a pacer only listens.
    messageReconnectTimeout: 300_000,
    onAuthenticationFailed: ({ reason }) => error(`${name}: authentication failed: ${reason}`),
    onUnsyncedChanges: ({ number }) => {
      // Each SyncStatus from the server takes exactly one off; a reconnection resets the
      // count to 1, which is not an acknowledgement.
      const acknowledged = number === pending - 1;
      pending = number;
      if (number === 0) ready?.();
      if (acknowledged && client.onAck) client.onAck();
    },
  });
  // Listeners, not `onClose`/`onMessage` options: the provider hands its options to its
  // websocket too, which would call them a second time (with another event shape).
  client.provider.on("close", ({ event }) => {
    if (!closing) error(`${name}: connection closed (${event?.code} ${event?.reason ?? ""})`);
  });
  client.provider.on("message", ({ event }) => {
    if (client.onFrame && isUpdateFrame(event.data)) client.onFrame(event.data.byteLength);
  });
  // The server closes a connection that has sent nothing for `timeout` (60 s); a listening
  // pacer would otherwise be cut. A stateless message is a no-op for this server.
  client.keepalive = setInterval(() => client.provider.sendStateless(""), 20_000);
  clients.push(client);
  await Promise.race([
    readyPromise,
    new Promise((_, reject) => setTimeout(
      () => reject(new Error(`${name} at ${url}: not synced after 30 s`)), 30_000).unref()),
  ]);
  ready = null;
  return client;
}

/** Resolves on the next acknowledgement of this client's own change. */
function nextAck(client) {
  return new Promise((resolve) => { client.onAck = resolve; });
}

/**
 * The padding that makes the frame a subscriber receives for one change `size` bytes:
 * the server sends every change back to its writer too, so the writer's own copy is
 * measured. The first set of a key is larger (it names the map and the key), so the second
 * one is the probe.
 */
async function padFor(client, write, value, size) {
  let frame = 0;
  for (let probe = 0; probe < 2; probe += 1) {
    const seen = new Promise((resolve) => { client.onFrame = resolve; });
    write(value(""));
    frame = await seen;
  }
  client.onFrame = null;
  return "x".repeat(Math.max(0, size - frame));
}

const seqText = (n) => String(n).padStart(9, "0");

async function fanout(spec) {
  const writer = await connect(spec.url, spec.doc);
  const pacers = [];
  for (const url of spec.pacer_urls) pacers.push(await connect(url, spec.doc));
  const size = spec.size ?? 200;
  const ahead = spec.ahead ?? 8;
  const padding = await padFor(writer, (value) => writer.map.set("v", value),
    (pad) => `${seqText(0)}:${pad}`, size);
  let seq = 0;
  let wake = null;
  for (const pacer of pacers) {
    pacer.seen = 0;
    pacer.map.observe(() => {
      // After Redis, several changes may arrive merged: the latest value says how far.
      pacer.seen = Number.parseInt(pacer.map.get("v"), 10) || pacer.seen;
      if (wake) { const w = wake; wake = null; w(); }
    });
  }
  writer.onAck = () => { if (inWindow(now())) acked += 1; };
  return async function pump() {
    for (;;) {
      let slowest = Infinity;
      for (const pacer of pacers) slowest = Math.min(slowest, pacer.seen);
      if (seq - slowest >= ahead) {
        await new Promise((resolve) => { wake = resolve; });
        continue;
      }
      seq += 1;
      writer.map.set("v", `${seqText(seq)}:${padding}`);
      // Let the socket and the acknowledgements through between bursts.
      if (seq % ahead === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  };
}

async function writes(spec) {
  const count = spec.writers ?? 16;
  const docs = spec.docs ?? 16;
  const prefix = spec.prefix ?? "w";
  const writers = await Promise.all(
    Array.from({ length: count }, (_, i) => connect(spec.url, `${prefix}${i % docs}`)));
  return async function pump() {
    // Closed loop: each writer sets its own key of the shared map, then waits for the
    // server's acknowledgement before the next change.
    await Promise.all(writers.map(async (client, i) => {
      const key = `w${i}`;
      for (let n = 1; ; n += 1) {
        const sent = now();
        const ack = nextAck(client);
        client.map.set(key, n);
        await ack;
        const t = now();
        if (inWindow(t)) {
          acked += 1;
          latencies.push((t - sent) * 1000);
        }
      }
    }));
  };
}

async function latency(spec) {
  const rate = spec.rate ?? 1000;
  const size = spec.size ?? 200;
  const writers = await Promise.all(spec.docs.map((name) => connect(spec.url, name)));
  // Appended to a Y.Array rather than set on a map key: where changes reach subscribers
  // merged (through Redis, on another node), a superseded map value would not be in the
  // frame at all, and its stamp would be lost.
  const stamp = (pad) => `t=${process.hrtime.bigint()} ${pad}`;
  for (const client of writers) client.list = client.doc.getArray("stamps");
  const padding = await padFor(writers[0], (value) => writers[0].list.push([value]), stamp,
    size);
  for (const client of writers) client.onAck = () => { if (inWindow(now())) acked += 1; };
  return async function pump() {
    // Open loop: change k is due at start + k / rate, round-robin over the documents, so
    // consecutive changes go to different documents about 1/rate apart.
    const start = now();
    let k = 0;
    for (;;) {
      const due = Math.floor((now() - start) * rate);
      for (; k < due; k += 1) {
        writers[k % writers.length].list.push([stamp(padding)]);
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  };
}

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function result(scenario) {
  const message = { event: "result", acked, errors };
  if (scenario === "writes") {
    const sorted = latencies.slice().sort((a, b) => a - b);
    message.ack_p50_ms = percentile(sorted, 0.5);
    message.ack_p99_ms = percentile(sorted, 0.99);
  }
  return message;
}

async function shutdown() {
  closing = true;
  for (const client of clients) {
    clearInterval(client.keepalive);
    try { client.provider.destroy(); } catch { /* closing anyway */ }
  }
  // Let the close frames go out.
  await new Promise((resolve) => setTimeout(resolve, 100));
  process.exit(0);
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin, terminal: false });
  let pump = null;
  let scenario = null;
  lines.on("close", shutdown);
  for await (const line of lines) {
    if (!line.trim()) continue;
    const message = JSON.parse(line);
    if (scenario === null) {
      scenario = message.scenario;
      try {
        const setups = { fanout, writes, latency };
        if (!setups[scenario]) throw new Error(`unknown scenario ${scenario}`);
        pump = await setups[scenario](message);
        emit({ event: "ready" });
      } catch (exception) {
        emit({ event: "error", message: String(exception?.message ?? exception) });
      }
    } else if (message.cmd === "go") {
      pump?.().catch((exception) => {
        emit({ event: "error", message: String(exception?.message ?? exception) });
      });
    } else if (message.cmd === "window") {
      measured = { start: message.start, end: message.end };
      acked = 0;
      errors = 0;
      latencies = [];
      const wait = Math.max(0, (message.end - now()) * 1000) + 20;
      setTimeout(() => emit(result(scenario)), wait);
    } else if (message.cmd === "exit") {
      await shutdown();
    }
  }
}

main().catch((exception) => {
  emit({ event: "error", message: String(exception?.message ?? exception) });
  process.exit(1);
});
