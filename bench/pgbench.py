"""The database ceiling: pgbench running coedit's versioned-write transaction itself.

The scratch database gets coedit's real schema (``coedit migrate``: the same indexes, the
append-only triggers, the seq function with its shared advisory lock), and the script sends
the statements ``DocumentStore.apply_patch`` sends for a plain patch, in the same order, with
values of the same size:

1. ``SELECT documents.* ... FOR UPDATE`` (the row lock)
2. ``SELECT locks.* WHERE doc = ? AND expires_at > now()`` (edit locks), only for a document
   that was ever locked (``lock_seq > 0``), as apply_patch does (the benchmark never locks)
3. ``INSERT INTO events ... RETURNING seq`` (the audit event)
4. ``UPDATE documents SET version, state, updated_at, updated_by, head_hash``
5. ``INSERT INTO revisions``
6. every 50th version, ``INSERT INTO snapshots``

and ``COMMIT``. The minimal shape of issue 5 (lock, update, insert the event) runs too, as a
reference. pgbench uses prepared statements (``-M prepared``), as asyncpg does, and the same
``plan_cache_mode`` as coedit's connections.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import asyncpg

from bench.procs import COEDIT

__all__ = ["FULL", "MINIMAL", "prepare", "run_pgbench"]

DOCS = 64  # one row per client, up to the growth curve's 64 writers
HOT = 999
STATE = json.dumps({"text": "x" * 150, "n": 1})
DATA = json.dumps({"ops": [{"op": "replace", "path": "/text", "value": "x" * 60}],
                   "before": {"/text": "x" * 60}, "after": {"/text": "x" * 60},
                   "base": 1, "rebased": False})
OPS = json.dumps([{"op": "replace", "path": "/text", "value": "x" * 60}])

_DOC = "('pgb-' || :docnum::text)"
_HASH = "md5(random()::text) || md5(random()::text)"

FULL = f"""
BEGIN;
SELECT id, tenant, kind, title, version, state, created_at, created_by, updated_at, updated_by,
       head_hash, lock_seq, archived_at
  FROM documents WHERE id = {_DOC} AND tenant = 'bench' FOR UPDATE \\gset d_
\\if :d_lock_seq > 0
SELECT doc, path, tenant, holder_session, holder_user_id, holder_user_name, node, token, ttl_ms,
       acquired_at, expires_at FROM locks WHERE doc = {_DOC} AND expires_at > now();
\\endif
INSERT INTO events (id, tenant, type, doc, kind, version, actor_id, actor_name, actor_kind,
                    source, correlation_id, ts, data, prev_hash, hash)
  VALUES (gen_random_uuid()::text, 'bench', 'patch.applied', {_DOC}, 'memo', :d_version + 1,
          'pgbench', 'Pgbench', 'user', 'ws', gen_random_uuid()::text, now(), :data,
          :d_head_hash, {_HASH}) RETURNING seq \\gset e_
UPDATE documents SET version = :d_version + 1, state = :state, updated_at = now(),
       updated_by = 'pgbench', head_hash = {_HASH}
  WHERE id = {_DOC} AND version = :d_version;
INSERT INTO revisions (doc, version, tenant, ops, units, actor_id, actor_name, ts, event_seq)
  VALUES ({_DOC}, :d_version + 1, 'bench', :ops, '["/text"]', 'pgbench', 'Pgbench', now(),
          :e_seq);
\\if (:d_version + 1) % 50 = 0
INSERT INTO snapshots (doc, version, state, ts) VALUES ({_DOC}, :d_version + 1, :state, now());
\\endif
END;
"""

MINIMAL = f"""
BEGIN;
SELECT version FROM documents WHERE id = {_DOC} AND tenant = 'bench' FOR UPDATE \\gset d_
UPDATE documents SET version = :d_version + 1, state = :state, updated_at = now(),
       head_hash = {_HASH} WHERE id = {_DOC};
INSERT INTO events (id, tenant, type, doc, kind, version, actor_id, actor_name, actor_kind,
                    source, correlation_id, ts, data, prev_hash, hash)
  VALUES (gen_random_uuid()::text, 'bench', 'patch.applied', {_DOC}, 'memo', :d_version + 1,
          'pgbench', 'Pgbench', 'user', 'ws', gen_random_uuid()::text, now(), :data,
          NULL, {_HASH});
END;
"""


async def prepare(dsn: str, log_dir: Path) -> None:
    """Migrate the scratch database with coedit itself, then add the documents pgbench uses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COEDIT_")}
    env["COEDIT_DATABASE_URL"] = dsn
    proc = await asyncio.create_subprocess_exec(
        COEDIT, "migrate", env=env, cwd=log_dir,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"coedit migrate failed: {output.decode()[-2000:]}")
    conn = await asyncpg.connect(dsn)
    try:
        for num in [*range(DOCS), HOT]:
            await conn.execute(
                "INSERT INTO documents (id, tenant, kind, title, version, state, created_at,"
                " created_by, updated_at, updated_by, head_hash)"
                " VALUES ($1, 'bench', 'memo', 'pgbench', 1, $2, now(), 'pgbench', now(),"
                " 'pgbench', $3)", f"pgb-{num}", STATE, "0" * 64)
    finally:
        await conn.close()


async def run_pgbench(dsn: str, log_dir: Path, *, script: str, name: str, clients: int,
                      seconds: float, hot: bool) -> dict[str, Any]:
    """Commits a second of ``script`` with ``clients`` connections; each on its own row or
    all on one (``hot``)."""
    header = f"\\set docnum {HOT}\n" if hot else "\\set docnum :client_id\n"
    path = log_dir / f"pgbench-{name}.sql"
    path.write_text(header + script)
    database = dsn.rsplit("/", 1)[1]
    argv = ["pgbench", "-n", "-M", "prepared", "-h", "127.0.0.1", "-U", "postgres",
            "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(max(1, round(seconds))),
            "-f", str(path), "-D", f"state={STATE}", "-D", f"data={DATA}", "-D", f"ops={OPS}",
            database]
    # coedit's connections plan every statement afresh (persistence/database.py sets
    # plan_cache_mode); the ceiling's sessions do the same so the server work matches.
    env = {**os.environ, "PGOPTIONS": "-c plan_cache_mode=force_custom_plan"}
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    text = output.decode()
    (log_dir / f"pgbench-{name}.log").write_text(text)
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    if proc.returncode or found is None:
        raise RuntimeError(f"pgbench {name} failed:\n{text[-2000:]}")
    latency = re.search(r"latency average = ([\d.]+) ms", text)
    return {"commits_per_s": float(found.group(1)), "clients": clients,
            "failed": int(failed.group(1)) if failed else 0,
            "latency_ms": float(latency.group(1)) if latency else None}
