"""``python -m bench run [--quick] [--only 1,3] [--profile]``: every scenario, one table.
``python -m bench compare [--quick] [--peers sharedb,socketio]``: coedit head to head with
the Node.js peers, and its growth curves; the table, ``bench/results/<time>.json``, and the
pictures in ``docs/images/bench/`` (``--to`` elsewhere). The peers come from the npm registry,
installed on first use into ``bench/node/*/node_modules`` (needs npm).
``python -m bench plot bench/results/<time>.json [--to DIR]``: the pictures again from a run.
``python -m bench fuzz [--frames 100000]``: the WebSocket frame fuzzer at volume.
``python -m bench write-cpu [--against DIR]``: the write path's CPU per write, against
another checkout's in the same invocation (bench/write_cpu.py).

``python -m bench chaos [--faults 24] [--seed 1] [--redis-cluster]``: three nodes on a private
PostgreSQL and a private Redis (or a private Redis Cluster) under mixed faults, then a checker
(see bench/chaos.py and docs/reliability.md); needs the PostgreSQL 15 binaries and
redis-server (and redis-cli for a cluster), not the shared services.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), Redis on 127.0.0.1:6379 and
``pip install -e ".[bench]"``. Each run creates its own databases and drops them, uses its
own Redis key prefix, and writes ``bench/results/<UTC time>.json`` plus the logs of every
process under ``bench/results/<UTC time>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.cluster import BenchCluster, scratch_database
from bench.loadgen import raise_fd_limit
from bench.measure import RunContext
from bench.report import machine_facts, render_table, write_results
from bench.suite import SCENARIOS, run_scenarios

RESULTS = Path(__file__).resolve().parent / "results"
DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images" / "bench"
PEER_NAMES = ("sharedb", "hocuspocus", "socketio")


async def run(args: argparse.Namespace) -> int:
    raise_fd_limit()
    # SIGTERM cancels the run like Ctrl-C does, so the servers stop and the scratch
    # databases are dropped on the way out.
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    started = datetime.now(UTC)
    log_dir = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    log_dir.mkdir(parents=True, exist_ok=True)
    only = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = [key for key in only if key not in SCENARIOS]
    if unknown:
        print(f"bench: no scenario {', '.join(unknown)}; choose from "
              f"{', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    unknown_peers = [p for p in peers if p not in PEER_NAMES]
    if unknown_peers:
        print(f"bench: no peer {', '.join(unknown_peers)}; choose from "
              f"{', '.join(PEER_NAMES)}", file=sys.stderr)
        return 2
    ctx = RunContext(log_dir=log_dir, quick=args.quick, generators=args.generators,
                     profile=args.profile, peers=peers)
    facts = machine_facts()
    clock = time.monotonic()

    def done(key: str) -> None:
        print(f"bench: scenario {key} done after {time.monotonic() - clock:.0f} s",
              file=sys.stderr, flush=True)

    async with scratch_database("coedit_bench") as dsn:
        ctx.database_url = dsn
        cluster = BenchCluster(dsn, log_dir, node_env=dict(args.node_env))
        try:
            scenarios, rows = await run_scenarios(ctx, cluster, only, done)
        finally:
            await cluster.stop()
            left = await cluster.forget_redis_keys()
            if left:
                print(f"bench: removed {left} Redis keys the nodes left under {cluster.prefix}",
                      file=sys.stderr)
    options = {"quick": args.quick, "only": only, "peers": list(peers),
               "generators": args.generators,
               "node_env": dict(args.node_env),
               "profile": args.profile, "window_s": ctx.window, "warmup_s": ctx.warmup}
    path = write_results(args.out, started, facts, options, scenarios, rows)
    print(render_table(rows))
    print(f"\nresults: {path}\nlogs: {log_dir}", file=sys.stderr)
    if args.command == "compare":
        from bench.plots import draw

        for made in draw(path, args.to):
            print(f"drawn: {made}", file=sys.stderr)
    if args.profile:
        print(f"profiles: {log_dir}/profile-*.summary.txt", file=sys.stderr)
    return 0


async def chaos(args: argparse.Namespace) -> int:
    from bench.chaos import (
        CLUSTER_FAULT_KINDS,
        FAULT_KINDS,
        ChaosConfig,
        render_chaos_table,
        run_chaos,
        write_chaos_results,
    )
    from bench.chaos_services import missing_binaries

    missing = missing_binaries(redis_cluster=args.redis_cluster)
    if missing:
        print(f"bench chaos: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    log_dir = args.out / f"chaos-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    known = CLUSTER_FAULT_KINDS if args.redis_cluster else FAULT_KINDS
    kinds = tuple(k.strip() for k in (args.kinds or ",".join(known)).split(",") if k.strip())
    unknown = [k for k in kinds if k not in known]
    if unknown or not kinds:
        print(f"bench chaos: unknown fault kinds {unknown}"
              f"{' on a Redis Cluster' if args.redis_cluster else ''}; choose from "
              f"{', '.join(known)}", file=sys.stderr)
        return 2
    config = ChaosConfig(faults=args.faults, seed=args.seed, heartbeat_ms=args.heartbeat_ms,
                         kinds=kinds, log_dir=log_dir, node_env=dict(args.node_env),
                         redis_cluster=args.redis_cluster)
    result = await run_chaos(config, lambda line: print(f"chaos: {line}", file=sys.stderr,
                                                        flush=True))
    path = write_chaos_results(args.out, result)
    print(render_chaos_table(result))
    print(f"\nresults: {path}\nlogs: {log_dir}", file=sys.stderr)
    figures = result["check"]["figures"]
    return 0 if all(value == 0 for name, value in figures.items() if name != "faults") else 1


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("COEDIT_"):
        raise argparse.ArgumentTypeError(f"expected COEDIT_NAME=VALUE, got {text!r}")
    return name, value


def _node_env_and_out(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--node-env", type=_setting, action="append", default=[],
                     metavar="COEDIT_NAME=VALUE",
                     help="a setting for every coedit node (repeatable)")
    sub.add_argument("--out", type=Path, default=RESULTS,
                     help="where results and logs go (default bench/results)")


def _run_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--quick", action="store_true",
                     help="short windows and 2,000 instead of 10,000 connections")
    sub.add_argument("--generators", type=int, default=2,
                     help="load processes for the fan-out scenarios (default 2)")
    sub.add_argument("--profile", action="store_true",
                     help="sample the coedit node with py-spy (figures then skew)")
    _node_env_and_out(sub)
    sub.add_argument("--peers", default=",".join(PEER_NAMES),
                     help="the Node.js peers to measure (default: all)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    run_parser = commands.add_parser("run", help="run the scenarios and print the table")
    compare_parser = commands.add_parser(
        "compare", help="coedit against ShareDB, Hocuspocus and Socket.IO, and growth curves")
    run_parser.add_argument("--only", default="1,2,3,4,5,search",
                            help="comma-separated scenario keys: 1-5, search, bulk, limits, "
                            "peers, growth (default: 1-5 and search)")
    compare_parser.add_argument("--to", type=Path, default=DOCS_IMAGES,
                                help="where the pictures go (default docs/images/bench)")
    plot_parser = commands.add_parser("plot", help="draw the pictures of a stored run")
    plot_parser.add_argument("results", type=Path, help="bench/results/<time>.json")
    plot_parser.add_argument("--to", type=Path, default=DOCS_IMAGES,
                             help="where the pictures go (default docs/images/bench)")
    for sub in (run_parser, compare_parser):
        _run_options(sub)
    fuzz_parser = commands.add_parser(
        "fuzz", help="send malformed WebSocket frames to a server of its own (bench/fuzz.py)")
    fuzz_parser.add_argument("--frames", type=int, default=100_000,
                             help="at least this many frames (default 100,000)")
    fuzz_parser.add_argument("--seed", type=int, default=0, help="the first chunk's seed")
    fuzz_parser.add_argument("--database-url", default="",
                             help="COEDIT_DATABASE_URL of the server (default: a scratch SQLite)")
    cpu_parser = commands.add_parser(
        "write-cpu", help="the write path's CPU per write, in batches of 1 and 16")
    cpu_parser.add_argument("--against", type=Path, default=None,
                            help="another checkout (a git worktree) measured alternately")
    cpu_parser.add_argument("--rounds", type=int, default=5,
                            help="alternating runs of each checkout (default 5)")
    chaos_parser = commands.add_parser("chaos", help="fault-injection run with a checker")
    chaos_parser.add_argument("--faults", type=int, default=24,
                              help="how many faults to inject (default 24)")
    chaos_parser.add_argument("--seed", type=int, default=1, help="fault plan seed")
    chaos_parser.add_argument("--kinds", default="",
                              help="comma-separated fault kinds to draw from (default: all of "
                              "the mode's; on a Redis Cluster redis_failover and "
                              "redis_master_kill replace the single Redis's restart, stall and "
                              "cut)")
    chaos_parser.add_argument("--redis-cluster", action="store_true",
                              help="run on a private Redis Cluster (3 masters, 3 replicas) "
                              "instead of one Redis")
    chaos_parser.add_argument("--heartbeat-ms", type=int, default=1000,
                              help="COEDIT_HEARTBEAT_MS of the nodes (default 1000)")
    _node_env_and_out(chaos_parser)
    args = parser.parse_args(argv or sys.argv[1:] or ["run"])
    if args.command == "fuzz":
        from bench.fuzz_run import run_fuzz

        return run_fuzz(args)
    if args.command == "chaos":
        return asyncio.run(chaos(args))
    if args.command == "write-cpu":
        from bench.write_cpu import run as write_cpu

        return write_cpu(args.against, args.rounds)
    if args.command == "plot":
        from bench.plots import draw

        for made in draw(args.results, args.to):
            print(f"drawn: {made}")
        return 0
    if args.command == "compare":
        args.only = "peers,growth"
    elif args.command != "run":
        parser.print_help()
        return 2
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
