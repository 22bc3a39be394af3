"""``coedit-client``: the remote command line, talking to a server by URL and token.

    coedit-client --url https://coedit.example tail --type 'patch.*' --json
    coedit-client replay DOC --version 12
    coedit-client verify --kind valuation
    coedit-client export DOC > trail.jsonl
    coedit-client bulk review.assign ids.txt --params '{"reviewer": {...}}' --dry-run

The URL comes from ``--url`` or ``COEDIT_URL``; the token from ``COEDIT_TOKEN`` or
``--token-file`` (``--token`` works too, but puts the token in the process list). Results go to
standard output as JSON (one object per line for streams); progress bars, when the ``cli``
extra (tqdm) is installed, appear only when standard error is a terminal, so a pipe gets
nothing but data. Exit status: 0 done, 1 something checked was found wrong (a broken chain,
failed bulk items), 2 the command could not run.

The server's own ``coedit`` command (serve, migrate, token, archive) works on the database;
this one never needs more than what any API client has.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from coedit_client.connection import connect
from coedit_client.errors import CoeditError
from coedit_client.http import Api
from coedit_client.http.bulk import MAX_BULK_IDS

__all__ = ["build_parser", "main"]


class Progress:
    """A tqdm bar on a terminal; nothing at all otherwise (or without tqdm)."""

    def __init__(self, *, total: int | None, unit: str, enabled: bool) -> None:
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit=unit, file=sys.stderr, leave=False)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _emit(out: IO[str], value: Any) -> None:
    out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()


def _describe(event: dict[str, Any]) -> str:
    actor = event.get("actor") or {}
    where = f" {event['doc']} v{event['version']}" if event.get("doc") else ""
    return (f"{event.get('seq'):>8} {event.get('ts', '')} {event.get('type', ''):<22}"
            f"{where} by {actor.get('name') or actor.get('id', '?')}")


async def _tail(args: argparse.Namespace, url: str, token: str | None) -> int:
    filters: dict[str, Any] = {"types": args.type, "kinds": args.kind, "docs": args.doc,
                               "actors": args.actor}
    seen = 0
    last: int | None = args.since
    try:
        if args.sse:
            async with Api(url, token=token) as api:
                async for event in api.events.follow(since=args.since, **filters):
                    last = event["seq"]
                    seen += 1
                    print(json.dumps(event) if args.json else _describe(event), flush=True)
                    if args.count and seen >= args.count:
                        break
        else:
            async with connect(url, token=token) as client, \
                    client.events(since=args.since, **filters) as stream:
                async for event in stream:
                    last = event["seq"]
                    seen += 1
                    print(json.dumps(event) if args.json else _describe(event), flush=True)
                    if args.count and seen >= args.count:
                        break
    except (asyncio.CancelledError, KeyboardInterrupt):
        pass
    finally:
        if last is not None and not args.json:
            print(f"# resume with --since {last}", file=sys.stderr)
    return 0


async def _replay(args: argparse.Namespace, api: Api) -> int:
    document = await api.documents.get(args.doc, version=args.version, at=args.at)
    _emit(sys.stdout, document["state"] if args.state_only else document)
    return 0


async def _documents_to_check(args: argparse.Namespace, api: Api) -> list[str]:
    if args.doc:
        return list(args.doc)
    return [d["id"] async for d in api.documents.iterate(kind=args.kind)]


async def _verify(args: argparse.Namespace, api: Api) -> int:
    docs = await _documents_to_check(args, api)
    progress = Progress(total=len(docs), unit="doc", enabled=not args.quiet)
    broken = 0
    try:
        for doc in docs:
            result = await api.documents.verify(doc)
            if not result.get("ok"):
                broken += 1
            _emit(sys.stdout, {"doc": doc, **result})
            progress.update()
    finally:
        progress.close()
    return 1 if broken else 0


async def _export(args: argparse.Namespace, api: Api) -> int:
    document = await api.documents.get(args.doc)
    progress = Progress(total=None, unit="event", enabled=not args.quiet)
    out: IO[str] = args.out_file or sys.stdout
    try:
        async for event in api.documents.iterate_history(document["id"], since=args.since):
            _emit(out, event)
            progress.update()
    finally:
        progress.close()
    return 0


def _read_ids(path: str) -> list[str]:
    """Ids from a file: one per line (blank lines and ``#`` comments skipped), a JSON list,
    or JSON Lines of objects with an ``id``."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    stripped = text.strip()
    if stripped.startswith("["):
        values = json.loads(stripped)
        return [str(v["id"] if isinstance(v, dict) else v) for v in values]
    ids = []
    for line in stripped.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        ids.append(str(json.loads(line)["id"]) if line.startswith("{") else line)
    return ids


def _chunks(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


async def _bulk(args: argparse.Namespace, api: Api) -> int:
    """PROTOCOL.md section 15, in chunks of at most the server's 1,000 ids."""
    ids = _read_ids(args.file)
    params = json.loads(args.params) if args.params else {}
    if not isinstance(params, dict):
        raise SystemExit("--params must be a JSON object")
    progress = Progress(total=len(ids), unit="item", enabled=not args.quiet)
    failed = 0
    try:
        for chunk in _chunks(ids, args.chunk):
            result = await api.bulk.run(args.operation, chunk, params, dry_run=args.dry_run,
                                        all_or_nothing=not args.partial)
            failed += int(result.get("failed") or 0)
            _emit(sys.stdout, result)
            progress.update(len(chunk))
    finally:
        progress.close()
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coedit-client", description="Talk to a coedit server by URL and token.")
    parser.add_argument("--url", default=os.environ.get("COEDIT_URL"),
                        help="the server's base URL (default: $COEDIT_URL)")
    parser.add_argument("--token", help="a token (prefer $COEDIT_TOKEN or --token-file)")
    parser.add_argument("--token-file", help="a file holding the token")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    tail = commands.add_parser("tail", help="follow the tenant's audit events")
    tail.add_argument("--type", action="append", help="an event type or a prefix like lock.*")
    tail.add_argument("--kind", action="append")
    tail.add_argument("--doc", action="append")
    tail.add_argument("--actor", action="append")
    tail.add_argument("--since", type=int, help="start after this seq (default: from now)")
    tail.add_argument("--json", action="store_true", help="one JSON event per line")
    tail.add_argument("--count", type=int, help="stop after this many events")
    tail.add_argument("--sse", action="store_true",
                      help="use Server-Sent Events instead of a WebSocket")

    replay = commands.add_parser("replay", help="a document as it was at a version or time")
    replay.add_argument("doc")
    when = replay.add_mutually_exclusive_group(required=True)
    when.add_argument("--version", type=int)
    when.add_argument("--at", help="an ISO 8601 time")
    replay.add_argument("--state-only", action="store_true", help="print only the state")

    verify = commands.add_parser("verify", help="check documents' hash chains")
    verify.add_argument("doc", nargs="*", help="documents (default: every one, or --kind)")
    verify.add_argument("--kind")

    export = commands.add_parser("export", help="a document's audit trail as JSON Lines")
    export.add_argument("doc")
    export.add_argument("--since", type=int, help="only events after this seq")
    export.add_argument("--output", "-o", help="a file instead of standard output")

    bulk = commands.add_parser("bulk", help="one operation over many ids (from a file)")
    bulk.add_argument("operation", help="review.assign, review.transition, workflow.step, "
                                        "document.archive")
    bulk.add_argument("file", help="ids, one per line (or a JSON list, or '-' for stdin)")
    bulk.add_argument("--params", help="the operation's parameters as a JSON object")
    bulk.add_argument("--dry-run", action="store_true", help="check every item, change nothing")
    bulk.add_argument("--partial", action="store_true",
                      help="apply the items that pass (default: all or nothing)")
    bulk.add_argument("--chunk", type=int, default=MAX_BULK_IDS,
                      help=f"ids per request (at most {MAX_BULK_IDS})")
    return parser


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip()
    token: str | None = args.token or os.environ.get("COEDIT_TOKEN")
    return token


async def _run(args: argparse.Namespace) -> int:
    url: str = args.url
    token = _token(args)
    if args.command == "tail":
        return await _tail(args, url, token)
    jobs = {"replay": _replay, "verify": _verify, "export": _export, "bulk": _bulk}
    async with Api(url, token=token) as api:
        return await jobs[args.command](args, api)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.url:
        print("coedit-client: give --url or set COEDIT_URL", file=sys.stderr)
        return 2
    if getattr(args, "chunk", 1) < 1 or getattr(args, "chunk", 1) > MAX_BULK_IDS:
        print(f"coedit-client: --chunk must be 1 to {MAX_BULK_IDS}", file=sys.stderr)
        return 2
    try:
        with contextlib.ExitStack() as stack:
            args.out_file = None
            if getattr(args, "output", None):  # opened here: the async code never blocks
                args.out_file = stack.enter_context(
                    Path(args.output).open("w", encoding="utf-8"))
            return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except CoeditError as exc:
        print(f"coedit-client: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"coedit-client: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
