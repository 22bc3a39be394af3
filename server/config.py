"""Configuration from the environment, checked once at start-up.

A wrong value stops the process with a message that names the variable to fix; nothing reads
the environment after this module has built :class:`Settings`.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from channels.redis_client import is_cluster_url, parse_cluster_url

__all__ = ["DEV_SECRET", "ConfigError", "Settings"]

# Dev mode needs *some* key so every node and restart agrees on tokens; anyone may log in as
# anyone in dev mode anyway, so this key protects nothing and is never used with a secret set.
DEV_SECRET = "coedit-dev-mode-insecure-key-do-not-use-in-production"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ConfigError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


def _database_url(raw: str | None) -> str:
    if raw is None or raw.strip() == "":
        return "sqlite+aiosqlite:///./coedit.db"
    raw = raw.strip()
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError("COEDIT_DATABASE_URL is not a database URL (it is not repeated "
                          "here: it may hold a password)") from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.drivername != "postgresql+asyncpg":
            url = url.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        if url.drivername != "sqlite+aiosqlite":
            url = url.set(drivername="sqlite+aiosqlite")
    else:
        raise ConfigError(
            "COEDIT_DATABASE_URL must be postgresql+asyncpg://... or sqlite+aiosqlite:///..., "
            f"got {backend!r}"
        )
    return url.render_as_string(hide_password=False)


def _origins(raw: str | None) -> frozenset[str]:
    """``COEDIT_ALLOWED_ORIGINS``: ``scheme://host[:port]`` entries, comma separated."""
    origins = set()
    for item in (raw or "").split(","):
        origin = item.strip().rstrip("/").lower()
        if not origin:
            continue
        scheme, sep, host = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not host or "/" in host:
            raise ConfigError("COEDIT_ALLOWED_ORIGINS takes origins such as "
                              f"https://app.example.com, comma separated; got {item.strip()!r}")
        origins.add(origin)
    return frozenset(origins)


def _scheme_only(url: str) -> str:
    """What a refusal may repeat of a URL: its scheme, never the credentials after it."""
    scheme, found, _ = url.partition("://")
    return f"{scheme}://..." if found else "a value without a scheme"


def _redis_url(raw: str | None) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if is_cluster_url(raw):
        try:
            parse_cluster_url(raw)
        except ValueError as exc:
            raise ConfigError(f"COEDIT_REDIS_URL: {exc}") from None
        return raw
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            "COEDIT_REDIS_URL must start with redis://, rediss://, unix:// or (a Redis "
            f"Cluster) redis+cluster:// or rediss+cluster://, got {_scheme_only(raw)}"
        )
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///./coedit.db"
    redis_url: str | None = None
    secret: str = DEV_SECRET
    dev_auth: bool = True
    heartbeat_ms: int = 10_000
    redact: frozenset[str] = frozenset()
    # Pages of these origins may open a WebSocket that a session cookie authenticates; the
    # server's own origin always may.
    allowed_origins: frozenset[str] = frozenset()
    snapshot_every: int = 50
    max_frame_bytes: int = 1024 * 1024
    max_state_bytes: int = 1024 * 1024
    # Request line plus headers of one HTTP request (cookies and query strings included).
    max_head_bytes: int = 32 * 1024
    send_queue: int = 1024
    rate_per_second: int = 1000
    # HTTP requests a minute per caller (token user, else client address), cluster-wide;
    # 0: no limit.
    http_rate_limit: int = 1200
    notifications: bool = True
    # Live notifications one addressee is sent a minute; the rest are stored only. 0: all.
    notifications_per_minute: int = 30
    db_pool: int = 20
    write_batch: int = 64
    writes_in_flight: int = 1
    # Off only to measure what keeping the search index current costs the writes (bench/):
    # search then misses whatever such a node wrote.
    search_index: bool = True
    key_prefix: str = "coedit"
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        secret = (env.get("COEDIT_SECRET") or "").strip()
        auth = (env.get("COEDIT_AUTH") or "").strip().lower()
        if auth not in ("", "dev", "token"):
            raise ConfigError(f"COEDIT_AUTH must be 'dev' or 'token', got {auth!r}")
        if auth == "token" and not secret:
            raise ConfigError("COEDIT_AUTH=token needs COEDIT_SECRET (the HS256 key for tokens)")
        dev_auth = auth == "dev" or (auth == "" and not secret)
        redact = frozenset(
            name.strip() for name in (env.get("COEDIT_REDACT") or "").split(",") if name.strip()
        )
        prefix = (env.get("COEDIT_KEY_PREFIX") or "coedit").strip()
        if not prefix or any(c.isspace() for c in prefix):
            raise ConfigError("COEDIT_KEY_PREFIX must be a non-empty word without spaces")
        node_id = (env.get("COEDIT_NODE_ID") or "").strip()
        extra = {"node_id": node_id} if node_id else {}
        return cls(
            database_url=_database_url(env.get("COEDIT_DATABASE_URL")),
            redis_url=_redis_url(env.get("COEDIT_REDIS_URL")),
            secret=secret or DEV_SECRET,
            dev_auth=dev_auth,
            heartbeat_ms=_int(env, "COEDIT_HEARTBEAT_MS", 10_000, minimum=50, maximum=3_600_000),
            redact=redact,
            allowed_origins=_origins(env.get("COEDIT_ALLOWED_ORIGINS")),
            snapshot_every=_int(env, "COEDIT_SNAPSHOT_EVERY", 50, minimum=1, maximum=1_000_000),
            max_frame_bytes=_int(env, "COEDIT_MAX_FRAME_BYTES", 1024 * 1024,
                                 minimum=1024, maximum=64 * 1024 * 1024),
            max_state_bytes=_int(env, "COEDIT_MAX_STATE_BYTES", 1024 * 1024,
                                 minimum=1024, maximum=64 * 1024 * 1024),
            max_head_bytes=_int(env, "COEDIT_MAX_HEADER_BYTES", 32 * 1024,
                                minimum=4 * 1024, maximum=1024 * 1024),
            send_queue=_int(env, "COEDIT_SEND_QUEUE", 1024, minimum=8, maximum=1_000_000),
            rate_per_second=_int(env, "COEDIT_RATE_LIMIT", 1000, minimum=0, maximum=1_000_000),
            http_rate_limit=_int(env, "COEDIT_HTTP_RATE_LIMIT", 1200, minimum=0,
                                 maximum=10_000_000),
            notifications=_switch(env, "COEDIT_NOTIFICATIONS", True),
            notifications_per_minute=_int(env, "COEDIT_NOTIFICATIONS_PER_MINUTE", 30,
                                          minimum=0, maximum=1_000_000),
            db_pool=_int(env, "COEDIT_DB_POOL", 20, minimum=1, maximum=1000),
            write_batch=_int(env, "COEDIT_WRITE_BATCH", 64, minimum=1, maximum=1000),
            writes_in_flight=_int(env, "COEDIT_WRITES_IN_FLIGHT", 1, minimum=1, maximum=16),
            key_prefix=prefix,
            search_index=_switch(env, "COEDIT_SEARCH_INDEX", True),
            **extra,
        )
