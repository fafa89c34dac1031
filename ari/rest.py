"""The HTTP edge of the ARI client: one request, errors translated into callshield's.

:class:`RestTransport` sends ARI REST requests on one shared :class:`aiohttp.ClientSession`
(keep-alive, HTTP basic auth header computed once) and turns every outcome into either the
response body or one of:

- :class:`~callshield.errors.AriRequestError` -- Asterisk answered with a status >= 400; the
  message is Asterisk's ``message`` field (404/409 on channels are the normal races: ``is_gone``);
- :class:`~callshield.errors.PeerUnavailable` -- connection refused or dropped, or no answer
  within the timeout;
- :class:`~callshield.errors.PeerProtocolError` -- a success answer that is not the JSON expected.

Failures are logged at DEBUG only: the exception carries the same text and the caller decides
how loud to be (404/409 races are routine). Credentials never appear in messages (they travel
only in the ``Authorization`` header), and neither do query parameters (variable values may be
phone numbers): errors name the method and the path (``/channels/{id}/variable``), nothing else;
digit runs in Asterisk's own messages are masked. aiohttp's exceptions are not chained
(``from None``) because their text includes the full URL.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode

import aiohttp
from callshield.errors import AriRequestError, PeerProtocolError, PeerUnavailable
from callshield.privacy import mask
from yarl import URL

logger = logging.getLogger(__name__)

Params = Mapping[str, str]
_DIGIT_RUN = re.compile(r"\+?\d[\d ()-]{3,}\d")


def segment(value: str) -> str:
    """Quote one path segment (channel ids are user-assignable: ``/`` and ``?`` must not leak)."""
    return quote(value, safe="")


def relative_uri(path: str, params: Params | None = None) -> str:
    """``path`` (already quoted) as a ``RESTRequest`` names it: relative to the ARI root, without
    the leading slash, the parameters encoded after ``?`` (``channels/1.2?reason_code=21``)."""
    uri = path.lstrip("/")
    return f"{uri}?{urlencode(params)}" if params else uri


def scrub(text: str) -> str:
    """Mask every run of 5+ digits in peer-provided text before it goes into an error message."""
    return _DIGIT_RUN.sub(lambda m: mask(m.group()), text)


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP basic auth (UTF-8, as Asterisk reads it)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def describe_client_error(exc: BaseException) -> str:
    """A short description of an aiohttp/OS failure that never includes the URL."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or 'refused'})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection error ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"websocket handshake failed ({exc.status})"
    return type(exc).__name__


def _error_message(body: bytes | str, status: int) -> str:
    try:
        decoded: object = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return scrub(decoded["message"])
    return f"HTTP {status}"


def check_status(method: str, path: str, status: int, body: bytes | str) -> None:
    """Raise the :class:`~callshield.errors.AriRequestError` of an error answer (status >= 400):
    Asterisk's ``message`` field, digit runs masked. Serves every transport (HTTP, the websocket)."""
    if status >= 400:
        raise AriRequestError(method, path, status, _error_message(body, status))


def decode_json(body: bytes | str, method: str, path: str) -> object:
    """The JSON document of a success answer, or PeerProtocolError."""
    try:
        return json.loads(body)
    except ValueError:
        raise PeerProtocolError(f"ARI {method} {path} answered with a body that is not JSON") from None


class RestTransport:
    """Send ARI REST requests; see the module docstring for the error contract.

    ``root`` is the ARI root URL (``http://host:8088/ari``); paths are relative to it and already
    quoted (use :func:`segment` for ids). ``authorization`` is the header value (:func:`basic_auth`).
    The session (a pool of ``max_connections`` keep-alive connections, idle ones closed after
    ``keepalive_timeout`` s) is created on first use, inside the running event loop.
    """

    def __init__(
        self,
        root: str,
        authorization: str,
        timeout: float,
        *,
        max_connections: int = 16,
        keepalive_timeout: float = 10.0,
    ) -> None:
        parsed = URL(root)
        self._origin = parsed.scheme, parsed.raw_authority
        self._root_path = parsed.raw_path.rstrip("/")
        """The request URLs are built from these parts, not parsed again from text per request."""
        self._headers = {"Authorization": authorization}
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._pool = (max_connections, keepalive_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared HTTP session (also used for websockets)."""
        if self._session is None:
            limit, keepalive = self._pool
            connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=keepalive)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: object = None,
        time_limit: float | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; return ``(status, body)`` of a success answer (status < 400).

        The deadline is aiohttp's own (a separate asyncio timeout per call costs more than the
        call's Python work); aiohttp raises TimeoutError when it passes.
        """
        limit = self._timeout if time_limit is None else time_limit
        timeout = self._client_timeout if time_limit is None else aiohttp.ClientTimeout(total=limit)
        headers, data = self._headers, None
        if body is not None:
            data = json.dumps(body)
            headers = {**self._headers, "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            async with self.session.request(
                method, self.url(path, params), data=data, headers=headers, timeout=timeout
            ) as response:
                status, payload = response.status, await response.read()
        except TimeoutError:
            logger.debug("ARI %s %s: no answer within %.3g s", method, path, limit)
            raise PeerUnavailable(f"ARI {method} {path}: no answer within {limit:.3g} s") from None
        except aiohttp.ClientError as exc:
            reason = describe_client_error(exc)
            logger.debug("ARI %s %s failed: %s", method, path, reason)
            raise PeerUnavailable(f"ARI {method} {path} failed: {reason}") from None
        if logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.debug("ARI %s %s -> %d (%.2f ms)", method, path, status, elapsed_ms)
        check_status(method, path, status, payload)
        return status, payload

    def url(self, path: str, params: Params | None = None) -> URL:
        """The full URL of ``path`` (already quoted, see :func:`segment`) with ``params`` encoded:
        built from its parts (parsing the text of a URL that differs per channel costs more)."""
        scheme, authority = self._origin
        url = URL.build(scheme=scheme, authority=authority, path=self._root_path + path, encoded=True)
        return url.extend_query(params) if params else url
