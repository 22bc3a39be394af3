"""The ``coedit`` command: serve, migrate, token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from persistence.errors import CoeditError
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
