"""The order of a run and the rows of its table.

Every comparison is made inside one run: a scenario measures its baselines right next to
coedit, with the same load processes, so that whatever else the machine was doing affects
both sides alike as far as possible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bench.cluster import BenchCluster
from bench.measure import Row, RunContext
from bench.scenarios import (
    bulk,
    connections,
    fanout,
    growth,
    http_limits,
    latency,
    peers,
    search,
    writes,
)

__all__ = ["SCENARIOS", "run_scenarios"]

JSON = "coedit.v1.json"
MSGPACK = "coedit.v1.msgpack"
NOISY_CORES = 0.3  # foreign CPU above this during a window makes its figure suspect
# Ablation: the same node with group commit off, to show what it contributes.
NO_GROUP_COMMIT = {"COEDIT_WRITE_BATCH": "1"}


def _at_least(ratio: float | None, floor: float) -> str:
    """``holds``, or how far short: the factor coedit would have to gain to reach the floor."""
    if ratio is None:
        return "n/a"
    return "holds" if ratio >= floor else f"fails: needs {floor / ratio:.1f}x more"


def _noise(result: dict[str, Any]) -> str:
    foreign = result.get("usage", {}).get("foreign_cores", 0.0)
    return f"foreign CPU {foreign:.2f} cores" if foreign > NOISY_CORES else ""


async def scenario_1(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                     rows: list[Row]) -> None:
    gens = ctx.generators
    base = out["baselines"] = {
        "ceiling_text_1p": await fanout.ceiling(ctx, processes=1),
        "ceiling_text": await fanout.ceiling(ctx, processes=gens),
        "ceiling_binary": await fanout.ceiling(ctx, binary=True, processes=gens),
        "socketio": await fanout.socketio_peer(ctx, processes=gens),
    }
    if not ctx.quick:
        base["ceiling_text_4p"] = await fanout.ceiling(ctx, processes=4)
    nodes = await cluster.start(1, redis=False, tag="-s1")
    try:
        out["json"] = await fanout.coedit_fanout(ctx, cluster, nodes, JSON, processes=gens)
        out["msgpack"] = await fanout.coedit_fanout(ctx, cluster, nodes, MSGPACK,
                                                    processes=gens)
    finally:
        await cluster.stop()
    # What group commit contributes: the same run with one write per transaction.
    nodes = await cluster.start(1, redis=False, tag="-s1-nobatch", extra=NO_GROUP_COMMIT)
    try:
        out["json_no_group_commit"] = await fanout.coedit_fanout(ctx, cluster, nodes, JSON,
                                                                 processes=gens)
    finally:
        await cluster.stop()
    one = base["ceiling_text_1p"]
    rows.append(Row("0 load generator", f"ceiling, {gens} load processes",
                    base["ceiling_text"]["frames_per_s"], "frames/s",
                    "same with 1 process", one["frames_per_s"],
                    notes=f"1-process generator used {one['usage']['cores']['loadgen0']:.2f} "
                          "cores"))
    if "ceiling_text_4p" in base:
        rows.append(Row("0 load generator", "ceiling, 4 load processes",
                        base["ceiling_text_4p"]["frames_per_s"], "frames/s",
                        f"{gens} processes", base["ceiling_text"]["frames_per_s"]))
    rows.append(Row("baseline", "websockets broadcast() ceiling, text",
                    base["ceiling_text"]["frames_per_s"], "frames/s",
                    notes=_noise(base["ceiling_text"])))
    rows.append(Row("baseline", "websockets broadcast() ceiling, binary",
                    base["ceiling_binary"]["frames_per_s"], "frames/s",
                    notes=_noise(base["ceiling_binary"])))
    rows.append(Row("baseline", "python-socketio emit to a room (aiohttp)",
                    base["socketio"]["frames_per_s"], "frames/s",
                    notes=_noise(base["socketio"])))
    for wire, ceiling_key in (("json", "ceiling_text"), ("msgpack", "ceiling_binary")):
        result = out[wire]
        value = result["frames_per_s"]
        ceiling = base[ceiling_key]["frames_per_s"]
        peer = base["socketio"]["frames_per_s"]
        rows.append(Row("1 fan-out, 1 node", f"{wire}: delivered", value, "frames/s",
                        "ceiling", ceiling, ">= 0.7x", _at_least(value / ceiling, 0.7),
                        _noise(result)))
        rows.append(Row("1 fan-out, 1 node", f"{wire}: delivered", value, "frames/s",
                        "socketio", peer, ">= 3x", _at_least(value / peer, 3.0),
                        _noise(result)))
        rows.append(Row("1 fan-out, 1 node", f"{wire}: frames per server CPU-second",
                        result["frames_per_server_cpu_s"], "frames",
                        "ceiling", base[ceiling_key]["frames_per_server_cpu_s"],
                        notes="cost per frame, robust to other load"))
    ablation = out["json_no_group_commit"]
    rows.append(Row("1 fan-out, 1 node", "json, one write per transaction (ablation)",
                    ablation["frames_per_s"], "frames/s", "with group commit",
                    out["json"]["frames_per_s"],
                    notes=f"COEDIT_WRITE_BATCH=1; {_noise(ablation)}".rstrip("; ")))


async def scenario_2(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                     rows: list[Row]) -> None:
    ceiling = out["ceiling_text"] = await fanout.ceiling(ctx, processes=ctx.generators)
    nodes = await cluster.start(2, redis=True, tag="-s2")
    try:
        out["json"] = await fanout.coedit_fanout(ctx, cluster, nodes, JSON,
                                                 processes=ctx.generators)
    finally:
        await cluster.stop()
    value = out["json"]["frames_per_s"]
    rows.append(Row("2 fan-out, 2 nodes + Redis", "json: delivered", value, "frames/s",
                    "ceiling", ceiling["frames_per_s"], ">= 0.5x",
                    _at_least(value / ceiling["frames_per_s"], 0.5), _noise(out["json"])))


async def scenario_3(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                     rows: list[Row]) -> None:
    pg = out["pgbench"] = await writes.pgbench_ceiling(ctx)
    nodes = await cluster.start(1, redis=False, tag="-s3")
    try:
        out["distinct"] = await writes.coedit_writes(ctx, cluster, nodes[0], hot=False)
        out["hot"] = await writes.coedit_writes(ctx, cluster, nodes[0], hot=True)
        out["hot_splices"] = await writes.coedit_writes(ctx, cluster, nodes[0], hot=True,
                                                        splices=True)
    finally:
        await cluster.stop()
    nodes = await cluster.start(1, redis=False, tag="-s3-nobatch", extra=NO_GROUP_COMMIT)
    try:
        out["distinct_no_group_commit"] = await writes.coedit_writes(ctx, cluster, nodes[0],
                                                                     hot=False)
    finally:
        await cluster.stop()
    distinct = out["distinct"]["commits_per_s"]
    # coedit's figure is acknowledged writes a second (its group commit may put several in one
    # transaction); pgbench's is transactions a second with one write each, the shape of
    # a single write as the issue defines the database ceiling.
    rows.append(Row("3 writes, PostgreSQL", "16 writers, 16 documents", distinct, "writes/s",
                    "pgbench", pg["full-distinct"]["commits_per_s"], ">= 0.6x",
                    _at_least(distinct / pg["full-distinct"]["commits_per_s"], 0.6)))
    hot = out["hot"]
    rows.append(Row("3 writes, PostgreSQL", "16 writers, 1 hot document", hot["commits_per_s"],
                    "writes/s", "pgbench", pg["full-hot"]["commits_per_s"], "report",
                    "reported", f"{100 * hot['rebased_share']:.0f}% rebased"))
    spliced = out["hot_splices"]
    rows.append(Row("3 writes, PostgreSQL", "16 writers typing into 1 string (splices merged)",
                    spliced["commits_per_s"], "writes/s", "1 hot document, fields",
                    hot["commits_per_s"], "report", "reported",
                    f"{100 * spliced['rebased_share']:.0f}% carried past later splices; node "
                    f"CPU {spliced['node_cpu_ms_per_commit'] or 0:.2f} against "
                    f"{hot['node_cpu_ms_per_commit'] or 0:.2f} ms per write"))
    rows.append(Row("3 writes, PostgreSQL", "node CPU per acknowledged write (16 documents)",
                    out["distinct"]["node_cpu_ms_per_commit"] or float("nan"), "ms",
                    notes=f"PostgreSQL {out['distinct']['postgres_cpu_ms_per_commit'] or 0:.2f}"
                          " ms per write"))
    ablation = out["distinct_no_group_commit"]
    rows.append(Row("3 writes, PostgreSQL", "16 documents, one write per transaction (ablation)",
                    ablation["commits_per_s"], "writes/s", "with group commit", distinct,
                    notes=f"COEDIT_WRITE_BATCH=1; node CPU "
                          f"{ablation['node_cpu_ms_per_commit'] or 0:.2f} ms per write"))
    rows.append(Row("baseline", "pgbench, apply_patch shape, 1 client",
                    pg["full-single"]["commits_per_s"], "commits/s"))
    rows.append(Row("baseline", "pgbench, minimal shape (lock, update, insert), 16 clients",
                    pg["minimal-distinct"]["commits_per_s"], "commits/s"))


async def scenario_4(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                     rows: list[Row]) -> None:
    # At the target rate, and at a fifth of it for comparison: past its capacity a node
    # queues requests and the "latency" is the length of the queue.
    for rate in (latency.RATE, latency.SUSTAINED_RATE):
        nodes = await cluster.start(2, redis=True, tag=f"-s4-{rate}")
        try:
            result = out[f"at_{rate}"] = await latency.cross_node_latency(
                ctx, cluster, *nodes, rate=rate)
        finally:
            await cluster.stop()
        note = f"{result['writes_per_s']:.0f} writes/s acknowledged"
        label = f"{rate} writes/s"
        rows.append(Row("4 latency A->B", f"{label}: p50", result["p50_ms"], "ms", notes=note))
        if rate == latency.RATE:
            p99 = result["p99_ms"]
            rows.append(Row("4 latency A->B", f"{label}: p99", p99, "ms", target="<= 15 ms",
                            verdict="holds" if p99 <= 15 else f"fails ({p99 / 15:.0f}x over)",
                            notes=note))
        else:
            rows.append(Row("4 latency A->B", f"{label}: p99", result["p99_ms"], "ms",
                            target="report", verdict="reported", notes=note))


async def scenario_5(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                     rows: list[Row]) -> None:
    count = 2000 if ctx.quick else 10_000
    window = 12.0 if ctx.quick else 35.0
    nodes = await cluster.start(1, redis=True, tag="-s5")
    try:
        result = out["connections"] = await connections.many_connections(
            ctx, cluster, nodes[0], connections=count, window=window)
    finally:
        await cluster.stop()
    per = result["rss_per_connection_kb"]
    rows.append(Row("5 connections", f"{count} subscribed: RSS per connection", per, "KB",
                    target="<= 40 KB", verdict="holds" if per <= 40 else
                    f"fails by {per - 40:.1f} KB",
                    notes=f"RSS {result['rss_before_kb'] // 1024} -> "
                          f"{result['rss_after_kb'] // 1024} MiB"))
    dropped = result["connections"] - result["open_at_end"]
    rows.append(Row("5 connections", "connections dropped", dropped, "",
                    target="0", verdict="holds" if dropped == 0 else "fails",
                    notes=str(result["closed"] or result["errors"] or "")))
    # A heartbeat sent in the last moments of the window may be answered just after it.
    answered = result["heartbeats_answered"] / max(1, result["heartbeats_sent"])
    rows.append(Row("5 connections", "heartbeat round trip p99", result["heartbeat_p99_ms"],
                    "ms", target="keeps up",
                    verdict="holds" if answered >= 0.99 else "fails",
                    notes=f"{result['heartbeats_answered']} of {result['heartbeats_sent']} "
                          "heartbeats answered in the window"))
    known = result["presence_known"] / max(1, result["presence_known_expected"])
    rows.append(Row("5 connections", "presence: others each session knows", 100 * known, "%",
                    target="100 %", verdict="holds" if known == 1 else "fails",
                    notes=f"{result['presence_known']} of {result['presence_known_expected']}"))
    joins = result["presence_joins"] / max(1, result["presence_joins_expected"])
    rows.append(Row("5 connections", "presence joins received, of k(k-1)/2", 100 * joins, "%",
                    target="report", verdict="reported",
                    notes=f"more when sessions subscribe at once; plus "
                          f"{result['presence_own_joins']} joins announcing the receiver itself"))


async def scenario_search(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                          rows: list[Row]) -> None:
    count = 10_000 if ctx.quick else 100_000
    nodes = await cluster.start(1, redis=False, tag="-search")  # it migrates the database
    try:
        load = out["load"] = await search.load_memos(cluster.database_url, count)
        asked = search.queries(100 if ctx.quick else 400, count)
        result = out["queries"] = await search.query_latency(cluster, nodes[0], asked)
    finally:
        await cluster.stop()
    # The write path with and without keeping the index current, alternately, so both
    # sides meet the same machine; then with pg_trgm's index over the states instead.
    rates: dict[str, list[float]] = {"on": [], "off": [], "pg_trgm": []}
    off = {"COEDIT_SEARCH_INDEX": "off"}
    for turn in range(1 if ctx.quick else 2):
        for label, extra in (("on", {}), ("off", off)):
            nodes = await cluster.start(1, redis=False, tag=f"-search-{label}{turn}",
                                        extra=extra)
            try:
                rates[label] += await search.write_rate(ctx, cluster, nodes[0])
            finally:
                await cluster.stop()
    trgm = out["pg_trgm"] = await search.pg_trgm_queries(cluster.database_url, asked)
    nodes = await cluster.start(1, redis=False, tag="-search-trgm", extra=off)
    try:
        rates["pg_trgm"] = await search.write_rate(ctx, cluster, nodes[0])
    finally:
        await cluster.stop()
        await search.drop_pg_trgm(cluster.database_url)
    out["writes"] = rates
    best = {label: max(values) for label, values in rates.items()}
    p99 = result["p99_ms"]
    label = f"{count:,} memos, two words, one with a typo"
    rows.append(Row("search", f"{label}: p50", result["p50_ms"], "ms",
                    notes=f"{100 * result['with_results']:.0f}% of queries found something"))
    rows.append(Row("search", f"{label}: p99", p99, "ms", target="< 50 ms",
                    verdict="holds" if p99 < 50 else f"fails ({p99 / 50:.1f}x over)",
                    notes=f"max {result['max_ms']:.0f} ms; HTTP round trip, one at a time"))
    rows.append(Row("search", "writes/s keeping the index current", best["on"], "writes/s",
                    "index off", best["off"], "report", "reported",
                    notes="16 writers replacing memo paragraphs; best windows"))
    rows.append(Row("search", "pg_trgm instead: candidate query p99", trgm["p99_ms"], "ms",
                    "word index p99", p99, "report", "reported",
                    notes=f"SQL only, no ranking; p50 {trgm['p50_ms']:.1f} ms; GIN "
                          f"{trgm['index_mb']:.0f} MB built in {trgm['index_build_s']} s"))
    rows.append(Row("search", "pg_trgm instead: writes/s", best["pg_trgm"], "writes/s",
                    "index off", best["off"], "report", "reported"))
    rows.append(Row("search", "load (COPY, index rows by the write path's code)",
                    load["seconds"], "s",
                    notes=f"{load['term_rows']:,} terms {load['terms_mb']:.0f} MB; "
                          f"{load['word_rows']:,} vocabulary keys {load['words_mb']:.0f} MB; "
                          f"documents {load['documents_mb']:.0f} MB"))


async def scenario_bulk(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                        rows: list[Row]) -> None:
    # Rate limits off: the baseline makes a thousand requests on purpose.
    nodes = await cluster.start(1, redis=False, tag="-bulk",
                                extra={"COEDIT_HTTP_RATE_LIMIT": "0"})
    try:
        out.update(await bulk.bulk_against_single_calls(ctx, cluster, nodes[0]))
    finally:
        await cluster.stop()
    n = out["items"]
    rows.append(Row("bulk", f"{n} reviews assigned in one request", out["bulk_s"], "s",
                    f"{n} single requests, one at a time", out["single_sequential_s"],
                    target="seconds, not minutes",
                    verdict="holds" if out["bulk_s"] < 10 else "fails"))
    rows.append(Row("bulk", f"{n} reviews assigned in one request", out["bulk_s"], "s",
                    f"{n} single requests, 16 at a time", out["single_16_s"]))
    rows.append(Row("bulk", f"the same {n} checked as a dry run", out["bulk_dry_run_s"], "s",
                    "the bulk request itself", out["bulk_s"]))


async def scenario_limits(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                          rows: list[Row]) -> None:
    try:
        out.update(await http_limits.limits_against_no_limit(ctx, cluster))
    finally:
        await cluster.stop()
    off = out["off"]
    for name, where in (("memory", "in memory (one node)"), ("redis", "in Redis (a cluster)")):
        rows.append(Row("http limits", f"server CPU per document read, counted {where}",
                        out[name]["cpu_us"], "us", "no limit", off["cpu_us"],
                        target="report", verdict="reported"))
        rows.append(Row("http limits", f"document reads a second, counted {where}",
                        out[name]["per_second"], "/s", "no limit", off["per_second"],
                        target="report", verdict="reported",
                        notes=f"{http_limits.CONCURRENCY} requests at a time, best of "
                              f"{out['rounds']} rounds"))

# The head-to-head measures: (key, what, unit, True when more is better).
PEER_MEASURES = (
    ("fanout_1n", "fan-out to 200 subscribers, 1 node", "frames/s", True),
    ("fanout_2n", "fan-out to 200 subscribers, 2 nodes + Redis", "frames/s", True),
    ("writes_16", "acknowledged writes, 16 writers on 16 documents", "writes/s", True),
    ("writes_hot", "acknowledged writes, 16 writers on 1 document", "writes/s", True),
    ("latency_p50", "A->B at 1,000 writes/s: p50", "ms", False),
    ("latency_p99", "A->B at 1,000 writes/s: p99", "ms", False),
    ("memory", "RSS per idle subscribed connection (10,000; 2,000 with --quick)", "KB", False),
)
MEMORY_CONNECTIONS = 10_000


# Where each measure's figure sits in one server's raw results: (result key, field).
PEER_FIGURES = {
    "fanout_1n": ("fanout_1n", "frames_per_s"),
    "fanout_2n": ("fanout_2n", "frames_per_s"),
    "writes_16": ("writes_16", "commits_per_s"),
    "writes_hot": ("writes_hot", "commits_per_s"),
    "latency_p50": ("latency", "p50_ms"),
    "latency_p99": ("latency", "p99_ms"),
    "memory": ("memory", "per_connection_kb"),
}


def peer_figures(results: dict[str, Any]) -> dict[str, float | None]:
    """The one number of each measure, from one server's raw results (a curve's last point
    for memory)."""

    def get(key: str, field: str) -> float | None:
        value = results.get(key, {})
        if isinstance(value, list):
            value = value[-1] if value else {}
        figure = value.get(field) if isinstance(value, dict) else None
        return float(figure) if figure is not None else None

    return {measure: get(key, field) for measure, (key, field) in PEER_FIGURES.items()}


async def _guarded(out: dict[str, Any], key: str, step: Awaitable[Any]) -> None:
    """One measurement of one server: a failure is recorded, and the run goes on."""
    try:
        out[key] = await step
    except Exception as exc:
        out[key] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}


async def scenario_peers(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                         rows: list[Row]) -> None:
    chosen = [p for p in peers.PEERS if p.name in ctx.peers]
    mine: dict[str, Any] = out.setdefault("coedit", {})
    for peer in chosen:
        out.setdefault(peer.name, {})
    memory = (2000,) if ctx.quick else (MEMORY_CONNECTIONS,)
    # Measure by measure, coedit first and then each peer, so that one measure's figures
    # are taken close together in time.
    for nodes in (1, 2):
        key = f"fanout_{nodes}n"
        started = await cluster.start(nodes, redis=nodes > 1, tag=f"-peers-fanout{nodes}")
        try:
            await _guarded(mine, key, fanout.coedit_fanout(ctx, cluster, started, JSON,
                                                           processes=ctx.generators))
        finally:
            await cluster.stop()
        for peer in chosen:
            await _guarded(out[peer.name], key, peers.peer_fanout(ctx, peer, nodes=nodes))
            if peer.merging and nodes == 1:
                await _guarded(out[peer.name], "fanout_1n_merged", peers.peer_fanout(
                    ctx, peer, nodes=1, env=peer.merging, tag="-merged"))
    out["pgbench"] = await writes.pgbench_ceiling(ctx)
    for key, documents in (("writes_16", 16), ("writes_hot", 1)):
        started = await cluster.start(1, redis=False, tag=f"-peers-{key}")
        try:
            await _guarded(mine, key, writes.coedit_writes(ctx, cluster, started[0],
                                                           hot=documents == 1))
        finally:
            await cluster.stop()
        for peer in chosen:
            await _guarded(out[peer.name], key, peers.peer_writes(ctx, peer,
                                                                  documents=documents))
    started = await cluster.start(2, redis=True, tag="-peers-latency")
    try:
        await _guarded(mine, "latency", latency.cross_node_latency(ctx, cluster, *started))
    finally:
        await cluster.stop()
    for peer in chosen:
        await _guarded(out[peer.name], "latency", peers.peer_latency(ctx, peer))
    await _guarded(mine, "memory", growth.connections_curve(ctx, cluster, memory))
    for peer in chosen:
        await _guarded(out[peer.name], "memory", peers.peer_memory(ctx, peer, points=memory))
    _peer_rows(out, chosen, rows)


def _peer_rows(out: dict[str, Any], chosen: list[peers.Peer], rows: list[Row]) -> None:
    mine = peer_figures(out["coedit"])
    theirs = {p.name: peer_figures(out[p.name]) for p in chosen}
    pg = out["pgbench"]
    for key, what, unit, more_is_better in PEER_MEASURES:
        value = mine[key]
        if value is None:
            rows.append(Row("peers", what, float("nan"), unit, verdict="did not run",
                            notes=str(out["coedit"].get(PEER_FIGURES[key][0], {}))[:120]))
            continue
        for peer in chosen:
            other = theirs[peer.name][key]
            if other is None:
                error = out[peer.name].get(PEER_FIGURES[key][0], {}).get("error", "")
                rows.append(Row("peers", what, value, unit, peer.label, None, "ahead",
                                "n/a", f"peer did not run: {str(error)[:100]}"))
                continue
            if key.startswith("writes") and not peer.acks_durable:
                rows.append(Row("peers", what, value, unit, f"{peer.label} (in memory)", other,
                                "ahead", "not comparable",
                                "the peer acknowledges before storing (debounced)"))
                continue
            ahead = value > other if more_is_better else value < other
            factor = value / other if more_is_better else other / value if value else 0.0
            rows.append(Row("peers", what, value, unit, peer.label, other, "ahead",
                            f"holds ({factor:.2f}x)" if ahead else
                            f"fails (peer {1 / factor if factor else float('inf'):.2f}x "
                            "ahead)"))
    for peer in chosen:
        merged, single = out[peer.name].get("fanout_1n_merged"), out[peer.name].get("fanout_1n")
        if not (merged and single and "bytes_per_frame" in merged
                and single.get("bytes_per_frame")):
            continue
        # Changes, not frames: the bytes delivered over the size of a one-change frame.
        changes = merged["frames_per_s"] * merged["bytes_per_frame"] / single["bytes_per_frame"]
        merged["changes_per_s"] = changes
        value = mine["fanout_1n"]
        if value is not None:
            rows.append(Row("peers", "fan-out, 1 node, with the peer merging changes into "
                            "frames: changes delivered/s", value, "frames/s",
                            f"{peer.label} (its default)", changes, "ahead",
                            f"holds ({value / changes:.2f}x)" if value > changes else
                            f"fails (peer {changes / value:.2f}x ahead)",
                            f"{merged['bytes_per_frame']:.0f} bytes a frame, about "
                            f"{merged['bytes_per_frame'] / single['bytes_per_frame']:.1f} "
                            "changes"))
    for key, label in (("writes_16", "full-distinct"), ("writes_hot", "full-hot")):
        value = mine[key]
        if value is not None:
            ceiling = pg[label]["commits_per_s"]
            rows.append(Row("peers", f"{key}: against pgbench", value, "writes/s", "pgbench",
                            ceiling, ">= 1.0x", _at_least(value / ceiling, 1.0)))
    p99 = mine["latency_p99"]
    if p99 is not None:
        rows.append(Row("peers", "coedit A->B p99 at 1,000 writes/s", p99, "ms",
                        target="<= 5 ms", verdict="holds" if p99 <= 5 else
                        f"fails ({p99 / 5:.1f}x over)"))
    memory = mine["memory"]
    if memory is not None:
        rows.append(Row("peers", "coedit RSS per idle connection", memory, "KB",
                        target="<= 25 KB", verdict="holds" if memory <= 25 else
                        f"fails by {memory - 25:.1f} KB"))


async def scenario_growth(ctx: RunContext, cluster: BenchCluster, out: dict[str, Any],
                          rows: list[Row]) -> None:
    await _guarded(out, "subscribers", growth.subscribers_curve(ctx, cluster))
    await _guarded(out, "writers", growth.writers_curve(ctx, cluster))
    await _guarded(out, "documents", growth.documents_curve(ctx, cluster))
    await _guarded(out, "connections", growth.connections_curve(ctx, cluster))
    for point in out["subscribers"] if isinstance(out["subscribers"], list) else []:
        if "error" in point:
            rows.append(Row("growth (error)", f"{point['subscribers']:,} subscribers",
                            float("nan"), "", verdict="did not run",
                            notes=point["error"][:160]))
            continue
        rows.append(Row("growth", f"{point['subscribers']:,} subscribers: delivered",
                        point["frames_per_s"], "frames/s",
                        notes=f"p50 {point['p50_ms'] or 0:.1f} ms, p99 "
                              f"{point['p99_ms'] or 0:.1f} ms write to delivery"))
    for point in out["writers"] if isinstance(out["writers"], list) else []:
        rows.append(Row("growth", f"{point['writers']} writers: acknowledged",
                        point["commits_per_s"], "writes/s", "pgbench, as many clients",
                        point["pgbench_commits_per_s"]))
    for point in out["documents"] if isinstance(out["documents"], list) else []:
        rows.append(Row("growth", f"16 writers over {point['documents']:,} documents",
                        point["commits_per_s"], "writes/s"))
    for point in out["connections"] if isinstance(out["connections"], list) else []:
        rows.append(Row("growth", f"{point['connections']:,} connections: RSS per connection",
                        point["per_connection_kb"], "KB",
                        notes=f"RSS {point['rss_kb'] // 1024} MiB"))
    for key in ("subscribers", "writers", "documents", "connections"):
        if isinstance(out[key], dict) and "error" in out[key]:
            rows.append(Row("growth (error)", key, float("nan"), "", verdict="did not run",
                            notes=out[key]["error"][:100]))


Step = Callable[[RunContext, BenchCluster, dict[str, Any], list[Row]], Awaitable[None]]

SCENARIOS: dict[str, Step] = {
    "1": scenario_1, "2": scenario_2, "3": scenario_3, "4": scenario_4, "5": scenario_5,
    "bulk": scenario_bulk, "limits": scenario_limits,
    "search": scenario_search,
    "peers": scenario_peers, "growth": scenario_growth,
}


async def run_scenarios(ctx: RunContext, cluster: BenchCluster, only: list[str],
                        on_done: Callable[[str], None]) -> tuple[dict[str, Any], list[Row]]:
    results: dict[str, Any] = {}
    rows: list[Row] = []
    for key in only:
        out: dict[str, Any] = {}
        results[key] = out
        try:
            await SCENARIOS[key](ctx, cluster, out, rows)
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(Row(f"{key} (error)", str(exc)[:80], float("nan"), "",
                            verdict="did not run"))
            await cluster.stop()
        on_done(key)
    return results, rows
