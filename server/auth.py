"""Who is calling: HS256 tokens, dev login, the anonymous viewer, and what each role may do.

Tenancy is part of the identity: every store call below the edge takes ``identity.tenant``,
so a document of another tenant is never found, let alone shown.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jwt

from persistence.audit import Actor
from persistence.errors import BadRequest, Unauthorized

__all__ = [
    "ANON_COOKIE",
    "ROLES",
    "SESSION_COOKIE",
    "Action",
    "Identity",
    "TokenIssuer",
    "allowed",
]

ROLES = ("admin", "analyst", "reviewer", "viewer", "bot")
SESSION_COOKIE = "coedit_session"
ANON_COOKIE = "coedit_anon"
DEFAULT_TENANT = "default"
MAX_NAME = 128
# PROTOCOL.md section 2: a token lacking any of these is not valid.
REQUIRED_CLAIMS = ("sub", "name", "roles", "tenant", "exp")


class Action(Enum):
    READ = "read"
    WRITE = "write"  # patch, lock, create documents
    REVIEW = "review"
    COMMENT = "comment"
    ADMIN = "admin"  # steal a lock, archive, reopen


_GRANTS: dict[str, frozenset[Action]] = {
    "viewer": frozenset({Action.READ}),
    "reviewer": frozenset({Action.READ, Action.REVIEW, Action.COMMENT}),
    "analyst": frozenset({Action.READ, Action.WRITE, Action.COMMENT}),
    "bot": frozenset({Action.READ, Action.WRITE, Action.COMMENT}),
    "admin": frozenset(Action),
}


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    name: str
    roles: tuple[str, ...]
    tenant: str
    exp: float | None = None
    anonymous: bool = False

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.name, "bot" if "bot" in self.roles else "user")

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "roles": list(self.roles),
                "tenant": self.tenant}


def allowed(identity: Identity, action: Action) -> bool:
    return any(action in _GRANTS.get(role, frozenset()) for role in identity.roles)


def _check_text(value: Any, field: str, *, maximum: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > maximum:
        raise BadRequest(f"{field} must be a non-empty string of at most {maximum} characters")
    return value.strip()


class TokenIssuer:
    """Mints and checks tokens, and signs the anonymous viewer's cookie, with one key."""

    def __init__(self, secret: str, *, dev_auth: bool) -> None:
        self._secret = secret
        self.dev_auth = dev_auth

    def mint(
        self, *, user: str, name: str, roles: list[str], tenant: str,
        ttl_seconds: int = 12 * 3600,
    ) -> str:
        for role in roles:
            if role not in ROLES:
                raise BadRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not roles:
            raise BadRequest("a token needs at least one role")
        claims = {
            "sub": _check_text(user, "user"),
            "name": _check_text(name, "name"),
            "roles": roles,
            "tenant": _check_text(tenant, "tenant"),
            "iat": int(time.time()),
            "exp": int(time.time()) + ttl_seconds,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short keys are the operator's choice, said at start
            return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> Identity:
        """The identity in ``token``; ``unauthorized`` if it is forged, expired or incomplete.

        Only HS256 is accepted, whatever the token's header says (``none``, another HMAC, an
        asymmetric algorithm whose "public key" would be our secret). Every claim of the
        contract is required: a token without ``tenant`` must not land in a default tenant,
        and one without ``exp`` would be valid forever.
        """
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                claims = jwt.decode(token, self._secret, algorithms=["HS256"],
                                    options={"require": list(REQUIRED_CLAIMS)})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        roles = claims["roles"]
        if isinstance(roles, str):
            roles = [roles]
        if (
            not all(isinstance(claims[name], str) and claims[name].strip()
                    for name in ("sub", "name", "tenant"))
            or not isinstance(roles, list)
            or not roles
            or any(role not in ROLES for role in roles)
        ):
            raise Unauthorized("token claims must hold sub, name, roles and tenant")
        return Identity(
            id=claims["sub"],
            name=claims["name"],
            roles=tuple(roles),
            tenant=claims["tenant"],
            exp=float(claims["exp"]),
        )

    # -- dev mode -------------------------------------------------------------------------

    def dev_login(self, body: Any) -> tuple[str, Identity]:
        """``POST /api/dev/login``: a token for whoever asks (dev mode only)."""
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object with name, role and tenant")
        name = _check_text(body.get("name"), "name")
        role = body.get("role", "analyst")
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}")
        tenant = _check_text(body.get("tenant", DEFAULT_TENANT), "tenant")
        # The same name in the same tenant is the same person across logins.
        user = str(uuid.uuid5(uuid.NAMESPACE_URL, f"coedit-dev:{tenant}:{name}"))
        token = self.mint(user=user, name=name, roles=[role], tenant=tenant)
        return token, self.verify(token)

    def anonymous(self, cookie: str | None) -> tuple[Identity, str | None]:
        """The anonymous viewer of a browser; returns a new cookie value when it needs one."""
        anon_id = self._unsign(cookie) if cookie else None
        fresh = None
        if anon_id is None:
            anon_id = str(uuid.uuid4())
            fresh = self._sign(anon_id)
        identity = Identity(id=anon_id, name=f"Anonymous {anon_id[:4]}", roles=("viewer",),
                            tenant=DEFAULT_TENANT, anonymous=True)
        return identity, fresh

    def _sign(self, value: str) -> str:
        mac = hmac.new(self._secret.encode(), f"anon:{value}".encode(), hashlib.sha256)
        return f"{value}.{mac.hexdigest()}"

    def _unsign(self, cookie: str) -> str | None:
        value, _, _mac = cookie.rpartition(".")
        if not value or not hmac.compare_digest(self._sign(value), cookie):
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None

    def identify(
        self, *, authorization: str | None, cookies: Mapping[str, str],
        query_token: str | None = None,
    ) -> tuple[Identity, str | None]:
        """Resolve a caller: bearer header, then session cookie, then ``?token=``, then (dev
        mode only) the anonymous viewer. Returns the identity and a new anonymous cookie."""
        token = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized("Authorization must be 'Bearer <token>'")
            token = value.strip()
        elif cookies.get(SESSION_COOKIE):
            token = cookies[SESSION_COOKIE]
        elif query_token:
            token = query_token
        if token is not None:
            return self.verify(token), None
        if self.dev_auth:
            return self.anonymous(cookies.get(ANON_COOKIE))
        raise Unauthorized("a token is required")
