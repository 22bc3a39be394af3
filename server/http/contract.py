"""Declarations of what each HTTP operation accepts, used twice: to check a request before its
handler runs, and to write the operation into ``/openapi.json``.

Written once, so the description cannot drift from what the server enforces: a request the
description calls valid is one the edge lets through, and one it calls invalid is refused with
``bad_request`` naming the first fault. The stores behind the edge keep their own checks (the
WebSocket edge reaches them too, and some rules, such as a template's step order or a patch's
applicability, need state); what is declared here is the shape: types, bounds, patterns,
required fields.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persistence.audit import AuditContext
from persistence.errors import BadRequest, TooLarge
from server.auth import Identity
from server.http.endpoint import endpoint, json_body
from server.service import Coedit
from server.wire import MAX_INT

__all__ = [
    "FLAG",
    "NON_BLANK",
    "NO_NUL",
    "Answer",
    "Args",
    "Body",
    "Operation",
    "Param",
    "Prop",
    "Value",
    "operation",
    "public",
    "ref",
    "text",
]

JsonSchema = dict[str, Any]
Args = dict[str, Any]
"""A request's checked values: each declared parameter by name (None when absent), and the
checked JSON body as ``body``."""
NO_NUL = "^[^\\x00]*$"
"""Any text without the NUL character, which PostgreSQL cannot store in text."""
NON_BLANK = ("^[^\\x00]*[^\\x00\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\u0085\\u00a0\\u1680"
             "\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00]*$")
"""Text with something other than white space in it (as ``str.strip`` sees white space), and
no NUL."""

ArgsHandler = Callable[[Request, Identity, AuditContext, Coedit, Args], Awaitable[Response]]


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,),
}
_TYPE_WORDS = {"string": "text", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "object": "an object", "array": "a list"}


@dataclass(frozen=True)
class Value:
    """What one value may be: a JSON type and its bounds."""

    type: str
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    nullable: bool = False
    items: Value | None = None
    min_items: int | None = None
    max_items: int | None = None
    shape: Body | None = None
    """The fields of an object value."""
    format: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        # Versions, seqs and ttls are 64-bit columns: a larger integer must be refused here,
        # where PostgreSQL's driver would fail on it as an internal error.
        if self.type == "integer" and self.maximum is None:
            object.__setattr__(self, "maximum", MAX_INT)

    def schema(self) -> JsonSchema:
        schema: JsonSchema = (self.shape.schema() if self.shape is not None
                              else {"type": self.type})
        bounds: dict[str, Any] = {"minLength": self.min_length, "maxLength": self.max_length,
                  "minimum": self.minimum, "maximum": self.maximum, "pattern": self.pattern,
                  "minItems": self.min_items, "maxItems": self.max_items, "format": self.format}
        schema.update({key: value for key, value in bounds.items() if value is not None})
        if self.type == "string" and self.pattern is None and self.enum is None:
            schema["pattern"] = NO_NUL
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.items is not None:
            schema["items"] = self.items.schema()
        if self.description:
            schema["description"] = self.description
        if self.nullable:
            if self.enum is not None:
                schema["enum"] = [*self.enum, None]
            schema["type"] = [schema["type"], "null"]
        return schema

    def check(self, value: Any, where: str) -> Any:
        """``value`` if it fits; else ``bad_request`` naming ``where``."""
        if value is None and self.nullable:
            return None
        kinds = _JSON_TYPES[self.type]
        if not isinstance(value, kinds) or (self.type != "boolean" and isinstance(value, bool)):
            raise BadRequest(f"{where} must be {self._words()}")
        if isinstance(value, str):
            self._check_text(value, where)
        elif isinstance(value, int | float):
            if ((self.minimum is not None and value < self.minimum)
                    or (self.maximum is not None and value > self.maximum)):
                raise BadRequest(f"{where} must be {self._words()}")
        elif isinstance(value, list):
            if ((self.min_items is not None and len(value) < self.min_items)
                    or (self.max_items is not None and len(value) > self.max_items)):
                raise BadRequest(f"{where} must be {self._words()}")
            if self.items is not None:
                value = [self.items.check(item, f"{where}[{index}]")
                         for index, item in enumerate(value)]
        elif isinstance(value, dict) and self.shape is not None:
            value = self.shape.check(value, where)
        return value

    def _check_text(self, value: str, where: str) -> None:
        if "\x00" in value:
            raise BadRequest(f"{where} must not hold the NUL character")
        if self.enum is not None and value not in self.enum:
            raise BadRequest(f"{where} must be one of {', '.join(self.enum)}")
        if ((self.min_length is not None and len(value) < self.min_length)
                or (self.max_length is not None and len(value) > self.max_length)):
            raise BadRequest(f"{where} must be {self._words()}")
        if self.pattern is not None and not re.search(self.pattern, value):
            raise BadRequest(f"{where} must match {self.pattern.strip('^$')}"
                             if self.pattern != NON_BLANK else f"{where} must not be blank")

    def _words(self) -> str:
        words = _TYPE_WORDS[self.type]
        if self.type == "string" and (self.min_length or self.max_length is not None):
            words = f"text of {self.min_length or 0} to {self.max_length} characters" \
                if self.max_length is not None else f"text of at least {self.min_length} " \
                "characters"
        elif self.type in ("integer", "number"):
            if self.minimum is not None and self.maximum is not None:
                words += f" from {self.minimum} to {self.maximum}"
            elif self.minimum is not None:
                words += f" of at least {self.minimum}"
            elif self.maximum is not None:
                words += f" of at most {self.maximum}"
        elif self.type == "array" and (self.min_items or self.max_items is not None):
            words += f" of {self.min_items or 0} to {self.max_items} items" \
                if self.max_items is not None else f" of at least {self.min_items} items"
        if self.nullable:
            words += " or null"
        return words


FLAG = Value("string", enum=("true", "false"))


def text(min_length: int | None = None, max_length: int | None = None, *,
         pattern: str | None = None, description: str = "") -> Value:
    return Value("string", min_length=min_length, max_length=max_length, pattern=pattern,
                 description=description)


@dataclass(frozen=True)
class Prop:
    """A field of a JSON object."""

    name: str
    value: Value
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A JSON object: its fields, and whether others are refused."""

    props: tuple[Prop, ...]
    closed: bool = True
    required: bool = True
    """For a request body: whether the request must carry one."""
    message: str = ""
    """What the answer says when the body is not an object at all."""
    min_properties: int = 0

    def schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "object", "properties": {
            prop.name: prop.value.schema() for prop in self.props}}
        required = [prop.name for prop in self.props if prop.required]
        if required:
            schema["required"] = required
        if self.closed:
            schema["additionalProperties"] = False
        if self.min_properties:
            schema["minProperties"] = self.min_properties
        return schema

    def check(self, value: Any, where: str = "body") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise BadRequest(self.message or f"{where} must be an object")
        prefix = "" if where == "body" else f"{where}."
        if self.closed:
            unknown = set(value) - {prop.name for prop in self.props}
            if unknown:
                raise BadRequest(f"{where}: unknown fields {', '.join(sorted(unknown))}")
        if len(value) < self.min_properties:
            raise BadRequest(self.message or f"{where} needs at least {self.min_properties} "
                             "fields")
        for prop in self.props:
            if prop.name in value:
                prop.value.check(value[prop.name], f"{prefix}{prop.name}")
            elif prop.required:
                raise BadRequest(f"{where} needs the field {prop.name!r}"
                                 if not self.message else self.message)
        return value


@dataclass(frozen=True)
class Param:
    """A query, path or header parameter.

    Query values arrive as text: integers are parsed, and an empty value is the same as none
    (``?kind=`` lists every kind), which the description says by allowing the empty string
    where a pattern or length would otherwise refuse it.
    """

    name: str
    where: str
    value: Value = field(default_factory=lambda: Value("string"))
    required: bool = False
    description: str = ""

    def schema(self) -> JsonSchema:
        schema = self.value.schema()
        if self.where == "query" and not self.required and self.value.type == "string":
            if "pattern" in schema:
                schema["pattern"] = f"^(?:{schema['pattern'].strip('^$')})?$"
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], ""]
            schema.pop("minLength", None)
        return schema

    def openapi(self) -> JsonSchema:
        entry: JsonSchema = {"name": self.name, "in": self.where,
                             "required": self.required or self.where == "path",
                             "schema": self.schema()}
        if self.description:
            entry["description"] = self.description
        return entry

    def read(self, request: Request) -> Any:
        if self.where == "path":
            raw: str | None = request.path_params[self.name]
        elif self.where == "header":
            raw = request.headers.get(self.name)
        else:
            given = request.query_params.getlist(self.name)
            if self.value.type == "array":
                items = [v for v in given if v != ""]
                return self.value.check(items, self.name) if items else None
            if len(given) > 1:
                raise BadRequest(f"give the query parameter {self.name!r} once")
            raw = given[0] if given else None
        if raw is None or (raw == "" and self.where == "query" and not self.required):
            if self.required:
                raise BadRequest(f"give the query parameter {self.name!r}")
            return None
        name = f"query parameter {self.name!r}" if self.where == "query" else self.name
        if self.value.type == "integer":
            try:
                number = int(raw)
            except ValueError:
                raise BadRequest(f"{name} must be an integer") from None
            return self.value.check(number, name)
        return self.value.check(raw, self.name)


@dataclass(frozen=True)
class Answer:
    """One status an operation answers with, and what its body is."""

    status: int
    description: str
    schema: JsonSchema | None = None
    media_type: str = "application/json"
    headers: tuple[str, ...] = ()

    def openapi(self) -> JsonSchema:
        answer: JsonSchema = {"description": self.description}
        if self.schema is not None:
            answer["content"] = {self.media_type: {"schema": self.schema}}
        if self.headers:
            answer["headers"] = {name: {"schema": {"type": "string"}} for name in self.headers}
        return answer


_ERROR_WORDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden",
                404: "not_found", 405: "a method the path does not have",
                409: "conflict or invalid_transition (the body names the current state)",
                413: "too_large", 423: "locked", 428: "precondition_required",
                429: "rate_limited: retry_after_ms, and a Retry-After header",
                503: "unavailable"}
COMMON_ERRORS = (400, 401, 429, 503)
"""What any authenticated operation may answer: a bad request, no valid token, a caller past
its rate limit, storage not answering."""


@dataclass(frozen=True)
class Operation:
    """One method of one path: what it accepts, what it answers, and the handler between."""

    method: str
    path: str
    summary: str
    handler: Callable[[Request], Awaitable[Response]]
    params: tuple[Param, ...] = ()
    body: Body | Value | None = None
    answers: tuple[Answer, ...] = ()
    errors: tuple[int, ...] = COMMON_ERRORS
    public: bool = False
    """No token needed (health, metrics, the description itself, dev login)."""

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])

    def openapi(self) -> JsonSchema:
        description: JsonSchema = {"summary": self.summary,
                                   "operationId": f"{self.method.lower()}_{self.handler.__name__}"}
        if self.params:
            description["parameters"] = [param.openapi() for param in self.params]
        if self.body is not None:
            required = self.body.required if isinstance(self.body, Body) else True
            description["requestBody"] = {"required": required, "content": {
                "application/json": {"schema": self.body.schema()}}}
        responses = {str(answer.status): answer.openapi() for answer in self.answers}
        for status in sorted(self.errors):
            responses.setdefault(str(status), {"description": _ERROR_WORDS[status],
                                               "content": {"application/json": {
                                                   "schema": ref("Error")}}})
        description["responses"] = responses
        if self.public:
            description["security"] = []
        return description


async def read_args(request: Request, coedit: Coedit, params: Sequence[Param],
                    body: Body | Value | None) -> Args:
    """The request's declared values, checked; ``bad_request`` at the first that does not fit."""
    # Headers are described, not read here: their handlers parse them, as their refusals
    # have codes of their own (a PATCH without If-Match is 428).
    args: Args = {param.name: param.read(request) for param in params
                  if param.where != "header"}
    if body is not None:
        required = body.required if isinstance(body, Body) else True
        if not required and (request.headers.get("content-length") in (None, "0")
                             and "transfer-encoding" not in request.headers):
            args["body"] = None
        else:
            args["body"] = body.check(await json_body(request, coedit), "body")
    return args


def public(method: str, path: str, summary: str, *, answers: Sequence[Answer],
           errors: Sequence[int] = (), body: Body | None = None,
           ) -> Callable[[Callable[[Request], Awaitable[Response]]], Operation]:
    """Declare an operation that needs no token; its handler reads the request itself."""

    def declare(handler: Callable[[Request], Awaitable[Response]]) -> Operation:
        return Operation(method, path, summary, handler, (), body, tuple(answers),
                         tuple(errors), public=True)

    return declare


def operation(method: str, path: str, summary: str, *, params: Sequence[Param] = (),
              body: Body | Value | None = None, answers: Sequence[Answer] = (),
              errors: Sequence[int] = ()) -> Callable[[ArgsHandler], Operation]:
    """Declare an authenticated operation around its handler, which gets the checked
    :data:`Args` after the caller is known (so an unauthenticated request is 401 whatever
    it carries)."""

    def declare(handler: ArgsHandler) -> Operation:
        @functools.wraps(handler)
        async def checked(request: Request, identity: Identity, ctx: AuditContext,
                          coedit: Coedit) -> Response:
            try:
                args = await read_args(request, coedit, params, body)
            except (BadRequest, TooLarge):
                # Existence first (docs/protocol.md section 2): bad input about a document
                # the caller cannot see answers not_found, as the handlers' own checks do.
                doc = request.path_params.get("doc")
                if isinstance(doc, str) and doc:
                    await coedit.store.kind_of(identity.tenant, doc)
                raise
            return await handler(request, identity, ctx, coedit, args)

        # A body may always be too large (413) and a header may still be refused (400).
        sized = (413,) if body is not None else ()
        return Operation(method, path, summary, endpoint(checked), tuple(params), body,
                         tuple(answers), tuple(sorted({*COMMON_ERRORS, *errors, *sized})))

    return declare
