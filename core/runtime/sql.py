"""Reading SQL text without a parser: ``:name`` parameters and statement ends.

The database handle takes SQL with named ``:name`` parameters, as the RDS
Data API does, so the same text runs on every provider. Drivers whose client
library uses another style translate it with :func:`to_pyformat` (psycopg's
``%(name)s``); migrations are split into statements with :func:`split_statements`
(the Data API runs one statement per call).

Both walk the text once and skip what is not code: ``'string'`` and
``E'escaped'`` literals, ``"quoted identifiers"``, ``$tag$ dollar quotes $tag$``,
``-- line`` and ``/* block */`` comments, and ``::type`` casts.

Standard library only: this module is imported inside functions.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any


def _is_name_start(c: str) -> bool:
    return c.isalpha() or c == "_"


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _skip(sql: str, i: int) -> int:
    """If a literal, quoted identifier or comment starts at ``i``, the index after
    it; otherwise ``i``."""
    c = sql[i]
    n = len(sql)
    if c in "'\"":
        # a backslash escapes only in E'...' strings (standard_conforming_strings)
        escapes = c == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_name_char(sql[i - 2]))
        j = i + 1
        while j < n:
            if escapes and sql[j] == "\\":
                j += 2
                continue
            if sql[j] == c:
                if j + 1 < n and sql[j + 1] == c:  # '' or "" inside
                    j += 2
                    continue
                return j + 1
            j += 1
        return n
    if c == "-" and sql.startswith("--", i):
        j = sql.find("\n", i)
        return n if j < 0 else j + 1
    if c == "/" and sql.startswith("/*", i):
        depth, j = 1, i + 2
        while j < n and depth:
            if sql.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif sql.startswith("*/", j):
                depth, j = depth - 1, j + 2
            else:
                j += 1
        return j
    if c == "$" and (i == 0 or not _is_name_char(sql[i - 1])):
        end = sql.find("$", i + 1)
        tag = sql[i : end + 1] if end > 0 else ""
        if tag and all(_is_name_char(ch) for ch in tag[1:-1]) and not tag[1:2].isdigit():
            close = sql.find(tag, end + 1)
            return n if close < 0 else close + len(tag)
    return i


def _scan(sql: str) -> list[tuple[str, int, int]]:
    """The parameters (``("param", start, end)``) and statement ends (``(";", i, i+1)``)."""
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(sql)
    while i < n:
        j = _skip(sql, i)
        if j != i:
            i = j
            continue
        c = sql[i]
        if c == ":":
            if i + 1 < n and sql[i + 1] == ":":  # a ::cast
                i += 2
                continue
            if i + 1 < n and _is_name_start(sql[i + 1]) and (i == 0 or sql[i - 1] != ":"):
                j = i + 1
                while j < n and _is_name_char(sql[j]):
                    j += 1
                out.append(("param", i, j))
                i = j
                continue
        elif c == ";":
            out.append((";", i, i + 1))
        i += 1
    return out


#: the answers for recent SQL texts: a function runs the same few statements
#: again and again, and scanning is pure Python (tens of microseconds a statement)
_CACHE_SIZE = 256
_names_cache: dict[str, tuple[str, ...]] = {}
_pyformat_cache: dict[str, str] = {}


def _remember(cache: dict[str, Any], sql: str, value: Any) -> Any:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[sql] = value
    return value


def param_names(sql: str) -> tuple[str, ...]:
    """The ``:name`` parameters of ``sql``, in order of first use."""
    found = _names_cache.get(sql)
    if found is not None:
        return found
    seen: dict[str, None] = {}
    for kind, start, end in _scan(sql):
        if kind == "param":
            seen.setdefault(sql[start + 1 : end])
    return _remember(_names_cache, sql, tuple(seen))


def to_pyformat(sql: str) -> str:
    """``:name`` -> ``%(name)s``, and a literal ``%`` -> ``%%`` (psycopg's style)."""
    found = _pyformat_cache.get(sql)
    if found is not None:
        return found
    return _remember(_pyformat_cache, sql, _to_pyformat(sql))


def _to_pyformat(sql: str) -> str:
    parts: list[str] = []
    last = 0
    for kind, start, end in _scan(sql):
        if kind != "param":
            continue
        parts.append(sql[last:start].replace("%", "%%"))
        parts.append(f"%({sql[start + 1 : end]})s")
        last = end
    parts.append(sql[last:].replace("%", "%%"))
    return "".join(parts)


def split_statements(sql: str) -> list[str]:
    """The statements of a script, without their ``;`` and without empty ones
    (a statement made of comments only is dropped)."""
    out: list[str] = []
    last = 0
    for kind, start, _end in _scan(sql):
        if kind == ";":
            out.append(sql[last:start])
            last = start + 1
    out.append(sql[last:])
    return [s.strip() for s in out if _has_code(s)]


def _has_code(text: str) -> bool:
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text.startswith("--", i) or text.startswith("/*", i):
            i = _skip(text, i)
            continue
        return True
    return False
