"""The one exception hierarchy of callshield.

Every error callshield raises derives from :class:`CallShieldError`. Errors of
third-party libraries (sqlite3/aiosqlite, asyncpg, aiohttp, phonenumbers) are
translated into these at the module that talks to the library, so callers never
need to know which backend or transport is in use.

    CallShieldError
    ├── ConfigError            settings missing, malformed or contradictory
    │   └── KeyFileError       the HMAC key file is missing, unreadable or wrong
    ├── InvalidInput           an argument or field is malformed (scope, days, reason, ...)
    │   └── NumberError        input is not a usable phone number (message masks it)
    ├── InputFileError         an import file cannot be read or parsed
    ├── StoreError             the shield store failed
    │   ├── StoreUnavailable   cannot be reached or opened right now (retry later)
    │   ├── StoreCorrupt       the file/database is damaged, foreign or from a newer version
    │   └── AuditChainBroken   the audit log's hash chain does not verify
    └── PeerError              a PBX peer (ARI, AGI) misbehaved or is unreachable
        ├── PeerUnavailable    connection refused, dropped or timed out
        ├── PeerProtocolError  the peer sent something its protocol does not allow
        └── AriRequestError    ARI answered a REST call with an error status

No message may contain a phone number in plaintext: use
:func:`callshield.privacy.mask` when a number must be named.
"""

from __future__ import annotations


class CallShieldError(Exception):
    """Base class of every error callshield raises on purpose."""


class ConfigError(CallShieldError):
    """The configuration is missing, malformed or contradictory."""


class KeyFileError(ConfigError):
    """The HMAC key file is missing, unreadable, malformed or does not match the store."""


class InvalidInput(CallShieldError):
    """An argument or field given to callshield is malformed; the message names it."""


class NumberError(InvalidInput):
    """The input is not a usable phone number. The message names the problem, masked."""


class InputFileError(CallShieldError):
    """An input file (import list) cannot be opened, decoded or parsed."""


class StoreError(CallShieldError):
    """The shield store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened right now; retrying later may succeed."""


class StoreCorrupt(StoreError):
    """The store is damaged, is not a callshield store, or was written by a newer version."""


class AuditChainBroken(StoreError):
    """The audit log's hash chain does not verify."""


class PeerError(CallShieldError):
    """A PBX peer (Asterisk over ARI or FastAGI) misbehaved or is unreachable."""


class PeerUnavailable(PeerError):
    """The peer cannot be reached, or the connection dropped or timed out."""


class PeerProtocolError(PeerError):
    """The peer sent something its protocol does not allow."""


class AriRequestError(PeerError):
    """An ARI REST request answered with an error status.

    ``status`` is the HTTP status; ``message`` is Asterisk's ``message`` field when present.
    404 (channel gone) and 409 (channel left Stasis) are expected races on a live PBX.
    """

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path} answered {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message

    @property
    def is_gone(self) -> bool:
        """True for the normal races: the channel is gone (404) or left the application (409)."""
        return self.status in (404, 409)
