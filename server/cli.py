"""The ``coedit`` command and its subcommands.

* ``serve``: migrate the schema, then serve HTTP and ``/ws`` until a graceful stop.
* ``migrate``: bring the schema up to date and exit.
* ``token``: mint a token for a user, roles and tenant, signed with ``COEDIT_SECRET`` (or the
  dev-mode key, with a warning).
* ``archive``: copy whole months of old audit events to gzip-compressed JSON Lines files,
  read back and checked; with ``--purge``, also delete the archived events from the database.
  With ``--history-older-than`` (or ``COEDIT_HISTORY_RETENTION``), also cut each document's
  revisions and snapshots older than that (``persistence/history_retention.py``).
* ``verify``: recompute the hash chains (of every tenant, or of ``--tenant``) over archived
  files and live rows together; exits 1 if any is broken.
* ``replay``: print a document (or only its state) as it was at a given version.
* ``tail``: follow a tenant's audit events, filtered by kind, type, document or actor, until
  interrupted.
* ``seed-demo``: a demo idea with a memo, a valuation and a committee workflow using every
  action type, in a tenant.

The commands that read the database (``archive``, ``verify``, ``replay``, ``tail``,
``seed-demo``) bring the schema up to date first, as ``serve`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from persistence.archive import ArchiveError, Archiver
from persistence.database import Database
from persistence.documents import DocumentStore
from persistence.errors import CoeditError
from persistence.events import EventFilter, EventLog
from persistence.history_retention import HistoryRetention
from persistence.migrate import upgrade
from server.config import ConfigError, Settings

__all__ = ["main"]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"coedit: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _serve(args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.runner import GracefulServer, uvicorn_config

    settings = _settings()
    app = create_app(settings)
    server = GracefulServer(
        uvicorn_config(app, settings, host=args.host, port=args.port, log_level=args.log_level)
    )
    # Everything imported so far lives as long as the process. Frozen, it is left out of the
    # cyclic collector's full passes, which otherwise walk all of it: measured, a full pass
    # stopped a node for 60-75 ms, long enough to be the 99th percentile of delta latency.
    gc.collect()
    gc.freeze()
    server.run()
    return 0 if server.started else 1


def _migrate(args: argparse.Namespace) -> int:
    from persistence.migrate import upgrade

    settings = _settings()
    revision = asyncio.run(upgrade(settings.database_url))
    print(f"coedit: schema at revision {revision}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from server.auth import TokenIssuer

    settings = _settings()
    if settings.dev_auth and not os.environ.get("COEDIT_SECRET"):
        print("coedit: no COEDIT_SECRET set; minting with the dev-mode key", file=sys.stderr)
    issuer = TokenIssuer(settings.secret, dev_auth=settings.dev_auth)
    roles = [r.strip() for role in args.role for r in role.split(",") if r.strip()]
    try:
        token = issuer.mint(user=args.user, name=args.name or args.user, roles=roles,
                            tenant=args.tenant, ttl_seconds=args.ttl)
    except CoeditError as exc:
        print(f"coedit: {exc.message}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or ``45s``."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError("use a number and a unit: 90d, 12h, 30m or 45s")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


def _with_db(job: Callable[[Database], Awaitable[int]]) -> int:
    settings = _settings()

    async def run() -> int:
        await upgrade(settings.database_url)
        db = Database(settings.database_url)
        try:
            return await job(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _history_retention(text: str) -> timedelta:
    """A history retention period: at least an hour, so that a subscriber that reconnects
    after a short outage still catches up with deltas rather than a ``reset``."""
    period = _duration(text)
    if period < timedelta(hours=1):
        raise argparse.ArgumentTypeError("history retention must be at least 1h")
    return period


def _archive(args: argparse.Namespace) -> int:
    configured = (os.environ.get("COEDIT_HISTORY_RETENTION") or "").strip()
    if args.history_older_than is None and configured:
        try:
            args.history_older_than = _history_retention(configured)
        except argparse.ArgumentTypeError as exc:
            print(f"coedit: COEDIT_HISTORY_RETENTION: {exc}", file=sys.stderr)
            return 2
    if args.older_than is None and args.history_older_than is None:
        print("coedit: archive needs --older-than (events), --history-older-than "
              "(revisions and snapshots) or COEDIT_HISTORY_RETENTION", file=sys.stderr)
        return 2

    async def job(db: Database) -> int:
        if args.older_than is not None:
            archiver = Archiver(db, Path(args.dir))
            try:
                results = await archiver.archive(older_than=args.older_than, purge=args.purge)
            except ArchiveError as exc:
                print(f"coedit: archive failed, nothing was removed: {exc}", file=sys.stderr)
                return 1
            for result in results:
                print(f"{result.tenant}\t{result.month}\t{result.count} events\t{result.file}"
                      f"\t{'purged' if result.purged else 'kept'}")
            print(f"coedit: archived {sum(r.count for r in results)} events "
                  f"in {len(results)} files", file=sys.stderr)
        if args.history_older_than is not None:
            cut = await HistoryRetention(db).prune(older_than=args.history_older_than)
            print(f"coedit: history retention cut {cut.documents} documents: "
                  f"{cut.revisions} revisions and {cut.snapshots} snapshots removed",
                  file=sys.stderr)
        return 0

    return _with_db(job)


def _verify(args: argparse.Namespace) -> int:
    async def job(db: Database) -> int:
        reports = await Archiver(db, Path(".")).verify(args.tenant)
        broken = 0
        for report in reports:
            state = "ok" if report.ok else "BROKEN"
            print(f"{report.tenant}\t{state}\t{report.events} events "
                  f"({report.archived} from archives)")
            for problem in report.broken:
                broken += 1
                print(f"  {json.dumps(problem)}")
        return 1 if broken else 0

    return _with_db(job)


def _replay(args: argparse.Namespace) -> int:
    async def job(db: Database) -> int:
        store = DocumentStore(db)
        try:
            tenant = await store.tenant_of(args.doc)
            document = await store.state_at(tenant, args.doc, version=args.version)
        except CoeditError as exc:
            print(f"coedit: {exc.message}", file=sys.stderr)
            return 1
        print(json.dumps(document["state"] if args.state_only else document, indent=2,
                         ensure_ascii=False))
        return 0

    return _with_db(job)


def _tail(args: argparse.Namespace) -> int:
    async def job(db: Database) -> int:
        log = EventLog(db)
        flt = EventFilter.parse(kinds=args.kind, types=args.type, docs=args.doc,
                                actors=args.actor)
        position = args.since if args.since is not None else await log.head(args.tenant)
        while True:
            found, position, more = await log.read(args.tenant, after=position, flt=flt)
            for event in found:
                if args.json:
                    print(json.dumps(event, ensure_ascii=False), flush=True)
                else:
                    print(f"{event['seq']}\t{event['ts']}\t{event['type']}\t"
                          f"{event['kind'] or '-'}\t{event['doc'] or '-'}\t"
                          f"v{event['version'] or '-'}\t{event['actor']['name']}", flush=True)
            if not more:
                await asyncio.sleep(args.interval)

    try:
        return _with_db(job)
    except KeyboardInterrupt:
        return 0


def _seed_demo(args: argparse.Namespace) -> int:
    from server.demo import seed_demo

    async def job(db: Database) -> int:
        seeded = await seed_demo(db, tenant=args.tenant)
        print(f"idea\t{seeded.idea}")
        for kind, doc in seeded.documents.items():
            print(f"{kind}\t{doc}")
        print(f"template\t{seeded.template}")
        print(f"workflow\t{seeded.instance}")
        return 0

    return _with_db(job)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coedit", description="Real-time collaboration server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate the schema, then serve HTTP and /ws")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default=os.environ.get("COEDIT_LOG_LEVEL", "info"))
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="bring the schema up to date and exit")
    migrate.set_defaults(run=_migrate)

    token = commands.add_parser("token", help="mint a token signed with COEDIT_SECRET")
    token.add_argument("--user", required=True)
    token.add_argument("--name")
    token.add_argument("--role", action="append", required=True,
                       help="admin, analyst, reviewer, viewer or bot; repeat for several")
    token.add_argument("--tenant", default="default")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until it expires")
    token.set_defaults(run=_token)

    archive = commands.add_parser(
        "archive", help="move whole months of old events to compressed JSON Lines files")
    archive.add_argument("--older-than", type=_duration,
                         help="archive months that ended this long ago, e.g. 90d")
    archive.add_argument("--dir", default=os.environ.get("COEDIT_ARCHIVE_DIR", "archive"),
                         help="where the files go (COEDIT_ARCHIVE_DIR, default ./archive)")
    archive.add_argument("--purge", action="store_true",
                         help="delete the archived events from the database once verified")
    archive.add_argument(
        "--history-older-than", type=_history_retention,
        help="also cut each document's revisions and snapshots at the version current this "
             "long ago, e.g. 180d (COEDIT_HISTORY_RETENTION; default: keep all)")
    archive.set_defaults(run=_archive)

    verify = commands.add_parser("verify", help="check hash chains over live and archived events")
    verify.add_argument("--tenant")
    verify.set_defaults(run=_verify)

    replay = commands.add_parser("replay", help="print a document as it was at a version")
    replay.add_argument("doc")
    replay.add_argument("--version", type=int, required=True)
    replay.add_argument("--state-only", action="store_true", help="print only the state")
    replay.set_defaults(run=_replay)

    tail = commands.add_parser("tail", help="follow the audit events of a tenant")
    tail.add_argument("--tenant", default="default")
    tail.add_argument("--kind", action="append")
    tail.add_argument("--type", action="append", help="an event type or a prefix like lock.*")
    tail.add_argument("--doc", action="append")
    tail.add_argument("--actor", action="append")
    tail.add_argument("--since", type=int, help="start after this seq (default: now)")
    tail.add_argument("--interval", type=float, default=0.25, help="seconds between polls")
    tail.add_argument("--json", action="store_true", help="one JSON event per line")
    tail.set_defaults(run=_tail)

    demo = commands.add_parser(
        "seed-demo", help="a demo idea with a memo, a valuation and a committee workflow")
    demo.add_argument("--tenant", default="default")
    demo.set_defaults(run=_seed_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Operator commands print results on stdout; only the server logs at INFO.
    level = logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
