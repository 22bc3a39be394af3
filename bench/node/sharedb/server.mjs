// One ShareDB node as a team would deploy it: sharedb-postgres as snapshot store and
// oplog, sharedb-redis-pubsub between nodes when REDIS_URL is set, and every WebSocket
// connection handed to backend.listen() through @teamwork/websocket-json-stream (the
// pairing ShareDB's own examples use).
//
// Environment: PORT, PG_URL, REDIS_URL (optional), REDIS_PREFIX, PG_POOL (optional, 20). Prints "ready" once it
// accepts connections; stops on SIGTERM.
import http from 'node:http';

import WebSocketJSONStream from '@teamwork/websocket-json-stream';
import pg from 'pg';
import ShareDB from 'sharedb';
import PostgresDB from 'sharedb-postgres';
import RedisPubSub from 'sharedb-redis-pubsub';
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT || 8080);
const pgUrl = process.env.PG_URL;
const redisUrl = process.env.REDIS_URL;
const redisPrefix = process.env.REDIS_PREFIX || 'sharedb';
if (!pgUrl) {
  console.error('PG_URL is required');
  process.exit(2);
}

// ShareDB logs through console.info too, which is stdout; keep stdout for "ready" and
// drop the per-error info lines (stack traces of rejected ops) a production node would not
// print either.
ShareDB.logger.setMethods({ info: () => {}, warn: console.error, error: console.error });

// sharedb-postgres ships structure.sql but never runs it; this is that schema as it stands
// after its migrations (doc_type and data nullable, metadata added in 5.0). Two nodes start
// at once on one fresh database, and concurrent CREATE ... IF NOT EXISTS can still collide
// in the catalog, so the DDL runs under a transaction-scoped advisory lock.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS ops (
  collection character varying(255) not null,
  doc_id character varying(255) not null,
  version integer not null,
  operation jsonb not null,
  PRIMARY KEY (collection, doc_id, version)
);
CREATE TABLE IF NOT EXISTS snapshots (
  collection character varying(255) not null,
  doc_id character varying(255) not null,
  doc_type character varying(255),
  version integer not null,
  data jsonb,
  metadata jsonb,
  PRIMARY KEY (collection, doc_id)
);
CREATE INDEX IF NOT EXISTS snapshots_version ON snapshots (collection, doc_id);
`;

async function createSchema() {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('sharedb-postgres schema'))");
    await client.query(SCHEMA);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

await createSchema();

// The pool is as large as coedit's (20), so neither side is held back by connection count;
// PG_POOL changes it (two nodes on a PostgreSQL shared with other work may need fewer).
const db = new PostgresDB({ connectionString: pgUrl, max: Number(process.env.PG_POOL || 20) });
let pubsub;
if (redisUrl) {
  // The adapter opens its own two clients (one publishes, one observes); ShareDB's PubSub
  // puts `prefix` before every channel name.
  pubsub = new RedisPubSub({ url: redisUrl, prefix: redisPrefix });
  pubsub.on('error', (err) => console.error('pubsub error', err));
  await pubsub._connect(); // connect before "ready", so the first subscribe cannot race it
}
const backend = new ShareDB({ db, pubsub });
backend.on('error', (err) => console.error('backend error', err));

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain' });
  res.end('WebSocket only\n');
});
const wss = new WebSocketServer({ server });

wss.on('connection', (ws) => {
  ws.isAlive = true;
  ws.on('pong', () => { ws.isAlive = true; });
  ws.on('error', () => {}); // a reset socket closes the stream; nothing else to do
  const stream = new WebSocketJSONStream(ws);
  // A reply written after the client went away fails with ERR_CLOSED; ShareDB's agent
  // listens for end/close only, and an unhandled 'error' would take the node down.
  stream.on('error', () => {});
  backend.listen(stream);
});

// The ws documentation's heartbeat: a protocol-level ping every 30 s, and a connection
// that did not answer the previous one is dropped. ShareDB itself has no server ping.
const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, 30_000);

server.listen(port, '127.0.0.1', () => {
  console.log(`sharedb node ready on ${port}${redisUrl ? ' (redis)' : ''}`);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  server.close();
  // Give the backend a moment to close its database pool and Redis clients, then go.
  const force = setTimeout(() => process.exit(0), 2000);
  force.unref();
  backend.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
