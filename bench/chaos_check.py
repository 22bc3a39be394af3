"""The chaos run's checker: every client's record against what the database holds.

The database is the truth a client cannot see directly: the ``patch.applied`` events (one per
accepted write, in the same transaction), the documents' states, and the event log's order.
The checker reads them straight from PostgreSQL, not through a node, after the run.

Fencing is checked in its strict form: the events of one document are appended under that
document's row lock, so their ``seq`` order is the order in which grants and writes took
effect. A write inside ``/fenced`` that carries a token lower than a token already granted
on an overlapping path was accepted from a holder whose token was superseded.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import Any

import asyncpg

from bench.chaos_clients import LockHolder, StreamFollower, Subscriber, Writer

__all__ = ["check_run", "load_events"]


async def load_events(dsn: str, docs: list[str]) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT seq, type, doc, version, data FROM events WHERE doc = ANY($1::text[])"
            " ORDER BY seq", docs, timeout=60)
        return [{"seq": int(r["seq"]), "type": r["type"], "doc": r["doc"],
                 "version": r["version"], "data": json.loads(r["data"])} for r in rows]
    finally:
        await conn.close()


async def load_states(dsn: str, docs: list[str]) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT id, version, state FROM documents WHERE id = ANY($1::text[])",
            docs, timeout=60)
        return {r["id"]: {"version": int(r["version"]), "state": json.loads(r["state"])
                          if isinstance(r["state"], str) else r["state"]} for r in rows}
    finally:
        await conn.close()


def _written_paths(event: dict[str, Any]) -> list[tuple[str, Any]]:
    ops = event["data"].get("ops") or []
    return [(op.get("path", ""), op.get("value")) for op in ops if isinstance(op, dict)]


def _pointer_get(state: Any, path: str) -> tuple[bool, Any]:
    node = state
    for raw in path.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_writes(acks: list[dict[str, Any]], refused_paths: set[str],
                 events: list[dict[str, Any]],
                 states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Acknowledged writes lost, writes applied twice, acks naming the wrong version, and
    writes answered with a refusal that were applied all the same (every path is written by
    one write only, so a path's events are that write's applications)."""
    applied: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["type"] != "patch.applied":
            continue
        for path, _ in _written_paths(event):
            applied[path].append(event)
    lost, wrong_version = [], []
    for ack in acks:
        found = applied.get(ack["path"], [])
        present, _ = _pointer_get(states[ack["doc"]]["state"], ack["path"])
        if not found or not present:
            lost.append({**ack, "events": len(found), "in_state": present})
        elif found[0]["version"] != ack["version"]:
            wrong_version.append({**ack, "event_version": found[0]["version"]})
    twice = [{"path": path, "seqs": [e["seq"] for e in found]}
             for path, found in applied.items() if len(found) > 1]
    refused_applied = sorted(path for path in refused_paths if path in applied)
    return {"acknowledged": len(acks), "lost": lost, "applied_twice": twice,
            "refused_but_applied": refused_applied,
            "ack_version_mismatch": wrong_version,
            "duplicate_replies": sum(1 for a in acks if a["duplicate"])}


def check_versions(events: list[dict[str, Any]], states: dict[str, dict[str, Any]],
                   docs: list[str]) -> list[dict[str, Any]]:
    """Each document's versions 2..N appear once each in its patch events (no hole, no twin)."""
    faults = []
    for doc in docs:
        versions = sorted(e["version"] for e in events
                          if e["doc"] == doc and e["type"] == "patch.applied")
        final = states[doc]["version"]
        if versions != list(range(2, final + 1)):
            faults.append({"doc": doc, "final": final, "patch_events": len(versions)})
    return faults


def check_subscribers(subscribers: list[Subscriber], states: dict[str, dict[str, Any]],
                      events: list[dict[str, Any]]) -> dict[str, Any]:
    """Gaps and duplicates across resumes, and deltas that name another event than the one
    the database holds for their version (a delta of the wrong write)."""
    seq_of = {(e["doc"], e["version"]): e["seq"] for e in events if e["type"] == "patch.applied"}
    wrong = [{"client": s.name, "doc": doc, "version": version, "delta_event": seq,
              "stored_event": seq_of.get((doc, version))}
             for s in subscribers for (doc, version), seq in s.event_of.items()
             if seq_of.get((doc, version)) != seq]
    gaps = [{"client": s.name, **g} for s in subscribers for g in s.gaps]
    dups = [{"client": s.name, **d} for s in subscribers for d in s.duplicates]
    behind = [{"client": s.name, "doc": doc, "last": last, "final": states[doc]["version"]}
              for s in subscribers for doc, last in s.last.items()
              if last != states[doc]["version"]]
    return {"clients": len(subscribers), "deltas": sum(s.deltas for s in subscribers),
            "resumes": sum(max(0, s.resumes - 1) for s in subscribers),
            "gaps": gaps, "duplicates": dups, "behind_at_end": behind,
            "wrong_event": wrong,
            "deltas_matched_to_events": sum(len(s.event_of) for s in subscribers),
            "resets": [{"client": s.name, **r} for s in subscribers for r in s.resets]}


def check_streams(followers: list[StreamFollower],
                  events: list[dict[str, Any]]) -> dict[str, Any]:
    """Every follower saw every event of its documents up to its last ``seq``, once, in order."""
    seqs = [e["seq"] for e in events]
    gaps, dups, disorder, behind = [], [], [], []
    for follower in followers:
        got = follower.seqs
        if any(b <= a for a, b in itertools.pairwise(got)):
            disorder.append(follower.name)
        expected = {s for s in seqs if s <= follower.last}
        missing = sorted(expected - set(got))
        if missing:
            gaps.append({"client": follower.name, "missing": missing[:20],
                         "count": len(missing)})
        dups += [{"client": follower.name, "seq": s} for s in follower.duplicates]
        if seqs and follower.last != seqs[-1]:
            behind.append({"client": follower.name, "last": follower.last, "final": seqs[-1]})
    return {"clients": len(followers), "events": sum(len(f.seqs) for f in followers),
            "resumes": sum(max(0, f.connections - 1) for f in followers),
            "gaps": gaps, "duplicates": dups, "out_of_order": disorder,
            "behind_at_end": behind}


def _overlaps(a: str, b: str) -> bool:
    sa, sb = a.split("/")[1:], b.split("/")[1:]
    n = min(len(sa), len(sb))
    return sa[:n] == sb[:n]


def check_fencing(events: list[dict[str, Any]], doc: str,
                  holders: list[LockHolder]) -> dict[str, Any]:
    """Writes accepted with a token lower than one granted before them (strict fencing).

    ``while_held`` marks those accepted while the newer lock was still held (not released,
    expired or stolen yet): a breach of the plain lock rule, not only of fencing.
    """
    fenced = LockHolder.path
    highest = 0
    held: dict[int, str] = {}
    violations = []
    fenced_writes = 0
    for event in events:
        if event["doc"] != doc:
            continue
        data = event["data"]
        if event["type"] == "lock.acquired" and _overlaps(str(data.get("path")), fenced):
            highest = max(highest, int(data["token"]))
            held[int(data["token"])] = str(data.get("path"))
        elif event["type"] in ("lock.released", "lock.expired", "lock.stolen"):
            held.pop(int(data.get("token", -1)), None)
        elif event["type"] == "patch.applied":
            for path, value in _written_paths(event):
                if not _overlaps(path, fenced) or not isinstance(value, dict):
                    continue
                fenced_writes += 1
                token = int(value.get("token", -1))
                if token < highest:
                    violations.append({"seq": event["seq"], "version": event["version"],
                                       "holder": value.get("holder"), "token": token,
                                       "superseded_by": highest,
                                       "while_held": any(t > token for t in held)})
    return {"grants": sum(len(h.grants) for h in holders), "fenced_writes": fenced_writes,
            "acknowledged": sum(len(h.acks) for h in holders),
            "refused": sum(len(h.refused) for h in holders),
            "stale_attempts": sum(h.stale_attempts for h in holders),
            "violations": violations}


def check_run(*, writers: list[Writer], holders: list[LockHolder],
              subscribers: list[Subscriber], followers: list[StreamFollower],
              events: list[dict[str, Any]], states: dict[str, dict[str, Any]],
              write_docs: list[str], fenced_doc: str,
              verify: dict[str, Any]) -> dict[str, Any]:
    acks = [a for w in writers for a in w.acks] + \
        [{**a, "doc": fenced_doc} for h in holders for a in h.acks]
    refused = {f"/w/{r['key']}" for w in writers for r in w.refused} | \
        {f"{LockHolder.path}/{r['key']}" for h in holders for r in h.refused}
    writes = check_writes(acks, refused, events, states)
    fencing = check_fencing(events, fenced_doc, holders)
    subs = check_subscribers(subscribers, states, events)
    streams = check_streams(followers, events)
    broken = {doc: answer for doc, answer in verify.items() if not answer.get("ok")}
    return {
        "writes": writes,
        "version_holes": check_versions(events, states, [*write_docs, fenced_doc]),
        "writer_refusals": [r for w in writers for r in w.refused],
        "writer_retries": {w.name: dict(w.retries) for w in writers},
        "holder_retries": {h.name: dict(h.retries) for h in holders},
        "unacknowledged_at_end": sum(len(w.unacked) for w in writers)
        + sum(len(h.unacked) for h in holders),
        "subscribers": subs,
        "streams": streams,
        "hash_chains": {"documents": len(verify), "broken": broken},
        "fencing": fencing,
        "figures": {
            "acknowledged_writes_lost": len(writes["lost"]),
            "writes_applied_twice": len(writes["applied_twice"]),
            "ack_version_mismatches": len(writes["ack_version_mismatch"]),
            "refused_writes_applied": len(writes["refused_but_applied"]),
            "subscriber_gaps": len(subs["gaps"]),
            "subscriber_duplicates": len(subs["duplicates"]),
            "subscribers_behind_at_end": len(subs["behind_at_end"]),
            "deltas_of_the_wrong_event": len(subs["wrong_event"]),
            "stream_gaps": sum(g["count"] for g in streams["gaps"]),
            "stream_duplicates": len(streams["duplicates"]) + len(streams["out_of_order"]),
            "streams_behind_at_end": len(streams["behind_at_end"]),
            "hash_chains_broken": len(broken),
            # An outage answers unavailable, never internal (docs/protocol.md section 3).
            "internal_errors": sum(w.retries["internal"] for w in writers)
            + sum(h.retries["internal"] for h in holders),
            "fencing_violations": len(fencing["violations"]),
        },
    }
