"""Typed, checked access to fields of decoded ARI JSON objects.

ARI sends JSON; :func:`json.loads` gives untyped values. These helpers read one field, check
its type against the Swagger model (``string``, ``int``/``long``, ``boolean``, ``List[string]``,
nested objects) and raise :class:`~callshield.errors.PeerProtocolError` naming the model and the
field when it is missing or has the wrong type. Messages never quote field *values*: extensions,
caller numbers and dial strings are personal data.

    >>> get_str({"id": "1795847931.26"}, "id", "Channel")
    '1795847931.26'
    >>> get_int({"priority": "2"}, "priority", "DialplanCEP")
    Traceback (most recent call last):
    ...
    callshield.errors.PeerProtocolError: DialplanCEP.priority must be an integer, got str
"""

from __future__ import annotations

from collections.abc import Mapping

from callshield.errors import PeerProtocolError

JsonObject = Mapping[str, object]


def _missing(where: str, key: str) -> PeerProtocolError:
    return PeerProtocolError(f"{where}.{key} is required but missing")


def _wrong(where: str, key: str, expected: str, value: object) -> PeerProtocolError:
    return PeerProtocolError(f"{where}.{key} must be {expected}, got {type(value).__name__}")


def as_object(value: object, where: str) -> JsonObject:
    """``value`` if it is a JSON object (with string keys), else PeerProtocolError."""
    if not isinstance(value, dict):
        raise PeerProtocolError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def get_str(obj: JsonObject, key: str, where: str) -> str:
    """A required ``string`` field."""
    value = obj.get(key)
    if isinstance(value, str):
        return value
    raise _missing(where, key) if value is None else _wrong(where, key, "a string", value)


def get_opt_str(obj: JsonObject, key: str, where: str) -> str | None:
    """An optional ``string`` field: None when absent (or JSON null)."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _wrong(where, key, "a string", value)


def get_int(obj: JsonObject, key: str, where: str) -> int:
    """A required ``int``/``long`` field (JSON booleans are rejected)."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _missing(where, key) if value is None else _wrong(where, key, "an integer", value)


def get_opt_int(obj: JsonObject, key: str, where: str) -> int | None:
    """An optional ``int``/``long`` field."""
    value = obj.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _wrong(where, key, "an integer", value)


def get_opt_bool(obj: JsonObject, key: str, where: str) -> bool | None:
    """An optional ``boolean`` field."""
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _wrong(where, key, "a boolean", value)


def get_obj(obj: JsonObject, key: str, where: str) -> JsonObject:
    """A required nested object."""
    value = obj.get(key)
    if isinstance(value, dict):
        return value
    raise _missing(where, key) if value is None else _wrong(where, key, "an object", value)


def get_opt_obj(obj: JsonObject, key: str, where: str) -> JsonObject | None:
    """An optional nested object."""
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise _wrong(where, key, "an object", value)


def get_str_list(obj: JsonObject, key: str, where: str) -> tuple[str, ...]:
    """A required ``List[string]`` field, as a tuple."""
    value = obj.get(key)
    if not isinstance(value, list):
        raise _missing(where, key) if value is None else _wrong(where, key, "a list", value)
    for item in value:
        if not isinstance(item, str):
            raise _wrong(where, key, "a list of strings", item)
    return tuple(value)
