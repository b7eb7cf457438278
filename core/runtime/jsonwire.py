"""JSON as it crosses the wire: strict both ways, with errors a client can act on.

Python's :mod:`json` accepts and writes ``NaN``, ``Infinity`` and ``-Infinity``,
and turns an overflowing literal such as ``1e999`` into ``inf``; strict parsers
(JavaScript's ``JSON.parse``, Go, serde) reject all of them. So every body the
runtime reads goes through :func:`loads`, which refuses them, and every body it
writes through an encoder with ``allow_nan=False`` (:func:`sls_py.runtime.events.dumps`).

:func:`loads` raises :class:`InvalidJson` (an :class:`InvalidInput`, hence a 400
over HTTP, and a :class:`ValueError`) for every client mistake, naming the field
where it can be found:

- not JSON at all (with line and column);
- ``NaN``, ``Infinity``, ``-Infinity``, or a number too large for a float;
- an integer longer than Python's limit on digits (4,300 by default), which
  would otherwise raise a bare ``ValueError``;
- nesting deeper than the parser can follow (a ``RecursionError`` otherwise).
"""

from __future__ import annotations

import json
import sys

from .errors import InvalidInput

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

_FIX_NUMBER = "send a finite number, null or a string"


class InvalidJson(InvalidInput, ValueError):
    """A JSON text that the runtime refuses: a 400 over HTTP. ``errors`` holds one
    entry whose ``loc`` is the path of the offending value (``[]`` for the top level)."""


class _Bad:
    """What a refused literal parses to, so that the path to it can be found."""

    __slots__ = ("fix", "problem", "text")

    def __init__(self, text: str, problem: str, fix: str) -> None:
        self.text, self.problem, self.fix = text, problem, fix


class _Refused(Exception):
    """Raised by the fast path's hooks; the value is then found by a second parse."""


def _refuse_constant(text: str) -> Any:
    raise _Refused


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value == 0.0:  # finite (inf - inf and nan - nan are nan)
        return value
    raise _Refused


# built once: json.loads with hooks would build a decoder and a scanner per call
_strict = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(data: bytes | bytearray | str, what: str = "Request body") -> Any:
    """``data`` parsed as strict JSON; raises :class:`InvalidJson` saying what is
    wrong with it (``what`` names it in the message)."""
    try:
        text = data if isinstance(data, str) else data.decode(json.detect_encoding(data), "surrogatepass")
        return _strict.decode(text)
    except _Refused:
        raise _located(data, what) from None
    except json.JSONDecodeError as exc:
        raise InvalidJson(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"{what} is not valid JSON: it is not UTF-8 ({exc.reason})") from None
    except RecursionError:
        raise InvalidJson(
            f"{what} is nested too deeply to be parsed: "
            f"keep arrays and objects under {_depth_hint()} levels deep"
        ) from None
    except ValueError:  # int("1" * 5000): Python's limit on the digits of an integer
        raise _located(data, what) from None


def _located(data: bytes | bytearray | str, what: str) -> InvalidJson:
    """The error for the first refused number (NaN, an infinity, an overflowing
    float, an integer over ``sys.get_int_max_str_digits()`` digits), located by a
    second parse whose hooks leave a marker where each one was."""
    limit = sys.get_int_max_str_digits()
    found: list[_Bad] = []

    def mark(text: str, problem: str, fix: str) -> _Bad:
        bad = _Bad(_short(text), problem, fix)
        found.append(bad)
        return bad

    def constant(text: str) -> _Bad:
        return mark(text, f"{text} is not a number JSON allows", _FIX_NUMBER)

    def number(text: str) -> float | _Bad:
        value = float(text)
        if value - value == 0.0:
            return value
        return mark(text, f"{_short(text)} is too large for a JSON number", _FIX_NUMBER)

    def integer(text: str) -> int | _Bad:
        digits = len(text) - text.startswith("-")
        if not limit or digits <= limit:
            return int(text)
        problem = f"an integer of {digits} digits is longer than the {limit} digits allowed"
        return mark(text, problem, "send it as a string")

    try:
        value = json.loads(data, parse_constant=constant, parse_float=number, parse_int=integer)
    except ValueError as exc:  # not a number after all: say what the parser said
        return InvalidJson(f"{what} is not valid JSON: {exc}")
    if not found:
        return InvalidJson(f"{what} holds a number that cannot be read")
    return _refused(found[0], value, what)


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text)} characters)"


def _depth_hint() -> int:
    return max(100, sys.getrecursionlimit() - 200)


def _refused(bad: _Bad, value: Any, what: str) -> InvalidJson:
    path = _path_to(value, lambda v: v is bad)
    where = f" (at {describe(path)})" if path is not None else ""
    error = {"loc": path if path is not None else [], "msg": bad.problem, "type": "json_invalid"}
    return InvalidJson(f"{what} is not valid JSON: {bad.problem}{where}; {bad.fix}", [error])


def describe(path: list[str | int]) -> str:
    """A path as a message names it: ``items.3.x``, or ``the top level``."""
    return ".".join(str(p) for p in path) if path else "the top level"


def _path_to(value: Any, wanted: Any) -> list[str | int] | None:
    """The path (keys and indexes) to the first item for which ``wanted`` is true,
    in document order; no recursion, so any depth the parser allowed is fine."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if wanted(item):
            return path
        if isinstance(item, dict):
            stack.extend((v, [*path, k]) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(item))))
    return None


def non_finite_path(value: Any) -> list[str | int] | None:
    """The path to the first NaN or infinite float in plain JSON data, or ``None``."""
    return _path_to(value, lambda v: isinstance(v, float) and v - v != 0.0)


def check_finite(value: Any, what: str) -> None:
    """Raise :class:`InvalidJson` if plain data ``value`` holds NaN or an infinity
    (data that some other parser accepted: a payload given to ``AppClient.invoke``
    or parsed by a provider with Python's lenient ``json``)."""
    path = non_finite_path(value)
    if path is not None:
        found = value
        for part in path:
            found = found[part]
        text = "NaN" if found != found else ("Infinity" if found > 0 else "-Infinity")
        problem = f"{text} is not a number JSON allows"
        raise InvalidJson(
            f"{what} is not valid JSON: {problem} (at {describe(path)}); {_FIX_NUMBER}",
            [{"loc": path, "msg": problem, "type": "json_invalid"}],
        )


def not_json(exc: ValueError, plain: Any, what: str) -> ValueError:
    """A clearer error for a value that ``allow_nan=False`` refused to encode;
    ``plain`` is the value as plain data (or ``None`` when it cannot be had)."""
    path = non_finite_path(plain) if plain is not None else None
    where = f" (at {describe(path)})" if path is not None else ""
    return ValueError(
        f"{what} cannot be sent as JSON: {exc}{where}; JSON has no NaN or Infinity: "
        "use a finite number, None or a string"
    )
