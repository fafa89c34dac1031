"""REST over the events websocket in the fake ARI server, as Asterisk 20.14/21.9/22.4 and later do
it (res/ari/ari_websockets.c ``session_read``, res/ari/ari_websocket_requests.c).

Every text frame a client sends on an events websocket is a ``RESTRequest``. It is read as
Asterisk reads it (:func:`parse_request`: a frame that is not JSON, or lacks ``type``, ``uri`` or a
known ``method``, ... is answered 400 with Asterisk's texts), then goes through the same faults,
the same spec routing and validation and the same handlers as an HTTP request
(:meth:`HttpFront.invoke`: a ``DELETE`` of a channel emits the same events), without HTTP
authentication (the websocket is authenticated). The answer is a ``RESTResponse`` event, sent like
every event through the event filter of the socket's first application (Asterisk's
``session->app_name``): an application whose filter does not allow ``RESTResponse`` gets no answer.
Requests are handled one at a time per socket, in order, as Asterisk's websocket thread does;
a request for the events websocket itself gets no answer (``no_response``).

Answers are recorded in ``FakeAri.rest_responses`` (not among the events of ``FakeAri.sent``:
``RESTResponse`` is in no capture), requests in ``FakeAri.requests`` with ``via="websocket"``.
``FakeAri(rest_over_websocket=False)`` is an Asterisk before those versions: frames are read and
ignored, nothing is ever answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

from fake_ari_rest import Reply, error
from fake_ari_spec import RouteError
from fake_ari_world import Socket, ari_time

if TYPE_CHECKING:
    from fake_ari_http import HttpFront

METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""What ``ast_get_http_method_from_string`` knows; any other ``method`` is a 400."""
FORM = "application/x-www-form-urlencoded"
BAD = "Bad request"
"""The reason phrase of parse_rest_request_msg()'s 400s (the lower-case r is Asterisk's)."""


@dataclass(frozen=True, slots=True)
class WsRequest:
    """A ``RESTRequest`` as Asterisk read it."""

    transaction_id: str
    request_id: str
    method: str
    uri: str
    """Without the query string, still percent-encoded (``channels/1.2``)."""
    params: dict[str, str]
    """From the uri's query, ``query_strings`` and a form ``message_body``."""
    body: object
    """A JSON ``message_body``, decoded; None without one."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A frame answered 400 before any routing."""

    transaction_id: str
    request_id: str
    uri: str
    reason_phrase: str
    message: str | None
    """The answer's ``{"message": ...}``; None: no body (a frame that is not JSON)."""


def _text(obj: object, key: str) -> str:
    """``S_OR(ast_json_string_get(ast_json_object_get(obj, key)), "")``."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _pairs(value: object) -> list[tuple[str, str]] | None:
    """A ``query_strings`` array as (name, value) pairs; None if it is not one."""
    if not isinstance(value, list):
        return None
    pairs = [(_text(item, "name"), _text(item, "value")) for item in value]
    named = all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in value)
    return pairs if named and all(isinstance(item.get("value"), str) for item in value) else None


def parse_request(frame: str) -> WsRequest | Refused:
    """Read ``frame`` like ``session_read`` and ``parse_rest_request_msg`` (their checks, in order)."""
    try:
        obj: object = json.loads(frame)
    except ValueError:
        return Refused("", "", "", "Failed to parse request message JSON", None)
    tid, rid = _text(obj, "transaction_id"), _text(obj, "request_id")
    kind = _text(obj, "type")
    if not kind:
        return Refused(tid, rid, "", BAD, "No 'type' property.")
    if kind != "RESTRequest":
        return Refused(tid, rid, "", BAD, "Unknown request type.")
    full_uri = _text(obj, "uri")
    if not full_uri:
        return Refused(tid, rid, "", BAD, "Empty or missing 'uri' property.")
    uri, _, query = full_uri.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    method = _text(obj, "method")
    if method not in METHODS:
        return Refused(tid, rid, uri, BAD, "Unknown or missing 'method' property.")
    if isinstance(obj, dict) and "query_strings" in obj:
        pairs = _pairs(obj["query_strings"])
        if pairs is None:
            return Refused(tid, rid, uri, BAD, "Unable to parse 'query_strings' array.")
        params.update(pairs)
    return _with_body(WsRequest(tid, rid, method, uri, params, None), obj)


def _with_body(request: WsRequest, obj: object) -> WsRequest | Refused:
    """A ``message_body``: form fields join the parameters, JSON is the body."""
    text = _text(obj, "message_body")
    if not text:
        return request
    content_type = _text(obj, "content_type")
    if not content_type:
        return _refuse(request, "No 'content_type' for 'message_body'.")
    if content_type == FORM:
        form = parse_qsl(text, keep_blank_values=True)
        if not form:
            return _refuse(request, f"Unable to parse 'message_body' as '{FORM}'.")
        return replace(request, params={**request.params, **dict(form)})
    if content_type == "application/json":
        try:
            return replace(request, body=json.loads(text))
        except ValueError:
            return _refuse(request, "Unable to parse 'message_body' as 'application/json'.")
    return _refuse(request, "Unknown content type.")


def _refuse(request: WsRequest, message: str) -> Refused:
    return Refused(request.transaction_id, request.request_id, request.uri, BAD, message)


def response(
    request: WsRequest | Refused, status: int, reason: str, payload: object, *, asterisk_id: str, app: str
) -> dict[str, object]:
    """The ``RESTResponse`` of send_rest_response() as ari_websocket_send_event() writes it: a
    body (compact JSON) only when there is one, then ``application``, ``timestamp``, ``asterisk_id``."""
    answer: dict[str, object] = {
        "type": "RESTResponse",
        "transaction_id": request.transaction_id,
        "request_id": request.request_id,
        "status_code": status,
        "reason_phrase": reason,
        "uri": request.uri,
    }
    if payload is not None:
        answer["content_type"] = "application/json"
        answer["message_body"] = json.dumps(payload, separators=(",", ":"))
    answer.update(application=app, timestamp=ari_time(), asterisk_id=asterisk_id)
    return answer


class WsRest:
    """Answers the ``RESTRequest`` frames of the fake's events websockets (module docstring)."""

    def __init__(self, front: HttpFront) -> None:
        self.front = front

    async def answer(self, socket: Socket, frame: str) -> None:
        """Handle one frame the client sent on ``socket``."""
        request = parse_request(frame)
        if isinstance(request, Refused):
            message = None if request.message is None else {"message": request.message}
            await self._send(socket, request, 400, request.reason_phrase, message)
            return
        reply = await self._reply(socket, request)
        if reply is not None:
            await self._send(socket, request, reply[0], HTTPStatus(reply[0]).phrase, reply[1])

    async def _reply(self, socket: Socket, request: WsRequest) -> Reply | None:
        """What Asterisk answers (None: nothing at all), recorded like an HTTP request."""
        method, path, params = request.method, "/" + unquote(request.uri), request.params
        fault = await self.front.fault(method, path, "websocket")
        reply: Reply | None = None
        if fault is not None and (fault.disconnect or fault.hang):
            if fault.disconnect and socket.request.transport is not None:
                socket.request.transport.abort()
        elif fault is not None:
            reply = error(fault.status or 500, fault.message)
        elif request.uri.startswith("/"):
            reply = error(405, "Invalid method")  # ast_ari_invoke() stops at the empty segment: the root
        else:
            route = self.front.spec.match(method, "/" + request.uri)
            if isinstance(route, RouteError):
                reply = route.status, {"message": route.message}
            elif not route.operation.websocket:  # the events websocket itself: no_response
                params, reply = await self.front.invoke(route, params, request.body)
        self.front.record(method, path, params, request.body, reply or (0, None), via="websocket")
        return reply

    async def _send(
        self, socket: Socket, request: WsRequest | Refused, status: int, reason: str, payload: object
    ) -> None:
        world = self.front.fake.world
        app = socket.apps[0]
        state = world.apps.get(app)
        if state is None or not state.wants("RESTResponse"):
            return  # stasis_app_event_allowed(): filtered out, never sent
        event = response(request, status, reason, payload, asterisk_id=world.asterisk_id, app=app)
        await world.send(socket, app, event, world.rest_responses)
