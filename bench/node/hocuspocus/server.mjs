// One Hocuspocus 4 node for coedit's benchmark, deployed the way its docs suggest:
// @hocuspocus/extension-database keeps each document's encoded Yjs state in PostgreSQL
// and, when REDIS_URL is set, @hocuspocus/extension-redis joins the other nodes.
//
// Environment: PORT, PG_URL, REDIS_URL (optional), REDIS_PREFIX; optional knobs for
// experiments, defaulting to what the benchmark measures:
//   HOCUSPOCUS_FLUSH_DELAY  "false" (default here) sends one frame per change; "0" is
//                           Hocuspocus 4's own default, which merges the changes applied in
//                           one event-loop turn into one broadcast frame.
//   HOCUSPOCUS_DEBOUNCE_MS, HOCUSPOCUS_MAX_DEBOUNCE_MS  the store debounce (Hocuspocus'
//                           defaults, 2,000 and 10,000 ms, when unset).
//
// Every store is logged to stdout as `stored doc=<name> bytes=<n> ms=<duration> t=<monotonic s>`
// so that a run can count the stores inside its window (the clients are never told).
import { Database } from "@hocuspocus/extension-database";
import { Redis } from "@hocuspocus/extension-redis";
import { Server } from "@hocuspocus/server";
import pg from "pg";

const port = Number(process.env.PORT ?? 1234);
const pgUrl = process.env.PG_URL;
if (!pgUrl) {
  console.error("PG_URL is required");
  process.exit(2);
}

const monotonic = () => Number(process.hrtime.bigint()) / 1e9;

const pool = new pg.Pool({ connectionString: pgUrl, max: 10 });
pool.on("error", (error) => console.error("pg pool:", error.message));

// Two nodes start at once on the same fresh database: CREATE TABLE IF NOT EXISTS alone can
// still race on the catalog, so the creation runs under a transaction-scoped advisory lock.
async function createTable() {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(74657301)");
    await client.query(`CREATE TABLE IF NOT EXISTS hocuspocus_documents (
      name text PRIMARY KEY,
      state bytea NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

let stores = 0;
let storeFailures = 0;

const database = new Database({
  async fetch({ documentName }) {
    const { rows } = await pool.query(
      "SELECT state FROM hocuspocus_documents WHERE name = $1", [documentName]);
    return rows.length ? new Uint8Array(rows[0].state) : null;
  },
  // The extension hands over the whole document (Y.encodeStateAsUpdate), not the change:
  // each store rewrites the document's row.
  async store({ documentName, state }) {
    const started = monotonic();
    try {
      await pool.query(
        `INSERT INTO hocuspocus_documents (name, state, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`,
        [documentName, state]);
    } catch (error) {
      storeFailures += 1;
      console.error(`store failed doc=${documentName}: ${error.message}`);
      throw error;
    }
    stores += 1;
    const done = monotonic();
    console.log(`stored doc=${documentName} bytes=${state.length} ` +
      `ms=${((done - started) * 1000).toFixed(1)} t=${done.toFixed(6)}`);
  },
});

function redisExtension(url) {
  const parsed = new URL(url);
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  return new Redis({
    host: parsed.hostname || "127.0.0.1",
    port: Number(parsed.port || 6379),
    options: {
      db,
      username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
      password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    },
    prefix: process.env.REDIS_PREFIX || "hocuspocus",
  });
}

function flushDelay() {
  const value = process.env.HOCUSPOCUS_FLUSH_DELAY;
  if (value === undefined || value === "" || value === "false") return false;
  return Number(value);
}

const extensions = [database];
if (process.env.REDIS_URL) extensions.push(redisExtension(process.env.REDIS_URL));

const options = {
  port,
  address: "127.0.0.1",
  quiet: true,
  // Our own SIGTERM handler below flushes the pending stores and reports them first.
  stopOnSignals: false,
  extensions,
  flushDelay: flushDelay(),
};
if (process.env.HOCUSPOCUS_DEBOUNCE_MS) options.debounce = Number(process.env.HOCUSPOCUS_DEBOUNCE_MS);
if (process.env.HOCUSPOCUS_MAX_DEBOUNCE_MS) {
  options.maxDebounce = Number(process.env.HOCUSPOCUS_MAX_DEBOUNCE_MS);
}

await createTable();
const server = new Server(options);
await server.listen();
const configured = server.hocuspocus.configuration;
console.log(`hocuspocus ready on 127.0.0.1:${port} (debounce ${configured.debounce} ms, ` +
  `maxDebounce ${configured.maxDebounce} ms, flushDelay ${configured.flushDelay}, ` +
  `redis ${process.env.REDIS_URL ? "on" : "off"})`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  // A stuck close must not keep the process alive past the harness' patience.
  setTimeout(() => process.exit(0), 8000).unref();
  try {
    await server.destroy(); // closes connections and runs the pending stores
  } catch (error) {
    console.error("shutdown:", error.message);
  }
  console.log(`stores=${stores} store_failures=${storeFailures}`);
  await pool.end().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
