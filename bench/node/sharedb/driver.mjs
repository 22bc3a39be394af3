// The writing side of each benchmark scenario, through ShareDB's own client
// (sharedb/lib/client over a `ws` WebSocket). JSON lines: the spec on the first line of
// stdin, then {"cmd":"go"}, {"cmd":"window",...}, {"cmd":"exit"}; events on stdout (see
// bench/nodejs.py). Only JSON goes to stdout: every console method is sent to stderr.
import readline from 'node:readline';

import sharedb from 'sharedb/lib/client/index.js';
import WebSocket from 'ws';

import { COLLECTION, opFrameOverhead, replace } from './shape.mjs';

for (const name of ['log', 'info', 'warn', 'debug']) console[name] = console.error;
sharedb.logger.setMethods({ info: console.error, warn: console.error, error: console.error });

const now = () => Number(process.hrtime.bigint()) / 1e9;
const emit = (message) => process.stdout.write(JSON.stringify(message) + '\n');
const sockets = [];

// One ShareDB Connection on its own socket, resolved once the handshake is done.
function connect(url) {
  const socket = new WebSocket(url);
  sockets.push(socket);
  const connection = new sharedb.Connection(socket);
  connection.on('error', (err) => console.error('connection error', err));
  return new Promise((resolve, reject) => {
    if (connection.state === 'connected') return resolve(connection);
    connection.once('connected', () => resolve(connection));
    socket.addEventListener('error', (event) => reject(new Error(`${url}: ${event.message}`)));
  });
}

const call = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));

// Subscribe (as an editor does), creating the document with `initial` if it has none.
async function openDoc(connection, id, initial) {
  const doc = connection.get(COLLECTION, id);
  // One op on the wire per submitOp: by default the client composes changes queued
  // behind the one in flight into a single op, and a subscriber would then get one frame
  // for several changes.
  doc.preventCompose = true;
  await call((cb) => doc.subscribe(cb));
  if (!doc.type) await call((cb) => doc.create(initial, cb));
  return doc;
}

function percentile(sorted, q) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

// Acknowledgements: when each submitOp callback ran, and the round trip of each.
class Acks {
  constructor() {
    this.times = [];
    this.ms = [];
    this.errorTimes = [];
    this.firstError = '';
  }

  // The callback for one submitOp sent at `sent` (seconds).
  track(sent, then) {
    return (err) => {
      const at = now();
      if (err) {
        this.errorTimes.push(at);
        if (!this.firstError) {
          this.firstError = String(err.message || err);
          console.error('submit failed:', err);
        }
      } else {
        this.times.push(at);
        this.ms.push((at - sent) * 1e3);
      }
      if (then) then(err);
    };
  }

  between(start, end) {
    const inside = (t) => t >= start && t < end;
    const ms = this.ms.filter((_, i) => inside(this.times[i])).sort((a, b) => a - b);
    return {
      acked: ms.length,
      errors: this.errorTimes.filter(inside).length,
      ack_p50_ms: percentile(ms, 0.5),
      ack_p99_ms: percentile(ms, 0.99),
      ...(this.firstError ? { first_error: this.firstError } : {}),
    };
  }
}

// Fan-out: one writer replaces one field of the document, at most `ahead` changes past
// the slowest pacer. ShareDB's client keeps one op in flight per document and queues the
// rest, so "ahead" is the length of that queue plus the one in flight.
async function fanout(spec) {
  const size = spec.size ?? 200;
  const ahead = spec.ahead ?? 8;
  const writer = await connect(spec.url);
  // Each frame carries the old value (od) and the new one (oi): size the value so that
  // the whole {"a":"op",...} frame a subscriber receives is about `size` bytes.
  const length = Math.max(8, Math.floor((size - opFrameOverhead(spec.doc, writer.id, 'body')) / 2));
  const doc = await openDoc(writer, spec.doc, { body: 'x'.repeat(length) });
  const pacers = [];
  for (const url of spec.pacer_urls ?? [spec.url]) {
    const pacer = await openDoc(await connect(url), spec.doc, null);
    pacers.push(pacer);
  }
  const acks = new Acks();
  let submitted = 0;
  let base = 0;
  let running = false;
  const delivered = () => Math.min(...pacers.map((p) => p.version)) - base;
  const pump = () => {
    while (running && submitted - delivered() < ahead) {
      submitted += 1;
      const value = `${submitted}:`.padEnd(length, 'x');
      doc.submitOp(replace(doc, 'body', value), acks.track(now()));
    }
  };
  for (const pacer of pacers) pacer.on('op', pump);
  return {
    go() {
      base = doc.version; // the pacers are at this version too: nothing is in flight
      running = true;
      pump();
    },
    stop() { running = false; },
    result: (start, end) => { const r = acks.between(start, end); return { acked: r.acked, errors: r.errors }; },
  };
}

// Writes: closed loop, each writer on its own socket, its next op once the previous one's
// submitOp callback ran (the server acknowledges after sharedb-postgres committed). On a
// shared document each writer replaces its own field; the server transforms an op past the
// ones committed since its base version and retries a commit that lost the race.
async function writes(spec) {
  const writers = spec.writers ?? 16;
  const docs = spec.docs ?? 16;
  const prefix = spec.prefix ?? 'w';
  const connections = [];
  for (let i = 0; i < writers; i += 1) connections.push(await connect(spec.url));
  const fields = (d) => Object.fromEntries(
    Array.from({ length: writers }, (_, i) => i).filter((i) => i % docs === d).map((i) => [`f${i}`, '']));
  // Created one after another from the first writers, so no two creates race.
  const handles = [];
  for (let i = 0; i < writers; i += 1) {
    handles.push(await openDoc(connections[i], prefix + (i % docs), fields(i % docs)));
  }
  const acks = new Acks();
  let running = false;
  const loop = (i, n) => {
    if (!running) return;
    const doc = handles[i];
    // 60 characters, as coedit's writes scenario writes
    const value = `${i}:${n}:`.padEnd(60, 'x');
    doc.submitOp(replace(doc, `f${i}`, value), acks.track(now(), (err) => {
      if (err) setTimeout(() => loop(i, n + 1), 10);
      else loop(i, n + 1);
    }));
  };
  return {
    go() {
      running = true;
      for (let i = 0; i < writers; i += 1) loop(i, 0);
    },
    stop() { running = false; },
    result: (start, end) => acks.between(start, end),
  };
}

// Latency: open loop, `rate` ops a second over the documents, one writer socket per
// document, staggered so they do not send in step. The new value carries t=<ns> and is
// written before the old value in the op component, so the first t= in a frame is the
// new one.
async function latency(spec) {
  const ids = spec.docs;
  const interval = ids.length / (spec.rate ?? 1000);
  const handles = [];
  let length = 48;
  for (const id of ids) {
    const connection = await connect(spec.url);
    length = Math.max(32, Math.floor((200 - opFrameOverhead(id, connection.id, 'stamp')) / 2));
    handles.push(await openDoc(connection, id, { stamp: 't=0'.padEnd(length, '.') }));
  }
  const acks = new Acks();
  let running = false;
  const timers = [];
  const start = (i) => {
    let next = now() + (i / ids.length) * interval;
    const tick = () => {
      if (!running) return;
      const ns = process.hrtime.bigint();
      const value = `t=${ns}`.padEnd(length, '.');
      const doc = handles[i];
      doc.submitOp(replace(doc, 'stamp', value), acks.track(Number(ns) / 1e9));
      next += interval;
      timers[i] = setTimeout(tick, Math.max(0, (next - now()) * 1e3));
    };
    timers[i] = setTimeout(tick, Math.max(0, (next - now()) * 1e3));
  };
  return {
    go() {
      running = true;
      handles.forEach((_, i) => start(i));
    },
    stop() {
      running = false;
      timers.forEach(clearTimeout);
    },
    result: (s, e) => acks.between(s, e),
  };
}

const SCENARIOS = { fanout, writes, latency };

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let scenario = null;
  let closing = false;
  const finish = () => {
    if (closing) return;
    closing = true;
    scenario?.stop();
    for (const socket of sockets) socket.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  lines.on('close', finish);
  for await (const line of lines) {
    if (!line.trim()) continue;
    const message = JSON.parse(line);
    try {
      if (!scenario) {
        const make = SCENARIOS[message.scenario];
        if (!make) throw new Error(`unknown scenario ${message.scenario}`);
        scenario = await make(message);
        emit({ event: 'ready' });
      } else if (message.cmd === 'go') {
        scenario.go();
      } else if (message.cmd === 'window') {
        const { start, end } = message;
        setTimeout(() => emit({ event: 'result', ...scenario.result(start, end) }),
          Math.max(0, (end - now()) * 1e3) + 50);
      } else if (message.cmd === 'exit') {
        finish();
        return;
      }
    } catch (err) {
      emit({ event: 'error', message: String(err?.stack || err) });
    }
  }
}

main().catch((err) => {
  emit({ event: 'error', message: String(err?.stack || err) });
  process.exit(1);
});
