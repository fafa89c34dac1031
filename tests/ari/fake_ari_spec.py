"""The ARI 10 Swagger 1.2 spec (``../shared/asterisk/ari-api-docs``) as a request validator.

The fake ARI server routes and validates every request with :class:`AriSpec` before any handler
runs, so a client can only pass its tests by sending what a real Asterisk 22 accepts:

- unknown path: 404 ``Resource not found`` (res_ari.c); path ending in ``/``: 404 with a hint;
- known path, method not in the spec: 405 ``Invalid method`` with an ``Allow`` header;
- missing required parameter, value not in ``allowableValues``, out of a ``RANGE``, not of the
  ``dataType`` (int/long/boolean): 400. Asterisk itself only checks some of these (it runs
  ``atoi`` on integers); the fake is stricter so that client bugs surface in tests;
- parameters the operation does not declare: 400 when ``strict`` (Asterisk ignores them
  silently, which would hide a typo such as ``reason_cod=21``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

SPEC_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "asterisk" / "ari-api-docs"
"""``<repo>/../shared/asterisk/ari-api-docs``: the shared folder sits beside the repository."""

_INT = re.compile(r"-?\d+\Z")
_TRUE = {"yes", "true", "y", "t", "1", "on"}
_FALSE = {"no", "false", "n", "f", "0", "off"}
UNIVERSAL_PARAMS = frozenset({"api_key"})
"""Accepted by every operation (authentication), never declared in the spec."""

# Asterisk's own wording for missing parameters, where the resource code checks them.
_MISSING: dict[tuple[str, str], str] = {
    ("setChannelVar", "variable"): "Variable name is required",
    ("getChannelVar", "variable"): "Variable name is required",
    ("subscribe", "eventSource"): "Missing parameter eventSource",
    ("unsubscribe", "eventSource"): "Missing parameter eventSource",
    ("setChannelVars", "variables"): "Missing variables parameter",
    ("eventWebsocket", "app"): "Missing param 'app'",
}
# ... and for values it rejects (captured from Asterisk 22.10).
_INVALID: dict[tuple[str, str], str] = {
    ("hangup", "reason"): "Invalid reason for hangup reason provided",
}


@dataclass(frozen=True, slots=True)
class Param:
    """One operation parameter as declared in the spec."""

    name: str
    kind: str  # query | path | body
    required: bool
    data_type: str
    allow_multiple: bool
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation: ``resource`` (file stem), path template, HTTP method, ``nickname``."""

    resource: str
    path: str
    method: str
    nickname: str
    params: tuple[Param, ...]
    websocket: bool = False

    def param(self, name: str) -> Param | None:
        """The declared parameter ``name``, if any."""
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True, slots=True)
class RouteError:
    """Why a request matched no operation: status, Asterisk's message and extra headers."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """A matched operation and its decoded path variables."""

    operation: Operation
    path_vars: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Api:
    segments: tuple[str, ...]  # "{name}" marks a wildcard
    operations: dict[str, Operation]

    @property
    def wildcards(self) -> int:
        return sum(seg.startswith("{") for seg in self.segments)


def _param(raw: Mapping[str, Any]) -> Param:
    allowed = raw.get("allowableValues") or {}
    return Param(
        name=raw["name"],
        kind=raw["paramType"],
        required=bool(raw.get("required", False)),
        data_type=raw["dataType"],
        allow_multiple=bool(raw.get("allowMultiple", False)),
        allowed=tuple(allowed["values"]) if allowed.get("valueType") == "LIST" else None,
        minimum=allowed.get("min") if allowed.get("valueType") == "RANGE" else None,
        maximum=allowed.get("max") if allowed.get("valueType") == "RANGE" else None,
    )


class AriSpec:
    """Every operation of every resource file, matched segment by segment like res_ari.c."""

    def __init__(self, apis: list[_Api], api_version: str) -> None:
        self._apis = sorted(apis, key=lambda api: api.wildcards)  # literal segments win
        self.api_version = api_version

    def operations(self) -> list[Operation]:
        """Every operation of the spec."""
        return [op for api in self._apis for op in api.operations.values()]

    @classmethod
    def load(cls, directory: Path = SPEC_DIR) -> AriSpec:
        """Read ``resources.json`` and every resource file it lists."""
        listing = json.loads((directory / "resources.json").read_text())
        apis: list[_Api] = []
        for entry in listing["apis"]:
            stem = entry["path"].rsplit("/", 1)[1].split(".", 1)[0]
            resource = json.loads((directory / f"{stem}.json").read_text())
            for api in resource["apis"]:
                ops = {
                    op["httpMethod"]: Operation(
                        resource=stem,
                        path=api["path"],
                        method=op["httpMethod"],
                        nickname=op["nickname"],
                        params=tuple(_param(p) for p in op.get("parameters", [])),
                        websocket=op.get("upgrade") == "websocket",
                    )
                    for op in api["operations"]
                }
                apis.append(_Api(tuple(api["path"].strip("/").split("/")), ops))
        return cls(apis, listing["apiVersion"])

    def match(self, method: str, raw_path: str) -> Route | RouteError:
        """Route ``raw_path`` (relative to ``/ari``, still percent-encoded)."""
        if len(raw_path) > 1 and raw_path.endswith("/"):
            hint = raw_path.strip("/")
            return RouteError(404, f"ARI URLs do not end with a slash. Try /ari/{hint}")
        segments = [unquote(seg) for seg in raw_path.strip("/").split("/")]
        for api in self._apis:
            path_vars = _match_segments(api.segments, segments)
            if path_vars is None:
                continue
            operation = api.operations.get(method)
            if operation is None:
                allow = ", ".join(sorted(api.operations))
                return RouteError(405, "Invalid method", (("Allow", allow),))
            return Route(operation, path_vars)
        return RouteError(404, "Resource not found")

    def validate(
        self, operation: Operation, params: Mapping[str, str], body: object, *, strict: bool
    ) -> str | None:
        """Asterisk-style message for the first problem of the request, or None if it is valid."""
        if strict:
            declared = {p.name for p in operation.params} | UNIVERSAL_PARAMS
            unknown = sorted(set(params) - declared)
            if unknown:
                return f"Unknown parameter '{unknown[0]}' for {operation.nickname}"
        for param in operation.params:
            if param.kind == "query":
                problem = _check_query(operation, param, params.get(param.name))
            elif param.kind == "body" and param.required and body is None:
                problem = _MISSING.get((operation.nickname, param.name), f"Missing body '{param.name}'")
            else:
                problem = None
            if problem:
                return problem
        return None


def _match_segments(template: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    found: dict[str, str] = {}
    for want, got in zip(template, segments, strict=True):
        if want.startswith("{"):
            if not got:
                return None
            found[want[1:-1]] = got
        elif want != got:
            return None
    return found


def _check_query(operation: Operation, param: Param, value: str | None) -> str | None:
    if value is None:
        if not param.required:
            return None
        return _MISSING.get((operation.nickname, param.name), f"Missing required parameter '{param.name}'")
    values = value.split(",") if param.allow_multiple else [value]
    for item in values:
        problem = _check_value(param, item)
        if problem:
            return _INVALID.get((operation.nickname, param.name), problem)
    return None


def _check_value(param: Param, value: str) -> str | None:
    bad = f"Invalid value for parameter '{param.name}'"
    if param.data_type in ("int", "long"):
        if not _INT.match(value):
            return f"{bad}: expected {param.data_type}"
        number = int(value)
        if param.minimum is not None and number < param.minimum:
            return f"{bad}: below minimum {param.minimum:g}"
        if param.maximum is not None and number > param.maximum:
            return f"{bad}: above maximum {param.maximum:g}"
    elif param.data_type == "boolean" and value.lower() not in _TRUE | _FALSE:
        return f"{bad}: expected boolean"
    if param.allowed is not None and value not in param.allowed:
        return f"{bad}: not one of {', '.join(param.allowed)}"
    return None


def as_bool(value: str | None) -> bool:
    """Asterisk's ``ast_true``."""
    return value is not None and value.lower() in _TRUE
