// One node of a small collaboration server written the Socket.IO way.
//
// A client joins a document's room with `join` (acknowledged with the document's version);
// a write is an `op` event with an acknowledgement. The handler commits the op to PostgreSQL
// first (one transaction: lock the document's row, bump its version, append the op) and only
// then emits the delta to the room and acknowledges, so an ack means "durable". Concurrent
// writers of one document are serialised by the row lock: the server applies ops in the order
// it gets the lock, and clients need no conflict handling of their own.
//
// Environment: PORT, PG_URL, REDIS_URL (optional: then the nodes share rooms through the
// Redis adapter), REDIS_PREFIX (the adapter's channel prefix).

import { createServer } from "node:http";
import process from "node:process";

import { createAdapter } from "@socket.io/redis-adapter";
import pg from "pg";
import { createClient } from "redis";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 3000);
const pool = new pg.Pool({
  connectionString: process.env.PG_URL,
  // As many connections as coedit's default pool: 16 closed-loop writers must not queue.
  max: Number(process.env.PG_POOL ?? 20),
});
pool.on("error", (err) => console.error("pg pool:", err.message));

const SCHEMA = `
CREATE TABLE IF NOT EXISTS documents (
  id text PRIMARY KEY,
  version bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ops (
  doc_id text NOT NULL REFERENCES documents (id),
  version bigint NOT NULL,
  op jsonb NOT NULL,
  author text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (doc_id, version)
);`;

async function migrate() {
  // Two nodes start at once on one database: CREATE ... IF NOT EXISTS can still collide on
  // the catalog, so the schema is created under a transaction-scoped advisory lock.
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(727274)");
    await client.query(SCHEMA);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

async function openDocument(doc) {
  // The first join creates the document; later ones only read its version.
  const found = await pool.query("SELECT version FROM documents WHERE id = $1", [doc]);
  if (found.rowCount) return Number(found.rows[0].version);
  await pool.query("INSERT INTO documents (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", [doc]);
  return 0;
}

async function commitOp(doc, op, author) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const row = await client.query(
      "SELECT version FROM documents WHERE id = $1 FOR UPDATE", [doc]);
    if (!row.rowCount) throw new Error(`no such document: ${doc}`);
    const version = Number(row.rows[0].version) + 1;
    await client.query(
      "UPDATE documents SET version = $2, updated_at = now() WHERE id = $1", [doc, version]);
    await client.query(
      "INSERT INTO ops (doc_id, version, op, author) VALUES ($1, $2, $3, $4)",
      [doc, version, op, author]);
    await client.query("COMMIT");
    return version;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

const validDoc = (doc) => typeof doc === "string" && doc.length > 0 && doc.length <= 200;
const reply = (ack) => (typeof ack === "function" ? ack : () => {});

async function redisAdapter(url, prefix) {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (err) => console.error("redis:", err.message));
  await Promise.all([pub.connect(), sub.connect()]);
  return { adapter: createAdapter(pub, sub, { key: `${prefix}socket.io` }), clients: [pub, sub] };
}

async function main() {
  await migrate();
  const http = createServer();
  const io = new Server(http, { serveClient: false });
  let redisClients = [];
  if (process.env.REDIS_URL) {
    const { adapter, clients } = await redisAdapter(process.env.REDIS_URL,
                                                    process.env.REDIS_PREFIX ?? "");
    io.adapter(adapter);
    redisClients = clients;
  }

  io.on("connection", (socket) => {
    socket.on("join", async (doc, ack) => {
      const answer = reply(ack);
      if (!validDoc(doc)) return answer({ error: "bad document name" });
      try {
        const version = await openDocument(doc);
        await socket.join(doc);
        answer({ version });
      } catch (err) {
        answer({ error: err.message });
      }
    });

    socket.on("leave", async (doc, ack) => {
      await socket.leave(doc);
      reply(ack)({});
    });

    socket.on("op", async (message, ack) => {
      const answer = reply(ack);
      const doc = message?.doc;
      const op = message?.op;
      if (!validDoc(doc) || op === null || typeof op !== "object") {
        return answer({ error: "expected {doc, op}" });
      }
      let version;
      try {
        version = await commitOp(doc, op, socket.id);
      } catch (err) {
        return answer({ error: err.message });
      }
      // Committed: now the room (every node, through the adapter) hears of it, all but the
      // writer, whose acknowledgement carries the new version instead.
      socket.to(doc).emit("delta", { doc, v: version, op });
      answer({ v: version });
    });
  });

  const stop = async () => {
    io.close();
    await Promise.allSettled([pool.end(), ...redisClients.map((c) => c.quit())]);
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);

  await new Promise((resolve) => http.listen(port, "127.0.0.1", resolve));
  console.log(`ready on 127.0.0.1:${port}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
